"""``syswarden capture -w FILE``: the live pipeline with a capture writer instead of the rules."""

from __future__ import annotations

import logging
from typing import Any

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

    @classmethod
    def open(cls, path: str, agent: Any) -> "CaptureSink":
        """The sink of ``agent`` (its sources built), writing to a new capture at ``path``."""
        types = agent.ctx.event_types
        writer = CaptureWriter(path, source=",".join(s.name for s in agent.sources),
                               event_types=sorted(types) if types is not None else "all")
        return cls(writer, types)

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

    agent = Agent(config, plugins, config_path=getattr(args, "config", None),
                  overrides=tuple(getattr(args, "overrides", ()) or ()),
                  rules_files=getattr(args, "rules", None),
                  max_seconds=getattr(args, "max_seconds", None))
    stages = ["sources", "enrichers"]
    if not getattr(args, "all_events", False):
        stages.append("filters")
    agent.build(stages, record=lambda built: CaptureSink.open(args.write, built))
    [sink] = agent.filters
    try:
        code = trio.run(agent.run)
    finally:
        sink.writer.close()
    log.info("capture: %d events written to %s", sink.writer.count, sink.writer.path)
    return code
