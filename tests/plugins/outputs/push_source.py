"""A test source plugin for agent-level output tests: the test pushes batches of events into
it while the agent runs (``source.push([...])``), e.g. after a signal.  Loaded by config path."""

from __future__ import annotations

import trio

from syswarden.core.event import Event
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Source

PLUGIN_NAME = "push"


class PushSource(Source):
    name = "push-source"

    def __init__(self) -> None:
        self._send, self._receive = trio.open_memory_channel[list[Event]](100)

    def push(self, batch: list[Event]) -> None:
        self._send.send_nowait(batch)

    async def run(self, send, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async for batch in self._receive:
            await send.send(batch)


@hookimpl
def syswarden_make_sources(ctx):
    return PushSource()
