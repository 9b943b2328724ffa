"""Falco's ``proc.*`` fields: the process that made the call, its parent and its ancestors.

Readers read the :class:`~syswarden.core.event.Process` the process enricher attaches
(``evt.proc``); a replayed capture carries the same objects.

Ancestor fields (``proc.aname[n]``, ``proc.apid[n]``, ...) count from the process itself
(``[0]``) to its parent (``[1]``) and up; without an index they are multi-valued (every
ancestor, the process itself excluded) and a comparison holds when it holds for any of them.

A few values Falco reads from kernel structures we cannot read here (the exe's inode times,
memory figures) are read lazily from ``/proc/PID`` when a rule asks for them, and are unknown
once the process has gone.
"""

from __future__ import annotations

from operator import attrgetter
from typing import Any, Callable

from syswarden.core.fields import ArgKind, Bound, Field

from .common import (
    ABS,
    proc_file,
    REL,
    B,
    C,
    I,
    U,
    ancestor,
    ancestors,
    exe_stat,
    own,
    parents,
    proc_status,
    status_kb,
)

#: Names Falco's ``proc.loginshellid`` counts as shells.
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
                    "busybox"})

_ANY = ArgKind.INDEX_OPTIONAL


def _session_leader(p: Any) -> Any:
    """The process with pid == sid, or the eldest ancestor sharing the sid (Falco's rule)."""
    leader = p
    for a in p.ancestors():
        if a.sid != p.sid:
            break
        leader = a
        if a.vpid == p.sid or a.pid == p.sid:
            break
    return leader


def _group_leader(p: Any) -> Any:
    leader = p
    if p.vpgid and p.vpid == p.vpgid:
        return p
    for a in p.ancestors():
        if a.vpgid != p.vpgid:
            break
        leader = a
        if a.vpid == p.vpgid:
            break
    return leader


def _proc_args(e):
    p = e.proc
    return " ".join(p.args) if p is not None else None


def _proc_cmdnargs(e):
    p = e.proc
    return len(p.args) if p is not None else None


def _proc_cmdlenargs(e):
    p = e.proc
    return sum(len(a) for a in p.args) if p is not None else None


def _proc_exeline(e):
    p = e.proc
    if p is None:
        return None
    return " ".join([p.exe, *p.args]) if p.args else p.exe


def _env_value(env: list[str], arg: Any) -> str | None:
    if arg is None:
        return " ".join(env)
    if isinstance(arg, int) or (isinstance(arg, str) and arg.isdigit()):
        i = int(arg)
        return env[i] if 0 <= i < len(env) else None
    prefix = f"{arg}="
    for item in env:
        if item.startswith(prefix):
            return item[len(prefix):]
    return None


def _proc_env(arg):
    def read(e):
        p = e.proc
        return _env_value(p.env, arg) if p is not None else None
    return read


def _proc_aenv(arg):
    if arg is None:
        def read_all(e):
            p = e.proc
            if p is None:
                return None
            return tuple(" ".join(a.env) for a in p.ancestors())
        return Bound(read_all, many=True)
    if isinstance(arg, int) or str(arg).isdigit():
        n = int(arg)

        def read_n(e):
            a = ancestor(e.proc, n)
            return " ".join(a.env) if a is not None else None
        return Bound(read_n)

    def read_name(e):
        p = e.proc
        if p is None:
            return None
        for a in [p, *p.ancestors()][:21]:
            v = _env_value(a.env, arg)
            if v is not None:
                return v
        return None
    return Bound(read_name)


def _proc_cwd(e):
    p = e.proc
    if p is None or not p.cwd:
        return None
    return p.cwd if p.cwd.endswith("/") else p.cwd + "/"


def _proc_loginshellid(e):
    p = e.proc
    if p is None:
        return None
    found = None
    for a in [p, *p.ancestors()]:
        if a.comm in SHELLS:
            found = a.pid
    return found


def _proc_pid(e):
    p = e.proc
    return p.pid if p is not None else (e.pid or None)


