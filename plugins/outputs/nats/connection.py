"""The NATS connection the ``nats`` output and the fleet share: the ``nats`` config section,
credentials and TLS, and nats-py (an asyncio library) driven from trio.

The bridge: every :class:`NatsLink` owns an asyncio event loop running in a thread of its
own; trio code hands it coroutines (:meth:`NatsLink.call`) with
``asyncio.run_coroutine_threadsafe`` and is woken through its trio token when the future
completes, so no trio worker thread waits on a network answer and a cancelled trio call
cancels the asyncio task.  Blocking code (a command, start-up) uses :meth:`NatsLink.call_sync`.
trio-asyncio would run both loops in one thread but wraps the whole agent in its loop and
lags behind Python releases; a thread of its own keeps nats-py's loop out of the agent's.

Credentials (``user``/``password``, ``token``, an NKey seed file or a ``.creds`` file) come
from the config, ``${ENV}`` references in it, or files; they are handed to nats-py and never
logged.  TLS verifies the server's certificate unless ``tls.insecure`` says otherwise.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import logging
import os
import ssl
import threading
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlsplit

import trio

from syswarden.core.alert import HOSTNAME
from syswarden.core.config import Key, Section
from syswarden.core.errors import ConfigError
from syswarden.core.webserver import parse_interval

log = logging.getLogger("syswarden.nats")

T = TypeVar("T")

SCHEMES = ("nats", "tls", "ws", "wss")


def _servers_problem(servers: list) -> str | None:
    for url in servers:
        if not isinstance(url, str):
            return f"must be URLs, not {url!r}"
        try:
            parts = urlsplit(url if "://" in url else f"nats://{url}")
            _ = parts.port              # raises on a bad port
        except ValueError as exc:
            return f"{url!r} is not a URL: {exc}"
        if parts.scheme not in SCHEMES or not parts.hostname:
            return f"{url!r} is not a NATS URL (nats://HOST:PORT, or {', '.join(SCHEMES)})"
    return None if servers else "must name at least one server"


NATS_SECTION = Section({
    "servers": Key(list, ["nats://127.0.0.1:4222"], "the cluster's URLs (any of its servers)",
                   items=str, check=_servers_problem),
    "name": Key(str, "", "the connection's name the servers show (default syswarden-HOST)"),
    "user": Key(str, "", "user name (${ENV} is expanded)"),
    "password": Key(str, "", "password (${ENV} is expanded); or password_file"),
    "password_file": Key(str, "", "a file holding the password"),
    "token": Key(str, "", "authentication token (${ENV} is expanded); or token_file"),
    "token_file": Key(str, "", "a file holding the token"),
    "nkey_seed_file": Key(str, "", "a file holding an NKey seed (SU...)"),
    "creds_file": Key(str, "", "a .creds file (user JWT and NKey seed)"),
    "tls": Key(Section({
        "ca_file": Key(str, "", "CA certificates the server's certificate is checked against "
                                "(default: the system's)"),
        "cert_file": Key(str, "", "client certificate (mutual TLS)"),
        "key_file": Key(str, "", "client key (mutual TLS)"),
        "insecure": Key(bool, False, "do not verify the server's certificate"),
    }), doc="TLS (tls:// URLs, or a server that requires it)"),
    "connect_timeout": Key(float, 2.0, "seconds for one connection attempt", min=0.1, max=600),
    "reconnect_wait": Key(float, 1.0, "seconds between two reconnection attempts", min=0.05,
                          max=600),
    "request_timeout": Key(float, 5.0, "seconds a publish waits for JetStream's ack", min=0.1,
                           max=600),
}, doc="the NATS connection shared by the nats output, rules_source and fleet")


def _read_secret(path: str, key: str) -> str:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip()
    except OSError as exc:
        raise ConfigError(f"nats.{key}: cannot read {path}: {exc.strerror}") from None


def _readable(path: str, key: str) -> str:
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"nats.{key}: {path} does not exist or cannot be read",
                          hint=f"point nats.{key} at an existing file")
    return path


CREDS_BLOCKS = ("-----BEGIN NATS USER JWT-----", "-----BEGIN USER NKEY SEED-----")


def _creds_file(path: str) -> str:
    """``path`` if it holds a user JWT and an NKey seed block (nats-py would fail on every
    attempt with a TypeError that looks like an unreachable server); its content is never
    quoted."""
    text = _read_secret(path, "creds_file")
    missing = [b.strip("-") for b in CREDS_BLOCKS if b not in text]
    if missing:
        raise ConfigError(f"nats.creds_file: {path} is not a .creds file (no "
                          f"{' and no '.join(missing)} block)",
                          hint="use the file `nsc generate creds` (or your NATS admin) gives")
    return path


def _nkey_seed_file(path: str) -> str:
    """``path`` if it holds an NKey seed (else nats-py fails every attempt, as for a server
    that cannot be reached); the seed is never quoted."""
    import nkeys
    try:
        nkeys.from_seed(bytearray(_read_secret(path, "nkey_seed_file").encode())).wipe()
    except Exception:
        raise ConfigError(f"nats.nkey_seed_file: {path} does not hold an NKey seed",
                          hint="the file holds one line, the user's seed (SU...)") from None
    return path

def connect_options(section: dict[str, Any], name: str) -> dict[str, Any]:
    """nats-py's ``connect`` arguments for the ``nats`` section (secrets included: never log
    the result).  Raises ConfigError for a file that cannot be read or a variable not set."""
    # (imported here: the webhook output's module brings httpx, which starting needs not)
    from syswarden.plugins.outputs.webhook.output import expand_env  # noqa: PLC0415

    opts: dict[str, Any] = {
        "servers": list(section.get("servers") or ["nats://127.0.0.1:4222"]),
        "name": section.get("name") or f"syswarden-{name}-{HOSTNAME}",
        "connect_timeout": float(section.get("connect_timeout") or 2.0),
        "reconnect_time_wait": float(section.get("reconnect_wait") or 1.0),
        "max_reconnect_attempts": -1,
        "allow_reconnect": True,
    }
    user = expand_env(section.get("user") or "", "nats.user")
    password = expand_env(section.get("password") or "", "nats.password")
    if section.get("password_file"):
        password = _read_secret(section["password_file"], "password_file")
    if user or password:
        opts["user"], opts["password"] = user, password
    token = expand_env(section.get("token") or "", "nats.token")
    if section.get("token_file"):
        token = _read_secret(section["token_file"], "token_file")
    if token:
        opts["token"] = token
    if section.get("nkey_seed_file"):
        opts["nkeys_seed"] = _nkey_seed_file(_readable(section["nkey_seed_file"],
                                                       "nkey_seed_file"))
    if section.get("creds_file"):
        opts["user_credentials"] = _creds_file(_readable(section["creds_file"], "creds_file"))
    tls = section.get("tls") or {}
    if any(u.startswith(("tls://", "wss://")) for u in opts["servers"]) or tls.get("ca_file") \
            or tls.get("cert_file") or tls.get("insecure"):
        opts["tls"] = _tls_context(tls)
    return opts


def _tls_context(tls: dict[str, Any]) -> ssl.SSLContext:
    try:
        ctx = ssl.create_default_context(cafile=tls.get("ca_file") or None)
        if tls.get("cert_file"):
            ctx.load_cert_chain(tls["cert_file"], tls.get("key_file") or None)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"nats.tls: {exc}") from None
    if tls.get("insecure"):
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    return ctx


def is_tls_error(exc: BaseException) -> bool:
    """The server's certificate failed verification (or TLS could not be agreed)."""
    return isinstance(exc, ssl.SSLError) or "certificate verify failed" in str(exc).lower()


