"""Falco's ``proc.*``, ``thread.*``, ``fd.*``, ``user.*`` and ``group.*`` fields.

Each field is declared beside its reader, with Falco's name, type, argument form and a one-line
description.  Readers read the state objects the process enricher attaches to an event
(``evt.proc``: :class:`~syswarden.core.event.Process`, ``evt.fd``:
:class:`~syswarden.core.event.FdInfo`); a replayed capture carries the same objects, so the
readers do not care where the state came from.  A reader never raises: whatever is unknown for
an event reads as ``None``.

Ancestor fields (``proc.aname[n]``, ``proc.apid[n]``, ...) count from the process itself
(``[0]``) to its parent (``[1]``) and up; without an index they are multi-valued (every
ancestor, the process itself excluded) and a comparison holds when it holds for any of them.

The ``fd.*net`` fields (``fd.net``, ``fd.snet`` ...) have Falco's IPNET type: their reader
returns the ip address of the fd and the rule engine checks it against the network operand.

A few values Falco reads from kernel structures we cannot read here (capabilities, the exe's
inode times, memory figures) are read lazily from ``/proc/PID`` when a rule asks for them, and
are unknown once the process has gone.
"""

from __future__ import annotations

import os
from operator import attrgetter
from typing import Any, Callable

from syswarden.core.fields import ArgKind, Bound, FieldDef, FieldSet, FieldType

fields = FieldSet("process")
field = fields.field

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

#: Names Falco's ``proc.loginshellid`` counts as shells.
SHELLS = frozenset({"sh", "bash", "dash", "ash", "zsh", "ksh", "mksh", "csh", "tcsh", "fish",
                    "busybox"})

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

#: Falco's ``fd.typechar`` for each ``fd.type``.
TYPECHARS = {
    "file": "f", "directory": "d", "ipv4": "4", "ipv6": "6", "unix": "u", "pipe": "p",
    "event": "e", "signalfd": "s", "eventpoll": "l", "inotify": "i", "timerfd": "t",
    "netlink": "n", "bpf": "b", "userfaultfd": "u", "io_uring": "r", "memfd": "m",
}

_FILE_TYPES = frozenset({"file", "directory", "memfd"})
_IP_TYPES = frozenset({"ipv4", "ipv6"})


def caps_text(mask: int) -> str:
    """A capability bit mask as Falco prints it: names joined by spaces."""
    return " ".join(name for bit, name in enumerate(CAP_NAMES) if mask >> bit & 1)


# ---------------------------------------------------------------------------------------------
# Lazy /proc reads for values the kernel side does not give us (cached per process start)
# ---------------------------------------------------------------------------------------------

_status_cache: dict[tuple[int, int], dict[str, str]] = {}


def proc_status(p: Any) -> dict[str, str]:
    """``/proc/PID/status`` of a live process as a dict; empty when gone (cached, bounded)."""
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


def _exe_stat(p: Any) -> os.stat_result | None:
    try:
        return os.stat(f"/proc/{p.pid}/exe")
    except OSError:
        return None


def _caps(p: Any, key: str) -> str | None:
    value = proc_status(p).get(key)
    if value is None:
        return None
    try:
        return caps_text(int(value, 16))
    except ValueError:
        return None


# ---------------------------------------------------------------------------------------------
# Ancestor helpers
# ---------------------------------------------------------------------------------------------


def _ancestor(p: Any, n: int) -> Any:
    """The n-th ancestor (0 is the process itself), or None."""
    while p is not None and n > 0:
        p = p.parent
        n -= 1
    return p


def _ancestor_field(get: Any) -> Any:
    """A binder for ``proc.aX`` / ``proc.aX[n]`` given an attribute getter of a Process."""
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
            a = _ancestor(e.proc, n)
            return get(a) if a is not None else None
        return Bound(read_one)
    return bind


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


def _args_text(p: Any) -> str:
    return " ".join(p.args)


def _cmdline(p: Any) -> str:
    return p.cmdline


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


# ---------------------------------------------------------------------------------------------
# proc.* : the process
# ---------------------------------------------------------------------------------------------


fields.field("proc.exe", C, "The first command line argument argv[0], usually the executable "
             "name.")(
    own("exe"))


