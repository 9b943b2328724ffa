"""The nats output: every alert into a JetStream stream, exactly once, spooled while away.

Every alert is first written to the on-disk spool (:mod:`syswarden.plugins.outputs.spool`, the
webhook's, one transaction per batch), then the sender publishes the oldest spooled alerts to
``<subject_prefix>.alerts.<hostname>.<priority>`` with Falco's JSON as the payload and the
alert's uuid as ``Nats-Msg-Id``, up to ``max_in_flight`` at once, and deletes each from the
spool only once JetStream has acknowledged it (stored on the stream's replicas).  A publish
that fails (no server, no stream leader yet, no ack in time) leaves the alert spooled; the
sender backs off, then probes with one alert at a time until one is acknowledged, so what was
spooled during an outage goes out in order.  A publish sent again after a lost ack is dropped by
JetStream's de-duplication window (``duplicate_window``): the stream holds each alert once.
An agent killed with alerts spooled sends them at its next start.

Start-up: the first connection attempt is made before the output reports ready.  Refused
credentials, or a stream that does not exist when ``create_stream`` is off, are bad input (exit
code 2); servers that cannot be reached are not: the agent runs, alerts are spooled and the
output keeps trying.

Counters (``outputs.nats.``): ``sent`` (acknowledged), ``failed`` (publish attempts that
failed; the alert stays spooled), ``deduplicated`` (acknowledged as a duplicate of one already
stored), ``disk_full.dropped`` (the oldest dropped from a full spool), ``spool_error.dropped``;
the gauges ``spooled`` (alerts waiting on disk) and ``connected`` (1 or 0).
"""

from __future__ import annotations

import asyncio
import logging
import re
import sqlite3
from typing import Any

import trio

from syswarden.core.alert import Alert, format_json
from syswarden.core.errors import ConfigError
from syswarden.core.outputs import OutputSettings, batches
from syswarden.core.protocols import Output
from syswarden.core.safe_files import configured_mode

from ..spool import Job, Spool
from .connection import NatsLink, is_auth_error, is_tls_error

log = logging.getLogger("syswarden.outputs.nats")

#: what a subject token may not hold (NATS separates tokens with dots, wildcards are * and >)
SUBJECT_UNSAFE = re.compile(r"[.*>\s]")


def subject_token(text: str) -> str:
    return SUBJECT_UNSAFE.sub("_", text) or "_"


def alert_subject(prefix: str, alert: Alert) -> str:
    """``<prefix>.alerts.<hostname>.<priority>``, e.g. ``syswarden.alerts.node-1.critical``."""
    return f"{prefix}.alerts.{subject_token(alert.hostname)}.{alert.priority.name.lower()}"


def _refused_stream(exc: BaseException) -> str | None:
    """What JetStream said when it refused the stream (not: was not ready to answer)."""
    import nats.js.errors
    if isinstance(exc, nats.js.errors.APIError) and exc.code not in (None, 503) and \
            not isinstance(exc, nats.js.errors.ServiceUnavailableError):
        return exc.description or str(exc)
    return None


