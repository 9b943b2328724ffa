"""The process enricher: process table, fd table, users and groups.

Declares Falco's ``proc.*``, ``thread.*``, ``fd.*``, ``user.*`` and ``group.*`` fields
(:mod:`.fields`) and builds the enricher that attaches a :class:`~syswarden.core.event.Process`
and an :class:`~syswarden.core.event.FdInfo` to each event, only where they are missing.
"""

from __future__ import annotations

from syswarden.core.hookspecs import hookimpl

from .fields import FIELDS


@hookimpl
def syswarden_fields():
    return FIELDS
