"""The stdout output (Falco's ``stdout_output``): one alert per line on standard output.

Lines are flushed per batch unless ``buffered_outputs`` is set.  Writes happen in a worker
thread: stdout piped into a slow reader stalls this output alone.  A closed stdout (the reader
went away) is counted as ``outputs.stdout.failed`` per alert, never raised into the agent; a
batch still blocked when the shutdown grace runs out (a reader that never reads) is counted as
``outputs.stdout.dropped``.
"""

from __future__ import annotations

import sys
from typing import Any, TextIO

import trio

from syswarden.core.config import Key, Section
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import (OutputSettings, ThreadedWriter, batches, build_if_enabled,
                                    output_schema)
from syswarden.core.protocols import Output


class StdoutOutput(Output):
    name = "stdout"

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any,
                 stream: TextIO | None = None) -> None:
        self.settings = OutputSettings.from_config(config, section)
        self.metrics = metrics
        self.stream = stream
        self.buffered = bool(config.get("buffered_outputs", False))

    async def run(self, alerts: trio.MemoryReceiveChannel, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        # a pipe to a slow reader blocks the write: in a thread, it fills only this output's
        # queue, never the detection path
        write = ThreadedWriter(self.name, self.metrics, self.write,
                               timeout=self.settings.timeout)
        async with alerts:
            async for batch in batches(alerts):
                await write(batch)

    def write(self, batch: list) -> bool:
        stream = self.stream or sys.stdout   # looked up late: tests and the CLI swap sys.stdout
        try:
            fmt = self.settings.formatter
            stream.write("".join(fmt(a) + "\n" for a in batch))
            if not self.buffered:
                stream.flush()
        except (OSError, ValueError):
            return False
        return True


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return output_schema("stdout_output", "Falco's stdout output",
                         Key(bool, True, "print alerts on standard output"))


@hookimpl
def syswarden_make_outputs(ctx: Any) -> StdoutOutput | None:
    return build_if_enabled(ctx, "stdout_output", StdoutOutput, enabled_default=True)
