"""The process enricher plugin: process table, fd table, users and groups.

Declares Falco's ``proc.*``, ``thread.*``, ``fd.*``, ``user.*`` and ``group.*`` fields
(:mod:`.fields`) and builds the enricher (:mod:`.enricher`) that attaches a
:class:`~syswarden.core.event.Process` and an :class:`~syswarden.core.event.FdInfo` to each
event, only where they are missing.

Config (the ``process`` section)::

    process:
      max_entries: 65536     # processes kept at most (exited ones are evicted first)
      exit_grace: 5.0        # seconds an exited process stays known
      snapshot: true         # read /proc at start (false: learn processes as they appear)
"""

from __future__ import annotations

from typing import Any

from syswarden.core.config import MAX_QUEUE, Key, Section
from syswarden.core.hookspecs import hookimpl

from .fields import FIELDS

SECTION = "process"


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {SECTION: Section({
        "max_entries": Key(int, 65536, "processes the table keeps at most; past it exited "
                           "entries go first, then the oldest (counted); Falco's "
                           "falco_libs.thread_table_size sets it", min=16,
                           max=MAX_QUEUE),
        "exit_grace": Key(float, 5.0, "seconds an exited process stays in the table for its "
                          "late events", min=0, max=3600),
        "snapshot": Key(bool, True, "read every process of /proc at start"),
    }, doc="the process and fd tables behind proc.*, fd.*, user.*, group.*")}


@hookimpl
def syswarden_fields():
    return FIELDS


@hookimpl
def syswarden_make_enrichers(ctx: Any):
    from .enricher import ProcessEnricher

    section = ctx.section(SECTION)
    snapshot = bool(section.get("snapshot", True)) and not ctx.replay_file
    enricher = ProcessEnricher(ctx.metrics, max_entries=int(section.get("max_entries", 65536)),
                               grace_s=float(section.get("exit_grace", 5.0)),
                               snapshot=snapshot, agent_pid=ctx.agent_pid,
                               replay=bool(ctx.replay_file))
    ctx.process_names = enricher.table.names
    return enricher
