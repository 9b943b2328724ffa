"""The Docker engine (and podman's, on its Docker-compatible API): the Engine API over a unix
socket with httpx (works under trio).

Only what the enricher needs: ``/version``, inspect a container (``GET /containers/{id}/json``),
list the running ones, and stream ``/events`` (container events only).  Every failure to reach
the daemon (socket missing, refused, reset, timed out, daemon restarting) is raised as
:class:`~..engine.EngineUnavailable`; an unknown container is None, not an error.

The inspect answer is read as Falco's Docker engine reads it: ``container.image`` is
``Config.Image`` (the image as the user named it), ``container.name`` is ``Name`` without its
leading ``/``, ``privileged`` is ``HostConfig.Privileged``, mounts are ``Mounts`` in Docker's
order, ``start_ts`` is ``State.StartedAt``, the labels those no longer than ``label_max_len``;
``State.Pid`` is the first process's pid; with ``with_size`` the inspection asks for the
size (``SizeRw``).  Events: ``create`` and ``start`` as ``hooks`` says, ``rename`` and
``update`` always (a new name, new limits), ``destroy`` (podman: ``remove``).

podman serves the same API (``/run/podman/podman.sock``, rootless
``/run/user/<uid>/podman/podman.sock``): :class:`PodmanEngine` is this engine with podman's
sockets and ``container.type`` podman.
"""

from __future__ import annotations

import json
from typing import Any, AsyncIterator, Callable

import httpx

from syswarden.core.cgroups import SHORT_ID_LEN
from syswarden.core.event import Container, Mount

from ..engine import (DEFAULT_OPTIONS, ContainerEngine, EngineEvent, EngineOptions,
                      EngineUnavailable)
from ..metadata import (DOCKER_LAST_APPLIED, K8S_CONTAINER, image_parts, parse_timestamp,
                        pod_probes, probes_of, short_labels, strip_algo)

DEFAULT_SOCKET = "/var/run/docker.sock"

#: Docker events that (re)define what the cache holds about a container: the hooks (looked up
#: when ``hooks`` names them) and the changes of a known container (always)
_HOOKS = frozenset({"create", "start"})
_CHANGES = frozenset({"rename", "update"})
#: ... and that remove it: Docker's destroy, podman's remove
_GONE = frozenset({"destroy", "remove"})

DockerUnavailable = EngineUnavailable


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

    async def inspect(self, container_id: str, size: bool = False) -> dict[str, Any] | None:
        """``GET /containers/{id}/json`` (a full id or an unambiguous prefix; with ``size``,
        its ``SizeRw`` too); None if unknown."""
        resp = await self._get(f"/containers/{container_id}/json",
                               **({"size": "true"} if size else {}))
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


def container_from_inspect(doc: dict[str, Any], kind: str = "docker",
                           options: EngineOptions = DEFAULT_OPTIONS,
                           warn: Callable[[str, str], None] | None = None) -> Container:
    """Build a complete :class:`Container` from an inspect answer; ``warn(id, what)`` is told
    what of it could not be read."""
    full_id = str(doc.get("Id") or "")
    config = doc.get("Config") or {}
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    image = str(config.get("Image") or "")
    image_id = strip_algo(str(doc.get("Image") or ""))
    repo, tag, digest = image_parts(image, image_id)
    name = str(doc.get("Name") or "")
    if name.startswith("/"):
        name = name[1:]
    mounts = [
        Mount(source=str(m.get("Source") or ""), dest=str(m.get("Destination") or ""),
              mode=str(m.get("Mode") or ""), rw=bool(m.get("RW", True)),
              propagation=str(m.get("Propagation") or ""))
        for m in (doc.get("Mounts") or []) if isinstance(m, dict)
    ]
    raw_labels = config.get("Labels") or {}
    labels = short_labels(raw_labels, options.label_max_len)
    pod, probes_error = pod_probes(raw_labels.get(DOCKER_LAST_APPLIED))
    if probes_error is not None and warn is not None:
        warn(full_id, f"{DOCKER_LAST_APPLIED}: {probes_error}")
    liveness, readiness = probes_of(pod, labels.get(K8S_CONTAINER))
    healthcheck = None
    test = (config.get("Healthcheck") or {}).get("Test")
    if isinstance(test, list) and test:
        if test[0] == "CMD" and len(test) > 1:
            healthcheck = " ".join(str(t) for t in test[1:])
        elif test[0] == "CMD-SHELL" and len(test) > 1:
            healthcheck = "/bin/sh -c " + str(test[1])
        elif test[0] == "NONE":
            healthcheck = "NONE"
    if liveness or readiness:
        healthcheck = None      # Falco's: a Kubernetes probe, the health check not considered
    networks = ((doc.get("NetworkSettings") or {}).get("IPAddress")) or None
    container = Container(
        id=full_id[:SHORT_ID_LEN],
        full_id=full_id,
        type=kind,
        name=name or None,
        image=image or None,
        image_repository=repo,
        image_tag=tag,
        image_id=image_id or None,
        image_digest=digest,
        privileged=bool(host.get("Privileged")) if "Privileged" in host else None,
        mounts=mounts,
        labels=labels,
        start_ts=parse_timestamp(state.get("StartedAt")),
        healthcheck=healthcheck,
        liveness_probe=liveness,
        readiness_probe=readiness,
        pod_probes=pod,
        ip=networks,
        user=str(config.get("User")) if config.get("User") else None,
        complete=True,
        host_pid=host.get("PidMode") == "host",
        host_network=host.get("NetworkMode") == "host",
        host_ipc=host.get("IpcMode") == "host",
        pid=int(state.get("Pid") or 0) or None,
        size_rw=int(doc["SizeRw"]) if options.with_size and doc.get("SizeRw") is not None
        else None,
    )
    return container


class DockerEngine(ContainerEngine):
    """Docker's Engine API (``container.type`` docker)."""

    name = "docker"
    kind = "docker"
    types = frozenset({"docker"})
    default_sockets = (DEFAULT_SOCKET, "/run/docker.sock")

    def __init__(self, socket: str = DEFAULT_SOCKET, timeout: float = 2.0,
                 options: EngineOptions = DEFAULT_OPTIONS) -> None:
        super().__init__(socket, timeout, options)
        self.client = DockerClient(socket, timeout)

    async def aclose(self) -> None:
        await self.client.aclose()

    async def ping(self) -> str:
        return await self.client.ping()

    async def inspect(self, full_id: str) -> Container | None:
        doc = await self.client.inspect(full_id, self.options.with_size)
        return container_from_inspect(doc, self.kind, self.options, self.unreadable) \
            if doc is not None else None

    async def list_running(self) -> list[str]:
        return await self.client.list_ids()

    async def events(self) -> AsyncIterator[EngineEvent]:
        async for doc in self.client.events():
            action = str(doc.get("Action") or doc.get("status") or "")
            full = str((doc.get("Actor") or {}).get("ID") or doc.get("id") or "")
            if len(full) < SHORT_ID_LEN:
                continue
            if action in _CHANGES or (action in _HOOKS and self.hooked(action)):
                yield EngineEvent(full, "refresh")
            elif action in _GONE:
                yield EngineEvent(full, "destroy")


class PodmanEngine(DockerEngine):
    """podman's Docker-compatible API (``container.type`` podman): the same answers, podman's
    sockets (rootful, then each user's)."""

    name = "podman"
    kind = "podman"
    types = frozenset({"podman"})
    default_sockets = ("/run/podman/podman.sock", "/run/user/*/podman/podman.sock")
