"""The ``replay`` source: events from a capture file (``syswarden -e FILE``).

A replay feeds a recorded capture (``docs/capture-format.md``) through the same pipeline as the
live source: the events already carry their process, fd and container state, which the
enrichers leave alone, so the rules judge them as they would have live.  Reproducible tests,
forensics after the fact, and benchmarks of the engine without the kernel.

The source is built only when ``-e FILE`` is given (and then it is the only source: live
sources return nothing).  It sends the events in batches of ``pipeline.batch_size`` as fast as
the pipeline takes them, and returns at the end of the file; the agent then drains and stops.
A malformed line is logged with its line number, counted in ``drops.replay.malformed`` and
skipped.  The file is read and decoded in a worker thread, one batch at a time, so a slow disk
never blocks the trio loop.
"""

from __future__ import annotations

import json
import logging
from itertools import islice
from typing import TYPE_CHECKING, Any, Iterator

import trio

from syswarden.core.capture import CaptureError, check_header, is_header, open_capture, read_capture
from syswarden.core.errors import Location
from syswarden.core.hookspecs import hookimpl

if TYPE_CHECKING:
    from syswarden.core.event import Event
    from syswarden.core.metrics import Metrics
    from syswarden.core.protocols import PluginContext

log = logging.getLogger("syswarden.replay")

MALFORMED = "drops.replay.malformed"


class ReplaySource:
    """Replays one capture file; see the module docstring."""

    name = "replay"

    def __init__(self, path: str, batch_size: int, metrics: "Metrics") -> None:
        self.path = path
        self.batch_size = max(1, int(batch_size))
        self.metrics = metrics
        self.sent = 0
        self.malformed = 0
        # Fail before the pipeline starts: an unreadable file or a newer format is the user's
        # mistake, not a crash of a running source.
        with open_capture(path) as fh:
            try:
                first = next((line for line in fh if line.strip()), b"")
            except (OSError, EOFError) as exc:
                raise CaptureError(f"cannot read capture: {exc}", Location(path)) from None
        try:
            rec = json.loads(first)
        except ValueError:
            rec = None  # reported with its line number when the replay reaches it
        if is_header(rec):
            check_header(rec, path)

    def _malformed(self, lineno: int, message: str) -> None:
        self.malformed += 1
        self.metrics.inc(MALFORMED)
        log.warning("%s:%d: malformed capture line skipped: %s", self.path, lineno, message)

    async def run(self, send: "trio.MemorySendChannel[list[Event]]", *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        events = read_capture(self.path, self._malformed)
        task_status.started()
        log.info("replaying %s", self.path)
        try:
            while True:
                batch = await trio.to_thread.run_sync(_take, events, self.batch_size)
                if not batch:
                    break
                self.sent += len(batch)
                await send.send(batch)
        finally:
            events.close()
        log.info("replay of %s done: %d events, %d malformed lines skipped", self.path,
                 self.sent, self.malformed)


def _take(events: Iterator["Event"], n: int) -> list["Event"]:
    return list(islice(events, n))


@hookimpl
def syswarden_make_sources(ctx: "PluginContext") -> ReplaySource | None:
    """A ReplaySource when ``-e FILE`` was given; nothing otherwise."""
    if not ctx.replay_file:
        return None
    return ReplaySource(ctx.replay_file, ctx.config["pipeline"]["batch_size"], ctx.metrics)
