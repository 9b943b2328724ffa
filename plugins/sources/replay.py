"""The ``replay`` source: events from a capture file (``syswarden -e FILE``).

A replay feeds a recorded capture (``docs/capture-format.md``) through the same pipeline as the
live source: the events already carry their process, fd and container state, which the
enrichers leave alone, so the rules judge them as they would have live.  Reproducible tests,
forensics after the fact, and benchmarks of the engine without the kernel.

The source is built only when ``-e FILE`` is given (and then it is the only source: live
sources return nothing).  It sends the events in batches of ``pipeline.batch_size`` as fast as
the pipeline takes them, and returns at the end of the file; the agent then drains and stops.
A malformed line (not JSON, not a valid record, too long) is skipped and counted in
``drops.replay.malformed``; the first ``LOGGED_LINES`` are logged with their file and line
number, the rest only counted (the count is logged at the end).  When the rest of the file cannot
be read (a truncated or corrupt ``.gz``, a read error), every event before the damage is still
sent, ``drops.replay.unreadable_rest`` counts it, the error is logged with the line it cut, and
the replay ends there.  Either makes ``syswarden -e`` exit with code 4 (docs/cli.md).

The file is read and decoded in a worker thread, a batch at a time, so a slow disk never blocks
the trio loop; a batch is cut short after ``BATCH_SECONDS``, so a stop signal is answered within
about that time even when the lines are large.
"""

from __future__ import annotations

import json
import logging
import time
from typing import TYPE_CHECKING, Any, Iterator

import trio

from syswarden.core.capture import (
    REPLAY_MALFORMED,
    REPLAY_UNREADABLE,
    CaptureDamaged,
    check_header,
    is_header,
    open_capture,
    read_capture,
)
from syswarden.core.capture.lines import DamagedStream, read_lines
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Source

if TYPE_CHECKING:
    from syswarden.core.event import Event
    from syswarden.core.metrics import Metrics
    from syswarden.core.protocols import PluginContext

log = logging.getLogger("syswarden.replay")

MALFORMED = REPLAY_MALFORMED
UNREADABLE = REPLAY_UNREADABLE
#: Malformed lines logged one by one; the others are counted.
LOGGED_LINES = 10
#: A batch is sent when full or after this many seconds of reading and decoding.
BATCH_SECONDS = 0.1


class ReplaySource(Source):
    """Replays one capture file; see the module docstring."""

    name = "replay"

    def __init__(self, path: str, batch_size: int, metrics: "Metrics") -> None:
        self.path = path
        self.batch_size = max(1, int(batch_size))
        self.metrics = metrics
        self.sent = 0
        self.malformed = 0
        self.damage: CaptureDamaged | None = None
        # Fail before the pipeline starts: an unreadable file or a newer format is the user's
        # mistake, not a crash of a running source.
        with open_capture(path) as fh:
            try:
                first = next((line for _, line in read_lines(fh, _ignore) if line.strip()), b"")
            except DamagedStream:
                first = b""  # reported with its line number when the replay reaches it
        try:
            rec = json.loads(first)
        except (ValueError, RecursionError):
            rec = None  # reported with its line number when the replay reaches it
        if is_header(rec):
            check_header(rec, path)

    def _malformed(self, lineno: int, message: str) -> None:
        self.malformed += 1
        self.metrics.inc(MALFORMED)
        if self.malformed <= LOGGED_LINES:
            log.warning("%s:%d: malformed capture line skipped: %s", self.path, lineno, message)
        if self.malformed == LOGGED_LINES:
            log.warning("%s: further malformed lines are counted (%s), not logged", self.path,
                        MALFORMED)

    async def run(self, send: "trio.MemorySendChannel[list[Event]]", *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        events = read_capture(self.path, self._malformed)
        task_status.started()
        log.info("replaying %s", self.path)
        try:
            while True:
                batch = await trio.to_thread.run_sync(self._take, events)
                if not batch:
                    break
                self.sent += len(batch)
                await send.send(batch)
        finally:
            events.close()
            log.info("replay of %s done: %d events, %d malformed lines skipped%s", self.path,
                     self.sent, self.malformed,
                     ", the end of the file unreadable" if self.damage else "")

    def _take(self, events: Iterator["Event"]) -> list["Event"]:
        """The next batch: ``batch_size`` events, or what BATCH_SECONDS of decoding gave, or
        what came before the damage (then the replay ends)."""
        batch: list[Event] = []
        until = time.monotonic() + BATCH_SECONDS
        try:
            for evt in events:
                batch.append(evt)
                if len(batch) >= self.batch_size or time.monotonic() >= until:
                    break
        except CaptureDamaged as exc:
            self.damage = exc
            self.metrics.inc(UNREADABLE)
            log.error("%s (%d events before it replayed)", exc, self.sent + len(batch))
        return batch


def _ignore(lineno: int, message: str) -> None:
    """The header check's line errors: reported when the replay reaches the line."""


@hookimpl
def syswarden_make_sources(ctx: "PluginContext") -> ReplaySource | None:
    """A ReplaySource when ``-e FILE`` was given; nothing otherwise."""
    if not ctx.replay_file:
        return None
    return ReplaySource(ctx.replay_file, ctx.config["pipeline"]["batch_size"], ctx.metrics)
