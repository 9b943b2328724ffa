"""The capture format: what one record holds, and how an event becomes one and back.

A record is one JSON object: the syscall part of an event (``type``, ``ts``, ``tid``, ``pid``,
``res``, ``args``), the process that made it (``proc``) with its ancestors, the fd it is about
(``fd``, ``fd2``), the container it runs in (``container``) and its kernel facts (``extra``); a
capture's first line may be a *header* (``{"syswarden_capture": 1, "hostname": ..., ...}``).
``docs/capture-format.md`` describes every key, ``docs/capture-format.schema.json`` is its
schema; both are generated from the state objects' declarations (:mod:`syswarden.core.event`)
by :mod:`.schema`.

The keys of an event record and of its process, fd, container, mount and ``extra`` records are
the declared attributes a capture stores (:func:`stored`), each read by the :class:`Codec` of
its declared type (:data:`CODECS`); an event's process, fds, container and kernel facts are
records of their own (:data:`NESTED`), and ``ancestors`` is the format's.  Encoding (:func:`event_to_record`) writes what differs from the
declared defaults.  Decoding checks every key, naming the one at fault (:class:`_Bad`, turned
into a :class:`CaptureError` with the line by the reader).  The *short form* (hand-written events, as
``syswarden test-rules`` reads them) fills sensible defaults: a process named by
``name``/``cmdline``, an fd given by ``name``, flags given as Falco's text ``O_WRONLY|O_CREAT``.
Linking the records of one file together (one :class:`Process` per pid, parents across lines)
is the reader's part, :mod:`.reading`.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import ipaddress
import json
import os
import platform
import socket
import time
from dataclasses import asdict
from operator import attrgetter
from typing import Any, Callable, NamedTuple

from .. import shellwords
from ..errors import Location, SourceError
from ..event import (
    FACTS_CLASSES,
    FACTS_OF,
    FD_TYPES,
    Container,
    Args,
    Event,
    FdInfo,
    KernelFacts,
    Mount,
    Process,
    SockAddr,
    StateAttr,
    declared,
)

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
# How the capture holds each declared type
# ---------------------------------------------------------------------------------------------


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


class Codec(NamedTuple):
    """How a capture record holds a value of one declared type: ``read(value, path)`` checks a
    JSON value and returns the state value (a :class:`_Bad` naming ``path`` when it does not
    fit), ``schema`` is its JSON Schema, ``words`` its name in the docs' tables.  Values are
    written by :func:`_json_value`."""

    read: Callable[[Any, str], Any]
    schema: dict[str, Any]
    words: str


_KIND_NAMES = {str: "a string", int: "an integer", bool: "true or false"}


def _scalar(base: type, optional: bool) -> Callable[[Any, str], Any]:
    """A reader of a str, int or bool (and null when ``optional``); a bool is no integer."""
    must = f" must be {_KIND_NAMES[base]}{' or null' if optional else ''}"

    def read(value: Any, path: str) -> Any:
        if value is None and optional:
            return value
        _want(isinstance(value, base) and (base is bool or not isinstance(value, bool)),
              path + must)
        return value
    return read


def _words(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        value = shellwords.split(value)  # the short form: one command line
    _want(isinstance(value, list) and all(isinstance(v, str) for v in value),
          f"{path} must be a list of strings")
    return list(value)


def _ip(value: Any, path: str) -> Any:
    if value is None:
        return None
    try:
        _want(isinstance(value, str), "")
        return ipaddress.ip_address(value)
    except ValueError:
        raise _Bad(f"{path}: {value!r} is not an IP address") from None


def _fd_type(value: Any, path: str) -> str:
    _want(value in FD_TYPES, f"{path}: unknown fd type {value!r}")
    return value


def _sockaddr(value: Any, path: str) -> SockAddr | None:
    if value is None:
        return None
    ok = isinstance(value, list) and len(value) == 3 and isinstance(value[0], str) \
        and isinstance(value[1], str) and isinstance(value[2], int)
    _want(ok, f"{path} must be [family, address, port] or null")
    family, addr, port = value
    return (family, addr if family == "unix" else _ip(addr, path), port)


def _args(value: Any, path: str) -> Args:
    _want(isinstance(value, dict), f"{path} must be an object")
    return {str(k): _arg_value(v, f"{path}.{k}") for k, v in value.items()}


def _labels(value: Any, path: str) -> dict[str, str]:
    if value is None:
        return {}
    _want(isinstance(value, dict), f"{path} must be an object")
    return {str(k): str(v) for k, v in value.items()}


def _mounts(value: Any, path: str) -> list[Mount]:
    if value is None:
        return []
    _want(isinstance(value, list), f"{path} must be a list")
    out = []
    for i, m in enumerate(value):
        _want(isinstance(m, dict) and "dest" in m and not set(m) - set(_MOUNT_READ),
              f"{path}[{i}] must be an object with {_MOUNT_SHAPE}")
        values = {_MOUNT_READ[k][0]: _MOUNT_READ[k][1](v, f"{path}[{i}].{k}")
                  for k, v in m.items()}
        values.setdefault("source", "")
        out.append(Mount(**values))
    return out


_OPT_INT = {"$ref": "#/$defs/optInt"}
_OPT_STR = {"$ref": "#/$defs/optStr"}

#: Every type a state object may declare for an attribute a capture stores, by its annotation.
CODECS: dict[str, Codec] = {
    "int": Codec(_scalar(int, False), {"type": "integer"}, "integer"),
    "UInt": Codec(_scalar(int, False), {"$ref": "#/$defs/uint"}, "integer, not negative"),
    "EventType": Codec(_scalar(str, False), {"type": "string", "minLength": 1}, "string"),
    "Args": Codec(_args, {"type": "object", "additionalProperties": {"$ref": "#/$defs/argValue"}},
                  "object of arguments"),
    "int | None": Codec(_scalar(int, True), _OPT_INT, "integer or null"),
    "str": Codec(_scalar(str, False), {"type": "string"}, "string"),
    "str | None": Codec(_scalar(str, True), _OPT_STR, "string or null"),
    "bool": Codec(_scalar(bool, False), {"type": "boolean"}, "boolean"),
    "bool | None": Codec(_scalar(bool, True), {"type": ["boolean", "null"]},
                         "boolean or null"),
    "list[str]": Codec(_words, {"$ref": "#/$defs/strList"}, "list of strings"),
    "IPAddress | None": Codec(_ip, _OPT_STR, "IP address (text) or null"),
    "FdType": Codec(_fd_type, {"enum": list(FD_TYPES)}, "fd type"),
    "SockAddr | None": Codec(_sockaddr, {"type": ["array", "null"],
                                         "items": {"type": ["string", "integer"]}},
                             "[family, address, port] or null"),
    "dict[str, str]": Codec(_labels, {"type": "object",
                                      "additionalProperties": {"type": "string"}},
                            "object of strings"),
    "list[Mount]": Codec(_mounts, {"type": "array", "items": {"$ref": "#/$defs/mount"}},
                         "list of mounts"),
}


#: The state objects an event record holds as records of their own, by the declared type of
#: the :class:`Event` attribute: the name of their record in the schema's ``$defs``.
NESTED: dict[str, str] = {"Process | None": "process", "FdInfo | None": "fd",
                          "Container | None": "container", "KernelFacts | None": "extra"}


def stored(cls: type, nested: bool = False) -> tuple[StateAttr, ...]:
    """The attributes of a state class a capture stores, each with a codec for its type, or
    (``nested``: the event's) a record of its own (a TypeError names an attribute whose type
    has neither: nothing is stored unchecked)."""
    out = tuple(a for a in declared(cls) if a.captured)
    for a in out:
        if a.type not in CODECS and not (nested and a.type in NESTED):
            raise TypeError(f"{cls.__name__}.{a.name}: the capture has no codec for its type "
                            f"{a.type!r} (core/capture/format.py, CODECS)")
    return out


def _values(cls: type) -> tuple[StateAttr, ...]:
    """The stored attributes of a class that are values (not records of their own)."""
    return tuple(a for a in stored(cls, nested=cls is Event) if a.type in CODECS)


def _readers(cls: type) -> dict[str, tuple[str, Callable[[Any, str], Any]]]:
    """A record's key -> (the attribute, its checked reader), for one state class."""
    return {a.record_key: (a.name, CODECS[a.type].read) for a in _values(cls)}


