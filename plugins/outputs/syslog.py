"""The syslog output (Falco's ``syslog_output``): alerts sent to a syslog daemon.

Where: the local socket (``/dev/log``, the default), another unix socket
(``unix:///run/x.sock`` or a plain path), ``udp://host:port`` or ``tcp://host:port`` (TCP frames
use RFC 6587 octet counting, or newlines with ``tcp_framing: newline``).  How: RFC 3164 (what
glibc's ``syslog()`` writes, the default) or RFC 5424.  The severity is the alert's priority
(Falco's priorities are syslog's severities); the facility is configurable (``user`` default).

A send that fails is retried once on a fresh socket; what still fails is counted as
``outputs.syslog.failed`` and logged once per failure streak.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from typing import Any
from urllib.parse import urlsplit

import trio

from syswarden.core.alert import Alert
from syswarden.core.config import Key, Section
from syswarden.core.errors import ConfigError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import (BatchInHand, OutputSettings, batches, build_if_enabled,
                                    output_schema)
from syswarden.core.protocols import Output

log = logging.getLogger("syswarden.outputs.syslog")

FACILITIES = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
    **{f"local{i}": 16 + i for i in range(8)},
}
MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def parse_address(address: str) -> tuple[str, Any]:
    """``""`` -> ("unix", "/dev/log"); ``udp://h:p`` -> ("udp", (h, p)); a path -> unix."""
    if not address:
        return "unix", "/dev/log"
    if "://" not in address:
        return "unix", address
    try:
        parts = urlsplit(address)
        if parts.scheme == "unix":
            return "unix", parts.netloc + parts.path
        if parts.scheme in ("udp", "tcp"):
            if not parts.hostname or not parts.port:
                raise ConfigError(f"syslog_output.address {address!r} needs host:port "
                                  "(port 1..65535; an IPv6 host in brackets: udp://[::1]:514)")
            return parts.scheme, (parts.hostname, parts.port)
    except ValueError as exc:     # urllib: "Invalid IPv6 URL", "Port out of range 0-65535"
        raise ConfigError(f"syslog_output.address {address!r}: {exc} (udp://host:port or "
                          "tcp://host:port, port 1..65535, an IPv6 host in brackets)") from None
    raise ConfigError(f"syslog_output.address {address!r}: scheme must be unix, udp or tcp")


def address_problem(address: str) -> str | None:
    """The config check of ``address``: what :func:`parse_address` refuses, or None."""
    try:
        parse_address(address)
    except ConfigError as exc:
        return exc.message.removeprefix("syslog_output.address ")
    return None


class SyslogFormat:
    """Renders one syslog message (bytes, no framing) for an alert's formatted line."""

    def __init__(self, rfc: str, facility: int, tag: str, hostname: str | None) -> None:
        self.rfc = rfc
        self.facility = facility
        self.tag = tag
        self.hostname = hostname          # None: omitted (RFC 3164 on the local socket)
        self.pid = os.getpid()

    def __call__(self, alert: Alert, text: str) -> bytes:
        pri = self.facility * 8 + int(alert.priority)
        text = text.replace("\n", " ")
        if self.rfc == "rfc5424":
            secs, frac = divmod(alert.time_ns, 1_000_000_000)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + \
                f".{frac // 1000:06d}Z"
            host = self.hostname or socket.gethostname()
            return f"<{pri}>1 {stamp} {host} {self.tag} {self.pid} alert - {text}".encode()
        lt = time.localtime(alert.time_ns // 1_000_000_000)
        stamp = f"{MONTHS[lt.tm_mon - 1]} {lt.tm_mday:2d} {lt.tm_hour:02d}:{lt.tm_min:02d}:" \
                f"{lt.tm_sec:02d}"
        host = f" {self.hostname}" if self.hostname else ""
        return f"<{pri}>{stamp}{host} {self.tag}[{self.pid}]: {text}".encode()


class SyslogOutput(Output):
    name = "syslog"

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.settings = OutputSettings.from_config(config, section)
        self.metrics = metrics
        self.transport, self.target = parse_address(section.get("address") or "")
        facility = str(section.get("facility") or "user").lower()
        rfc = str(section.get("format") or "rfc3164").lower()
        hostname = None if (self.transport == "unix" and rfc == "rfc3164") else \
            socket.gethostname()
        self.render = SyslogFormat(rfc, FACILITIES[facility], section.get("tag") or "syswarden",
                                   hostname)
        self.octet_counting = (section.get("tcp_framing") or "octet-counting") == "octet-counting"
        self._sock: Any = None
        self._failing = False

    async def run(self, alerts: trio.MemoryReceiveChannel, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        in_hand = BatchInHand(self.name, self.metrics)
        try:
            async with alerts:
                async for batch in batches(alerts, limit=128):
                    with in_hand.holding(batch):
                        for alert in batch:
                            await self.send(alert)
                            in_hand.done()
        finally:
            await self._close()

    def frame(self, message: bytes) -> bytes:
        if self.transport != "tcp":
            return message
        if self.octet_counting:
            return b"%d %s" % (len(message), message)
        return message + b"\n"

    async def send(self, alert: Alert) -> None:
        data = self.frame(self.render(alert, self.settings.formatter(alert)))
        for attempt in (1, 2):
            try:
                if self._sock is None:
                    self._sock = await self._connect()
                if self.transport == "tcp":
                    await self._sock.send_all(data)
                else:
                    await self._sock.send(data)
            except (OSError, trio.BrokenResourceError) as exc:
                await self._close()
                if attempt == 2:
                    self.metrics.inc("outputs.syslog.failed")
                    if not self._failing:
                        log.error("syslog output: cannot send to %s %s: %s", self.transport,
                                  self.target, exc)
                    self._failing = True
            else:
                self.metrics.inc("outputs.syslog.sent")
                self._failing = False
                return

    async def _connect(self) -> Any:
        if self.transport == "tcp":
            return await trio.open_tcp_stream(*self.target)
        if self.transport == "udp":
            sock = trio.socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            await sock.connect(self.target)
            return sock
        sock = trio.socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        try:
            await sock.connect(self.target)
        except OSError:
            sock.close()
            raise
        return sock

    async def _close(self) -> None:
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self.transport == "tcp":
            await sock.aclose()
        else:
            sock.close()

    def reopen(self) -> None:
        """Reconnect on the next alert (the daemon was restarted)."""
        sock, self._sock = self._sock, None
        if sock is not None:
            if self.transport == "tcp":
                sock.socket.close()
            else:
                sock.close()


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return output_schema(
        "syslog_output", "Falco's syslog output", Key(bool, False, "send alerts to syslog"),
        address=Key(str, "", "'' (/dev/log), a unix socket path, udp://h:p or tcp://h:p",
                    check=address_problem),
        format=Key(str, "rfc3164", "message format", choices=("rfc3164", "rfc5424")),
        facility=Key(str, "user", "syslog facility", choices=tuple(FACILITIES)),
        tag=Key(str, "syswarden", "the program name (APP-NAME) in each message"),
        tcp_framing=Key(str, "octet-counting", "TCP framing (RFC 6587)",
                        choices=("octet-counting", "newline")))


@hookimpl
def syswarden_make_outputs(ctx: Any) -> SyslogOutput | None:
    return build_if_enabled(ctx, "syslog_output", SyslogOutput)
