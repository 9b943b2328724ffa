"""Reading a capture: :func:`read_capture`, and the :class:`Decoder` that links its records.

A reader keeps one process table per file: records naming the same pid with the same content
share one :class:`Process` object, and a record that gives only ``ppid`` is linked to the
process last seen with that pid, so parent chains work across lines (and across the events of
one ``test-rules`` case).  Containers are shared by id the same way.

A malformed line is reported with its line number (to a callback, or the log) and skipped:
nothing is dropped silently.  Whatever a line holds, decoding it fails as that line's fault, never
the reader's; the lines themselves are read by :mod:`.lines` (bounded in length, a damaged
``.gz`` read up to its damage).
"""

from __future__ import annotations

import json
import logging
from typing import IO, Any, Callable, Iterator

from ..errors import Location
from ..event import Container, Event, Process
from .format import (
    _CONTAINER_KEY,
    _FACTS_KEY,
    _FD2_KEY,
    _FD_KEY,
    _PROC_KEY,
    EVENT_KEYS,
    EVENT_READ,
    EVENT_SET,
    MAX_DEPTH,
    OPEN_TYPES,
    SHORT_FORM_BASE_PID,
    SHORT_FORM_BASE_TS,
    CaptureError,
    _arg_value,
    _Bad,
    _container,
    _container_id,
    _convert_flags,
    _facts,
    _fd,
    _int,
    _proc_attrs,
    _str,
    _want,
    check_header,
    is_header,
)
from .lines import DamagedStream, open_lines, read_lines

log = logging.getLogger("syswarden.capture")

ErrorCallback = Callable[[int, str], None]

#: What a replay loses, counted by the replay source: lines skipped as malformed, and the rest
#: of a file that cannot be read (once).  Either makes ``syswarden -e`` exit with code 4.
REPLAY_MALFORMED = "drops.replay.malformed"
REPLAY_UNREADABLE = "drops.replay.unreadable_rest"


def replay_damage(metrics: Any) -> str | None:
    """What a replay lost, in words (None: nothing), from the counters of its agent."""
    malformed, unreadable = metrics.get(REPLAY_MALFORMED), metrics.get(REPLAY_UNREADABLE)
    parts = [f"{malformed} malformed line(s) skipped"] if malformed else []
    if unreadable:
        parts.append("the end of the file could not be read")
    return "; ".join(parts) or None


class CaptureDamaged(CaptureError):
    """The rest of a capture cannot be read (a truncated or corrupt ``.gz``, a read error):
    raised by :func:`read_capture` after every event before the damage."""