fields.field("proc.pexe", C, "The proc.exe (argv[0]) of the parent process.")(parents("exe"))


@field("proc.aexe", C, "The proc.exe of an ancestor: [0] the process, [1] its parent...; "
       "without index, any ancestor.", ArgKind.INDEX_OPTIONAL, "[index]")
def _proc_aexe(arg):
    return _ancestor_field(lambda a: a.exe)(arg)


fields.field("proc.exepath", C, "The full executable path of the process (captured at exec).")(
    own("exepath"))


fields.field("proc.pexepath", C, "The proc.exepath of the parent process.")(parents("exepath"))


@field("proc.aexepath", C, "The proc.exepath of an ancestor: [0] the process, [1] its "
       "parent...; without index, any ancestor.", ArgKind.INDEX_OPTIONAL, "[index]")
def _proc_aexepath(arg):
    return _ancestor_field(lambda a: a.exepath)(arg)


fields.field("proc.name", C, "The process name (task->comm, truncated after 15 characters).")(
    own("comm"))


fields.field("proc.pname", C, "The proc.name of the parent of the process generating the event.")(
    parents("comm"))


@field("proc.aname", C, "The proc.name of an ancestor: [0] the process, [1] its parent...; "
       "without index, any ancestor.", ArgKind.INDEX_OPTIONAL, "[index]")
def _proc_aname(arg):
    return _ancestor_field(lambda a: a.comm)(arg)


@field("proc.args", C, "The command line arguments, argv[0] excluded, joined by spaces.")
def _proc_args(e):
    p = e.proc
    return _args_text(p) if p is not None else None


fields.field("proc.cmdline", C, "proc.name followed by proc.args.")(own("cmdline"))


fields.field("proc.pcmdline", C, "The proc.cmdline of the parent process.")(parents("cmdline"))


@field("proc.acmdline", C, "The proc.cmdline of an ancestor: [0] the process, [1] its "
       "parent...; without index, any ancestor.", ArgKind.INDEX_OPTIONAL, "[index]")
def _proc_acmdline(arg):
    return _ancestor_field(_cmdline)(arg)


@field("proc.cmdnargs", U, "The number of command line arguments (proc.args).")
def _proc_cmdnargs(e):
    p = e.proc
    return len(p.args) if p is not None else None


@field("proc.cmdlenargs", U, "The total length of the command line arguments, separators "
       "excluded.")
def _proc_cmdlenargs(e):
    p = e.proc
    return sum(len(a) for a in p.args) if p is not None else None


@field("proc.exeline", C, "proc.exe followed by proc.args.")
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


@field("proc.env", C, "The environment 'NAME=value NAME1=value1', or one variable's value with "
       "proc.env[NAME].", ArgKind.KEY_OPTIONAL, "[NAME]")
def _proc_env(arg):
    def read(e):
        p = e.proc
        return _env_value(p.env, arg) if p is not None else None
    return read


@field("proc.aenv", C, "The environment of ancestors: proc.aenv[NAME] is the first value of "
       "NAME up the lineage; proc.aenv[n] the env of the n-th ancestor.", ArgKind.KEY_OPTIONAL,
       "[NAME]")
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
            a = _ancestor(e.proc, n)
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


@field("proc.cwd", C, "The current working directory of the process.")
def _proc_cwd(e):
    p = e.proc
    if p is None or not p.cwd:
        return None
    return p.cwd if p.cwd.endswith("/") else p.cwd + "/"


@field("proc.loginshellid", I, "The pid of the oldest shell among the ancestors of the process.")
def _proc_loginshellid(e):
    p = e.proc
    if p is None:
        return None
    found = None
    for a in [p, *p.ancestors()]:
        if a.comm in SHELLS:
            found = a.pid
    return found


fields.field("proc.tty", U, "The controlling terminal of the process; 0 for processes without "
             "one.")(
    own("tty"))


@field("proc.pid", I, "The id of the process generating the event.")
def _proc_pid(e):
    p = e.proc
    return p.pid if p is not None else (e.pid or None)


fields.field("proc.ppid", I, "The pid of the parent of the process generating the event.")(
    own("ppid"))


