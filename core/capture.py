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

Decoding keeps one process table per file: records naming the same pid with the same content
share one :class:`Process` object, and a record that gives only ``ppid`` is linked to the
process last seen with that pid, so parent chains work across lines.

Writing is :class:`CaptureWriter`; reading is :func:`read_capture`, which reports a malformed
line with its line number (to a callback, or the log) and skips it: nothing is dropped silently.
Whatever a line holds, decoding it fails as that line's fault, never the reader's; the lines
themselves are read by :mod:`.capture_lines` (bounded in length, a damaged ``.gz`` read up to
its damage).
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import io
import ipaddress
import json
import logging
import os
import platform
import socket
import time
from dataclasses import asdict, fields as dc_fields
from typing import IO, Any, Callable, Iterator

from . import shellwords
from .capture_lines import DamagedStream, open_lines, read_lines
from .errors import Location, SourceError
from .event import Container, Event, FdInfo, Mount, Process
from .safe_files import open_file

log = logging.getLogger("syswarden.capture")

#: The format version written in the header; readers accept this version and older.
FORMAT_VERSION = 1
HEADER_KEY = "syswarden_capture"
#: Ancestors written per event (Falco's rules look up to ``proc.aname[7]``).
MAX_ANCESTORS = 16
#: Timestamp of the first short-form event without ``ts`` (2023-11-14T22:13:20Z).
SHORT_FORM_BASE_TS = 1_700_000_000_000_000_000
#: First pid given to a short-form process that names none.
SHORT_FORM_BASE_PID = 20000
#: The deepest nesting a line may have in ``args``, ``extra`` and inline ``parent``\ s.
MAX_DEPTH = 32

OPEN_TYPES = frozenset({"open", "openat", "openat2", "creat"})
#: Arguments whose raw value is a number Falco prints as flags or a name; the short form may
#: give them as that text.
FLAG_ARGS = ("flags", "mode", "prot", "nstype", "request", "domain", "cmd", "type")
#: ... of which these may also hold plain text (mount's ``type`` is a filesystem name).
_LENIENT_FLAG_ARGS = frozenset({"type"})

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


class CaptureError(SourceError):
    """A capture line that cannot be decoded (the reader reports it and skips the line)."""


class CaptureDamaged(CaptureError):
    """The rest of a capture cannot be read (a truncated or corrupt ``.gz``, a read error):
    raised by :func:`read_capture` after every event before the damage."""


# ---------------------------------------------------------------------------------------------
# Encoding: Event -> record
# ---------------------------------------------------------------------------------------------

_PROC_SKIP = ("parent", "container", "fds")
#: written even when unknown (null): the short form would read their absence as root
_PROC_ALWAYS = frozenset({"uid", "gid", "user", "group"})
_PROC_DEFAULTS = {k: getattr(Process(0), k) for k in Process.__slots__ if k not in _PROC_SKIP}
_FD_DEFAULTS = {k: getattr(FdInfo(), k) for k in FdInfo.__slots__}
_CONTAINER_KEYS = {f.name for f in dc_fields(Container)}
_MOUNT_KEYS = {f.name for f in dc_fields(Mount)}


