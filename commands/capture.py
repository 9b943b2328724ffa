"""``syswarden capture -w FILE``: the live pipeline with a capture writer instead of the rules.

The events are recorded after enrichment, in the capture format (``docs/capture-format.md``),
until ``-M SECONDS`` or a signal; ``syswarden -e FILE`` replays them through the rules.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from syswarden.core.capture import CaptureWriter
from syswarden.core.event import Event
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Command, Filter

log = logging.getLogger("syswarden.capture")


class CaptureSink(Filter):
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
    import trio  # noqa: PLC0415 (every command line registers this plugin: keep it light)

    from syswarden.core.agent import Agent  # noqa: PLC0415

    agent = Agent(config, plugins, config_path=getattr(args, "config", None),
                  overrides=tuple(getattr(args, "overrides", ()) or ()),
                  rules_files=getattr(args, "rules", None),
                  max_seconds=getattr(args, "max_seconds", None))
    stages = ["sources", "enrichers"]
    if not getattr(args, "all_events", False):
        stages.append("filters")
    agent.build(stages, record=lambda built: CaptureSink.open(args.write, built), preload=True)
    [sink] = agent.filters
    try:
        code = trio.run(agent.run)
    finally:
        sink.writer.close()
    log.info("capture: %d events written to %s", sink.writer.count, sink.writer.path)
    return code


class CaptureCommand(Command):
    name = "capture"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("-w", dest="write", metavar="FILE", required=True,
                            help="write the capture here (JSON lines)")
        parser.add_argument("-M", dest="max_seconds", type=float, help="stop after SECONDS")
        parser.add_argument("--all-events", action="store_true",
                            help="record every supported syscall, not only those the rules need")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        return capture_main(args, config, plugins)


@hookimpl
def syswarden_commands() -> list[Command]:
    return [CaptureCommand()]