@field("proc.apid", I, "The pid of an ancestor: [0] the process, [1] its parent...; without "
       "index, any ancestor.", ArgKind.INDEX_OPTIONAL, "[index]")
def _proc_apid(arg):
    return _ancestor_field(lambda a: a.pid)(arg)


fields.field("proc.vpid", I, "The id of the process as seen from its own PID namespace.")(
    own("vpid"))


fields.field("proc.pvpid", I, "The id of the parent process as seen from its own PID namespace.")(
    parents("vpid"))


fields.field("proc.sid", I, "The session id of the process generating the event.")(own("sid"))


@field("proc.sname", C, "The name of the session leader (pid == proc.sid, or the eldest ancestor "
       "with the same sid).")
def _proc_sname(e):
    p = e.proc
    return _session_leader(p).comm if p is not None else None


@field("proc.sid.exe", C, "The proc.exe of the session leader.")
def _proc_sid_exe(e):
    p = e.proc
    return _session_leader(p).exe if p is not None else None


@field("proc.sid.exepath", C, "The proc.exepath of the session leader.")
def _proc_sid_exepath(e):
    p = e.proc
    return _session_leader(p).exepath if p is not None else None


fields.field("proc.vpgid", I, "The process group id, as seen from the process's PID namespace.")(
    own("vpgid"))


@field("proc.vpgid.name", C, "The name of the process group leader.")
def _proc_vpgid_name(e):
    p = e.proc
    return _group_leader(p).comm if p is not None else None


@field("proc.vpgid.exe", C, "The proc.exe of the process group leader.")
def _proc_vpgid_exe(e):
    p = e.proc
    return _group_leader(p).exe if p is not None else None


@field("proc.vpgid.exepath", C, "The proc.exepath of the process group leader.")
def _proc_vpgid_exepath(e):
    p = e.proc
    return _group_leader(p).exepath if p is not None else None


@field("proc.duration", REL, "Nanoseconds since the process started.")
def _proc_duration(e):
    p = e.proc
    if p is None or not p.start_ts or not e.ts:
        return None
    return max(0, e.ts - p.start_ts)


@field("proc.ppid.duration", REL, "Nanoseconds since the parent process started.")
def _proc_ppid_duration(e):
    p = e.proc
    p = p.parent if p is not None else None
    if p is None or not p.start_ts or not e.ts:
        return None
    return max(0, e.ts - p.start_ts)


@field("proc.pid.ts", REL, "Start of the process, epoch nanoseconds.")
def _proc_pid_ts(e):
    p = e.proc
    return p.start_ts or None if p is not None else None


@field("proc.ppid.ts", REL, "Start of the parent process, epoch nanoseconds.")
def _proc_ppid_ts(e):
    p = e.proc
    p = p.parent if p is not None else None
    return p.start_ts or None if p is not None else None


fields.field("proc.is_exe_writable", B, "True if the executable is writable by the user that "
             "spawned "
             "the process.")(own("is_exe_writable"))


fields.field("proc.is_exe_upper_layer", B, "True if the executable is in the upper layer of an "
             "overlayfs (written in the container).")(own("is_exe_upper_layer"))


fields.field("proc.is_exe_from_memfd", B, "True if the executable is a memfd (fileless "
             "execution).")(
    own("is_exe_from_memfd"))


@field("proc.is_sid_leader", B, "True if the process leads its session (proc.sid == proc.vpid).")
def _proc_is_sid_leader(e):
    p = e.proc
    return (p.sid == p.vpid) if p is not None and p.sid else None


@field("proc.is_vpgid_leader", B, "True if the process leads its process group (proc.vpgid == "
       "proc.vpid).")
def _proc_is_vpgid_leader(e):
    p = e.proc
    return (p.vpgid == p.vpid) if p is not None and p.vpgid else None


@field("proc.exe_ino", I, "The inode number of the executable file on disk.")
def _proc_exe_ino(e):
    p = e.proc
    if p is None:
        return None
    if p.exe_ino:
        return p.exe_ino
    st = _exe_stat(p)
    return st.st_ino if st is not None else None