def _json_value(value: Any) -> Any:
    """A value as JSON can hold it: bytes as ``{"$bytes": base64}``, addresses as text."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if type(value) is list and all(type(v) is str for v in value):
        return value  # argv, env: the common case, as is
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"$bytes": base64.b64encode(bytes(value)).decode("ascii")}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _json_value(v) for k, v in value.items()}
    return str(value)


def _proc_record(proc: Process) -> dict[str, Any]:
    rec: dict[str, Any] = {"pid": proc.pid}
    for key, default in _PROC_DEFAULTS.items():
        if key == "pid":
            continue
        value = getattr(proc, key, default)
        if (value != default and not (key in ("tid", "vpid") and value == proc.pid)) \
                or key in _PROC_ALWAYS:
            rec[key] = _json_value(value)
    if proc.vtid == proc.tid:
        rec.pop("vtid", None)
    if proc.parent is not None and "ppid" not in rec:
        rec["ppid"] = proc.parent.pid
    return rec


def _fd_record(fd: FdInfo) -> dict[str, Any]:
    rec: dict[str, Any] = {"num": fd.num, "type": fd.type, "name": fd.name}
    for key, default in _FD_DEFAULTS.items():
        if key in rec:
            continue
        value = getattr(fd, key, default)
        if value != default:
            rec[key] = _json_value(value)
    return rec


def _container_record(c: Container) -> dict[str, Any]:
    rec = asdict(c)
    return {k: v for k, v in rec.items()
            if v is not None and v != [] and v != {} and not (k == "full_id" and v == "")}


#: What an ancestor's record carries: the fields Falco reads of ancestors (``proc.aname``,
#: ``proc.apid``, ``proc.aexe``, ``proc.aexepath``, ``proc.acmdline``, ``proc.pvpid``,
#: ``proc.sname``, ``proc.vpgid.name``, ``proc.ppid.duration`` ...).
ANCESTOR_KEYS = ("pid", "tid", "ppid", "vpid", "sid", "vpgid", "comm", "exe", "exepath",
                 "args", "start_ts", "container_id")


def _ancestor_record(proc: Process) -> dict[str, Any]:
    rec: dict[str, Any] = {"pid": proc.pid}
    for key in ANCESTOR_KEYS[1:]:
        value = getattr(proc, key)
        if value and not (key in ("tid", "vpid") and value == proc.pid):
            rec[key] = list(value) if key == "args" else value
    if proc.parent is not None and "ppid" not in rec:
        rec["ppid"] = proc.parent.pid
    return rec


class _RecordCache:
    """Ancestor and container records by object, rebuilt when the object changes (an exec,
    container metadata arriving).

    Most events of a capture share their ancestors and container; building their records once
    keeps the writer's cost per event close to that of the event's own process.
    """

    def __init__(self, limit: int = 20000) -> None:
        self._cache: dict[int, tuple[tuple, dict[str, Any]]] = {}
        self._limit = limit

    def container(self, c: Container) -> dict[str, Any]:
        sig = (c.id, c.complete, c.name, c.image, c.image_id, c.privileged, len(c.mounts),
               len(c.labels), c.start_ts)
        return self._cached(c, sig, _container_record)

    def record(self, proc: Process) -> dict[str, Any]:
        parent = proc.parent
        sig = (proc.pid, proc.comm, proc.exe, proc.exepath, proc.args, proc.start_ts,
               proc.ppid, proc.vpid, proc.sid, proc.vpgid, proc.container_id,
               parent.pid if parent is not None else None)
        return self._cached(proc, sig, _ancestor_record)

    def _cached(self, obj: Any, sig: tuple, build: Callable[[Any], dict[str, Any]]
                ) -> dict[str, Any]:
        got = self._cache.get(id(obj))
        if got is not None and got[0] == sig:
            return got[1]
        rec = build(obj)
        if len(self._cache) >= self._limit:
            self._cache.clear()
        self._cache[id(obj)] = (sig, rec)
        return rec


def event_to_record(evt: Event, max_ancestors: int = MAX_ANCESTORS,
                    _cache: _RecordCache | None = None) -> dict[str, Any]:
    """One event as a capture record (a JSON-ready dict), with its process's ancestors."""
    rec: dict[str, Any] = {
        "num": evt.num, "ts": evt.ts, "type": evt.type, "tid": evt.tid, "pid": evt.pid,
        "res": evt.res, "args": _json_value(evt.args),
    }
    if evt.cpu:
        rec["cpu"] = evt.cpu
    if evt.cgroup_id:
        rec["cgroup_id"] = evt.cgroup_id
    if evt.source != "syscall":
        rec["source"] = evt.source
    if evt.proc is not None:
        rec["proc"] = _proc_record(evt.proc)
        build = _cache.record if _cache is not None else _ancestor_record
        chain = [build(p) for _, p in zip(range(max_ancestors), evt.proc.ancestors())]
        if chain:
            rec["ancestors"] = chain
    if evt.fd is not None:
        rec["fd"] = _fd_record(evt.fd)
    if evt.fd2 is not None:
        rec["fd2"] = _fd_record(evt.fd2)
    container = evt.container or (evt.proc.container if evt.proc is not None else None)
    if container is not None:
        rec["container"] = (_cache.container(container) if _cache is not None
                            else _container_record(container))
    if evt.extra:
        rec["extra"] = _json_value(evt.extra)
    return rec