def is_auth_error(exc: BaseException) -> bool:
    """The server refused the credentials (not: could not be reached)."""
    import nats.errors
    text = str(exc).lower()
    return isinstance(exc, nats.errors.AuthorizationError) or "authorization" in text \
        or "authentication" in text


def _asyncio() -> Any:
    """asyncio, imported when a link is made: every command line imports this module (the
    ``nats`` section's schema), and an agent without NATS starts without asyncio."""
    import asyncio  # noqa: PLC0415
    return asyncio


class NatsLink:
    """One NATS connection on an asyncio loop in a thread of its own (see the module doc).

    :meth:`connect` makes the first attempt and raises when it fails; afterwards nats-py
    reconnects by itself, for ever (``connected`` tells whether it is connected now).
    """

    def __init__(self, section: dict[str, Any], name: str) -> None:
        self.options = connect_options(section, name)
        self.request_timeout = float(section.get("request_timeout") or 5.0)
        self.servers = ", ".join(self.options["servers"])
        self.name = name
        self.nc: Any = None
        self.js: Any = None
        self.errors = 0
        self.closing = False
        self._loop = _asyncio().new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True,
                                        name=f"nats-{name}")
        self._thread.start()

    # -- crossing from trio, or from blocking code ------------------------------------------

    def _run(self, coro: Awaitable[T]) -> concurrent.futures.Future[T]:
        return _asyncio().run_coroutine_threadsafe(coro, self._loop)

    async def call(self, fn: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
        """Await ``fn(*args, **kwargs)`` on the link's asyncio loop, from trio."""
        token = trio.lowlevel.current_trio_token()
        done = trio.Event()
        future = self._run(fn(*args, **kwargs))
        future.add_done_callback(lambda _: token.run_sync_soon(done.set))
        try:
            await done.wait()
        except BaseException:
            future.cancel()
            raise
        return future.result()

    def call_sync(self, fn: Callable[..., Awaitable[T]], *args: Any, timeout: float = 30.0,
                  **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` on the link's loop, from blocking code."""
        future = self._run(fn(*args, **kwargs))
        try:
            return future.result(timeout)
        except concurrent.futures.TimeoutError:
            future.cancel()
            raise TimeoutError(f"NATS ({self.servers}) did not answer in {timeout:g} s") from None

    # -- the connection ---------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.nc is not None and self.nc.is_connected

    async def connect(self) -> None:
        """One connection attempt over every server (on the link's loop).  Raises what
        nats-py raises (``is_auth_error`` tells refused credentials apart)."""
        import nats
        asyncio = _asyncio()

        async def error_cb(exc: Exception) -> None:
            if self.nc is None or self.closing:
                first_errors.append(exc)    # the first attempt's: its caller says what failed
                return
            self.errors += 1
            if self.errors <= 3 or self.errors % 100 == 0:
                log.warning("nats %s: %s: %s (%d errors so far)", self.name,
                            type(exc).__name__, exc or "error", self.errors)

        async def disconnected_cb() -> None:
            if self.closing or self.nc is None:
                return
            log.warning("nats %s: disconnected from %s", self.name, self.servers)

        async def reconnected_cb() -> None:
            if self.nc is None:
                return
            log.info("nats %s: reconnected to %s", self.name, self.nc.connected_url.netloc)

        # the first attempt: once over the servers (nats-py would try for ever)
        first_errors: list[Exception] = []
        opts = dict(self.options, allow_reconnect=False, max_reconnect_attempts=0)
        nc = nats.NATS()
        bound = opts["connect_timeout"] * len(opts["servers"]) + 1.0
        attempt = asyncio.ensure_future(nc.connect(**opts, error_cb=error_cb,
                                                   disconnected_cb=disconnected_cb,
                                                   reconnected_cb=reconnected_cb))
        # not wait_for: a connect that swallows its cancellation would hold wait_for for ever
        await asyncio.wait({attempt}, timeout=bound)
        if not attempt.done() or attempt.exception() is not None:
            failure = attempt.exception() if attempt.done() else \
                TimeoutError(f"no answer from {self.servers} in {bound:g} s")
            attempt.cancel()                # abandoned, if it does not end by itself
            with contextlib.suppress(Exception):
                await asyncio.wait_for(nc.close(), 1.0)
            auth = [e for e in first_errors if is_auth_error(e) or is_tls_error(e)]
            if auth:
                raise auth[-1]
            if first_errors and isinstance(failure, TimeoutError):
                raise first_errors[-1]
            raise failure
        # connected: from now on nats-py reconnects by itself, for ever (it reads these
        # options when the connection breaks)
        nc.options["allow_reconnect"] = True
        nc.options["max_reconnect_attempts"] = -1
        self.nc = nc
        self.js = nc.jetstream(timeout=self.request_timeout)

    async def close(self) -> None:
        self.closing = True
        if self.nc is not None:
            try:
                await self.nc.close()
            except Exception:           # closing a broken connection: nothing to save
                pass
            self.nc = None

    def stop(self) -> None:
        """Close the connection and end the loop's thread (from blocking code or trio)."""
        if self._loop.is_running():
            try:
                self.call_sync(self.close, timeout=5.0)
            except Exception:
                pass
            self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5.0)


# ---------------------------------------------------------------------------------------------
# Durations as the fleet's keys write them: 5s, 500ms, 2m, 1h, 7d (or a number of seconds),
# read as Falco's metrics.interval is (one parser: core.webserver.parse_interval)
# ---------------------------------------------------------------------------------------------


def seconds(value: Any) -> float:
    """``5s``, ``500ms``, ``2m``, ``1h``, ``7d`` or a number of seconds, in seconds.
    Raises ValueError."""
    return parse_interval(value)


def _duration_problem(value: Any) -> str | None:
    try:
        secs = seconds(value)
    except ValueError as exc:
        return str(exc)
    return None if 0 <= secs <= 366 * 86400 else f"{value!r} is out of range (0 to 366d)"


def duration_key(default: str, doc: str) -> Key:
    """A key holding a duration (see :func:`seconds`)."""
    return Key((str, int, float), default, f"{doc} (5s, 500ms, 2m, 1h, 7d)",
               check=_duration_problem)