@field("proc.exe_ino.ctime", ABS, "Last status change time (ctime) of the executable, epoch ns.")
def _proc_exe_ino_ctime(e):
    p = e.proc
    st = _exe_stat(p) if p is not None else None
    return st.st_ctime_ns if st is not None else None


@field("proc.exe_ino.mtime", ABS, "Last modification time (mtime) of the executable, epoch ns.")
def _proc_exe_ino_mtime(e):
    p = e.proc
    st = _exe_stat(p) if p is not None else None
    return st.st_mtime_ns if st is not None else None


@field("proc.exe_ino.ctime_duration_proc_start", ABS, "Nanoseconds between the executable's "
       "ctime and the process start.")
def _proc_exe_ino_ctime_duration_proc_start(e):
    p = e.proc
    st = _exe_stat(p) if p is not None else None
    if st is None or not p.start_ts:
        return None
    return max(0, p.start_ts - st.st_ctime_ns)


fields.declare("proc.exe_ino.ctime_duration_pidns_start", ABS, "Nanoseconds between the PID "
               "namespace start and the executable's ctime (unknown here).")
fields.declare("proc.pidns_init_start_ts", U, "Start of the PID namespace, epoch nanoseconds "
               "(unknown here).")
fields.declare("proc.is_container_healthcheck", B, "True if the process runs as the container's "
               "health check.")
fields.declare("proc.is_container_liveness_probe", B, "True if the process runs as the "
               "container's liveness probe.")
fields.declare("proc.is_container_readiness_probe", B, "True if the process runs as the "
               "container's readiness probe.")


@field("proc.fdopencount", U, "Number of open fds of the process (as the fd table knows them).")
def _proc_fdopencount(e):
    p = e.proc
    return len(p.fds) if p is not None else None


def _status_kb(key: str):
    def read(e):
        p = e.proc
        if p is None:
            return None
        v = proc_status(p).get(key)
        try:
            return int(v.split()[0]) if v else None
        except ValueError:
            return None
    return read


fields.field("proc.vmsize", U, "Total virtual memory of the process (kb).")(_status_kb("VmSize"))
fields.field("proc.vmrss", U, "Resident memory of the process (kb).")(_status_kb("VmRSS"))
fields.field("proc.vmswap", U, "Swapped memory of the process (kb).")(_status_kb("VmSwap"))
fields.field("thread.vmsize", U, "Total virtual memory of the process (kb), for its main "
             "thread.")(_status_kb("VmSize"))
fields.field("thread.vmrss", U, "Resident memory of the process (kb), for its main thread.")(
    _status_kb("VmRSS"))
fields.declare("proc.fdlimit", I, "Maximum number of fds the process can open (unknown here).")


@field("proc.nthreads", U, "The number of live threads of the process, the leader included.")
def _proc_nthreads(e):
    p = e.proc
    if p is None:
        return None
    v = proc_status(p).get("Threads")
    return int(v) if v and v.isdigit() else None


@field("proc.nchilds", U, "The number of live threads of the process, the leader excluded.")
def _proc_nchilds(e):
    n = _proc_nthreads(e)
    return n - 1 if n else None


# ---------------------------------------------------------------------------------------------
# thread.*
# ---------------------------------------------------------------------------------------------


@field("thread.tid", I, "The id of the thread generating the event.")
def _thread_tid(e):
    return e.tid if e.tid else None


@field("thread.vtid", I, "The id of the thread as seen from its own PID namespace.")
def _thread_vtid(e):
    p = e.proc
    if p is None:
        return None
    if e.tid == p.pid:
        return p.vpid
    return p.vtid if p.vtid != p.pid else None


@field("thread.ismain", B, "True if the thread generating the event is the process's main one.")
def _thread_ismain(e):
    return e.tid == e.pid if e.tid else None


@field("thread.nametid", C, "proc.name and thread.tid chained: one execve of one thread.")
def _thread_nametid(e):
    p = e.proc
    return f"{p.comm}{e.tid}" if p is not None else None


@field("thread.cap_permitted", C, "The permitted capability set (names separated by spaces).")
def _thread_cap_permitted(e):
    p = e.proc
    return _caps(p, "CapPrm") if p is not None else None


@field("thread.cap_inheritable", C, "The inheritable capability set.")
def _thread_cap_inheritable(e):
    p = e.proc
    return _caps(p, "CapInh") if p is not None else None


