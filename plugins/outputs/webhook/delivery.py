"""One HTTP request with Falco's ``http_output`` settings, and what to do when it fails.

:func:`make_client` builds the httpx client: TLS from ``insecure``, ``ca_cert``/``ca_bundle``/
``ca_path``, ``mtls`` with ``client_cert``/``client_key``; ``keep_alive``; ``user_agent``.
:func:`send` makes one attempt and classifies it: delivered, retry (connection errors,
timeouts, 5xx, 408, 429; with the server's ``Retry-After`` when it gives one) or rejected
(other statuses: not retried, the body is kept for the log).  :class:`Backoff` spaces retries
exponentially with jitter.
"""

from __future__ import annotations

import email.utils
import gzip
import random
import ssl
import time
from dataclasses import dataclass
from typing import Any

import httpx
import trio

from syswarden.core.errors import ConfigError

from .presets import Request

RETRY_STATUSES = {408, 429}


@dataclass
class Outcome:
    delivered: bool
    retry: bool
    reason: str
    body: bytes = b""
    retry_after: float | None = None


def ssl_context(section: dict[str, Any]) -> ssl.SSLContext | bool:
    """Falco's TLS keys as an SSLContext (or True: the system's CAs, no client certificate)."""
    cafile = section.get("ca_cert") or section.get("ca_bundle") or None
    capath = section.get("ca_path") or None
    client_cert = section.get("client_cert") or None
    wants_client = bool(section.get("mtls")) or client_cert is not None
    insecure = bool(section.get("insecure"))
    if not (cafile or capath or wants_client or insecure):
        return True
    try:
        ctx = ssl.create_default_context(cafile=cafile, capath=capath)
        if insecure:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        if wants_client:
            if not client_cert:
                raise ConfigError(f"webhook {section.get('name')!r}: mtls needs client_cert")
            ctx.load_cert_chain(client_cert, section.get("client_key") or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"webhook {section.get('name')!r}: TLS set-up failed: {exc}") from None
    return ctx


def make_client(section: dict[str, Any], tls: ssl.SSLContext | bool) -> httpx.AsyncClient:
    keep_alive = section.get("keep_alive", True)
    connections = int(section.get("max_in_flight") or 4)     # one per request in flight
    limits = httpx.Limits(max_connections=connections,
                          max_keepalive_connections=connections if keep_alive else 0)
    return httpx.AsyncClient(verify=tls, limits=limits,
                             timeout=float(section.get("timeout") or 10.0),
                             headers={"User-Agent": section.get("user_agent") or "syswarden"},
                             follow_redirects=False)


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header: delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def transport_reason(exc: BaseException) -> str:
    """Why a request failed, from the first cause that says: httpx's ConnectError over trio
    has an empty message, the TLS failure is two causes down."""
    seen: set[int] = set()
    cause: BaseException | None = exc
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"{type(exc).__name__}: TLS certificate verify failed: "
                    f"{cause.verify_message or cause.reason}")
        if isinstance(cause, ssl.SSLError):
            return f"{type(exc).__name__}: TLS error: {cause.reason or cause}"
        cause = cause.__cause__ or cause.__context__
    cause, seen = exc, set()
    while cause is not None and id(cause) not in seen:
        seen.add(id(cause))
        if str(cause):
            return f"{type(exc).__name__}: {cause}"
        cause = cause.__cause__ or cause.__context__
    return type(exc).__name__


async def send(client: httpx.AsyncClient, url: str, request: Request, headers: dict[str, str],
               timeout: float, compress: bool) -> Outcome:
    body = request.body
    hdrs = {"Content-Type": request.content_type, **headers, **request.headers}
    if compress:
        body = gzip.compress(body)
        hdrs["Content-Encoding"] = "gzip"
    target = url.rstrip("/") + request.path if request.path else url
    response = None
    with trio.move_on_after(timeout) as scope:   # the whole request, however slow the drip
        try:
            response = await client.request(request.method, target, content=body,
                                            headers=hdrs)
        except httpx.TimeoutException as exc:
            return Outcome(False, True, f"timeout ({type(exc).__name__})")
        except httpx.TransportError as exc:
            return Outcome(False, True, transport_reason(exc))
    if scope.cancelled_caught or response is None:
        return Outcome(False, True, f"no answer within {timeout:g} s")
    status = response.status_code
    if 200 <= status < 300:
        return Outcome(True, False, str(status), response.content)
    reason = f"HTTP {status}"
    if status >= 500 or status in RETRY_STATUSES:
        return Outcome(False, True, reason, response.content,
                       parse_retry_after(response.headers.get("Retry-After")))
    return Outcome(False, False, reason, response.content)


class Backoff:
    """Exponential backoff with jitter: ``base * 2**n`` capped at ``cap``, times 0.5-1."""

    def __init__(self, base: float, cap: float, rng: random.Random | None = None) -> None:
        self.base = base
        self.cap = cap
        self.attempt = 0
        self.rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        delay = min(self.cap, self.base * (2 ** self.attempt))
        self.attempt += 1
        delay = self.rng.uniform(delay / 2, delay)
        if retry_after is not None:        # the server knows better; still bounded
            delay = max(delay, min(retry_after, max(self.cap, 300.0)))
        return delay

    def reset(self) -> None:
        self.attempt = 0
