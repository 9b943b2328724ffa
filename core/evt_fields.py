"""The ``evt.*`` fields: what the event itself carries (type, time, result, arguments).

Declared here, once, in the core, as the rows of one table (:data:`FIELDS`, made from
:class:`~syswarden.core.fields.Field` rows, the readers above it): every other family
(``proc.*``, ``fd.*``, ``container.*``) belongs to the plugin that provides its state.

Direction (``evt.dir``): syswarden takes one event per system call, on its exit, with the
enter parameters merged in (:mod:`syswarden.core.syscalls`).  ``evt.dir`` therefore reads
``<``, and since that single event stands for both halves of the call, a condition
``evt.dir = >`` is true as well (the rule compiler folds ``evt.dir = <`` and ``evt.dir = >`` to
true and ``evt.dir != ...`` to false).  Rules written for Falco's enter events
(``evt.type = setuid and evt.dir = >``) keep working and fire once per call.

Arguments: ``evt.arg.NAME`` and ``evt.arg[N]`` render an argument as Falco prints it (flags as
names, errno results as names); ``evt.rawarg.NAME`` is the raw value (a number or text);
``evt.args`` is every argument as ``name=value`` pairs, a value that has a name as
``raw(name)`` (``flags=65(O_CREAT|O_WRONLY)``), as Falco prints them.
"""

from __future__ import annotations

import time
from typing import Any

from .alert import HOSTNAME, format_time_text
from .fields import ArgKind, Bound, Field, FieldType, define
from .syscalls import (EVENTS, O_F_CREATED, O_TMPFILE, render_arg,
                       render_errno)

F = FieldType

_OPEN_TYPES = frozenset({"open", "openat", "openat2", "open_by_handle_at", "creat"})


def _evt_type(e):
    return e.type


def _evt_num(e):
    # Falco numbers events from 1 and its rules use `evt.num = 0` as "never true": an event a
    # source left unnumbered (0) reads as unknown, so that idiom stays false.
    return e.num or None


def _evt_cpu(e):
    return e.cpu


def _evt_dir(e):
    return "<"


def _evt_source(e):
    return e.source


def _evt_hostname(e):
    return HOSTNAME


def _evt_count(e):
    return 1


def _evt_latency(e):
    return 0


# -- time -------------------------------------------------------------------------------------

def _evt_rawtime(e):
    return e.ts


def _evt_rawtime_s(e):
    return e.ts // 1_000_000_000


def _evt_rawtime_ns(e):
    return e.ts % 1_000_000_000


def _evt_time(e):
    return format_time_text(e.ts)


