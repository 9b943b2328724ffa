"""Falco's ``thread.*`` fields: the thread that made the call.

Its ids come with the event; its capabilities, cgroups and memory are read lazily from
``/proc/PID`` (unknown once the process has gone), except the effective capability set the
process table keeps.
"""

from __future__ import annotations

from typing import Any, Callable

from syswarden.core.cgroups import read_proc_cgroup_text
from syswarden.core.fields import ArgKind, Field

from .common import REL, B, C, I, U, caps, caps_text, proc_file, status_kb


def _thread_tid(e):
    return e.tid if e.tid else None


def _thread_vtid(e):
    p = e.proc
    if p is None:
        return None
    if e.tid == p.pid:
        return p.vpid
    return p.vtid if p.vtid != p.pid else None


def _thread_ismain(e):
    return e.tid == e.pid if e.tid else None


def _thread_nametid(e):
    p = e.proc
    return f"{p.comm}{e.tid}" if p is not None else None


def _caps(attr: str, key: str) -> Callable[[Any], str | None]:
    """A reader of a capability set: the process table's (from the kernel at exec, followed
    through setuid and capset), else its live ``/proc/PID/status``."""
    def read(e: Any) -> str | None:
        p = e.proc
        if p is None:
            return None
        mask = getattr(p, attr)
        return caps_text(mask) if mask is not None else caps(p, key)
    return read


#: Why the scheduler's fields are not computed here.
_NO_SWITCH = "it is read from the scheduler's switch events, which are not captured"


def _bytes(read_kb: Callable[[Any], int | None]) -> Callable[[Any], int | None]:
    def read(e: Any) -> int | None:
        kb = read_kb(e)
        return kb * 1024 if kb is not None else None
    return read


def _faults(attr: str, i: int) -> Callable[[Any], int | None]:
    """A reader of a page fault count: the kernel's at exec, else figure ``i`` of a live
    process's ``/proc/PID/stat`` (after the comm: 0 is the state, 9 minflt, 11 majflt)."""
    def read(e: Any) -> int | None:
        p = e.proc
        if p is not None and getattr(p, attr) is not None:
            return getattr(p, attr)
        lines = proc_file(p, "stat")
        if not lines:
            return None
        fields = lines[0][lines[0].rfind(")") + 2:].split()
        try:
            return int(fields[i])
        except (IndexError, ValueError):
            return None
    return read


def _cgroup_lines(p: Any) -> list[str] | None:
    """The lines of a live process's ``/proc/PID/cgroup`` (never a replayed one's)."""
    text = read_proc_cgroup_text(p.pid) if p is not None and p.live else None
    return None if text is None else text.splitlines()


def _thread_cgroups(e):
    lines = _cgroup_lines(e.proc)
    return " ".join(line.strip() for line in lines) if lines is not None else None


def _thread_cgroup(arg):
    sub = str(arg)

    def read(e):
        for line in _cgroup_lines(e.proc) or ():
            try:
                _, ctrl, path = line.split(":", 2)
            except ValueError:
                return None
            if sub in ctrl.split(",") or (not ctrl and sub in ("", "unified")):
                return path
        return None
    return read


FIELDS = (
    Field("thread.vmsize", U, "Total virtual memory of the process (kb), for its main thread.",
          status_kb("VmSize", "vm_size")),
    Field("thread.vmrss", U, "Resident memory of the process (kb), for its main thread.",
          status_kb("VmRSS", "vm_rss")),
    Field("thread.tid", I, "The id of the thread generating the event.", _thread_tid),
    Field("thread.vtid", I, "The id of the thread as seen from its own PID namespace.",
          _thread_vtid),
    Field("thread.ismain", B, "True if the thread generating the event is the process's main "
          "one.", _thread_ismain),
    Field("thread.nametid", C, "proc.name and thread.tid chained: one execve of one thread.",
          _thread_nametid),
    Field("thread.cap_permitted", C, "The permitted capability set (names separated by "
          "spaces).", _caps("cap_permitted", "CapPrm")),
    Field("thread.cap_inheritable", C, "The inheritable capability set.",
          _caps("cap_inheritable", "CapInh")),
    Field("thread.cap_effective", C, "The effective capability set.",
          _caps("cap_effective", "CapEff")),
    Field("thread.cgroups", C, "All the cgroups of the thread, as one string.",
          _thread_cgroups),
    Field("thread.cgroup", C, "The cgroup of the thread for one subsystem, e.g. "
          "thread.cgroup.cpuacct.", _thread_cgroup, ArgKind.KEY, ".<subsystem>"),
    Field("thread.pfmajor", U, "Major page faults of the thread (at its exec).",
          _faults("pf_major", 11)),
    Field("thread.pfminor", U, "Minor page faults of the thread (at its exec).",
          _faults("pf_minor", 9)),
    Field("thread.exectime", REL, "CPU time of the last scheduled thread (switch events "
          "only).", None, unsupported=_NO_SWITCH),
    Field("thread.totexectime", REL, "Total CPU time of the thread (switch events only).",
          None, unsupported=_NO_SWITCH),
    Field("thread.vmsize.b", U, "Total virtual memory of the process (bytes), for its main "
          "thread.", _bytes(status_kb("VmSize", "vm_size"))),
    Field("thread.vmrss.b", U, "Resident memory of the process (bytes), for its main thread.",
          _bytes(status_kb("VmRSS", "vm_rss"))),
)