@field("thread.cap_effective", C, "The effective capability set.")
def _thread_cap_effective(e):
    p = e.proc
    if p is None:
        return None
    if p.cap_effective:
        return caps_text(p.cap_effective)
    return _caps(p, "CapEff")


@field("thread.cgroups", C, "All the cgroups of the thread, as one string.")
def _thread_cgroups(e):
    p = e.proc
    if p is None:
        return None
    try:
        with open(f"/proc/{p.pid}/cgroup") as f:
            return " ".join(line.strip() for line in f)
    except OSError:
        return None


@field("thread.cgroup", C, "The cgroup of the thread for one subsystem, e.g. "
       "thread.cgroup.cpuacct.", ArgKind.KEY, ".<subsystem>")
def _thread_cgroup(arg):
    sub = str(arg)

    def read(e):
        p = e.proc
        if p is None:
            return None
        try:
            with open(f"/proc/{p.pid}/cgroup") as f:
                for line in f:
                    _, ctrl, path = line.rstrip("\n").split(":", 2)
                    if sub in ctrl.split(",") or (not ctrl and sub in ("", "unified")):
                        return path
                return None
        except (OSError, ValueError):
            return None
    return read


for _name, _type, _desc in (
    ("thread.pfmajor", U, "Major page faults since the thread started (unknown here)."),
    ("thread.pfminor", U, "Minor page faults since the thread started (unknown here)."),
    ("thread.exectime", REL, "CPU time of the last scheduled thread (switch events only)."),
    ("thread.totexectime", REL, "Total CPU time of the thread (switch events only)."),
    ("thread.vmsize.b", U, "Total virtual memory of the process (bytes), for its main thread."),
    ("thread.vmrss.b", U, "Resident memory of the process (bytes), for its main thread."),
):
    fields.declare(_name, _type, _desc)


# ---------------------------------------------------------------------------------------------
# fd.*
# ---------------------------------------------------------------------------------------------


@field("fd.num", I, "The number of the file descriptor.")
def _fd_num(e):
    f = e.fd
    return f.num if f is not None and f.num >= 0 else None


@field("fd.type", C, "Type of fd: file, directory, ipv4, ipv6, unix, pipe, event, signalfd, "
       "eventpoll, inotify, timerfd, netlink, bpf, userfaultfd, io_uring or memfd.")
def _fd_type(e):
    f = e.fd
    return f.type if f is not None else None


@field("fd.typechar", C, "Type of fd as one character: f file, d directory, 4/6 ip sockets, u "
       "unix, p pipe, e event, s signalfd, l eventpoll, i inotify, m memfd, o other.")
def _fd_typechar(e):
    f = e.fd
    return TYPECHARS.get(f.type, "o") if f is not None else None


@field("fd.name", C, "Full name of the fd: the absolute path of a file, the connection tuple "
       "of a socket.")
def _fd_name(e):
    f = e.fd
    return f.name if f is not None else None


def directory_of(name: str) -> str:
    """Falco's ``fd.directory`` of a path: everything before the last slash, or ``/``."""
    pos = name.rfind("/")
    if pos <= 0:
        return "/"
    return name[:pos] if pos < len(name) - 1 else name


@field("fd.directory", C, "If the fd is a file, the directory that contains it.")
def _fd_directory(e):
    f = e.fd
    if f is None or f.type not in _FILE_TYPES or not f.name:
        return None
    if f.type == "directory":
        return f.name
    return directory_of(f.name)


@field("fd.filename", C, "If the fd is a file, its name without the directory.")
def _fd_filename(e):
    f = e.fd
    if f is None or f.type not in _FILE_TYPES or not f.name:
        return None
    pos = f.name.rfind("/")
    return f.name[pos + 1:] if 0 <= pos < len(f.name) - 1 else f.name


@field("fd.nameraw", C, "The path as the process passed it (not made absolute).")
def _fd_nameraw(e):
    k = e.kernel
    if k is not None and k.nameraw is not None:
        return k.nameraw
    a = e.args
    raw = a.get("name") or a.get("path") or a.get("pathname")
    if isinstance(raw, str):
        return raw
    f = e.fd
    return f.name if f is not None and f.type in _FILE_TYPES else None