def _leaders(find: Callable[[Any], Any], attr: str) -> Callable[[Any], Any]:
    """A reader of one attribute of the leader (``find``) of the event's process."""
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        p = e.proc
        return get(find(p)) if p is not None else None
    return read


def _proc_duration(e):
    p = e.proc
    if p is None or not p.start_ts or not e.ts:
        return None
    return max(0, e.ts - p.start_ts)


def _proc_ppid_duration(e):
    p = e.proc
    p = p.parent if p is not None else None
    if p is None or not p.start_ts or not e.ts:
        return None
    return max(0, e.ts - p.start_ts)


def _proc_pid_ts(e):
    p = e.proc
    return p.start_ts or None if p is not None else None


def _proc_ppid_ts(e):
    p = e.proc
    p = p.parent if p is not None else None
    return p.start_ts or None if p is not None else None


def _proc_is_sid_leader(e):
    p = e.proc
    return (p.sid == p.vpid) if p is not None and p.sid else None


def _proc_is_vpgid_leader(e):
    p = e.proc
    return (p.vpgid == p.vpid) if p is not None and p.vpgid else None


def _exe_value(attr: str, stat_attr: str) -> Callable[[Any], int | None]:
    """A reader of one fact of the executable: the kernel's at exec (or /proc's at start-up),
    else a live process's ``/proc/PID/exe``."""
    get = attrgetter(attr)

    def read(e: Any) -> int | None:
        p = e.proc
        if p is None:
            return None
        v = get(p)
        if v:
            return v
        st = exe_stat(p)
        return getattr(st, stat_attr) if st is not None else None
    return read


_proc_exe_ino = _exe_value("exe_ino", "st_ino")
_proc_exe_ino_ctime = _exe_value("exe_ctime", "st_ctime_ns")
_proc_exe_ino_mtime = _exe_value("exe_mtime", "st_mtime_ns")


def _proc_exe_ino_ctime_duration_proc_start(e):
    p = e.proc
    ctime = _proc_exe_ino_ctime(e)
    if ctime is None or not p.start_ts:
        return None
    return max(0, p.start_ts - ctime)


def _pidns_init(p: Any) -> Any:
    """The first process of ``p``'s PID namespace (vpid 1) among its ancestors, itself
    included; None when the table does not reach it."""
    for a in [p, *p.ancestors()]:
        if a.vpid == 1:
            return a
    return None


def _proc_pidns_init_start_ts(e):
    p = e.proc
    init = _pidns_init(p) if p is not None else None
    return init.start_ts or None if init is not None else None


def _proc_exe_ino_ctime_duration_pidns(e):
    ctime = _proc_exe_ino_ctime(e)
    start = _proc_pidns_init_start_ts(e)
    if ctime is None or start is None:
        return None
    return max(0, ctime - start)


def _runs_probe(kind: str):
    """Falco's ``proc.is_container_<kind>``: the process runs as the container's health check
    or Kubernetes probe of that kind, or descends from the one that does (the category the
    container enricher gives it at its exec, ``Process.health_probe``)."""
    def read(e):
        p = e.proc
        return p.health_probe == kind if p is not None else None
    return read


def _proc_fdlimit(e):
    p = e.proc
    if p is not None and p.fdlimit is not None:
        return p.fdlimit
    for line in proc_file(p, "limits") or ():
        if line.startswith("Max open files"):
            soft = line.split()[3]
            return int(soft) if soft.isdigit() else -1      # unlimited
    return None


def _proc_fdopencount(e):
    p = e.proc
    return len(p.fds) if p is not None else None


def _proc_nthreads(e):
    # the process table's count, kept by the kernel's clones, exits and execs; 0 when it has
    # none (a process made by hand, a replayed one whose capture has none): a live process's
    # /proc says, a replayed one's is unknown
    p = e.proc
    if p is None:
        return None
    if p.nthreads:
        return p.nthreads
    v = proc_status(p).get("Threads")
    return int(v) if v and v.isdigit() else None


def _proc_nchilds(e):
    n = _proc_nthreads(e)
    return n - 1 if n else None


