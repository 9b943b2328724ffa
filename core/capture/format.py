"""The capture format: what one record holds, and how an event becomes one and back.

A record is one JSON object: the syscall part of an event (``type``, ``ts``, ``tid``, ``pid``,
``res``, ``args``), the process that made it (``proc``) with its ancestors, the fd it is about
(``fd``, ``fd2``) and the container it runs in (``container``); a capture's first line may be a
*header* (``{"syswarden_capture": 1, "hostname": ..., ...}``).  ``docs/capture-format.md``
describes every key, ``docs/capture-format.schema.json`` is its schema.

Encoding (:func:`event_to_record`) writes what differs from the state objects' defaults.
Decoding checks every key, naming the one at fault (:class:`_Bad`, turned into a
:class:`CaptureError` with the line by the reader).  The *short form* (hand-written events, as
``syswarden test-rules`` reads them) fills sensible defaults: a process named by
``name``/``cmdline``, an fd given by ``name``, flags given as Falco's text ``O_WRONLY|O_CREAT``.
Linking the records of one file together (one :class:`Process` per pid, parents across lines)
is the reader's part, :mod:`.reading`.
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import json
import os
import platform
import socket
import time
from dataclasses import asdict, fields as dc_fields
from typing import Any, Callable

from .. import shellwords
from ..errors import Location, SourceError
from ..event import Container, Event, FdInfo, Mount, Process

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


class CaptureError(SourceError):
    """A capture line that cannot be decoded (the reader reports it and skips the line)."""


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


# ---------------------------------------------------------------------------------------------
# Decoding: one record's values, checked, as state objects (the reader links the records)
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
        from .. import syscalls  # noqa: PLC0415 (the engine's tables; optional)
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


def _proc_attrs(d: dict, where: str, short_form: bool) -> dict[str, Any]:
    """A process record's values, checked, as :class:`Process` keyword arguments (the short
    form's defaults filled, except for ancestors)."""
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
    if where.startswith("ancestors") or not short_form:
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


def _fd(d: Any, where: str, short_form: bool) -> FdInfo:
    """An fd record (``fd`` or ``fd2``, named by ``where``) as an :class:`FdInfo`."""
    _want(isinstance(d, dict), f"{where} must be an object")
    fd = FdInfo(num=3 if short_form else -1)
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
    if not short_form:
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


def _container_id(d: Any) -> str:
    """The id of a container record (a hash of the record when it gives none)."""
    _want(isinstance(d, dict), "container must be an object")
    unknown = set(d) - _CONTAINER_KEYS
    _want(not unknown, f"unknown key(s) container.{', container.'.join(sorted(unknown))}")
    cid = d.get("id")
    if cid is None:
        cid = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    return _str(cid, "container.id")


def _container(d: dict, cid: str, short_form: bool) -> Container:
    """A container record (its keys checked by :func:`_container_id`) as a
    :class:`Container`."""
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
    if short_form:
        values.setdefault("complete", True)
    if values.get("pod_labels") is not None:
        values["pod_labels"] = {str(k): str(v) for k, v in values["pod_labels"].items()}
    else:
        values.pop("pod_labels", None)
    c = Container(id=cid, mounts=mounts, labels={str(k): str(v) for k, v in labels.items()},
                  **values)
    if not short_form:
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
