"""Writing a capture: :class:`CaptureWriter`, a file of records (``.gz``: compressed) after its
header line.  The records are built by :mod:`.format`."""

from __future__ import annotations

import gzip
import io
import json
import os
import time
from typing import IO, Any

from ..errors import Location
from ..event import Event
from ..safe_files import open_file
from .format import MAX_ANCESTORS, CaptureError, _RecordCache, event_to_record, header_record


class CaptureWriter:
    """Writes events to a capture file (gzip when the name ends in ``.gz``).

    A path is opened with :func:`~syswarden.core.safe_files.open_file` (mode 0600, truncated
    only after the checks): a capture holds the whole host's command lines and file names.

    Written lines reach the file at least every ``flush_seconds`` (checked as events are
    written), so a live capture can be followed while it runs.

    >>> with CaptureWriter("/tmp/x.jsonl") as w:     # doctest: +SKIP
    ...     w.write_batch(events)
    """

    def __init__(self, path: str | os.PathLike | IO[str], *, header: bool = True,
                 max_ancestors: int = MAX_ANCESTORS, flush_seconds: float = 1.0,
                 **header_extra: Any) -> None:
        self.max_ancestors = max_ancestors
        self.flush_seconds = flush_seconds
        self.count = 0
        self._flushed = time.monotonic()
        self._ancestors = _RecordCache()
        if isinstance(path, (str, os.PathLike)):
            self.path = os.fspath(path)
            try:
                # root writes it: no link, FIFO or other user's file at the path (0600)
                raw = os.fdopen(open_file(self.path, truncate=True), "wb")
            except OSError as exc:
                raise CaptureError(f"cannot write capture: {exc.strerror}",
                                   Location(self.path)) from None
            self._raw: IO[bytes] | None = raw
            if self.path.endswith(".gz"):
                self._fh: IO[str] = gzip.open(raw, "wt", encoding="utf-8")
            else:
                self._fh = io.TextIOWrapper(raw, encoding="utf-8")
                self._raw = None            # closed with the text layer
            self._owned = True
        else:
            self.path = getattr(path, "name", "<stream>")
            self._fh = path
            self._raw = None
            self._owned = False
        if header:
            self._line(header_record(**header_extra))

    def _line(self, rec: dict[str, Any]) -> None:
        self._fh.write(json.dumps(rec, separators=(",", ":"), ensure_ascii=False))
        self._fh.write("\n")

    def write(self, evt: Event) -> None:
        self._line(event_to_record(evt, self.max_ancestors, self._ancestors))
        self.count += 1
        if self.count % 64 == 0 or self.flush_seconds <= 0:
            now = time.monotonic()
            if now - self._flushed >= self.flush_seconds:
                self._fh.flush()
                self._flushed = now

    def write_batch(self, events: list[Event]) -> None:
        for evt in events:
            self.write(evt)

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        if self._owned:
            self._fh.close()
            if self._raw is not None:       # a GzipFile given a file leaves it open
                self._raw.close()
        else:
            self._fh.flush()

    def __enter__(self) -> "CaptureWriter":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