class NatsOutput(Output):
    name = "nats"

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.settings = OutputSettings.from_config(config, section, json_output=True)
        self.metrics = metrics
        self.stream = section["stream"]
        self.prefix = section["subject_prefix"]
        self.replicas = int(section["replicas"])
        self.create_stream = bool(section["create_stream"])
        self.max_age = float(section["max_age"])
        self.duplicate_window = float(section["duplicate_window"])
        self.in_flight = int(section["max_in_flight"])
        self.retry_max = float(section["retry_max"])
        self.spool_path = section["queue_file"] or "/var/lib/syswarden/nats-alerts.sqlite3"
        self.spool_max = int(section["queue_max"])
        self.spool_mode = configured_mode(section.get("queue_mode"), "nats_output.queue_mode")
        self.include_output = bool(config.get("json_include_output_property", True))
        self.include_tags = bool(config.get("json_include_tags_property", True))
        self.link = NatsLink(config.get("nats") or {}, "output")
        self.spool: Spool | None = None
        self._ready = False             # connected once and the stream is there
        self._stopping = False
        self._wake = trio.Event()
        self._failures_logged = 0
        self._c = {k: f"outputs.{self.name}.{k}" for k in (
            "sent", "failed", "deduplicated", "disk_full.dropped", "spool_error.dropped",
            "spooled", "connected")}

    # -- on the link's asyncio loop ---------------------------------------------------------

    async def _setup(self) -> None:
        """Connect (once) and make sure the stream is there."""
        import nats.js.errors
        if self.link.nc is None:
            await self.link.connect()
        js = self.link.js
        try:
            await js.stream_info(self.stream)
            return
        except nats.js.errors.NotFoundError:
            if not self.create_stream:
                raise ConfigError(f"nats_output.stream: the stream {self.stream!r} does not "
                                  f"exist on {self.link.servers}",
                                  hint="create it, or set nats_output.create_stream: true") \
                    from None
        from nats.js.api import StorageType, StreamConfig
        await js.add_stream(StreamConfig(
            name=self.stream, subjects=[f"{self.prefix}.alerts.>"], num_replicas=self.replicas,
            storage=StorageType.FILE, max_age=self.max_age or None,
            duplicate_window=self.duplicate_window))
        log.info("nats: created the stream %s (%d replicas) for %s.alerts.>", self.stream,
                 self.replicas, self.prefix)

    async def _publish(self, jobs: list[Job]) -> list[BaseException | bool]:
        """Publish ``jobs`` at once (pipelined on the connection, so stored in this order when
        all succeed); per job: True (stored), False (a duplicate of a stored one), or the
        error."""
        js = self.link.js

        async def one(job: Job) -> BaseException | bool:
            alert = job.alert
            payload = format_json(alert, self.include_output, self.include_tags).encode()
            try:
                ack = await js.publish(alert_subject(self.prefix, alert), payload,
                                       stream=self.stream,
                                       headers={"Nats-Msg-Id": alert.uuid})
            except Exception as exc:
                return exc
            return not ack.duplicate

        return list(await asyncio.gather(*(one(j) for j in jobs)))

    # -- in the agent's trio thread ---------------------------------------------------------

    async def _try_setup(self, at_start: bool) -> bool:
        """Connect and find (or create) the stream.  At start a refusal is bad input
        (ConfigError, exit 2); later it is logged and the caller counts and retries."""
        try:
            await self.link.call(self._setup)
        except Exception as exc:
            problem = self._refusal(exc)
            if problem is not None and at_start:
                await trio.to_thread.run_sync(self.link.stop)
                raise problem from None
            if problem is not None:
                log.error("nats: %s", problem)
            elif at_start:
                log.warning("nats: %s cannot be reached (%s: %s); alerts are spooled in %s "
                            "until it can", self.link.servers, type(exc).__name__, exc,
                            self.spool_path)
            return False
        self._ready = True
        self.metrics.set(self._c["connected"], 1)
        return True

    def _refusal(self, exc: Exception) -> ConfigError | None:
        """What in ``exc`` is the user's to fix (None: NATS is away, try again)."""
        if isinstance(exc, ConfigError):
            return exc
        refused = _refused_stream(exc)
        if refused:
            return ConfigError(f"nats_output.stream: JetStream refused the stream "
                               f"{self.stream!r}: {refused}",
                               hint="check nats_output.replicas against the cluster's size")
        if is_auth_error(exc):
            return ConfigError(f"nats: {self.link.servers} refused the credentials: {exc}",
                               hint="check nats.creds_file, nkey_seed_file, user/password or "
                                    "token")
        if is_tls_error(exc):
            return ConfigError(f"nats.tls: {self.link.servers}: {exc}",
                               hint="nats.tls.ca_file: the CA that signed the servers' "
                                    "certificates")
        return None

    async def run(self, alerts: trio.MemoryReceiveChannel[Alert], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            self.spool = Spool(self.spool_path, self.spool_max, self.spool_mode)
        except sqlite3.Error as exc:
            raise ConfigError(f"nats_output.queue_file: cannot open {self.spool_path}: {exc}") \
                from None
        waiting = len(self.spool)
        self.metrics.set(self._c["spooled"], waiting)
        if waiting:
            log.info("nats: %d alerts spooled by an earlier run are sent first", waiting)
        self.metrics.set(self._c["connected"], 0)
        await self._try_setup(at_start=True)
        task_status.started()
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._sender)
                async with alerts:
                    async for batch in batches(alerts):
                        await self._intake(batch)
                self._stopping = True
                self._wake.set()
        finally:
            left = len(self.spool)
            if left:
                log.warning("nats: %d alerts stay spooled in %s, sent at the next start", left,
                            self.spool_path)
            self.spool.close()
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.link.stop)

    async def _intake(self, batch: list[Alert]) -> None:
        assert self.spool is not None
        try:
            dropped = self.spool.add_alerts([(a, None) for a in batch])
        except sqlite3.Error as exc:
            # the disk refused them: try them straight away, once, rather than lose them
            log.error("nats: the spool %s cannot be written (%s); sending %d alerts without "
                      "it", self.spool_path, exc, len(batch))
            await self._send_unspooled(batch)
            return
        if dropped:
            self.metrics.inc(self._c["disk_full.dropped"], dropped)
            log.error("nats: the spool is full (queue_max %d): the %d oldest alerts were "
                      "dropped", self.spool_max, dropped)
        self.metrics.set(self._c["spooled"], len(self.spool))
        self._wake.set()

    async def _send_unspooled(self, batch: list[Alert]) -> None:
        jobs = [Job(0, "alert", None, 1, a) for a in batch]
        results = await self.link.call(self._publish, jobs) if self._ready else \
            [ConnectionError("not connected")] * len(jobs)
        lost = sum(1 for r in results if isinstance(r, BaseException))
        self.metrics.inc(self._c["sent"], len(jobs) - lost)
        if lost:
            self.metrics.inc(self._c["spool_error.dropped"], lost)

    async def _sender(self) -> None:
        assert self.spool is not None
        backoff = 0.0
        while True:
            jobs = self.spool.oldest(self.in_flight if backoff == 0 else 1)
            if not jobs:
                if self._stopping:
                    return
                self._wake = trio.Event()
                await self._wake.wait()
                continue
            if not self._ready and not await self._try_setup(at_start=False):
                backoff = await self._back_off(backoff, len(jobs), "not connected")
                continue
            results = await self.link.call(self._publish, jobs)
            stored = [j for j, r in zip(jobs, results) if not isinstance(r, BaseException)]
            if stored:
                try:
                    self.spool.done_many(stored)
                except sqlite3.Error as exc:    # sent again later: JetStream drops the copy
                    log.error("nats: the spool %s cannot be updated: %s", self.spool_path, exc)
                self.metrics.inc(self._c["sent"], len(stored))
                dups = sum(1 for r in results if r is False)
                if dups:
                    self.metrics.inc(self._c["deduplicated"], dups)
                self.metrics.set(self._c["spooled"], len(self.spool))
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                self.metrics.set(self._c["connected"], int(self.link.connected))
                exc = errors[0]
                backoff = await self._back_off(backoff, len(errors),
                                               f"{type(exc).__name__}: {exc}")
            else:
                if backoff:
                    log.info("nats: publishing again (%d alerts spooled)", len(self.spool))
                    self.metrics.set(self._c["connected"], 1)
                    self._failures_logged = 0
                backoff = 0.0

    async def _back_off(self, backoff: float, failed: int, why: str) -> float:
        self.metrics.inc(self._c["failed"], failed)
        self._failures_logged += 1
        if self._failures_logged <= 3 or self._failures_logged % 100 == 0:
            log.warning("nats: %d alerts not published (%s); %d spooled, retrying", failed,
                        why or "error", len(self.spool or ()))
        backoff = min(self.retry_max, max(0.1, backoff * 2))
        if self._stopping:
            backoff = min(backoff, 0.2)
        await trio.sleep(backoff)
        return backoff
