"""Falco's ``webserver`` and ``metrics``: ``/healthz``, ``/metrics`` and the metrics snapshot.

Served from the agent's root nursery (:func:`serve`, started before the pipeline) by hypercorn's
trio worker: an ASGI app of two routes, no hand-written HTTP.

- ``webserver.k8s_healthz_endpoint`` (``/healthz``): 200 ``{"status": "ok"}`` when every stage
  moves, else 503 with the status and the problems, each naming its stage
  (:mod:`syswarden.core.health`).  503 ``starting`` before the ``syswarden ready`` line, and
  ``stopping`` once a stop is asked.
- ``/metrics``: the Prometheus text format (:mod:`syswarden.core.exposition`) when
  ``webserver.prometheus_metrics_enabled`` and ``metrics.enabled`` (as Falco: both).
- ``metrics.interval``: with ``metrics.enabled``, every interval the same figures as an
  internal alert, Falco's ``Falco internal: metrics snapshot`` (``metrics.output_rule``), and
  as a JSON line ``{"sample": N, "output_fields": {...}}`` appended to ``metrics.output_file``.

An address that cannot be listened on (in use, not this machine's) and a certificate that
cannot be loaded are bad input: a :class:`~syswarden.core.errors.ConfigError` naming the key
and its line, raised before the agent is ready (exit code 2).

The sections are declared here and given to the config loader through the
``syswarden_config_schema`` hook: :mod:`syswarden.core.plugins` registers this module as a core
plugin.
"""

from __future__ import annotations

import ipaddress
import json
import logging
import os
import re
import socket
import ssl
from typing import TYPE_CHECKING, Any

import trio

from .alert import Priority
from .config import MAX_SECONDS, Key, Section
from . import safe_files
from .errors import ConfigError, Location, UnsafePathError
from .health import Health
from .hookspecs import hookimpl

if TYPE_CHECKING:
    from .agent import Agent
    from .exposition import Figures

log = logging.getLogger("syswarden.webserver")
logging.getLogger("syswarden.webserver.hypercorn").setLevel(logging.WARNING)   # its banner

SNAPSHOT_RULE = "Falco internal: metrics snapshot"
SNAPSHOT_OUTPUT = "Falco metrics snapshot"
#: seconds between two looks at the stages' counters and queues
HEALTH_TICK = 0.5

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0,
          "y": 31536000.0}
_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w|y)\s*$")