_PROC_READ = _readers(Process)
_FD_READ = _readers(FdInfo)
_CONTAINER_READ = _readers(Container)
_MOUNT_READ = _readers(Mount)
_MOUNT_SHAPE = "dest (and {})".format(", ".join(k for k in _MOUNT_READ if k != "dest"))
_FACTS_READ = {cls: _readers(cls) for cls in FACTS_CLASSES}
#: An event record's value keys -> (the attribute, its reader); its nested records' keys.
EVENT_READ = _readers(Event)
_EVENT_RECORDS = {a.name: a.record_key for a in stored(Event, nested=True)
                  if a.type in NESTED}
#: The event's values its constructor does not take, set after it (cpu, cgroup_id, source...).
EVENT_SET = tuple(a.name for a in _values(Event) if a.position is None)
#: Every key an event record may have.
EVENT_KEYS = frozenset(EVENT_READ) | frozenset(_EVENT_RECORDS.values()) | {"ancestors"}
#: Keys of ``extra`` that earlier versions wrote and no reader needs: read and ignored.
RETIRED_FACTS = frozenset({"argv_truncated"})


# ---------------------------------------------------------------------------------------------
# Encoding: Event -> record
# ---------------------------------------------------------------------------------------------


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


@functools.cache
def _encoder(cls: type) -> Callable[[Any], dict[str, Any]]:
    """The record of a state object: what differs from its declared default (an attribute
    that defaults to another is written when it differs from that one), and what is declared
    ``always``.  Generated from the declarations as straight-line code: the writer runs it for
    every event."""
    scope: dict[str, Any] = {"_json_value": _json_value}
    lines = ["def encode(obj):", "    rec = {}"]
    for i, a in enumerate(_values(cls)):
        lines.append(f"    v = obj.{a.name}")
        write = f"rec[{a.record_key!r}] = _json_value(v)"
        if a.always:
            lines.append(f"    {write}")
            continue
        scope[f"d{i}"] = a.default
        test = f"v != d{i}" + (f" and v != obj.{a.same_as}" if a.same_as else "")
        lines += [f"    if {test}:", f"        {write}"]
    lines.append("    return rec")
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the declarations
    return scope["encode"]


