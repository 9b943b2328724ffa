"""The capture format: events as JSON lines, with all the state their fields read.

A capture file holds one JSON object per line (``docs/capture-format.md``, schema in
``docs/capture-format.schema.json``).  The first line may be a *header*
(``{"syswarden_capture": 1, "hostname": ..., ...}``); every other line is one event: its syscall
part (``type``, ``ts``, ``tid``, ``pid``, ``res``, ``args``), the process that made it with its
ancestors, the fd it is about and the container it runs in.  A line is self-contained: a replay
needs no process table, no ``/proc`` and no Docker, so a capture judged by the rules gives the
same alerts on any machine.

The same format serves hand-written test events (``syswarden test-rules``) in a *short form*:
only ``type`` is required, and the decoder fills sensible defaults (a process named by
``name``/``cmdline``, a parent given inline as ``parent``, an fd given by ``name``, flags given
as Falco's text ``O_WRONLY|O_CREAT``).

One module per part, their public names gathered here:

- :mod:`.format`: what a record holds; an event as a record and a record's values back as
  state objects, the short form's defaults, the header.
- :mod:`.writing`: :class:`CaptureWriter`.
- :mod:`.reading`: :func:`read_capture`, and the :class:`Decoder` that keeps one process table
  per file (records naming the same pid with the same content share one :class:`Process`; a
  record giving only ``ppid`` is linked to the process last seen with that pid).
- :mod:`.lines`: the lines of a file, bounded in length, a damaged ``.gz`` read up to its damage.
- :mod:`.schema`: the JSON Schema and the docs' tables, generated from the state objects'
  declarations (:mod:`syswarden.core.event`).
"""

from __future__ import annotations

from .format import (
    ANCESTOR_KEYS,
    FLAG_ARGS,
    FORMAT_VERSION,
    HEADER_KEY,
    MAX_ANCESTORS,
    MAX_DEPTH,
    OPEN_TYPES,
    SHORT_FORM_BASE_PID,
    SHORT_FORM_BASE_TS,
    CaptureError,
    check_header,
    event_to_record,
    header_record,
    is_header,
    parse_flag_text,
)
from .lines import MAX_LINE_BYTES
from .reading import (
    REPLAY_MALFORMED,
    REPLAY_UNREADABLE,
    CaptureDamaged,
    Decoder,
    ErrorCallback,
    decode_lines,
    open_capture,
    read_capture,
    record_to_event,
    replay_damage,
)
from .writing import CaptureWriter

__all__ = [
    "ANCESTOR_KEYS", "FLAG_ARGS", "FORMAT_VERSION", "HEADER_KEY", "MAX_ANCESTORS", "MAX_DEPTH",
    "MAX_LINE_BYTES", "OPEN_TYPES", "REPLAY_MALFORMED", "REPLAY_UNREADABLE",
    "SHORT_FORM_BASE_PID", "SHORT_FORM_BASE_TS", "CaptureDamaged", "CaptureError",
    "CaptureWriter", "Decoder", "ErrorCallback", "check_header", "decode_lines",
    "event_to_record", "header_record", "is_header", "open_capture", "parse_flag_text",
    "read_capture", "record_to_event", "replay_damage",
]