def header_record(**extra: Any) -> dict[str, Any]:
    """The first line of a capture: format version and where it was recorded."""
    uname = platform.uname()
    rec: dict[str, Any] = {
        HEADER_KEY: FORMAT_VERSION,
        "hostname": socket.gethostname(),
        "kernel": uname.release,
        "machine": uname.machine,
        "created_ns": _now_ns(),
    }
    rec.update(extra)
    return rec


def _now_ns() -> int:
    return time.time_ns()


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


# ---------------------------------------------------------------------------------------------
# Decoding: record -> Event
# ---------------------------------------------------------------------------------------------

_PROC_INT_KEYS = {"pid", "tid", "ppid", "vpid", "vtid", "pidns", "sid", "vpgid", "tty",
                  "start_ts", "cgroup_id", "cap_effective", "exe_ino"}
_PROC_OPT_INT_KEYS = {"uid", "gid", "euid", "loginuid", "exit_ts"}
_PROC_STR_KEYS = {"comm", "exe", "exepath", "cwd", "container_id"}
_PROC_OPT_STR_KEYS = {"user", "group", "loginname"}
_PROC_BOOL_KEYS = {"is_exe_writable", "is_exe_upper_layer", "is_exe_from_memfd", "from_agent"}
_PROC_LIST_KEYS = {"args", "env"}
_FD_TYPES = {"file", "directory", "ipv4", "ipv6", "unix", "pipe", "event", "signalfd",
             "eventpoll", "inotify", "timerfd", "netlink", "bpf", "userfaultfd", "io_uring",
             "memfd"}
_PROC_OTHER_SLOTS = (set(Process.__slots__) - set(_PROC_SKIP) - _PROC_INT_KEYS
                     - _PROC_OPT_INT_KEYS - _PROC_STR_KEYS - _PROC_OPT_STR_KEYS
                     - _PROC_BOOL_KEYS - _PROC_LIST_KEYS)
_EVENT_KEYS = {"num", "ts", "type", "tid", "pid", "res", "args", "cpu", "cgroup_id", "source",
               "proc", "ancestors", "fd", "fd2", "container", "extra"}


class _Bad(ValueError):
    """A record that does not fit the format; the message names the key."""


def _want(cond: bool, msg: str) -> None:
    if not cond:
        raise _Bad(msg)


def _int(value: Any, key: str) -> int:
    _want(isinstance(value, int) and not isinstance(value, bool), f"{key} must be an integer")
    return value


def _str(value: Any, key: str) -> str:
    _want(isinstance(value, str), f"{key} must be a string")
    return value