class Decoder:
    """Turns records into events, keeping the process and container tables of one file.

    ``short_form`` (the default, for hand-written events) fills the short form's defaults and
    converts flag text; a capture with a header was written by syswarden, so its reader turns
    it off and takes every value as written.
    """

    def __init__(self, short_form: bool = True) -> None:
        self.short_form = short_form
        self._procs: dict[int, tuple[dict, Process | None, Process]] = {}
        self._anon: dict[str, Process] = {}
        #: pid -> (the raw record, the parent it was given, the process) of the last full record
        self._raw: dict[int, tuple[dict, Process | None, Process]] = {}
        self._containers: dict[str, tuple[dict, Container]] = {}
        self._next_pid = SHORT_FORM_BASE_PID
        self._ts = SHORT_FORM_BASE_TS
        self._num = 0

    # -- the event ------------------------------------------------------------------------

    def decode(self, rec: Any) -> Event:
        _want(isinstance(rec, dict), "a record must be a JSON object")
        unknown = set(rec) - EVENT_KEYS
        _want(not unknown, f"unknown key(s): {', '.join(sorted(unknown))}")
        _want("type" in rec, "an event needs a 'type'")
        # the event's own values, each checked by its declared type
        got = {name: read(rec[key], key) for key, (name, read) in EVENT_READ.items()
               if key in rec}
        etype = got.get("type")
        _want(bool(etype), "an event needs a 'type'")
        args = got["args"] if "args" in got else {}

        c_rec = rec.get(_CONTAINER_KEY)
        container = self._container(c_rec) if c_rec else None
        proc = None
        if rec.get(_PROC_KEY) is not None:
            chain = rec.get("ancestors") or []
            _want(isinstance(chain, list), "ancestors must be a list")
            proc = self._proc_with_chain(rec[_PROC_KEY], chain, container)
        elif "pid" in got:
            proc = self._by_pid(got["pid"])
        fd = (_fd(rec[_FD_KEY], _FD_KEY, self.short_form) if rec.get(_FD_KEY) is not None
              else None)
        fd2 = (_fd(rec[_FD2_KEY], _FD2_KEY, self.short_form) if rec.get(_FD2_KEY) is not None
               else None)

        ts = got["ts"] if "ts" in got else self._ts + 1000
        self._ts = ts
        self._num += 1
        pid = got["pid"] if "pid" in got else (proc.pid if proc else 0)
        tid = got["tid"] if "tid" in got else (proc.tid if proc else pid)
        if "res" in got:
            res = got["res"]
        elif self.short_form and etype in OPEN_TYPES and fd is not None:
            res = fd.num
        else:
            res = 0
        if self.short_form:
            if etype in OPEN_TYPES and fd is not None and fd.name:
                args.setdefault("name", fd.name)
            _convert_flags(args)

        evt = Event(etype, ts, tid, pid, res, args, got.get("num", self._num))
        for name in EVENT_SET:          # the rest of its values: cpu, cgroup_id, source...
            if name in got:
                setattr(evt, name, got[name])
        evt.proc = proc
        evt.fd = fd
        evt.fd2 = fd2
        if proc is not None and fd is not None and fd.num >= 0:
            proc.fds[fd.num] = fd
        evt.container = container or (proc.container if proc is not None else None)
        extra = rec.get(_FACTS_KEY)
        if extra is not None:
            _want(isinstance(extra, dict), f"{_FACTS_KEY} must be an object")
            _arg_value(extra, _FACTS_KEY)  # only to bound its depth
            evt.kernel = _facts(extra, etype)
        return evt

    # -- processes ------------------------------------------------------------------------

    def _proc_with_chain(self, top: Any, chain: list, container: Container | None) -> Process:
        # Build from the root of the written chain down, so each links to its parent.
        parent = None
        for i in range(len(chain) - 1, -1, -1):
            parent = self._proc(chain[i], container, parent, f"ancestors[{i}]")
        return self._proc(top, container, parent, "proc")

    def _proc(self, d: Any, container: Container | None, parent: Process | None,
              where: str) -> Process:
        _want(isinstance(d, dict), f"{where} must be an object")
        pid = d.get("pid")
        seen = self._raw.get(pid) if pid is not None else None
        if seen is not None and seen[1] is parent and seen[0] == d:
            # The record of the last line for this pid, unchanged: the same process.  (Most
            # ancestors of a capture repeat line after line; this skips re-validating them.)
            proc = seen[2]
            current = self._procs.get(pid)
            if current is not None and current[2] is proc and (
                    parent is not None or proc.parent is self._by_pid(proc.ppid)):
                if container is not None and proc.container_id == container.id:
                    proc.container = container
                return proc
        raw = d
        d = dict(d)
        given_parent = parent
        inline_parent = d.pop("parent", None)
        if inline_parent is not None:
            _want(parent is None, f"{where}: give 'parent' or 'ancestors', not both")
            _want(where.count(".") < MAX_DEPTH,
                  f"{where}: parents nested deeper than {MAX_DEPTH} levels")
            parent = self._proc(inline_parent, container, None, f"{where}.parent")
        attrs = _proc_attrs(d, where, self.short_form)
        attrs.setdefault("container_id", container.id if container is not None else "host")
        if parent is not None:
            attrs.setdefault("ppid", parent.pid)
        anon_key = None
        if "pid" not in attrs:
            # A short-form process without a pid: the same description is the same process.
            anon_key = json.dumps([attrs, id(parent)], sort_keys=True)
            proc = self._anon.get(anon_key)
            if proc is None:
                attrs["pid"] = self._next_pid
                self._next_pid += 1
        else:
            proc = None
        if proc is None:
            pid = attrs["pid"]
            if parent is None and attrs.get("ppid") not in (None, 0, pid):
                parent = self._by_pid(attrs["ppid"])
            cached = self._procs.get(pid)
            if cached is not None and cached[1] is parent and (
                    cached[0] == attrs or (where.startswith("ancestors")
                                           and _agrees(attrs, cached[0]))):
                # the same process; an ancestor's record (fewer keys) agreeing with the full
                # record of an earlier line is that process too
                proc = cached[2]
            else:
                proc = self._new_proc(attrs, parent)
                self._procs[pid] = (attrs, parent, proc)
            if anon_key is not None:
                self._anon[anon_key] = proc
            elif "parent" not in raw:
                self._raw[pid] = (raw, given_parent, proc)
        if container is not None and proc.container_id == container.id:
            proc.container = container
        return proc

    @staticmethod
    def _new_proc(attrs: dict[str, Any], parent: Process | None) -> Process:
        return Process(**attrs, parent=parent)   # tid, vpid default to pid, vtid to tid

    def _by_pid(self, pid: int) -> Process | None:
        cached = self._procs.get(pid)
        return cached[2] if cached else None

    # -- containers -----------------------------------------------------------------------

    def _container(self, d: Any) -> Container:
        """One Container per id and content: a record repeated line after line is decoded once."""
        cid = _container_id(d)
        cached = self._containers.get(cid)
        if cached is not None and cached[0] == d:
            return cached[1]
        c = _container(d, cid, self.short_form)
        self._containers[cid] = (d, c)
        return c