FIELDS = (
    Field("proc.exe", C, "The first command line argument argv[0], usually the executable "
          "name.", own("exe")),
    Field("proc.pexe", C, "The proc.exe (argv[0]) of the parent process.", parents("exe")),
    Field("proc.aexe", C, "The proc.exe of an ancestor: [0] the process, [1] its parent...; "
          "without index, any ancestor.", ancestors("exe"), _ANY, "[index]"),
    Field("proc.exepath", C, "The full executable path of the process (captured at exec).",
          own("exepath")),
    Field("proc.pexepath", C, "The proc.exepath of the parent process.", parents("exepath")),
    Field("proc.aexepath", C, "The proc.exepath of an ancestor: [0] the process, [1] its "
          "parent...; without index, any ancestor.", ancestors("exepath"), _ANY, "[index]"),
    Field("proc.name", C, "The process name (task->comm, truncated after 15 characters).",
          own("comm")),
    Field("proc.pname", C, "The proc.name of the parent of the process generating the event.",
          parents("comm")),
    Field("proc.aname", C, "The proc.name of an ancestor: [0] the process, [1] its parent...; "
          "without index, any ancestor.", ancestors("comm"), _ANY, "[index]"),
    Field("proc.args", C, "The command line arguments, argv[0] excluded, joined by spaces.",
          _proc_args),
    Field("proc.cmdline", C, "proc.name followed by proc.args.", own("cmdline")),
    Field("proc.pcmdline", C, "The proc.cmdline of the parent process.", parents("cmdline")),
    Field("proc.acmdline", C, "The proc.cmdline of an ancestor: [0] the process, [1] its "
          "parent...; without index, any ancestor.", ancestors("cmdline"), _ANY, "[index]"),
    Field("proc.cmdnargs", U, "The number of command line arguments (proc.args).",
          _proc_cmdnargs),
    Field("proc.cmdlenargs", U, "The total length of the command line arguments, separators "
          "excluded.", _proc_cmdlenargs),
    Field("proc.exeline", C, "proc.exe followed by proc.args.", _proc_exeline),
    Field("proc.env", C, "The environment 'NAME=value NAME1=value1', or one variable's value "
          "with proc.env[NAME].", _proc_env, ArgKind.KEY_OPTIONAL, "[NAME]"),
    Field("proc.aenv", C, "The environment of ancestors: proc.aenv[NAME] is the first value of "
          "NAME up the lineage; proc.aenv[n] the env of the n-th ancestor.", _proc_aenv,
          ArgKind.KEY_OPTIONAL, "[NAME]"),
    Field("proc.cwd", C, "The current working directory of the process.", _proc_cwd),
    Field("proc.loginshellid", I, "The pid of the oldest shell among the ancestors of the "
          "process.", _proc_loginshellid),
    Field("proc.tty", U, "The controlling terminal of the process; 0 for processes without "
          "one.", own("tty")),
    Field("proc.pid", I, "The id of the process generating the event.", _proc_pid),
    Field("proc.ppid", I, "The pid of the parent of the process generating the event.",
          own("ppid")),
    Field("proc.apid", I, "The pid of an ancestor: [0] the process, [1] its parent...; without "
          "index, any ancestor.", ancestors("pid"), _ANY, "[index]"),
    Field("proc.vpid", I, "The id of the process as seen from its own PID namespace.",
          own("vpid")),
    Field("proc.pvpid", I, "The id of the parent process as seen from its own PID namespace.",
          parents("vpid")),
    Field("proc.sid", I, "The session id of the process generating the event.", own("sid")),
    Field("proc.sname", C, "The name of the session leader (pid == proc.sid, or the eldest "
          "ancestor with the same sid).", _leaders(_session_leader, "comm")),
    Field("proc.sid.exe", C, "The proc.exe of the session leader.",
          _leaders(_session_leader, "exe")),
    Field("proc.sid.exepath", C, "The proc.exepath of the session leader.",
          _leaders(_session_leader, "exepath")),
    Field("proc.vpgid", I, "The process group id, as seen from the process's PID namespace.",
          own("vpgid")),
    Field("proc.vpgid.name", C, "The name of the process group leader.",
          _leaders(_group_leader, "comm")),
    Field("proc.vpgid.exe", C, "The proc.exe of the process group leader.",
          _leaders(_group_leader, "exe")),
    Field("proc.vpgid.exepath", C, "The proc.exepath of the process group leader.",
          _leaders(_group_leader, "exepath")),
    Field("proc.duration", REL, "Nanoseconds since the process started.", _proc_duration),
    Field("proc.ppid.duration", REL, "Nanoseconds since the parent process started.",
          _proc_ppid_duration),
    Field("proc.pid.ts", REL, "Start of the process, epoch nanoseconds.", _proc_pid_ts),
    Field("proc.ppid.ts", REL, "Start of the parent process, epoch nanoseconds.",
          _proc_ppid_ts),
    Field("proc.is_exe_writable", B, "True if the executable is writable by the user that "
          "spawned the process.", own("is_exe_writable")),
    Field("proc.is_exe_upper_layer", B, "True if the executable is in the upper layer of an "
          "overlayfs (written in the container).", own("is_exe_upper_layer")),
    Field("proc.is_exe_from_memfd", B, "True if the executable is a memfd (fileless "
          "execution).", own("is_exe_from_memfd")),
    Field("proc.is_sid_leader", B, "True if the process leads its session (proc.sid == "
          "proc.vpid).", _proc_is_sid_leader),
    Field("proc.is_vpgid_leader", B, "True if the process leads its process group (proc.vpgid "
          "== proc.vpid).", _proc_is_vpgid_leader),
    Field("proc.exe_ino", I, "The inode number of the executable file on disk.",
          _proc_exe_ino),
    Field("proc.exe_ino.ctime", ABS, "Last status change time (ctime) of the executable, epoch "
          "ns.", _proc_exe_ino_ctime),
    Field("proc.exe_ino.mtime", ABS, "Last modification time (mtime) of the executable, epoch "
          "ns.", _proc_exe_ino_mtime),
    Field("proc.exe_ino.ctime_duration_proc_start", ABS, "Nanoseconds between the "
          "executable's ctime and the process start.", _proc_exe_ino_ctime_duration_proc_start),
    Field("proc.exe_ino.ctime_duration_pidns_start", ABS, "Nanoseconds between the PID "
          "namespace start and the executable's ctime.", _proc_exe_ino_ctime_duration_pidns),
    Field("proc.pidns_init_start_ts", U, "Start of the PID namespace (of its first process), "
          "epoch nanoseconds.", _proc_pidns_init_start_ts),
    Field("proc.is_container_healthcheck", B, "True if the process runs as the container's "
          "health check.", _runs_probe("healthcheck")),
    Field("proc.is_container_liveness_probe", B, "True if the process runs as the container's "
          "liveness probe.", _runs_probe("liveness")),
    Field("proc.is_container_readiness_probe", B, "True if the process runs as the "
          "container's readiness probe.", _runs_probe("readiness")),
    Field("proc.fdopencount", U, "Number of open fds of the process (as the fd table knows "
          "them).", _proc_fdopencount),
    Field("proc.vmsize", U, "Total virtual memory of the process (kb), at its exec.",
          status_kb("VmSize", "vm_size")),
    Field("proc.vmrss", U, "Resident memory of the process (kb), at its exec.",
          status_kb("VmRSS", "vm_rss")),
    Field("proc.vmswap", U, "Swapped memory of the process (kb), at its exec.",
          status_kb("VmSwap", "vm_swap")),
    Field("proc.fdlimit", I, "Maximum number of fds the process can open (its soft "
          "RLIMIT_NOFILE at exec; -1: unlimited).", _proc_fdlimit),
    Field("proc.nthreads", U, "The number of live threads of the process, the leader "
          "included (as its clones, exits and execs tell).", _proc_nthreads),
    Field("proc.nchilds", U, "The number of live threads of the process, the leader "
          "excluded (as its clones, exits and execs tell).", _proc_nchilds),
)