def _arg_value(value: Any, where: str, depth: int = 1) -> Any:
    if isinstance(value, (dict, list)):
        _want(depth <= MAX_DEPTH, f"{where} is nested deeper than {MAX_DEPTH} levels")
    if isinstance(value, dict):
        if set(value) == {"$bytes"}:
            return base64.b64decode(_str(value["$bytes"], f"{where}.$bytes"))
        return {k: _arg_value(v, where, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_arg_value(v, where, depth + 1) for v in value]
    return value


def _typed(value: Any, kind: tuple[type, bool], path: str) -> Any:
    """``value`` checked against ``kind``: (str, int or bool; whether null is allowed)."""
    base, optional = kind
    if value is None and optional:
        return value
    ok = isinstance(value, base) and (base is bool or not isinstance(value, bool))
    _want(ok, f"{path} must be {_KIND_NAMES[base]}{' or null' if optional else ''}")
    return value


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _scalar_kinds(cls: type) -> dict[str, tuple[type, bool]]:
    """The scalar fields of a dataclass -> (type, optional), from its annotations."""
    out = {}
    for f in dc_fields(cls):
        parts = [p.strip() for p in str(f.type).split("|")]
        base = {"str": str, "int": int, "bool": bool}.get(parts[0])
        if base is not None:
            out[f.name] = (base, "None" in parts)
    return out


_CONTAINER_KINDS = _scalar_kinds(Container)
_MOUNT_KINDS = _scalar_kinds(Mount)


def _flag_names() -> dict[str, int]:
    """Every flag/enum name of the engine's syscall tables -> its Linux value."""
    try:
        from . import syscalls  # noqa: PLC0415 (the engine's tables; optional)
    except ImportError:
        return {}
    names: dict[str, int] = {}
    for value in vars(syscalls).values():
        if isinstance(value, tuple) and value and all(
                isinstance(x, tuple) and len(x) == 2 and isinstance(x[0], str)
                and isinstance(x[1], int) for x in value):
            for name, bits in value:
                names.setdefault(name, bits)
        elif isinstance(value, dict) and value and all(
                isinstance(k, int) and isinstance(v, str) for k, v in value.items()):
            for num, name in value.items():
                names.setdefault(name, num)
    return names


_FLAG_NAMES: dict[str, int] | None = None


def parse_flag_text(text: str) -> int:
    """Falco's rendering of a flag or enum argument back to its number.

    ``O_WRONLY|O_CREAT`` -> 65, ``PTRACE_ATTACH`` -> 16, ``0644`` -> 420 (octal like a mode),
    ``12`` -> 12.  Raises ValueError naming an unknown flag.
    """
    global _FLAG_NAMES
    if _FLAG_NAMES is None:
        _FLAG_NAMES = _flag_names()
    total = 0
    for part in text.split("|"):
        part = part.strip()
        if not part:
            continue
        if part.isdigit():
            total |= int(part, 8) if part.startswith("0") and len(part) > 1 else int(part)
        elif part in _FLAG_NAMES:
            total |= _FLAG_NAMES[part]
        else:
            raise ValueError(f"unknown flag {part!r}")
    return total


def _ip(value: Any, key: str) -> Any:
    if value is None:
        return None
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        raise _Bad(f"fd.{key}: {value!r} is not an IP address") from None


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
        unknown = set(rec) - _EVENT_KEYS
        _want(not unknown, f"unknown key(s): {', '.join(sorted(unknown))}")
        etype = _str(rec.get("type"), "type") if "type" in rec else None
        _want(bool(etype), "an event needs a 'type'")
        args = rec.get("args", {})
        _want(isinstance(args, dict), "args must be an object")
        args = {str(k): _arg_value(v, f"args.{k}") for k, v in args.items()}

        container = self._container(rec["container"]) if rec.get("container") else None
        proc = None
        if rec.get("proc") is not None:
            chain = rec.get("ancestors") or []
            _want(isinstance(chain, list), "ancestors must be a list")
            proc = self._proc_with_chain(rec["proc"], chain, container)
        elif "pid" in rec:
            proc = self._by_pid(_int(rec["pid"], "pid"))
        fd = self._fd(rec["fd"], "fd") if rec.get("fd") is not None else None
        fd2 = self._fd(rec["fd2"], "fd2") if rec.get("fd2") is not None else None

        if "ts" in rec:
            ts = _int(rec["ts"], "ts")
        else:
            ts = self._ts + 1000
        self._ts = ts
        self._num += 1
        pid = _int(rec["pid"], "pid") if "pid" in rec else (proc.pid if proc else 0)
        tid = _int(rec["tid"], "tid") if "tid" in rec else (proc.tid if proc else pid)
        if "res" in rec:
            res = _int(rec["res"], "res")
        elif self.short_form and etype in OPEN_TYPES and fd is not None:
            res = fd.num
        else:
            res = 0
        if self.short_form:
            if etype in OPEN_TYPES and fd is not None and fd.name:
                args.setdefault("name", fd.name)
            self._convert_flags(args)

        evt = Event(etype, ts=ts, tid=tid, pid=pid, res=res, args=args,
                    num=_int(rec["num"], "num") if "num" in rec else self._num)
        evt.cpu = _int(rec.get("cpu", 0), "cpu")
        evt.cgroup_id = _int(rec.get("cgroup_id", 0), "cgroup_id")
        evt.source = _str(rec.get("source", "syscall"), "source")
        evt.proc = proc
        evt.fd = fd
        evt.fd2 = fd2
        if proc is not None and fd is not None and fd.num >= 0:
            proc.fds[fd.num] = fd
        evt.container = container or (proc.container if proc is not None else None)
        if rec.get("extra") is not None:
            _want(isinstance(rec["extra"], dict), "extra must be an object")
            _arg_value(rec["extra"], "extra")  # only to bound its depth
            evt.extra = dict(rec["extra"])
        return evt

    @staticmethod
    def _convert_flags(args: dict[str, Any]) -> None:
        """Short form: flag arguments given as Falco's text become their raw numbers."""
        for key in FLAG_ARGS:
            value = args.get(key)
            if isinstance(value, str):
                try:
                    args[key] = parse_flag_text(value)
                except ValueError as exc:
                    if key not in _LENIENT_FLAG_ARGS:
                        raise _Bad(f"args.{key}: {exc}") from None

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
        attrs = self._proc_attrs(d, where)
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
        proc = Process(**attrs)
        if "tid" not in attrs:
            proc.tid = proc.pid
        if "vpid" not in attrs:
            proc.vpid = proc.pid
        if "vtid" not in attrs:
            proc.vtid = proc.tid
        proc.parent = parent
        return proc

    def _by_pid(self, pid: int) -> Process | None:
        cached = self._procs.get(pid)
        return cached[2] if cached else None

    def _proc_attrs(self, d: dict, where: str) -> dict[str, Any]:
        attrs: dict[str, Any] = {}
        for key, value in d.items():
            path = f"{where}.{key}"
            if key in _PROC_INT_KEYS:
                attrs[key] = _int(value, path)
            elif key in _PROC_OPT_INT_KEYS:
                attrs[key] = None if value is None else _int(value, path)
            elif key in _PROC_STR_KEYS:
                attrs[key] = _str(value, path)
            elif key in _PROC_OPT_STR_KEYS:
                attrs[key] = None if value is None else _str(value, path)
            elif key in _PROC_BOOL_KEYS:
                _want(isinstance(value, bool), f"{path} must be true or false")
                attrs[key] = value
            elif key in _PROC_LIST_KEYS:
                if isinstance(value, str):
                    value = shellwords.split(value)
                _want(isinstance(value, list) and all(isinstance(v, str) for v in value),
                      f"{path} must be a list of strings")
                attrs[key] = list(value)
            elif key == "name":
                attrs["comm"] = _str(value, path)
            elif key == "cmdline":
                words = shellwords.split(_str(value, path))
                _want(bool(words), f"{path} is empty")
                attrs.setdefault("comm", os.path.basename(words[0]))
                attrs.setdefault("args", words[1:])
                if words[0].startswith("/"):
                    attrs.setdefault("exe", words[0])
            elif key in _PROC_OTHER_SLOTS:
                attrs[key] = value  # a field added to Process after this reader was written
            else:
                raise _Bad(f"unknown key {path}")
        if where.startswith("ancestors") or not self.short_form:
            return attrs  # written by a capture: no short-form defaults
        comm = attrs.get("comm", "")
        if "exe" not in attrs and comm:
            attrs["exe"] = comm
        if "exepath" not in attrs and attrs.get("exe", "").startswith("/"):
            attrs["exepath"] = attrs["exe"]
        if "uid" not in attrs and "user" not in attrs:
            attrs["uid"], attrs["user"] = 0, "root"
        if "gid" not in attrs and "group" not in attrs:
            attrs["gid"], attrs["group"] = 0, "root"
        return attrs

    # -- fds and containers ---------------------------------------------------------------

    def _fd(self, d: Any, where: str) -> FdInfo:
        _want(isinstance(d, dict), f"{where} must be an object")
        fd = FdInfo(num=3 if self.short_form else -1)
        for key, value in d.items():
            path = f"{where}.{key}"
            if key in ("num", "ino", "dev", "open_flags"):
                setattr(fd, key, _int(value, path))
            elif key in ("sport", "cport"):
                setattr(fd, key, None if value is None else _int(value, path))
            elif key in ("sip", "cip"):
                setattr(fd, key, _ip(value, key))
            elif key == "type":
                _want(value in _FD_TYPES, f"{path}: unknown fd type {value!r}")
                fd.type = value
            elif key == "name":
                fd.name = _str(value, path)
            elif key in ("l4proto", "sockfamily"):
                setattr(fd, key, None if value is None else _str(value, path))
            elif key == "is_server":
                _want(value is None or isinstance(value, bool), f"{path} must be a boolean")
                fd.is_server = value
            else:
                raise _Bad(f"unknown key {path}")
        if not self.short_form:
            return fd
        if "type" not in d:
            ip = fd.sip or fd.cip
            if ip is not None:
                fd.type = "ipv6" if ip.version == 6 else "ipv4"
        if fd.type in ("ipv4", "ipv6"):
            if fd.sockfamily is None:
                fd.sockfamily = "ip"
            if fd.l4proto is None and "l4proto" not in d:
                fd.l4proto = "tcp"
            if not fd.name and fd.sip is not None:
                fd.name = f"{_addr(fd.cip)}:{fd.cport or 0}->{_addr(fd.sip)}:{fd.sport or 0}"
        elif fd.type == "unix" and fd.sockfamily is None:
            fd.sockfamily = "unix"
        return fd

    def _container(self, d: Any) -> Container:
        _want(isinstance(d, dict), "container must be an object")
        unknown = set(d) - _CONTAINER_KEYS
        _want(not unknown, f"unknown key(s) container.{', container.'.join(sorted(unknown))}")
        cid = d.get("id")
        if cid is None:
            cid = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
        cid = _str(cid, "container.id")
        cached = self._containers.get(cid)
        if cached is not None and cached[0] == d:
            return cached[1]
        for key, value in d.items():
            if key in _CONTAINER_KINDS:
                _typed(value, _CONTAINER_KINDS[key], f"container.{key}")
        mounts = []
        given_mounts = d.get("mounts") or []
        _want(isinstance(given_mounts, list), "container.mounts must be a list")
        for i, m in enumerate(given_mounts):
            _want(isinstance(m, dict) and "dest" in m and not set(m) - _MOUNT_KEYS,
                  f"container.mounts[{i}] must be an object with dest (and source, mode, rw,"
                  " propagation)")
            for key, value in m.items():
                _typed(value, _MOUNT_KINDS[key], f"container.mounts[{i}].{key}")
            m = dict(m)
            m.setdefault("source", "")
            mounts.append(Mount(**m))
        labels = d.get("labels") or {}
        _want(isinstance(labels, dict), "container.labels must be an object")
        _want(isinstance(d.get("pod_labels") or {}, dict), "container.pod_labels must be an object")
        values = {k: v for k, v in d.items() if k not in ("id", "mounts", "labels")}
        if self.short_form:
            values.setdefault("complete", True)
        if values.get("pod_labels") is not None:
            values["pod_labels"] = {str(k): str(v) for k, v in values["pod_labels"].items()}
        else:
            values.pop("pod_labels", None)
        c = Container(id=cid, mounts=mounts, labels={str(k): str(v) for k, v in labels.items()},
                      **values)
        self._containers[cid] = (d, c)
        if not self.short_form:
            return c
        if c.image and c.image_repository is None:
            c.image_repository, c.image_tag = _split_image(c.image)
        if c.name is None:
            c.name = cid
        if c.privileged is None and c.complete:
            c.privileged = False
        if not c.full_id:
            c.full_id = cid
        return c


_MISSING = object()


def _agrees(part: dict[str, Any], whole: dict[str, Any]) -> bool:
    """Every key of ``part`` has the same value in ``whole``."""
    return all(whole.get(k, _MISSING) == v for k, v in part.items())


def _addr(ip: Any) -> str:
    if ip is None:
        return "0.0.0.0"
    return f"[{ip}]" if ip.version == 6 else str(ip)


def _split_image(image: str) -> tuple[str, str | None]:
    """``repo/name:tag`` -> (``repo/name``, ``tag``); a digest or no tag gives tag None/latest."""
    name = image.split("@", 1)[0]
    slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > slash:
        return name[:colon], name[colon + 1:]
    return name, "latest" if "@" not in image else None


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


def is_header(rec: Any) -> bool:
    return isinstance(rec, dict) and HEADER_KEY in rec


def check_header(rec: dict[str, Any], path: str) -> None:
    version = rec.get(HEADER_KEY)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise CaptureError(f"bad capture header: {HEADER_KEY} must be a version number",
                           Location(path, 1))
    if version > FORMAT_VERSION:
        raise CaptureError(f"capture format version {version} is newer than this syswarden "
                           f"reads ({FORMAT_VERSION})", Location(path, 1))


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


# ---------------------------------------------------------------------------------------------
# `syswarden capture -w FILE`: the live pipeline with a capture writer instead of the rules
# ---------------------------------------------------------------------------------------------


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

    from .agent import Agent  # noqa: PLC0415 (the agent imports the plugins; keep this light)
    from .protocols import PluginContext  # noqa: PLC0415

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
