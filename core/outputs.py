"""What every output shares: its queue, priority threshold, rate limit, and alert formatting.

The agent wraps each output plugin object in an :class:`OutputRunner`.  The detection path calls
``runner.offer(alert)``, which never blocks: below the output's threshold the alert is skipped;
over the token bucket (Falco's ``outputs.rate``/``outputs.max_burst``) it is suppressed and
counted; with the queue full it is dropped and counted.  So a slow or dead output never delays
another output or the detection path, and nothing is lost silently.

Counters: ``outputs.<name>.queued``, ``outputs.<name>.suppressed`` (rate limit),
``outputs.<name>.dropped`` (queue full).  Outputs count their own ``.sent`` and ``.failed``.

Output plugins (subclasses of :class:`~syswarden.core.protocols.Output`) share the per-output
config keys (:func:`output_keys`: ``min_priority`` or ``priority``, ``json_output``, ``rate``,
``max_burst``, ``queue_size``), read them into their ``settings`` (:class:`OutputSettings`, the
one object the runner reads), read their queue in batches with :func:`batches`, and write a
batch in a worker thread with :class:`ThreadedWriter` (``.sent``, ``.failed``, or ``.dropped`` when
the writing thread is still stuck as the shutdown grace runs out: every alert counted once), or,
delivering alert by alert from the event loop, count what a stop leaves of the batch in hand with
:class:`BatchInHand`.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable

import trio

from .alert import Alert, Priority, format_json, format_text
from .config import MAX_QUEUE, PRIORITIES, Key, Section

if TYPE_CHECKING:
    from .metrics import Metrics
    from .protocols import Output

log = logging.getLogger("syswarden.outputs")


class TokenBucket:
    """Falco's limiter: ``rate`` tokens per second, at most ``max_burst`` saved; rate 0: none."""

    def __init__(self, rate: float, max_burst: int, clock=time.monotonic) -> None:
        self.rate = float(rate)
        self.max_burst = max(1, int(max_burst))
        self.tokens = float(self.max_burst)
        self.clock = clock
        self.last = clock()

    def take(self) -> bool:
        if self.rate <= 0:
            return True
        now = self.clock()
        self.tokens = min(self.max_burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False


class AlertFormatter:
    """Turns an alert into the line an output writes: Falco's text or Falco's JSON (with the
    global ``json_include_*`` and ``time_format_iso_8601`` keys)."""

    def __init__(self, json_output: bool, include_output: bool = True,
                 include_tags: bool = True, iso_8601: bool = False, *,
                 include_message: bool = False, include_output_fields: bool = True) -> None:
        self.json_output = json_output
        self.include_output = include_output
        self.include_tags = include_tags
        self.iso_8601 = iso_8601
        self.include_message = include_message
        self.include_output_fields = include_output_fields

    @classmethod
    def from_config(cls, config: dict[str, Any], section: dict[str, Any] | None = None
                    ) -> "AlertFormatter":
        """Global keys, with ``json_output`` overridable in an output's own section."""
        json_output = config.get("json_output", False)
        if section and section.get("json_output") is not None:
            json_output = section["json_output"]
        return cls(bool(json_output), config.get("json_include_output_property", True),
                   config.get("json_include_tags_property", True),
                   config.get("time_format_iso_8601", False),
                   include_message=config.get("json_include_message_property", False),
                   include_output_fields=config.get("json_include_output_fields_property", True))

    def __call__(self, alert: Alert) -> str:
        if self.json_output:
            return format_json(alert, self.include_output, self.include_tags,
                               include_message=self.include_message,
                               include_output_fields=self.include_output_fields,
                               iso_8601=self.iso_8601)
        return format_text(alert, self.iso_8601)


class OutputRunner:
    """One output behind its own bounded queue, threshold and rate limit."""

    def __init__(self, output: "Output", metrics: "Metrics", *, queue_size: int,
                 min_priority: Priority, rate: float, max_burst: int) -> None:
        self.output = output
        self.name = output.name
        self.metrics = metrics
        self.min_priority = min_priority
        self.bucket = TokenBucket(rate, max_burst)
        self.send, self.receive = trio.open_memory_channel[Alert](max(1, queue_size))
        self._queued = f"outputs.{self.name}.queued"
        self._suppressed = f"outputs.{self.name}.suppressed"
        self._dropped = f"outputs.{self.name}.dropped"

    @classmethod
    def for_output(cls, output: "Output", config: dict[str, Any], metrics: "Metrics"
                   ) -> "OutputRunner":
        """The output's :class:`OutputSettings`, the global config where they say None."""
        s = output.settings
        limits = config.get("outputs") or {}
        min_priority = s.min_priority
        if min_priority is None:
            min_priority = Priority.parse(config.get("priority") or "debug")
        capacity = (config.get("outputs_queue") or {}).get("capacity") or 0
        return cls(output, metrics,
                   queue_size=s.queue_size or capacity or config["pipeline"]["output_queue"],
                   min_priority=min_priority,
                   rate=limits.get("rate", 0) if s.rate is None else s.rate,
                   max_burst=limits.get("max_burst", 1000) if s.max_burst is None
                   else s.max_burst)

    def offer(self, alert: Alert) -> None:
        """Queue ``alert`` for this output without ever waiting."""
        if alert.priority > self.min_priority:
            return
        if not self.bucket.take():
            self.metrics.inc(self._suppressed)
            return
        try:
            self.send.send_nowait(alert)
        except trio.WouldBlock:
            self.metrics.inc(self._dropped)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            self.metrics.inc(self._dropped)
        else:
            self.metrics.inc(self._queued)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        await self.output.run(self.receive, task_status=task_status)

    def close(self) -> None:
        """No more alerts: the output drains its queue and returns."""
        self.send.close()

    def pending(self) -> int:
        return self.send.statistics().current_buffer_used


# ---------------------------------------------------------------------------------------------
# What output plugins share: per-output keys, their reading, batched draining of the queue
# ---------------------------------------------------------------------------------------------


def output_keys() -> dict[str, Key]:
    """The keys every output section accepts besides its own (all optional)."""
    return {
        "min_priority": Key(str, None, "least severe priority this output receives",
                            choices=PRIORITIES),
        "priority": Key(str, None, "same as min_priority", choices=PRIORITIES),
        "json_output": Key(bool, None, "override the global json_output for this output"),
        "rate": Key(float, None, "alerts per second (token bucket); default outputs.rate",
                    min=0),
        "max_burst": Key(int, None, "token bucket size; default outputs.max_burst", min=1,
                         max=MAX_QUEUE),
        "queue_size": Key(int, None, "alerts buffered in memory; default pipeline.output_queue",
                          min=1, max=MAX_QUEUE),
    }


def output_schema(section: str, doc: str, enabled: Key, **keys: Key) -> dict[str, Section]:
    """An output plugin's ``syswarden_config_schema`` result: ``enabled``, its own keys, then
    the shared :func:`output_keys`."""
    merged = {"enabled": enabled, **keys}
    merged.update(output_keys())
    return {section: Section(merged, doc=doc)}


def build_if_enabled(ctx: Any, section: str, factory: Any, enabled_default: bool = False) -> Any:
    """An output plugin's ``syswarden_make_outputs`` body: None when the section is disabled,
    else ``factory(config, section, metrics)``."""
    values = ctx.section(section)
    if not values.get("enabled", enabled_default):
        return None
    return factory(ctx.config, values, ctx.metrics)


@dataclass(frozen=True)
class OutputSettings:
    """An output's shared settings (:func:`output_keys`), one object the agent reads.

    ``min_priority``, ``queue_size``, ``rate``, ``max_burst``: None is the global value
    (``priority``, ``pipeline.output_queue``, ``outputs.rate``, ``outputs.max_burst``).
    ``formatter`` turns an alert into the output's text or JSON line.  An output sets its
    ``settings`` once, from its section (:meth:`from_config`); the default is every global.
    """

    min_priority: Priority | None = None
    queue_size: int | None = None
    rate: float | None = None
    max_burst: int | None = None
    formatter: AlertFormatter = field(default_factory=lambda: AlertFormatter(False))
    timeout: float | None = None     # seconds one write may block before it is reported

    @classmethod
    def from_config(cls, config: dict[str, Any], section: dict[str, Any], *,
                    json_output: bool | None = None) -> "OutputSettings":
        """The settings of an output whose config section is ``section``.  ``json_output``:
        the output's own format when its section sets none (None: the global
        ``json_output``; the webhook's is JSON)."""
        if json_output is not None and section.get("json_output") is None:
            section = {**section, "json_output": json_output}
        raw = section.get("min_priority") or section.get("priority")
        return cls(min_priority=Priority.parse(raw) if raw else None,
                   queue_size=section.get("queue_size"), rate=section.get("rate"),
                   max_burst=section.get("max_burst"),
                   formatter=AlertFormatter.from_config(config, section),
                   timeout=(config.get("output_timeout") or 0) / 1000 or None)


async def batches(alerts: "trio.MemoryReceiveChannel[Alert]", limit: int = 512):
    """Yield lists of alerts: wait for one, then take what is already queued (up to ``limit``).

    Ends when the channel is closed and drained.  Writing a batch at a time keeps a burst cheap
    (one flush, one transaction) without ever waiting for more alerts to arrive.
    """
    while True:
        try:
            first = await alerts.receive()
        except trio.EndOfChannel:
            return
        batch = [first]
        while len(batch) < limit:
            try:
                batch.append(alerts.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        yield batch


class ThreadedWriter:
    """Writes batches with a blocking ``write(batch) -> bool`` (True: written, False: failed,
    already logged) in a worker thread, so a blocked pipe or a slow disk stalls only its output.

    Each alert is counted exactly once: ``outputs.<name>.sent`` or ``.failed`` when the write
    returns, ``.dropped`` when the task is cancelled (the shutdown grace ran out) while the
    thread is still blocked.  The abandoned thread, should it finish later, counts nothing.
    """

    def __init__(self, name: str, metrics: "Metrics", write: Callable[[list[Alert]], bool],
                 timeout: float | None = None) -> None:
        self.name = name
        self.metrics = metrics
        self.write = write
        self.timeout = timeout          # output_timeout in seconds: a longer write is reported
        self._lock = threading.Lock()

    async def __call__(self, batch: list[Alert]) -> None:
        settled = [False]               # this batch is counted (guarded by the lock)
        try:
            await trio.to_thread.run_sync(self._write, batch, settled, abandon_on_cancel=True)
        except trio.Cancelled:
            with self._lock:
                stuck, settled[0] = not settled[0], True
            if stuck:
                self.metrics.inc(f"outputs.{self.name}.dropped", len(batch))
                log.error("output %r: %d alerts still being written when the shutdown grace "
                          "ran out: dropped", self.name, len(batch))
            raise

    def _write(self, batch: list[Alert], settled: list[bool]) -> None:
        watchdog = None
        if self.timeout:
            watchdog = threading.Timer(self.timeout, self._timed_out)
            watchdog.daemon = True
            watchdog.start()
        try:
            ok = self.write(batch)
        finally:
            if watchdog is not None:
                watchdog.cancel()
        with self._lock:
            if settled[0]:
                return                  # abandoned: already counted as dropped
            settled[0] = True
            self.metrics.inc(f"outputs.{self.name}.{'sent' if ok else 'failed'}", len(batch))


    def _timed_out(self) -> None:
        """Falco's ``output_timeout`` report (its words; here only this output waits)."""
        self.metrics.inc(f"outputs.{self.name}.timeouts")
        log.critical('"%s" output timeout, all output channels are blocked (a write has '
                     'taken more than output_timeout, %d ms; the other outputs go on)',
                     self.name, round(self.timeout * 1000))


class BatchInHand:
    """The alerts of the batch an async output is delivering one by one: those not yet
    counted (``sent``/``failed``, by the output, then :meth:`done`) when the output stops
    mid-batch (cancelled as the shutdown grace runs out, a receiver that stopped reading) are
    counted as ``outputs.<name>.dropped``, so every alert given to the output is counted once.
    """

    def __init__(self, name: str, metrics: "Metrics") -> None:
        self.name = name
        self.metrics = metrics
        self.left = 0

    @contextlib.contextmanager
    def holding(self, batch: list[Alert]) -> Iterator[None]:
        self.left = len(batch)
        try:
            yield
        finally:
            if self.left:
                self.metrics.inc(f"outputs.{self.name}.dropped", self.left)
                log.error("output %r: %d alerts still being delivered when it stopped: "
                          "dropped", self.name, self.left)

    def done(self, n: int = 1) -> None:
        """``n`` alerts of the batch were counted as sent or failed."""
        self.left -= n