def _is_ip(f: Any) -> bool:
    return f is not None and f.type in _IP_TYPES


def _local(f: Any, ip: bool) -> Any:
    if f.is_server:
        return f.sip if ip else f.sport
    return f.cip if ip else f.cport


def _remote(f: Any, ip: bool) -> Any:
    if f.is_server:
        return f.cip if ip else f.cport
    return f.sip if ip else f.sport


def _ips(e):
    f = e.fd
    if not _is_ip(f):
        return None
    return tuple(v for v in (f.cip, f.sip) if v is not None)


def _ports(e):
    f = e.fd
    if not _is_ip(f):
        return None
    return tuple(v for v in (f.cport, f.sport) if v is not None)


def _sock(attr: str) -> Callable[[Any], Any]:
    """A reader of one end of an IP socket fd (client/server ip or port)."""
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        f = e.fd
        return get(f) if _is_ip(f) else None
    return read


def _end(local: bool, ip: bool) -> Callable[[Any], Any]:
    """A reader of the local or remote end of an IP socket fd, by the fd's role."""
    pick = _local if local else _remote

    def read(e: Any) -> Any:
        f = e.fd
        return pick(f, ip) if _is_ip(f) else None
    return read


def _fd_attr(attr: str) -> Callable[[Any], Any]:
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        f = e.fd
        return get(f) if f is not None else None
    return read


_fd_cip = field("fd.cip", IP, "Client IP address.")(_sock("cip"))
_fd_sip = field("fd.sip", IP, "Server IP address.")(_sock("sip"))
_fd_lip = field("fd.lip", IP, "Local IP address.")(_end(True, True))
_fd_rip = field("fd.rip", IP, "Remote IP address.")(_end(False, True))
field("fd.cport", PORT, "For TCP/UDP fds, the client port.")(_sock("cport"))
field("fd.sport", PORT, "For TCP/UDP fds, the server port.")(_sock("sport"))
field("fd.lport", PORT, "For TCP/UDP fds, the local port.")(_end(True, False))
field("fd.rport", PORT, "For TCP/UDP fds, the remote port.")(_end(False, False))
field("fd.l4proto", C, "The IP protocol of a socket: tcp, udp, icmp or raw.")(
    _fd_attr("l4proto"))
field("fd.sockfamily", C, "The socket family of a socket: ip or unix.")(_fd_attr("sockfamily"))
field("fd.is_server", B, "True if the process owning this fd is the server end of the "
      "connection.")(_fd_attr("is_server"))


@field("fd.uid", C, "A unique id of the fd: the thread id and the fd number chained.")
def _fd_uid(e):
    f = e.fd
    return f"{e.tid}{f.num}" if f is not None and f.num >= 0 else None


def _container_id(e: Any) -> str:
    c = e.container
    if c is not None:
        return c.id
    p = e.proc
    return (p.container_id if p is not None else "") or "host"


@field("fd.containername", C, "The container id and fd.name chained.")
def _fd_containername(e):
    f = e.fd
    return f"{_container_id(e)}:{f.name}" if f is not None else None


@field("fd.containerdirectory", C, "The container id and fd.directory chained.")
def _fd_containerdirectory(e):
    d = _fd_directory(e)
    return f"{_container_id(e)}:{d}" if d is not None else None


for _name, _desc in (
    ("fd.proto", "Matches the protocol name (client or server port's service) of the fd."),
    ("fd.cproto", "For TCP/UDP fds, the client protocol."),
    ("fd.sproto", "For TCP/UDP fds, the server protocol."),
    ("fd.lproto", "For TCP/UDP fds, the local protocol."),
    ("fd.rproto", "For TCP/UDP fds, the remote protocol."),
    ("fd.cip.name", "Domain name of the client IP address (no DNS tracking here)."),
    ("fd.sip.name", "Domain name of the server IP address (no DNS tracking here)."),
    ("fd.lip.name", "Domain name of the local IP address (no DNS tracking here)."),
    ("fd.rip.name", "Domain name of the remote IP address (no DNS tracking here)."),
):
    fields.declare(_name, C, _desc)


