"""The webhook output: alerts queued on disk, delivered at least once, de-duplicated.

``run`` does two things at once.  The intake takes alerts from the agent's in-memory queue,
applies the de-duplication window (a repeat of the same rule with the same key fields within
the window is counted, and for ticketing presets becomes a pending note on the ticket) and
writes them to the :class:`~.spool.Spool` (SQLite, WAL) in one transaction per batch; what the
spool cannot take (disk full) is held in memory by the :class:`~.backlog.Backlog`.  The
deliverer takes the oldest jobs, renders them with the preset and sends them, up to
``max_in_flight`` at once while the receiver answers; a failure holds every job back for the
receiver's backoff, and then one job at a time probes it until it answers.  A job is deleted
once delivered or rejected.  So alerts survive a receiver that is down, the agent being killed,
and a restart; receivers de-duplicate redeliveries by the alert id (the ``uuid`` in the body,
header ``X-Syswarden-Alert-Id``).

On stop (the agent closes the queue) the deliverer flushes for at most
``pipeline.shutdown_grace`` seconds; what is left stays on disk for the next start, and the
log says exactly what was kept, what will be sent again and what was lost.

Counters (``outputs.<name>.``): ``sent``, ``retries``, ``deduplicated``, ``notes``;
``rejected.dropped`` (a 4xx answer), ``disk_full.dropped`` (oldest dropped from a full spool),
``render.dropped`` (a template that fails on an alert), ``expired.dropped`` (``max_attempts``
reached), ``spool_error.dropped`` (the spool could not take them, disk full or I/O error, and
they could not be delivered from memory); the gauges ``spooled`` (jobs waiting on disk) and
``held`` (alerts waiting in memory).
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import sqlite3
import sys
import time
from typing import Any

import trio

from syswarden.core.alert import Alert
from syswarden.core.errors import ConfigError, OutputError
from syswarden.core.outputs import OutputSettings, batches
from syswarden.core.protocols import Output
from syswarden.core.safe_files import configured_mode

from .backlog import Backlog
from .delivery import Backoff, Outcome, make_client, send, ssl_context
from .presets import Request, key_values, make_preset
from ..spool import Job, Spool

log = logging.getLogger("syswarden.outputs.webhook")

ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def expand_env(value: str, where: str) -> str:
    """``${NAME}`` replaced by the environment variable; an unset one is a config error."""
    def sub(m: re.Match) -> str:
        if m.group(1) not in os.environ:
            raise ConfigError(f"{where}: environment variable {m.group(1)} is not set")
        return os.environ[m.group(1)]
    return ENV_REF.sub(sub, value)


def dedup_key(alert: Alert, key_fields: list[str]) -> str:
    parts = [alert.rule, alert.hostname] + [f"{k}={v}" for k, v in key_values(alert, key_fields)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


class WebhookOutput(Output):
    """One webhook (Falco's ``http_output`` or an entry of ``webhook_outputs``)."""

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.name = section.get("name") or "http"
        where = f"webhook {self.name!r}"
        # Falco's JSON alert unless the section says otherwise (not the global json_output)
        self.settings = OutputSettings.from_config(config, section, json_output=True)
        self.metrics = metrics
        self.url = expand_env(section.get("url") or "", f"{where} url")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must start with http:// or https://, "
                              f"not {self.url!r}")
        section = self._expanded(section, where)
        self.section = section
        self.preset = make_preset(section, self.settings.formatter)
        self.tls = ssl_context(section)          # a bad certificate path fails at start
        self.headers = {str(k): str(v) for k, v in (section.get("headers") or {}).items()}
        self.timeout = float(section.get("timeout") or 10.0)
        self.compress = bool(section.get("compress_uploads"))
        self.echo = bool(section.get("echo"))
        window = section.get("dedup_window")
        self.dedup_window = float(self.preset.default_dedup_window if window is None else window)
        self.note_interval = float(section.get("note_interval", 60.0))
        self.retry_base = float(section.get("retry_initial", 0.5))
        self.retry_cap = float(section.get("retry_max", 60.0))
        self.max_attempts = int(section.get("max_attempts") or 0)
        self.grace = float((config.get("pipeline") or {}).get("shutdown_grace", 5.0))
        self.spool_path = section.get("queue_file") or \
            f"/var/lib/syswarden/webhook-{re.sub(r'[^A-Za-z0-9_.-]', '_', self.name)}.sqlite3"
        self.spool_max = int(section.get("queue_max") or 100_000)
        self.spool_mode = configured_mode(section.get("queue_mode"), f"{where} queue_mode")
        self.max_in_flight = int(section.get("max_in_flight") or 4)
        pipeline = config.get("pipeline") or {}
        self.memory_max = int(self.settings.queue_size or pipeline.get("output_queue") or 10_000)
        self.spool: Spool | None = None
        self.backlog: Backlog | None = None
        self._left = 0
        self._wake = trio.Event()
        self._stopping = False
        self._spool_failing = False
        # the receiver's state, shared by every job: a failure holds all sending back
        self.backoff = Backoff(self.retry_base, self.retry_cap)
        self._healthy = True
        self._streak = 0            # failed attempts in a row
        self._epoch = 0             # failures counted so far
        self._retry_at = 0.0        # trio clock: no attempt before
        self._attempts: dict[int, int] = {}     # job id -> failed attempts (max_attempts)
        self._c = {k: f"outputs.{self.name}.{k}" for k in (
            "sent", "retries", "deduplicated", "notes", "rejected.dropped", "disk_full.dropped",
            "render.dropped", "expired.dropped", "spool_error.dropped")}
        self._spooled = f"outputs.{self.name}.spooled"      # a gauge: jobs waiting on disk
        self._held = f"outputs.{self.name}.held"    # a gauge: alerts the spool refused, in memory

    @staticmethod
    def _expanded(section: dict[str, Any], where: str) -> dict[str, Any]:
        out = dict(section)
        out["headers"] = {k: expand_env(str(v), f"{where} header {k}")
                          for k, v in (section.get("headers") or {}).items()}
        for sub, key in (("redmine", "api_key"), ("template", "vars")):
            opts = dict(section.get(sub) or {})
            if key == "vars":
                opts["vars"] = {k: expand_env(v, f"{where} template.vars.{k}")
                                if isinstance(v, str) else v
                                for k, v in (opts.get("vars") or {}).items()}
            elif opts.get(key):
                opts[key] = expand_env(str(opts[key]), f"{where} {sub}.{key}")
            out[sub] = opts
        return out

    # -- the task --------------------------------------------------------------------------------

    async def run(self, alerts: trio.MemoryReceiveChannel, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        try:
            self.spool = Spool(self.spool_path, self.spool_max, self.spool_mode)
        except (OSError, sqlite3.Error) as exc:
            raise OutputError(f"webhook {self.name!r}: cannot open its queue "
                              f"{self.spool_path}: {exc}",
                              hint="set queue_file to a writable path") from None
        self.backlog = Backlog(self.spool, self.memory_max)
        waiting = len(self.spool)
        if waiting:
            log.info("webhook %s: %d alerts kept from a previous run will be delivered",
                     self.name, waiting)
        try:
            async with make_client(self.section, self.tls) as client:
                async with trio.open_nursery() as nursery:
                    done = trio.Event()
                    nursery.start_soon(self._deliver_loop, client, done)
                    task_status.started()
                    async with alerts:
                        async for batch in batches(alerts):
                            self.intake(batch)
                    self._stopping = True
                    self._wake.set()
                    # a little inside the agent's grace, so the webhook ends on its own
                    with trio.move_on_after(max(0.0, self.grace - 0.25)):
                        await done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            self._close()

    def _close(self) -> None:
        """Say exactly what is left: kept on disk, to be sent again, or lost (counted)."""
        assert self.spool is not None and self.backlog is not None
        lost, trimmed = self.backlog.flush_held()
        self._count_full(trimmed)
        if lost:
            self.metrics.inc(self._c["spool_error.dropped"], lost)
            log.error("webhook %s: %d alerts could be neither delivered nor written to %s: "
                      "dropped", self.name, lost, self.spool_path)
        if self.backlog.undeleted():
            log.warning("webhook %s: %d delivered alerts could not be removed from %s: they "
                        "will be sent again at the next start (with the same alert id)",
                        self.name, self.backlog.undeleted(), self.spool_path)
        left = self.backlog.kept()
        if left:
            log.warning("webhook %s: %d alerts not delivered yet, kept in %s for the next "
                        "start", self.name, left, self.spool_path)
        self.metrics.set(self._spooled, left)
        self.metrics.set(self._held, 0)
        self.spool.close()
        self.spool = None
        self.backlog = None
        self._left = left

    def intake(self, batch: list[Alert]) -> None:
        """De-duplicate and write a batch to the spool (one transaction for the new alerts).
        What the spool cannot take (disk full, I/O error) is held in memory instead."""
        assert self.spool is not None
        fresh: list[tuple[Alert, str | None]] = []
        now = time.time()
        i = 0
        try:
            for i, alert in enumerate(batch):
                key = None
                if self.dedup_window > 0:
                    key = dedup_key(alert, self.preset.key_fields)
                    repeat, _ = self.spool.seen(key, now, self.dedup_window)
                    if repeat:
                        if self.preset.keeps_tickets:
                            if fresh:           # the ticket's alert must be queued before
                                self._count_full(self.spool.add_alerts(fresh))
                                fresh = []
                            _, _, last_note = self.spool.dedup_info(key)
                            self._count_full(self.spool.add_repeat(
                                key, alert, last_note + self.note_interval))
                        self.metrics.inc(self._c["deduplicated"])
                        continue
                fresh.append((alert, key))
            i = len(batch)
            if fresh:
                self._count_full(self.spool.add_alerts(fresh))
        except sqlite3.Error as exc:
            self._hold([a for a, _ in fresh] + batch[i:], exc)
        else:
            if self._spool_failing:
                self._spool_failing = False
                log.warning("webhook %s: %s can be written again", self.name, self.spool_path)
        self._gauges()
        self._wake.set()

    def _hold(self, alerts: list[Alert], exc: sqlite3.Error) -> None:
        assert self.backlog is not None
        if not self._spool_failing:
            self._spool_failing = True
            log.error("webhook %s: cannot write to %s (%s): alerts are held in memory (at most "
                      "%d) and delivered from there", self.name, self.spool_path, exc,
                      self.memory_max)
        dropped = self.backlog.hold(alerts)
        if dropped:
            self.metrics.inc(self._c["spool_error.dropped"], dropped)
            log.error("webhook %s: %d alerts held in memory: dropped the %d oldest", self.name,
                      self.memory_max, dropped)

    def _count_full(self, dropped: int) -> None:
        if dropped:
            self.metrics.inc(self._c["disk_full.dropped"], dropped)
            log.error("webhook %s: spool full (%d jobs): dropped the %d oldest", self.name,
                      self.spool_max, dropped)

    def _gauges(self) -> None:
        assert self.backlog is not None
        self.metrics.set(self._spooled, self.backlog.kept())
        self.metrics.set(self._held, len(self.backlog.held))

    # -- delivery: up to max_in_flight jobs at once while the receiver answers, one while not ---

    async def _deliver_loop(self, client: Any, done: trio.Event) -> None:
        assert self.backlog is not None
        in_flight: dict[int, str | None] = {}          # job id -> its dedup key
        async with trio.open_nursery() as attempts:
            while True:
                self._wake = trio.Event()
                job = self._next_job(in_flight)
                if job is not None:
                    in_flight[job.id] = job.dedup_key
                    attempts.start_soon(self._attempt, client, job, in_flight)
                    continue
                if self._stopping and not in_flight and not self.backlog:
                    done.set()
                    return
                with trio.move_on_after(self._idle_for(in_flight)):
                    await self._wake.wait()

    def _next_job(self, in_flight: dict[int, str | None]) -> Job | None:
        """The next job to send now, or None: the limit is reached, the receiver failed and
        its backoff runs, no job is due, or the next job's key has a job in flight (a ticket's
        notes go after the ticket)."""
        assert self.backlog is not None
        limit = self.max_in_flight if self._healthy else 1
        if len(in_flight) >= limit or trio.current_time() < self._retry_at:
            return None
        job = self.backlog.next(None if self._stopping else time.time(), in_flight)
        if job is None or (job.dedup_key is not None and job.dedup_key in in_flight.values()):
            return None
        return job

    def _idle_for(self, in_flight: dict[int, str | None]) -> float:
        """How long nothing can be sent unless woken (an alert came, an attempt ended)."""
        assert self.spool is not None
        now = trio.current_time()
        if now < self._retry_at:
            return self._retry_at - now
        if in_flight:
            return 3600.0
        wake_at = self.spool.next_wake(time.time())
        return max(0.0, wake_at - time.time()) if wake_at is not None else 3600.0

    async def _attempt(self, client: Any, job: Job, in_flight: dict[int, str | None]) -> None:
        try:
            await self._deliver(client, job)
        finally:
            del in_flight[job.id]
            self._wake.set()

    def _render(self, job: Job) -> Request | None:
        if job.kind == "repeat":
            ref, total, _ = self.spool.dedup_info(job.dedup_key or "")
            if ref is None:     # the first alert's ticket is unknown (rejected, expired)
                return self.preset.request(job.alert)
            return self.preset.repeat_request(ref, job.alert, job.count, total)
        return self.preset.request(job.alert)

    async def _deliver(self, client: Any, job: Job) -> None:
        """One attempt at one job; a job to retry stays in the backlog (the oldest goes first)."""
        try:
            request = self._render(job)
        except ValueError as exc:
            log.error("webhook %s: cannot render alert %s: %s", self.name, job.alert.uuid, exc)
            self.metrics.inc(self._c["render.dropped"])
            self._finish(job)
            return
        if request is None:
            self._finish(job)
            return
        headers = {**self.headers, "X-Syswarden-Alert-Id": job.alert.uuid,
                   "Idempotency-Key": f"{job.alert.uuid}-{job.kind}-{job.count}"}
        epoch = self._epoch
        outcome = await send(client, self.url, request, headers, self.timeout, self.compress)
        if outcome.delivered:
            self._answered()
            self._delivered(job, outcome)
        elif not outcome.retry:
            self.metrics.inc(self._c["rejected.dropped"])
            log.error("webhook %s: alert %s (%s) rejected: %s: %s", self.name,
                      job.alert.uuid, job.alert.rule, outcome.reason,
                      outcome.body[:2000].decode("utf-8", "replace"))
            self._finish(job)
        else:
            attempts = self._attempts[job.id] = self._attempts.get(job.id, 0) + 1
            if self.max_attempts and attempts >= self.max_attempts:
                self.metrics.inc(self._c["expired.dropped"])
                log.error("webhook %s: alert %s given up after %d attempts: %s", self.name,
                          job.alert.uuid, attempts, outcome.reason)
                self._finish(job)
            else:
                self.metrics.inc(self._c["retries"])
            self._failed(outcome, epoch)

    def _failed(self, outcome: Outcome, epoch: int) -> None:
        """The receiver failed: wait the backoff before the next attempt (one at a time until
        it answers).  Attempts that began before an already counted failure add no delay."""
        if epoch != self._epoch:
            return
        self._epoch += 1
        self._streak += 1
        self._healthy = False
        delay = self.backoff.next_delay(outcome.retry_after)
        self._retry_at = trio.current_time() + delay
        if self._streak == 1 or self._streak % 10 == 0:
            log.warning("webhook %s: delivery failed (%s); retrying in %.1f s (attempt %d)",
                        self.name, outcome.reason, delay, self._streak)

    def _answered(self) -> None:
        """A 2xx: the receiver is back, send at full speed again."""
        if not self._healthy:
            log.info("webhook %s: the receiver answers again after %d failed attempts",
                     self.name, self._streak)
        self._healthy = True
        self._streak = 0
        self.backoff.reset()

    def _delivered(self, job: Job, outcome: Outcome) -> None:
        assert self.spool is not None
        if self.echo:
            sys.stdout.write(outcome.body.decode("utf-8", "replace") + "\n")
        try:
            if job.kind == "repeat":
                self.metrics.inc(self._c["notes"])
                self.spool.noted(job.dedup_key or "", time.time())
            else:
                self.metrics.inc(self._c["sent"])
                if job.dedup_key and self.preset.keeps_tickets:
                    ref = self.preset.ref_from_response(outcome.body)
                    if ref is not None:
                        self.spool.set_ref(job.dedup_key, ref)
        except sqlite3.Error as exc:       # later repeats of this alert may open a new ticket
            log.error("webhook %s: cannot record the ticket of alert %s in %s: %s", self.name,
                      job.alert.uuid, self.spool_path, exc)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        assert self.backlog is not None
        self._attempts.pop(job.id, None)
        self.backlog.finish(job, next_note=time.time() + self.note_interval)
        self._gauges()

    def pending(self) -> int:
        """Alerts waiting: on disk, or held in memory (for tests and the stats report)."""
        return len(self.backlog) if self.backlog is not None else self._left
