"""``syswarden capture -w FILE``: the live pipeline with a capture writer instead of the rules."""

from __future__ import annotations

import logging
import os
from typing import Any

from ..errors import SourceError
from ..event import Event
from .writing import CaptureWriter

log = logging.getLogger("syswarden.capture")


class CaptureSink:
    """Stands in the filter stage: writes every enriched event to the capture, raises nothing.

    ``event_types`` is what the source attaches: the syscalls the loaded rules need, or None
    (every supported syscall) with ``--all-events``.
    """

    name = "capture"

    def __init__(self, writer: CaptureWriter, event_types: set[str] | None) -> None:
        self.writer = writer
        self._types = event_types

    def check(self, event: Event) -> None:
        self.writer.write(event)

    def event_types(self) -> set[str] | None:
        return self._types

    def reload(self, config: dict[str, Any]) -> None:
        """The capture keeps the event types it started with."""


def capture_main(args: Any, config: dict[str, Any], plugins: Any) -> int:
    """Record live events (after enrichment) to ``args.write`` until ``-M`` or a signal.

    ``args``: ``write`` (the file), ``max_seconds``, ``all_events``, ``config``, ``overrides``,
    ``rules``.  Without ``--all-events`` the rules are loaded only to know which syscalls to
    attach, so the capture holds what those rules would judge.
    """
    import trio  # noqa: PLC0415 (the CLI imports this module for other commands too)

    from ..agent import Agent  # noqa: PLC0415 (the agent imports the plugins; keep this light)
    from ..protocols import PluginContext  # noqa: PLC0415

    agent = Agent(config, plugins, config_path=getattr(args, "config", None),
                  overrides=tuple(getattr(args, "overrides", ()) or ()),
                  rules_files=getattr(args, "rules", None),
                  max_seconds=getattr(args, "max_seconds", None))
    ctx = PluginContext(config, agent.metrics, plugins.fields(), agent_pid=os.getpid())
    if getattr(args, "all_events", False):
        types = None
    else:
        agent.filters = plugins.make("filter", ctx)
        types = agent.event_types()
    ctx.event_types = types
    agent.ctx = ctx
    agent.sources = plugins.make("source", ctx)
    if not agent.sources:
        raise SourceError("no live event source is enabled", hint="enable the ebpf source")
    agent.enrichers = plugins.make("enricher", ctx)
    writer = CaptureWriter(args.write, source=",".join(s.name for s in agent.sources),
                           event_types=sorted(types) if types is not None else "all")
    sink = CaptureSink(writer, types)
    agent.filters = [sink]
    agent._checks = [(sink.name, sink.check)]
    try:
        code = trio.run(agent.run)
    finally:
        writer.close()
    log.info("capture: %d events written to %s", writer.count, writer.path)
    return code