def _net_binder(get: Any, many: bool = False):
    def bind(arg: Any) -> Bound:
        return Bound(get, many=many)
    return bind


def _add(name: str, type: FieldType, desc: str, bind: Any) -> None:
    fields.defs.append(FieldDef(name, type, desc, bind, ArgKind.NONE, fields.provider, ""))


# Filter-only fields: multi-valued (client or server) or compared against a network.
_add("fd.ip", IP, "Matches the ip address (client or server) of the fd.",
     _net_binder(_ips, many=True))
_add("fd.port", PORT, "Matches the port (client or server) of the fd.",
     _net_binder(_ports, many=True))
_add("fd.net", NET, "Matches the IP network (client or server) of the fd.",
     _net_binder(_ips, many=True))
_add("fd.cnet", NET, "Matches the client IP network of the fd.", _net_binder(_fd_cip))
_add("fd.snet", NET, "Matches the server IP network of the fd.", _net_binder(_fd_sip))
_add("fd.lnet", NET, "Matches the local IP network of the fd.", _net_binder(_fd_lip))
_add("fd.rnet", NET, "Matches the remote IP network of the fd.", _net_binder(_fd_rip))


@field("fd.connected", B, "For TCP/UDP fds, true if the socket is connected.")
def _fd_connected(e):
    f = e.fd
    if f is None or f.type not in _IP_TYPES:
        return None
    return f.cip is not None and f.sip is not None and bool(f.sport)


@field("fd.name_changed", B, "True when the event changed the name of its fd (a UDP tuple).")
def _fd_name_changed(e):
    k = e.kernel
    return k.fd_name_changed if k is not None else False


@field("fd.dev", I, "Device number (major/minor) holding the file.")
def _fd_dev(e):
    f = e.fd
    return f.dev if f is not None and f.dev else None


@field("fd.dev.major", I, "Major device number holding the file.")
def _fd_dev_major(e):
    f = e.fd
    return os.major(f.dev) if f is not None and f.dev else None


@field("fd.dev.minor", I, "Minor device number holding the file.")
def _fd_dev_minor(e):
    f = e.fd
    return os.minor(f.dev) if f is not None and f.dev else None


@field("fd.ino", I, "Inode number of the file.")
def _fd_ino(e):
    f = e.fd
    return f.ino if f is not None and f.ino else None


@field("fd.types", C, "The types of the fds the process has open; fd.types[n] the type of fd n.",
       ArgKind.INDEX_OPTIONAL, "[fd]")
def _fd_types(arg):
    if arg is None:
        def read_all(e):
            p = e.proc
            if p is None:
                return None
            return tuple(dict.fromkeys(f.type for f in p.fds.values()))
        return Bound(read_all, many=True)
    n = int(arg)

    def read_n(e):
        p = e.proc
        f = p.fds.get(n) if p is not None else None
        return (f.type,) if f is not None else None
    return Bound(read_n, many=True)


# ---------------------------------------------------------------------------------------------
# user.* and group.*
# ---------------------------------------------------------------------------------------------


fields.field("user.uid", U, "User ID.")(own("uid"))


fields.field("user.name", C, "User name (from the container's own /etc/passwd in a container).")(
    own("user"))


def _user_entry(p: Any) -> Any:
    if p is None or p.uid is None:
        return None
    from . import users
    return users.lookup_user(p, p.uid)


@field("user.homedir", C, "Home directory of the user.")
def _user_homedir(e):
    u = _user_entry(e.proc)
    return u.home if u is not None else None


@field("user.shell", C, "The user's shell.")
def _user_shell(e):
    u = _user_entry(e.proc)
    return u.shell if u is not None else None


@field("user.loginuid", I, "Audit user id (auid); -1 when unset.")
def _user_loginuid(e):
    p = e.proc
    if p is None or p.loginuid is None:
        return None
    return -1 if p.loginuid >= 0xFFFFFFFF or p.loginuid < 0 else p.loginuid


fields.field("user.loginname", C, "Audit user name (auid).")(own("loginname"))


fields.field("group.gid", U, "Group ID.")(own("gid"))


fields.field("group.name", C, "Group name.")(own("group"))


FIELDS = fields.defs