def parse_interval(value: Any) -> float:
    """Falco's ``metrics.interval``: a number of seconds, or ``100ms``, ``15m``, ``1h``...
    Raises ValueError."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"{value!r} is not a duration (a number then ms, s, m, h, d, w or y)")
    return float(match.group(1)) * _UNITS[match.group(2)]


def _interval_problem(value: Any) -> str | None:
    try:
        seconds = parse_interval(value)
    except ValueError as exc:
        return str(exc)
    if not 0.1 <= seconds <= 365 * MAX_SECONDS:
        return f"{value!r} must be at least 100ms (Falco's minimum) and at most a year"
    return None


def _address_problem(value: str) -> str | None:
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return (f"{value!r} is not an IPv4 or IPv6 address (e.g. 0.0.0.0 for every interface, "
                "127.0.0.1 for this machine only)")
    return None


def _path_problem(value: str) -> str | None:
    return None if value.startswith("/") else f"{value!r} must be an absolute path"


_GROUPS = ("rules_counters", "resource_utilization", "state_counters", "kernel_event_counters")
_ACCEPTED = ("kernel_event_counters_per_cpu", "libbpf_stats", "plugins_metrics",
             "jemalloc_stats", "kernel_iter_event_counters")

SCHEMA: dict[str, Section] = {
    "webserver": Section({
        "enabled": Key(bool, False, "serve /healthz and /metrics (Falco's default is true; "
                       "here off, so that agents side by side do not fight over the port)"),
        "threadiness": Key(int, 0, "accepted for falco.yaml compatibility; one trio thread "
                           "serves", min=0, max=1024),
        "listen_address": Key(str, "0.0.0.0", "IPv4 or IPv6 address to listen on",
                              check=_address_problem),
        "listen_port": Key(int, 8765, "TCP port to listen on; 0: any free port (logged)",
                           min=0, max=65535),
        "k8s_healthz_endpoint": Key(str, "/healthz", "path of the health check",
                                    check=_path_problem),
        "healthz_stall_timeout": Key(float, 10.0, "seconds a stage may take nothing while "
                                     "events wait before /healthz answers 503 (syswarden's)",
                                     min=0.5, max=MAX_SECONDS),
        "prometheus_metrics_enabled": Key(bool, False, "serve /metrics (with metrics.enabled)"),
        "ssl_enabled": Key(bool, False, "serve HTTPS"),
        "ssl_certificate": Key(str, "/etc/falco/falco.pem", "PEM file with the certificate "
                               "and its key", check=_path_problem),
    }, doc="Falco's embedded webserver: /healthz and Prometheus /metrics"),
    "metrics": Section({
        "enabled": Key(bool, False, "collect metrics: /metrics, and the periodic snapshot"),
        "interval": Key((str, float), "1h", "seconds, or a duration: 100ms, 15m, 1h...",
                        check=_interval_problem),
        "output_rule": Key(bool, True, "raise the snapshot as the internal alert "
                           f"{SNAPSHOT_RULE!r} (priority informational)"),
        "output_file": Key(str, "", "append each snapshot to this file as a JSON line; "
                           "empty: none"),
        **{f"{g}_enabled": Key(bool, True, f"include the {g.replace('_', ' ')}")
           for g in _GROUPS},
        **{f"{g}_enabled": Key(bool, False, "accepted for falco.yaml compatibility")
           for g in _ACCEPTED},
        "convert_memory_to_mb": Key(bool, True, "memory in MB in the snapshot (else kB)"),
        "include_empty_values": Key(bool, False, "include counters still at 0"),
    }, doc="Falco's metrics: what is collected, how often it is snapshotted, where to"),
}


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return SCHEMA


def settings(config: dict[str, Any], name: str) -> dict[str, Any]:
    """Section ``name`` of ``config``, its defaults where the config has none (an agent built
    from a config the loader did not fill, as tests do)."""
    return {**SCHEMA[name].defaults(), **(config.get(name) or {})}


def _location(config: dict[str, Any], key: str) -> Location:
    """Where ``webserver.<key>`` is in the config file (its line when the file sets it)."""
    from . import yamlmarks
    file = config.get("_config_file")
    if file:
        try:
            _, marks = yamlmarks.load_file(file, ConfigError)
            return marks.loc(("webserver", key), f"webserver.{key}")
        except (ConfigError, KeyError):
            pass
    return Location(file, item=f"webserver.{key}")


def _listen(web: dict[str, Any], config: dict[str, Any]) -> socket.socket:
    """The listening socket; ConfigError when the address cannot be listened on."""
    addr, port = web["listen_address"], int(web["listen_port"])
    family = socket.AF_INET6 if ipaddress.ip_address(addr).version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if family == socket.AF_INET6:
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
        sock.bind((addr, port))
        sock.listen(128)
    except OSError as exc:
        sock.close()
        key = "listen_port" if exc.errno == 98 else "listen_address"
        hint = ("another program listens there: stop it or choose another listen_port"
                if exc.errno == 98 else "use an address of this machine, or 0.0.0.0")
        raise ConfigError(f"the webserver cannot listen on {addr} port {port}: "
                          f"{exc.strerror or exc}", _location(config, key), hint=hint) from None
    sock.setblocking(False)
    return sock


def _ssl_context(web: dict[str, Any], config: dict[str, Any]) -> ssl.SSLContext:
    path = web["ssl_certificate"]
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    try:
        ctx.load_cert_chain(path, path)
    except (OSError, ssl.SSLError) as exc:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"cannot load the webserver's certificate {path}: {why}",
                          _location(config, "ssl_certificate"),
                          hint="one PEM file holding the certificate and its private key, as "
                          "Falco's (openssl req -newkey rsa:2048 -nodes -keyout k.pem -x509 "
                          "-out c.pem; cat k.pem c.pem > falco.pem)") from None
    return ctx


class App:
    """The ASGI app: the health endpoint and ``/metrics``."""

    def __init__(self, health: Health, figures: Figures | None, healthz: str) -> None:
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

        from .exposition import FiguresCollector
        self.health = health
        self.healthz = healthz
        self.registry = None
        if figures is not None:
            self.registry = CollectorRegistry(auto_describe=False)
            self.registry.register(FiguresCollector(figures))
        self._generate = generate_latest
        self._metrics_type = CONTENT_TYPE_LATEST.encode()

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == self.healthz:
            ok, body = self.health.verdict()
            status, ctype, data = (200 if ok else 503), b"application/json", \
                json.dumps(body).encode()
        elif path == "/metrics" and self.registry is not None:
            status, ctype, data = 200, self._metrics_type, self._generate(self.registry)
        else:
            status, ctype, data = 404, b"text/plain", b"not found\n"
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", ctype),
                                (b"content-length", str(len(data)).encode())]})
        await send({"type": "http.response.body", "body": data})


async def serve(agent: "Agent", *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    """The webserver and the metrics snapshot of ``agent``, as its config asks (nothing when
    both are off).  Started (``task_status.started()``) once listening; runs until cancelled."""
    web = settings(agent.config, "webserver")
    mcfg = settings(agent.config, "metrics")
    figures = None
    if mcfg["enabled"]:         # prometheus_client imported only then (start-up time)
        from .exposition import Figures
        figures = Figures(agent, mcfg)
    if not web["enabled"] and figures is None:
        task_status.started()
        return
    async with trio.open_nursery() as nursery:
        if web["enabled"]:
            await nursery.start(_serve_http, agent, web, figures)
        if figures is not None:
            interval = parse_interval(mcfg["interval"])
            nursery.start_soon(_snapshots, agent, figures, mcfg, interval)
        task_status.started()


async def _serve_http(agent: "Agent", web: dict[str, Any], figures: Figures | None, *,
                      task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
    from hypercorn.config import Config
    from hypercorn.trio import serve as hypercorn_serve
    config = agent.config
    context = _ssl_context(web, config) if web["ssl_enabled"] else None
    sock = _listen(web, config)
    health = Health(agent, float(web["healthz_stall_timeout"]))
    app = App(health, figures if web["prometheus_metrics_enabled"] else None,
              web["k8s_healthz_endpoint"])
    hc = Config()
    hc.accesslog = None
    hc.errorlog = logging.getLogger("syswarden.webserver.hypercorn")
    hc.graceful_timeout = 1.0
    host, port = sock.getsockname()[:2]
    hc.bind = [f"fd://{sock.detach()}"]
    if context is not None:
        hc.certfile = hc.keyfile = web["ssl_certificate"]
    scheme = "https" if context is not None else "http"
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_watch_health, health)
        await nursery.start(hypercorn_serve, app, hc)
        log.info("webserver: %s://%s:%d%s%s", scheme,
                 f"[{host}]" if ":" in host else host, port, web["k8s_healthz_endpoint"],
                 " and /metrics" if app.registry is not None else "")
        task_status.started()


async def _watch_health(health: Health) -> None:
    while True:
        health.sample()
        await trio.sleep(HEALTH_TICK)


async def _snapshots(agent: "Agent", figures: Figures, mcfg: dict[str, Any],
                     interval: float) -> None:
    """Every ``interval``: the snapshot as an internal alert and a line of the output file."""
    sample = 0
    path = mcfg["output_file"]
    await agent.ready.wait()
    while True:
        await trio.sleep(interval)
        sample += 1
        fields = figures.snapshot_fields()
        if mcfg["output_rule"]:
            agent.emit_internal_alert(SNAPSHOT_OUTPUT, fields, rule=SNAPSHOT_RULE,
                                      priority=Priority.INFORMATIONAL)
        if path:
            line = json.dumps({"sample": sample, "output_fields": fields}, default=str)
            try:
                await trio.to_thread.run_sync(_append, path, line)
            except (OSError, UnsafePathError) as exc:
                log.error("metrics.output_file %s: %s", path, exc)


def _append(path: str, line: str) -> None:
    """One line appended to ``path``, opened as every file the root agent writes (no link
    followed, no directory others can write, mode 0600: the figures name the host)."""
    with os.fdopen(safe_files.open_file(path), "a", encoding="utf-8") as fh:
        fh.write(line + "\n")
