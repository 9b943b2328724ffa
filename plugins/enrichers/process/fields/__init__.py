"""The process plugin's fields, by family as libsinsp has them: ``proc.*`` (:mod:`.proc`),
``thread.*`` (:mod:`.thread`), ``fd.*`` (:mod:`.fd`), ``user.*`` and ``group.*``
(:mod:`.user`); what they share is in :mod:`.common`.

A field is one row of its family's ``FIELDS`` table
(:class:`~syswarden.core.fields.Field`: name, type, description, reader), Falco's name and
type, the reader beside the table.  Readers read the state objects the process enricher
attaches to an event (``evt.proc``: :class:`~syswarden.core.event.Process`, ``evt.fd``:
:class:`~syswarden.core.event.FdInfo`); a replayed capture carries the same objects, so the
readers do not care where the state came from.  A reader never raises: whatever is unknown for
an event reads as ``None``.
"""

from __future__ import annotations

from syswarden.core.fields import define

from . import fd, proc, thread, user
from .common import caps_text
from .fd import directory_of

PROVIDER = "process"

FIELDS = define(PROVIDER, proc.FIELDS, thread.FIELDS, fd.FIELDS, user.FIELDS)

__all__ = ["FIELDS", "PROVIDER", "caps_text", "directory_of"]