_MISSING = object()


def _agrees(part: dict[str, Any], whole: dict[str, Any]) -> bool:
    """Every key of ``part`` has the same value in ``whole``."""
    return all(whole.get(k, _MISSING) == v for k, v in part.items())


def record_to_event(rec: Any, lineno: int = 0, decoder: Decoder | None = None) -> Event:
    """One record (full or short form) as an Event; raises :class:`CaptureError` if bad.

    Pass the same ``decoder`` for every record of one file so processes are shared.
    """
    try:
        return _decode(decoder or Decoder(), rec)
    except _Bad as exc:
        raise CaptureError(str(exc), Location(None, lineno or None)) from None


def _decode(decoder: Decoder, rec: Any) -> Event:
    """``decoder.decode(rec)``; whatever goes wrong is the record's fault (:class:`_Bad`).

    The checks name the key at fault; a value they let through that still breaks decoding is
    reported with the exception, so that one hostile line never ends a replay.
    """
    try:
        return decoder.decode(rec)
    except (_Bad, ValueError, TypeError) as exc:
        raise _Bad(str(exc)) from None
    except RecursionError:
        raise _Bad("nested too deeply") from None
    except Exception as exc:
        raise _Bad(f"cannot be decoded: {type(exc).__name__}: {exc}") from None


def open_capture(path: str) -> IO[bytes]:
    """Open a capture for reading, as bytes (gzip by its name); CaptureError when it cannot.

    Lines are decoded one by one, so a line that is not UTF-8 is one malformed line.
    """
    try:
        return open_lines(path)
    except OSError as exc:
        raise CaptureError(f"cannot read capture: {exc.strerror}", Location(path)) from None


def decode_lines(lines: Iterator[tuple[int, bytes | str]], path: str,
                 on_error: ErrorCallback | None = None) -> Iterator[Event]:
    """Decode ``(lineno, text)`` pairs; a bad line goes to ``on_error`` (or the log), skipped.

    A header may only stand on the first non-blank line; a newer format version raises.
    """
    decoder = Decoder()
    first = True
    for lineno, text in lines:
        if not text.strip():
            continue
        try:
            rec = json.loads(text)
        except ValueError as exc:
            _report(on_error, path, lineno, f"not JSON: {exc}")
            first = False
            continue
        except RecursionError:
            _report(on_error, path, lineno, "not JSON: nested too deeply")
            first = False
            continue
        if is_header(rec):
            if first:
                check_header(rec, path)
                decoder.short_form = False  # written by syswarden: values as written
            else:
                _report(on_error, path, lineno, "a header record after the first line")
            first = False
            continue
        first = False
        try:
            evt = _decode(decoder, rec)
        except _Bad as exc:
            _report(on_error, path, lineno, str(exc))
            continue
        yield evt


def _report(on_error: ErrorCallback | None, path: str, lineno: int, message: str) -> None:
    if on_error is not None:
        on_error(lineno, message)
    else:
        log.warning("%s:%d: malformed capture line skipped: %s", path, lineno, message)


def read_capture(path: str, on_error: ErrorCallback | None = None) -> Iterator[Event]:
    """Iterate the events of a capture file.

    Each malformed line (not JSON, not a valid record, longer than ``MAX_LINE_BYTES``) is
    passed to ``on_error(lineno, message)`` (default: a warning in the log) and skipped.  Raises
    :class:`CaptureError` when the file cannot be opened or its header announces a newer
    format, and :class:`CaptureDamaged` when the rest of the file cannot be read (a truncated
    or corrupt ``.gz``), after the events of every complete line before the damage.
    """
    with open_capture(path) as fh:
        try:
            yield from decode_lines(read_lines(fh, lambda n, why: _report(on_error, path, n, why)),
                                    path, on_error)
        except DamagedStream as exc:
            raise CaptureDamaged(f"cannot read the capture from this line on: {exc.reason}",
                                 Location(path, exc.lineno)) from None