_encode_proc = _encoder(Process)
_fd_record = _encoder(FdInfo)
_encode_event = _encoder(Event)
_PROC_KEY, _FD_KEY, _FD2_KEY, _CONTAINER_KEY, _FACTS_KEY = (
    _EVENT_RECORDS[n] for n in ("proc", "fd", "fd2", "container", "kernel"))


def _proc_record(proc: Process) -> dict[str, Any]:
    rec = _encode_proc(proc)
    if proc.parent is not None and "ppid" not in rec:
        rec["ppid"] = proc.parent.pid
    return rec


def _container_record(c: Container) -> dict[str, Any]:
    rec = asdict(c)
    return {k: v for k, v in rec.items()
            if v is not None and v != [] and v != {} and not (k == "full_id" and v == "")}


#: What an ancestor's record carries: the fields Falco reads of ancestors (``proc.aname``,
#: ``proc.apid``, ``proc.aexe``, ``proc.aexepath``, ``proc.acmdline``, ``proc.pvpid``,
#: ``proc.sname``, ``proc.vpgid.name``, ``proc.ppid.duration`` ...), declared ``ancestor``.
ANCESTOR_KEYS = tuple(a.name for a in stored(Process) if a.ancestor)
_ANCESTOR_PLAN = [(a.name, a.same_as) for a in stored(Process) if a.ancestor and a.name != "pid"]
_ancestor_values = attrgetter(*ANCESTOR_KEYS)


def _ancestor_record(proc: Process) -> dict[str, Any]:
    rec: dict[str, Any] = {"pid": proc.pid}
    for key, same_as in _ANCESTOR_PLAN:
        value = getattr(proc, key)
        if value and not (same_as and value == getattr(proc, same_as)):
            rec[key] = list(value) if type(value) is list else _json_value(value)
    if proc.parent is not None and "ppid" not in rec:
        rec["ppid"] = proc.parent.pid
    return rec


_COLLECTION_TYPES = frozenset(t for t in CODECS if t.startswith(("list[", "dict[")))
_container_scalars = attrgetter(*[a.name for a in stored(Container)
                                  if a.type not in _COLLECTION_TYPES])
