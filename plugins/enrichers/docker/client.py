"""A small Docker Engine API client over the unix socket, with httpx (works under trio).

Only what the enricher needs: ``ping``, ``inspect`` a container, ``list`` the running ones,
and stream ``/events`` (container events only).  Every failure to reach the daemon (socket
missing, refused, reset, timed out, daemon restarting) is raised as :class:`DockerUnavailable`,
so the caller has one thing to catch; an unknown container is None, not an error.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator

import httpx

DEFAULT_SOCKET = "/var/run/docker.sock"


class DockerUnavailable(Exception):
    """The daemon could not be reached or did not answer in time."""


class DockerClient:
    """Docker Engine API on ``socket_path``; ``timeout`` bounds every request (not the stream)."""

    def __init__(self, socket_path: str = DEFAULT_SOCKET, timeout: float = 2.0) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._client = httpx.AsyncClient(
            transport=httpx.AsyncHTTPTransport(uds=socket_path),
            base_url="http://docker",
            timeout=httpx.Timeout(timeout),
        )

    async def aclose(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> "DockerClient":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    async def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            return await self._client.get(path, params=params or None)
        except (httpx.TransportError, OSError) as exc:
            raise DockerUnavailable(f"{self.socket_path}: {_describe(exc)}") from None

    async def ping(self) -> str:
        """The daemon's API version (``/version``); raises DockerUnavailable."""
        resp = await self._get("/version")
        if resp.status_code != 200:
            raise DockerUnavailable(f"{self.socket_path}: /version answered {resp.status_code}")
        return str(resp.json().get("ApiVersion", ""))

    async def inspect(self, container_id: str) -> dict[str, Any] | None:
        """``GET /containers/{id}/json`` (a full id or an unambiguous prefix); None if unknown."""
        resp = await self._get(f"/containers/{container_id}/json")
        if resp.status_code == 404:
            return None
        if resp.status_code != 200:
            raise DockerUnavailable(f"{self.socket_path}: inspect {container_id} answered "
                                    f"{resp.status_code}")
        try:
            return resp.json()
        except ValueError:
            raise DockerUnavailable(f"{self.socket_path}: inspect {container_id}: "
                                    "not JSON") from None

    async def list_ids(self) -> list[str]:
        """Full ids of the running containers (``GET /containers/json``)."""
        resp = await self._get("/containers/json")
        if resp.status_code != 200:
            raise DockerUnavailable(f"{self.socket_path}: list answered {resp.status_code}")
        return [str(c.get("Id", "")) for c in resp.json() if c.get("Id")]

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Stream container events (``GET /events``) until the daemon closes the stream.

        Raises DockerUnavailable when the connection fails or breaks.
        """
        params = {"filters": json.dumps({"type": ["container"]})}
        timeout = httpx.Timeout(self.timeout, read=None)
        try:
            async with self._client.stream("GET", "/events", params=params,
                                           timeout=timeout) as resp:
                if resp.status_code != 200:
                    raise DockerUnavailable(f"{self.socket_path}: /events answered "
                                            f"{resp.status_code}")
                async for line in resp.aiter_lines():
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        doc = json.loads(line)
                    except ValueError:
                        continue
                    if isinstance(doc, dict):
                        yield doc
        except (httpx.TransportError, OSError) as exc:
            raise DockerUnavailable(f"{self.socket_path}: {_describe(exc)}") from None


def _describe(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    cause = exc.__cause__ or exc.__context__
    if isinstance(cause, OSError) and cause.strerror:
        text = cause.strerror
    return text
