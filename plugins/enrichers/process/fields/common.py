"""What the field families share: the type names of their tables, the readers of one attribute
(of the event's process, its parent, an ancestor), and the lazy ``/proc`` reads.

A reader never raises: whatever is unknown for an event reads as ``None``.
"""

from __future__ import annotations

import os
from operator import attrgetter
from typing import Any, Callable

from syswarden.core.fields import Bound, FieldType

S = FieldType.STRING
C = FieldType.CHARBUF
U = FieldType.UINT64
I = FieldType.INT64  # noqa: E741
B = FieldType.BOOL
IP = FieldType.IPADDR
NET = FieldType.IPNET
PORT = FieldType.PORT
REL = FieldType.RELTIME
ABS = FieldType.ABSTIME

#: Capability names by bit number, as Falco prints capability sets.
CAP_NAMES = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE", "CAP_MAC_ADMIN",
    "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ", "CAP_PERFMON",
    "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)


def caps_text(mask: int) -> str:
    """A capability bit mask as Falco prints it: names joined by spaces."""
    return " ".join(name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1)


# ---------------------------------------------------------------------------------------------
# Readers of one attribute
# ---------------------------------------------------------------------------------------------


def own(attr: str) -> Callable[[Any], Any]:
    """A reader of one attribute of the event's process."""
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        p = e.proc
        return get(p) if p is not None else None
    return read


def parents(attr: str) -> Callable[[Any], Any]:
    """A reader of one attribute of the event's process's parent."""
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        p = e.proc
        p = p.parent if p is not None else None
        return get(p) if p is not None else None
    return read


def ancestor(p: Any, n: int) -> Any:
    """The n-th ancestor (0 is the process itself), or None."""
    while p is not None and n > 0:
        p = p.parent
        n -= 1
    return p


def ancestors(attr: str) -> Callable[[Any], Bound]:
    """The reader of ``proc.aX`` (every ancestor's ``attr``, the process excluded: many) or
    ``proc.aX[n]`` (the n-th ancestor's), given the argument."""
    get = attrgetter(attr)

    def bind(arg: Any) -> Bound:
        if arg is None:
            def read_all(e: Any) -> tuple | None:
                p = e.proc
                if p is None:
                    return None
                return tuple(v for v in (get(a) for a in p.ancestors()) if v is not None)
            return Bound(read_all, many=True)
        n = int(arg)
        if n < 0:
            raise ValueError(f"ancestor index must be >= 0, got {n}")

        def read_one(e: Any) -> Any:
            a = ancestor(e.proc, n)
            return get(a) if a is not None else None
        return Bound(read_one)
    return bind


# ---------------------------------------------------------------------------------------------
# Lazy /proc reads for values the kernel side does not give us (cached per process start)
# ---------------------------------------------------------------------------------------------

_status_cache: dict[tuple[int, int], dict[str, str]] = {}


def proc_status(p: Any) -> dict[str, str]:
    """``/proc/PID/status`` of a live process as a dict; empty when gone, or for a process
    not known from this machine (a replayed one: a capture never reads the local /proc)
    (cached, bounded)."""
    if not p.live:
        return {}
    key = (p.pid, p.start_ts)
    got = _status_cache.get(key)
    if got is None:
        got = {}
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    k, _, v = line.partition(":")
                    got[k] = v.strip()
        except OSError:
            pass
        if len(_status_cache) > 4096:
            _status_cache.clear()
        _status_cache[key] = got
    return got


def status_kb(key: str, attr: str = "") -> Callable[[Any], int | None]:
    """A reader of a ``kB`` figure: the process's ``attr`` (the kernel's at exec) when known,
    else ``key`` of a live process's ``/proc/PID/status`` (``VmRSS``...)."""
    def read(e: Any) -> int | None:
        p = e.proc
        if p is None:
            return None
        if attr:
            known = getattr(p, attr)
            if known is not None:
                return known
        v = proc_status(p).get(key)
        try:
            return int(v.split()[0]) if v else None
        except ValueError:
            return None
    return read


def proc_file(p: Any, name: str) -> list[str] | None:
    """The lines of ``/proc/PID/<name>`` of a live process known from this machine (never of
    a replayed one); None when it cannot be read."""
    if p is None or not p.live:
        return None
    try:
        with open(f"/proc/{p.pid}/{name}") as f:
            return f.read().splitlines()
    except OSError:
        return None


def caps(p: Any, key: str) -> str | None:
    """A capability set of ``/proc/PID/status`` (``CapPrm``...) as Falco prints it."""
    value = proc_status(p).get(key)
    if value is None:
        return None
    try:
        return caps_text(int(value, 16))
    except ValueError:
        return None


def exe_stat(p: Any) -> os.stat_result | None:
    if not p.live:
        return None
    try:
        return os.stat(f"/proc/{p.pid}/exe")
    except OSError:
        return None