_container_sized = attrgetter(*[a.name for a in stored(Container)
                                if a.type in _COLLECTION_TYPES])


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
        sig = (_container_scalars(c), tuple(map(len, _container_sized(c))))
        return self._cached(c, sig, _container_record)

    def record(self, proc: Process) -> dict[str, Any]:
        parent = proc.parent
        sig = (_ancestor_values(proc), parent.pid if parent is not None else None)
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


def facts_record(facts: KernelFacts) -> dict[str, Any]:
    """An event's kernel facts as the record's ``extra`` (empty when all are defaults)."""
    return _encoder(type(facts))(facts)


def event_to_record(evt: Event, max_ancestors: int = MAX_ANCESTORS,
                    _cache: _RecordCache | None = None) -> dict[str, Any]:
    """One event as a capture record (a JSON-ready dict), with its process's ancestors."""
    rec = _encode_event(evt)
    if evt.proc is not None:
        rec[_PROC_KEY] = _proc_record(evt.proc)
        build = _cache.record if _cache is not None else _ancestor_record
        chain = [build(p) for _, p in zip(range(max_ancestors), evt.proc.ancestors())]
        if chain:
            rec["ancestors"] = chain
    if evt.fd is not None:
        rec[_FD_KEY] = _fd_record(evt.fd)
    if evt.fd2 is not None:
        rec[_FD2_KEY] = _fd_record(evt.fd2)
    container = evt.container or (evt.proc.container if evt.proc is not None else None)
    if container is not None:
        rec[_CONTAINER_KEY] = (_cache.container(container) if _cache is not None
                               else _container_record(container))
    if evt.kernel is not None:
        extra = facts_record(evt.kernel)
        if extra:
            rec[_FACTS_KEY] = extra
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

#: What the short form adds to a process record (:func:`_proc_attrs`; ``parent``: the reader's).
SHORT_FORM_PROC_KEYS = {"name": "short form: comm",
                        "cmdline": "short form: name and args as one command line",
                        "parent": "short form: the parent, inline"}


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
        known = _PROC_READ.get(key)
        if known is not None:
            attrs[known[0]] = known[1](value, path)
        elif key == "name":
            attrs["comm"] = _str(value, path)
        elif key == "cmdline":
            words = shellwords.split(_str(value, path))
            _want(bool(words), f"{path} is empty")
            attrs.setdefault("comm", os.path.basename(words[0]))
            attrs.setdefault("args", words[1:])
            if words[0].startswith("/"):
                attrs.setdefault("exe", words[0])
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
    values: dict[str, Any] = {}
    for key, value in d.items():
        known = _FD_READ.get(key)
        if known is None:
            raise _Bad(f"unknown key {where}.{key}")
        values[known[0]] = known[1](value, f"{where}.{key}")
    values.setdefault("num", 3 if short_form else -1)
    fd = FdInfo(**values)
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


def _facts(d: Any, etype: str) -> KernelFacts | None:
    """A record's ``extra`` as the :class:`KernelFacts` of its event type (None: empty)."""
    cls = FACTS_OF.get(etype, KernelFacts)
    readers = _FACTS_READ.get(cls) or _readers(cls)
    values: dict[str, Any] = {}
    for key, value in d.items():
        known = readers.get(key)
        if known is None:
            if key in RETIRED_FACTS:
                continue
            raise _Bad(f"unknown key extra.{key}")
        values[known[0]] = known[1](value, f"extra.{key}")
    return cls(**values) if values else None


def _container_id(d: Any) -> str:
    """The id of a container record (a hash of the record when it gives none)."""
    _want(isinstance(d, dict), "container must be an object")
    unknown = set(d) - set(_CONTAINER_READ)
    _want(not unknown, f"unknown key(s) container.{', container.'.join(sorted(unknown))}")
    cid = d.get("id")
    if cid is None:
        cid = hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:12]
    return _str(cid, "container.id")


def _container(d: dict, cid: str, short_form: bool) -> Container:
    """A container record (its keys checked by :func:`_container_id`) as a
    :class:`Container`."""
    values = {}
    for key, value in d.items():
        if key != "id":
            name, read = _CONTAINER_READ[key]
            values[name] = read(value, f"container.{key}")
    if short_form:
        values.setdefault("complete", True)
    c = Container(id=cid, **values)
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