def _evt_time_s(e):
    return time.strftime("%H:%M:%S", time.localtime(e.ts // 1_000_000_000))


def _evt_time_iso(e):
    return format_time_text(e.ts, iso_8601=True)


def _evt_datetime(e):
    secs, frac = divmod(e.ts, 1_000_000_000)
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(secs)) + f".{frac:09d}"


def _evt_datetime_s(e):
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(e.ts // 1_000_000_000))


#: Event types that are not system calls: syscall.type is unknown for them, as in Falco.
NOT_SYSCALLS = frozenset({"procexit", "container", "signaldeliver", "procinfo", "k8s",
                          "mesos", "notification", "infra", "page_fault", "pluginevent",
                          "scapevent", "tracer", "drop", "switch", "cpu_hotplug", "asyncevent"})


def _syscall_type(e):
    return None if e.type in NOT_SYSCALLS else e.type


# -- result -----------------------------------------------------------------------------------

def _evt_res(e):
    return render_errno(e.res)


def _evt_rawres(e):
    return e.res


def _evt_failed(e):
    return e.res is not None and e.res < 0


# -- arguments --------------------------------------------------------------------------------

def _arg_by_index(index: int) -> Bound:
    """``evt.arg[N]``: the N-th parameter of Falco's event, in its order: the exit event's
    parameters, then the enter event's (Falco's drivers send the exit event only, with the
    enter parameters in it: ``openat`` is fd, dirfd, name, flags, mode, dev, ino)."""
    def read(e):
        t = e.type
        names = EVENTS.get(t)
        if names is None or index >= len(names):
            return None
        return render_arg(t, names[index], e.args.get(names[index]))
    return Bound(read)


def _evt_arg(arg: Any) -> Bound:
    if isinstance(arg, int) or (isinstance(arg, str) and arg.isdigit()):
        return _arg_by_index(int(arg))
    name = str(arg)

    def read(e):
        return render_arg(e.type, name, e.args.get(name))
    return Bound(read)


def _evt_rawarg(arg: Any) -> Bound:
    name = str(arg)

    def read(e):
        return e.args.get(name)
    return Bound(read)


def _evt_args(e):
    # as Falco prints them: a value with a name reads `raw(name)`, e.g. flags=65(O_CREAT|O_WRONLY)
    names = EVENTS.get(e.type) or tuple(e.args)
    parts = []
    for name in names:
        if name in e.args:
            raw = e.args[name]
            text = render_arg(e.type, name, raw)
            if isinstance(raw, int) and not isinstance(raw, bool) and not text.isdigit() \
                    and text != str(raw):
                text = f"{raw}({text})"
            parts.append(f"{name}={text}")
    return " ".join(parts)


def _evt_buffer(e):
    data = e.args.get("data")
    if isinstance(data, str):
        return data.encode()
    return data


def _evt_info(e):
    return _evt_args(e)


# -- open flags -------------------------------------------------------------------------------

def _open_flags(e) -> int | None:
    if e.type not in _OPEN_TYPES:
        return None
    if e.type == "creat":
        return 0o1101  # O_CREAT|O_WRONLY|O_TRUNC
    flags = e.args.get("flags")
    return flags if isinstance(flags, int) else None


def _is_open_read(e):
    flags = _open_flags(e)
    if flags is None:
        return False
    return flags & 3 in (0, 2)


def _is_open_write(e):
    flags = _open_flags(e)
    if flags is None:
        return False
    return flags & 3 in (1, 2)


def _is_open_exec(e):
    flags = _open_flags(e)
    if flags is None:
        return False
    mode = e.args.get("mode")
    creating = flags & 0o100 or flags & O_TMPFILE == O_TMPFILE
    return bool(creating) and isinstance(mode, int) and bool(mode & 0o111)


def _is_open_create(e):
    flags = _open_flags(e)
    if flags is None:
        return False
    if e.type == "creat" or flags & O_F_CREATED:
        return True
    return flags & O_TMPFILE == O_TMPFILE and isinstance(e.res, int) and e.res >= 0


FIELDS = define("core", (
    Field("evt.type", F.STRING, "Name of the event (the system call), e.g. openat", _evt_type),
    Field("syscall.type", F.STRING, "For a system call, its name (evt.type); unknown for an "
          "event that is not one (procexit)", _syscall_type),
    Field("evt.num", F.UINT64, "Sequence number of the event (from 1)", _evt_num),
    Field("evt.cpu", F.INT64, "Number of the CPU where the event happened", _evt_cpu),
    Field("evt.dir", F.STRING,
          "Direction: always '<' (one exit event with the enter arguments merged)", _evt_dir),
    Field("evt.source", F.STRING, "Source of the event (syscall)", _evt_source),
    Field("evt.hostname", F.STRING, "Hostname of the machine the event happened on",
          _evt_hostname),
    Field("evt.count", F.UINT64, "Always 1: counts events in aggregations", _evt_count),
    Field("evt.latency", F.RELTIME, "Time spent in the call, ns (0: not measured)",
          _evt_latency),
    # time
    Field("evt.rawtime", F.ABSTIME, "Absolute time of the event, ns since the epoch",
          _evt_rawtime),
    Field("evt.rawtime.s", F.ABSTIME, "Integer part of the event time, seconds",
          _evt_rawtime_s),
    Field("evt.rawtime.ns", F.ABSTIME, "Fractional part of the event time, ns",
          _evt_rawtime_ns),
    Field("evt.time", F.STRING, "Time of the event, HH:MM:SS.nnnnnnnnn (local time)",
          _evt_time),
    Field("evt.time.s", F.STRING, "Time of the event, HH:MM:SS", _evt_time_s),
    Field("evt.time.iso8601", F.STRING, "Time of the event in ISO 8601, UTC", _evt_time_iso),
    Field("evt.datetime", F.STRING, "Date and time of the event, YYYY-MM-DD HH:MM:SS.ns",
          _evt_datetime),
    Field("evt.datetime.s", F.STRING, "Date and time of the event, YYYY-MM-DD HH:MM:SS",
          _evt_datetime_s),
    # result
    Field("evt.res", F.STRING, "Result: SUCCESS or the errno name (ENOENT, EACCES...)",
          _evt_res),
    Field("evt.rawres", F.INT64, "Result as a number (negative errno on failure)", _evt_rawres),
    Field("evt.failed", F.BOOL, "True when the call failed (negative result)", _evt_failed),
    # arguments
    Field("evt.arg", F.STRING,
          "An argument as Falco prints it, by name (evt.arg.flags) or position (evt.arg[0])",
          _evt_arg, ArgKind.KEY, "[index|name]"),
    Field("evt.rawarg", F.INT64,
          "An argument's raw value by name (numbers as numbers, paths as text)",
          _evt_rawarg, ArgKind.KEY, "[name]"),
    Field("evt.args", F.STRING, "All arguments as name=value pairs", _evt_args),
    Field("evt.buffer", F.BYTEBUF, "The binary data of a read/write/send event", _evt_buffer),
    Field("evt.info", F.STRING, "The event's arguments, as evt.args", _evt_info),
    # open flags
    Field("evt.is_open_read", F.BOOL, "For open events: opened for reading", _is_open_read),
    Field("evt.is_open_write", F.BOOL, "For open events: opened for writing", _is_open_write),
    Field("evt.is_open_exec", F.BOOL,
          "For open events: a file created with execute permission", _is_open_exec),
    Field("evt.is_open_create", F.BOOL,
          "For open events: the call created the file (O_F_CREATED in its flags, or a "
          "successful O_TMPFILE); a creat is taken as creating", _is_open_create),
))
