"""The webhook output: alerts queued on disk, delivered at least once, de-duplicated.

``run`` does two things at once.  The intake takes alerts from the agent's in-memory queue,
applies the de-duplication window (a repeat of the same rule with the same key fields within
the window is counted, and for ticketing presets becomes a pending note on the ticket) and
writes them to the :class:`~.spool.Spool` (SQLite, WAL) in one transaction per batch.  The
deliverer takes the oldest job from the spool, renders it with the preset and sends it,
retrying with backoff until it is delivered or rejected; only then is it deleted.  So alerts
survive a receiver that is down, the agent being killed, and a restart; receivers de-duplicate
redeliveries by the alert id (the ``uuid`` in the body, header ``X-Syswarden-Alert-Id``).

On stop (the agent closes the queue) the deliverer flushes for at most
``pipeline.shutdown_grace`` seconds; what is left stays on disk for the next start.

Counters (``outputs.<name>.``): ``sent``, ``retries``, ``deduplicated``, ``notes``;
``rejected.dropped`` (a 4xx answer), ``disk_full.dropped`` (oldest dropped from a full spool),
``render.dropped`` (a template that fails on an alert), ``expired.dropped`` (``max_attempts``
reached), ``spool_error.dropped`` (the spool could not be written: disk full, I/O error); the
gauge ``spooled`` is the number of jobs waiting on disk.
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
from syswarden.core.outputs import AlertFormatter, OutputSettings, batches
from syswarden.core.safe_files import configured_mode

from .delivery import Backoff, make_client, send, ssl_context
from .presets import Request, key_values, make_preset
from .spool import Job, Spool

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


class WebhookOutput:
    """One webhook (Falco's ``http_output`` or an entry of ``webhook_outputs``)."""

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.name = section.get("name") or "http"
        where = f"webhook {self.name!r}"
        settings = OutputSettings(config, section)
        settings.apply(self)
        if section.get("json_output") is None:   # Falco's JSON alert by default
            self.formatter = AlertFormatter(True, settings.formatter.include_output,
                                            settings.formatter.include_tags,
                                            settings.formatter.iso_8601)
        self.metrics = metrics
        self.url = expand_env(section.get("url") or "", f"{where} url")
        if not self.url.startswith(("http://", "https://")):
            raise ConfigError(f"{where}: url must start with http:// or https://, "
                              f"not {self.url!r}")
        section = self._expanded(section, where)
        self.section = section
        self.preset = make_preset(section, self.formatter)
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
        self.spool: Spool | None = None
        self._left = 0
        self._wake = trio.Event()
        self._stopping = False
        self._c = {k: f"outputs.{self.name}.{k}" for k in (
            "sent", "retries", "deduplicated", "notes", "rejected.dropped", "disk_full.dropped",
            "render.dropped", "expired.dropped", "spool_error.dropped")}
        self._spooled = f"outputs.{self.name}.spooled"      # a gauge: jobs waiting on disk

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
                            self._intake_safely(batch)
                    self._stopping = True
                    self._wake.set()
                    # a little inside the agent's grace, so the webhook ends on its own
                    with trio.move_on_after(max(0.0, self.grace - 0.25)):
                        await done.wait()
                    nursery.cancel_scope.cancel()
        finally:
            left = len(self.spool)
            if left:
                log.warning("webhook %s: %d alerts not delivered yet, kept in %s for the next "
                            "start", self.name, left, self.spool_path)
            self.spool.close()
            self.spool = None
            self._left = left

    def intake(self, batch: list[Alert]) -> None:
        """De-duplicate and write a batch to the spool (one transaction for the new alerts)."""
        assert self.spool is not None
        fresh: list[tuple[Alert, str | None]] = []
        now = time.time()
        for alert in batch:
            key = None
            if self.dedup_window > 0:
                key = dedup_key(alert, self.preset.key_fields)
                repeat, _ = self.spool.seen(key, now, self.dedup_window)
                if repeat:
                    self.metrics.inc(self._c["deduplicated"])
                    if self.preset.keeps_tickets:
                        if fresh:               # the ticket's alert must be queued before
                            self._count_full(self.spool.add_alerts(fresh))
                            fresh = []
                        _, _, last_note = self.spool.dedup_info(key)
                        dropped = self.spool.add_repeat(key, alert, last_note + self.note_interval)
                        self._count_full(dropped)
                    continue
            fresh.append((alert, key))
        if fresh:
            self._count_full(self.spool.add_alerts(fresh))
        self.metrics.set(self._spooled, len(self.spool))
        self._wake.set()

    def _intake_safely(self, batch: list[Alert]) -> None:
        """A spool that cannot be written (disk full, I/O error) loses this batch: counted."""
        try:
            self.intake(batch)
        except sqlite3.Error as exc:
            self.metrics.inc(self._c["spool_error.dropped"], len(batch))
            log.error("webhook %s: cannot write %d alerts to %s: %s", self.name, len(batch),
                      self.spool_path, exc)

    def _count_full(self, dropped: int) -> None:
        if dropped:
            self.metrics.inc(self._c["disk_full.dropped"], dropped)
            log.error("webhook %s: spool full (%d jobs): dropped the %d oldest", self.name,
                      self.spool_max, dropped)

    async def _deliver_loop(self, client: Any, done: trio.Event) -> None:
        assert self.spool is not None
        while True:
            job = self.spool.next_due(None if self._stopping else time.time())
            if job is None:
                if self._stopping:
                    done.set()
                    return
                self._wake = trio.Event()
                wake_at = self.spool.next_wake()
                with trio.move_on_after(max(0.0, wake_at - time.time()) if wake_at else 3600):
                    await self._wake.wait()
                continue
            await self._deliver(client, job)

    # -- one job ---------------------------------------------------------------------------------

    def _render(self, job: Job) -> Request | None:
        if job.kind == "repeat":
            ref, total, _ = self.spool.dedup_info(job.dedup_key or "")
            if ref is None:     # the first alert's ticket is unknown (rejected, expired)
                return self.preset.request(job.alert)
            return self.preset.repeat_request(ref, job.alert, job.count, total)
        return self.preset.request(job.alert)

    async def _deliver(self, client: Any, job: Job) -> None:
        assert self.spool is not None
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
        backoff = Backoff(self.retry_base, self.retry_cap)
        attempts = 0
        while True:
            attempts += 1
            outcome = await send(client, self.url, request, headers, self.timeout, self.compress)
            if outcome.delivered:
                break
            if not outcome.retry:
                self.metrics.inc(self._c["rejected.dropped"])
                log.error("webhook %s: alert %s (%s) rejected: %s: %s", self.name,
                          job.alert.uuid, job.alert.rule, outcome.reason,
                          outcome.body[:2000].decode("utf-8", "replace"))
                self._finish(job)
                return
            if self.max_attempts and attempts >= self.max_attempts:
                self.metrics.inc(self._c["expired.dropped"])
                log.error("webhook %s: alert %s given up after %d attempts: %s", self.name,
                          job.alert.uuid, attempts, outcome.reason)
                self._finish(job)
                return
            delay = backoff.next_delay(outcome.retry_after)
            self.metrics.inc(self._c["retries"])
            if attempts == 1 or attempts % 10 == 0:
                log.warning("webhook %s: delivery failed (%s); retrying in %.1f s (attempt %d)",
                            self.name, outcome.reason, delay, attempts)
            await trio.sleep(delay)
        if self.echo:
            sys.stdout.write(outcome.body.decode("utf-8", "replace") + "\n")
        if job.kind == "repeat":
            self.metrics.inc(self._c["notes"])
            self.spool.noted(job.dedup_key or "", time.time())
        else:
            self.metrics.inc(self._c["sent"])
            if job.dedup_key and self.preset.keeps_tickets:
                ref = self.preset.ref_from_response(outcome.body)
                if ref is not None:
                    self.spool.set_ref(job.dedup_key, ref)
        self._finish(job)

    def _finish(self, job: Job) -> None:
        assert self.spool is not None
        self.spool.done(job, next_note=time.time() + self.note_interval)
        self.metrics.set(self._spooled, len(self.spool))

    def pending(self) -> int:
        """Jobs waiting on disk (for tests and the stats report)."""
        return len(self.spool) if self.spool is not None else self._left
