"""The event and the state objects that fields read.

An :class:`Event` is one system call, taken on its exit (``evt.dir`` is always ``<``), with its
arguments and return value.  Sources fill the syscall part; enrichers attach state: the
:class:`Process` that made the call (``proc.*``, ``thread.*``, ``user.*``, ``group.*``), the
:class:`FdInfo` the call is about (``fd.*``) and the :class:`Container` it runs in
(``container.*``, ``k8s.*``).  Enrichers only fill what is missing, so a replayed capture,
which already carries that state, flows through the same pipeline unchanged.  What the live
source read in the kernel beside Falco's arguments (an fd's inode, a socket's addresses, an
exec's path) travels as :class:`KernelFacts` (``Event.kernel``).

Each state object is one declaration: a ``slots`` dataclass whose every attribute is declared
with :func:`state` (its type, default and doc line; whether a fork or a dup copies it, whether
a capture stores it).  What is written about them elsewhere is derived from these declarations
(:func:`declared`): the capture's encoding and checked decoding (:mod:`syswarden.core.capture`),
its JSON Schema and the tables of ``docs/capture-format.md``, the process table's fork copy
(:meth:`Process.fork`) and the fd table's dup (:meth:`FdInfo.dup`).  An attribute added here
is stored, validated and documented by the capture without another edit; a type the capture
cannot check is an error when the capture module is imported.

They are ``__slots__`` classes: the hot path reads them millions of times.
"""

from __future__ import annotations

import functools
import ipaddress
from dataclasses import MISSING, dataclass, field, fields, replace
from typing import Any, Callable, Literal, get_args

#: Syscall argument names follow Falco's event tables (``evt.arg.<name>``): ``name`` or
#: ``path`` for paths, ``flags``, ``mode``, ``fd``, ``dirfd``, ``oldpath``/``newpath``,
#: ``tuple`` for sockets, ``request`` for ptrace, ``nstype`` for setns/unshare ...
Args = dict[str, Any]

#: Falco's ``fd.type``: the kinds of file descriptor.
FdType = Literal["file", "directory", "ipv4", "ipv6", "unix", "pipe", "event", "signalfd",
                 "eventpoll", "inotify", "timerfd", "netlink", "bpf", "userfaultfd", "io_uring",
                 "memfd"]
FD_TYPES: tuple[str, ...] = get_args(FdType)


@dataclass(frozen=True)
class FdKind:
    """What an ``fd.type`` is, the one place its other spellings and classes are declared:
    ``char`` its ``fd.typechar``; ``path``, whether its ``fd.name`` is a path
    (``fd.directory``, ``fd.filename``); ``opened``, whether open/openat/creat make it (what
    the kernel's open prefilter keeps from the fd table); ``family``, a socket's family class
    as the kernel's socket prefilter tells them (``ip``, ``unix``, ``other``)."""

    name: str
    char: str
    path: bool = False
    opened: bool = False
    family: str | None = None


#: Every ``fd.type``, in :data:`FdType`'s order.
FD_KINDS: tuple[FdKind, ...] = (
    FdKind("file", "f", path=True, opened=True),
    FdKind("directory", "d", path=True, opened=True),
    FdKind("ipv4", "4", family="ip"),
    FdKind("ipv6", "6", family="ip"),
    FdKind("unix", "u", family="unix"),
    FdKind("pipe", "p"),
    FdKind("event", "e"),
    FdKind("signalfd", "s"),
    FdKind("eventpoll", "l"),
    FdKind("inotify", "i"),
    FdKind("timerfd", "t"),
    FdKind("netlink", "n", family="other"),
    FdKind("bpf", "b"),
    FdKind("userfaultfd", "u"),
    FdKind("io_uring", "r"),
    FdKind("memfd", "m", path=True),
)
assert tuple(k.name for k in FD_KINDS) == FD_TYPES, "FD_KINDS declares every FdType"
#: Falco's ``fd.typechar`` of an fd whose type is not known (a socket of another family).
OTHER_TYPECHAR = "o"

#: An IP address as the sources and the fd table hold it (:mod:`syswarden.core.ip_addresses`
#: or :mod:`ipaddress`; both compare as :mod:`ipaddress` objects).
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

#: A socket address as the live source parses it: ``(family, address, port)``, family
#: ``"ipv4"``/``"ipv6"`` with an :data:`IPAddress`, or ``("unix", path, 0)``.
SockAddr = tuple[str, Any, int]


# ---------------------------------------------------------------------------------------------
# The declarations
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StateAttr:
    """One declared attribute of a state object (see :func:`state`); ``name``, ``type`` (the
    annotation, as written) and ``default`` are filled by :func:`declared`."""

    doc: str
    #: what a copy takes of it (a fork's child, a dup's new fd): "share" the same value,
    #: "copy" a shallow copy of it (``.copy()``), None nothing (the copy's own default)
    copied: Literal["share", "copy"] | None = None
    #: stored by a capture (False: kept some other way, or not at all)
    captured: bool = True
    #: also stored in a capture's ancestor records (what Falco's ancestor fields read)
    ancestor: bool = False
    #: written by a capture even at its default (the short form would read its absence as
    #: something else)
    always: bool = False
    #: its default is the value of this other attribute (``tid`` defaults to ``pid``)
    same_as: str = ""
    #: its key in a capture record, when not its name
    key: str = ""
    #: its position among the arguments of a generated constructor (:func:`_initializer`);
    #: None: not an argument, it starts at its default
    position: int | None = None
    name: str = ""
    type: str = ""
    default: Any = None

    @property
    def record_key(self) -> str:
        return self.key or self.name


def state(default: Any = MISSING, doc: str = "", *, factory: Callable[[], Any] | Any = MISSING,
          **how: Any) -> Any:
    """Declare one attribute of a state object (a dataclass field with a :class:`StateAttr`);
    ``factory`` makes a fresh mutable default per object."""
    return field(default=default, default_factory=factory,
                 metadata={"state": StateAttr(doc, **how)})


@functools.cache
def declared(cls: type) -> tuple[StateAttr, ...]:
    """Every attribute of a state class, in declaration order, with its name, type and
    default."""
    out = []
    for f in fields(cls):
        attr = f.metadata.get("state")
        if attr is None:
            raise TypeError(f"{cls.__name__}.{f.name} is not declared with state()")
        default = (f.default if f.default is not MISSING
                   else f.default_factory() if f.default_factory is not MISSING else MISSING)
        out.append(replace(attr, name=f.name, type=str(f.type), default=default))
    return tuple(out)


def _copier(cls: type, name: str, pick: Callable[[StateAttr], str | None]) -> Callable:
    """A straight-line ``copy(src, dst) -> dst`` of the attributes ``pick`` says how to copy
    ("share" or "copy"), generated from the declarations."""
    lines = [f"def {name}(src, dst):"]
    for a in declared(cls):
        how = pick(a)
        if how == "share":
            lines.append(f"    dst.{a.name} = src.{a.name}")
        elif how == "copy":
            lines.append(f"    dst.{a.name} = src.{a.name}.copy()")
        elif how is not None:
            raise ValueError(f"{cls.__name__}.{a.name}: copied must be 'share' or 'copy'")
    lines.append("    return dst")
    scope: dict[str, Any] = {}
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the declarations above
    return scope[name]


#: Defaults a generated constructor writes as literals: a fresh ``{}``/``[]`` for a factory's.
_LITERAL_DEFAULTS = (type(None), bool, int, str)


def _initializer(cls: type) -> Callable:
    """A straight-line ``__init__`` generated from the declarations: the attributes with a
    ``position`` are its arguments in that order (one without a default first; one with a
    factory takes None for a fresh value), every attribute is set in declaration order, the
    others to their defaults as literals.  As fast as the hand-written one it replaces: the
    hot path builds an event per record."""
    attrs = declared(cls)
    params = sorted((a for a in attrs if a.position is not None), key=lambda a: a.position)
    if [a.position for a in params] != list(range(len(params))):
        raise TypeError(f"{cls.__name__}: positions must be 0, 1, 2 ... without a gap")

    def literal(a: StateAttr) -> str:
        if a.default in ({}, []) and type(a.default) in (dict, list):
            return repr(a.default)                     # a fresh one per call
        if type(a.default) not in _LITERAL_DEFAULTS:
            raise TypeError(f"{cls.__name__}.{a.name}: a generated constructor writes its "
                            "default as a literal: None, a bool, int or str, {} or []")
        return repr(a.default)

    sig = []
    for a in params:
        if a.default is MISSING:
            sig.append(a.name)
        else:
            fresh = type(a.default) in (dict, list)
            sig.append(f"{a.name}={'None' if fresh else literal(a)}")
    lines = [f"def __init__(self, {', '.join(sig)}):"]
    for a in attrs:
        if a.position is None:
            lines.append(f"    self.{a.name} = {literal(a)}")
        elif type(a.default) in (dict, list):
            lines.append(f"    self.{a.name} = {a.name} if {a.name} is not None else "
                         f"{literal(a)}")
        else:
            lines.append(f"    self.{a.name} = {a.name}")
    scope: dict[str, Any] = {}
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the declarations
    return scope["__init__"]


# ---------------------------------------------------------------------------------------------
# The state objects
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True, eq=False, repr=False)
class Process:
    """One process (thread group) as the process table knows it.

    ``parent`` is a reference, not a pid: a parent that has exited keeps its last-known name
    for as long as a descendant needs it.
    """

    pid: int = state(doc="process id (proc.pid)", ancestor=True)
    tid: int = state(None, "thread id (default: pid)", ancestor=True, same_as="pid")
    ppid: int = state(0, "the parent's pid (proc.ppid)", ancestor=True)
    vpid: int = state(None, "pid in the process's own PID namespace (proc.vpid; default: pid)",
                      ancestor=True, same_as="pid")
    vtid: int = state(None, "tid in the process's own PID namespace (thread.vtid; default: "
                      "tid)", same_as="tid")
    pidns: int = state(0, "PID namespace id", copied="share")
    sid: int = state(0, "session id (proc.sid)", copied="share", ancestor=True)
    vpgid: int = state(0, "process group id in the process's PID namespace (proc.vpgid)",
                       copied="share", ancestor=True)
    comm: str = state("", "the name, task->comm (proc.name)", copied="share", ancestor=True)
    exe: str = state("", "argv[0] (proc.exe)", copied="share", ancestor=True)
    exepath: str = state("", "the full executable path (proc.exepath)", copied="share",
                         ancestor=True)
    args: list[str] = state(doc="argv[1:] (proc.args)", factory=list, copied="share",
                            ancestor=True)
    cwd: str = state("", "the working directory (proc.cwd)", copied="share")
    tty: int = state(0, "the controlling terminal, 0 for none (proc.tty)", copied="share")
    uid: int | None = state(None, "the effective user id, Falco's user.uid", copied="share",
                            always=True)
    gid: int | None = state(None, "the effective group id, Falco's group.gid", copied="share",
                            always=True)
    loginuid: int | None = state(None, "audit user id (user.loginuid)", copied="share")
    user: str | None = state(None, "the user's name, from the container's own passwd in a "
                             "container (user.name)", copied="share", always=True)
    group: str | None = state(None, "the group's name (group.name)", copied="share",
                              always=True)
    loginname: str | None = state(None, "the audit user's name (user.loginname)",
                                  copied="share")
    start_ts: int = state(0, "start, ns since the epoch (proc.pid.ts)", ancestor=True)
    exit_ts: int | None = state(None, "exit, ns since the epoch; null while it runs")
    parent: Process | None = state(None, "the parent (a capture writes it as ancestors)",
                                   captured=False)
    cgroup_id: int = state(0, "cgroup v2 id", copied="share")
    container_id: str = state("", "'host', a 12-hex container id, or '' (unknown)",
                              copied="share", ancestor=True)
    container: Container | None = state(None, "its container (a capture writes it beside the "
                                        "process)", captured=False, copied="share")
    health_probe: str = state("", "the container health probe it runs as or descends from, "
                              "Falco's thread category: healthcheck, liveness, readiness; '' "
                              "for none (proc.is_container_healthcheck, ...)", copied="share")
    fds: dict[int, FdInfo] = state(doc="its open fds, by number (the fd table's)", factory=dict,
                                   captured=False, copied="copy")
    env: list[str] = state(doc="the environment, NAME=value (proc.env)", factory=list,
                           copied="share")
    is_exe_writable: bool = state(False, "proc.is_exe_writable", copied="share")
    is_exe_upper_layer: bool = state(False, "proc.is_exe_upper_layer", copied="share")
    is_exe_from_memfd: bool = state(False, "proc.is_exe_from_memfd", copied="share")
    cap_effective: int | None = state(None, "the effective capability set, a bit mask "
                                      "(thread.cap_effective)", copied="share")
    cap_permitted: int | None = state(None, "the permitted capability set "
                                      "(thread.cap_permitted)", copied="share")
    cap_inheritable: int | None = state(None, "the inheritable capability set "
                                        "(thread.cap_inheritable)", copied="share")
    exe_ino: int = state(0, "the executable's inode number (proc.exe_ino)", copied="share")
    exe_ctime: int = state(0, "the executable's ctime, ns since the epoch "
                           "(proc.exe_ino.ctime)", copied="share")
    exe_mtime: int = state(0, "the executable's mtime, ns since the epoch "
                           "(proc.exe_ino.mtime)", copied="share")
    vm_size: int | None = state(None, "total virtual memory at exec, kB (proc.vmsize)",
                                copied="share")
    vm_rss: int | None = state(None, "resident memory at exec, kB (proc.vmrss)", copied="share")
    vm_swap: int | None = state(None, "swapped memory at exec, kB (proc.vmswap)",
                                copied="share")
    pf_major: int | None = state(None, "major page faults at exec (thread.pfmajor)")
    pf_minor: int | None = state(None, "minor page faults at exec (thread.pfminor)")
    fdlimit: int | None = state(None, "the soft RLIMIT_NOFILE at exec (proc.fdlimit)",
                                copied="share")
    nthreads: int = state(0, "live threads, the leader included, as the kernel's clones and "
                          "exits tell them (proc.nthreads; 0: not known)")
    cgroups: list[str] = state(doc="its cgroups as Falco lists them, subsystem=path, read at "
                               "its exec or inherited at its fork (thread.cgroups)",
                               factory=list, copied="share")
    #: started by the agent (a program output) or by one of its descendants: never judged,
    #: so an output can never raise the alerts that feed it
    from_agent: bool = state(False, "started by the agent or a descendant: recorded, never "
                             "judged")
    #: known from this machine (its kernel, its /proc): what no event carries may be read from
    #: /proc/PID while it lives.  Never for a replayed process, read from a capture.
    live: bool = state(False, "known from this machine: its /proc may be read", captured=False,
                       copied="share")

    def __post_init__(self) -> None:
        if self.tid is None:
            self.tid = self.pid
        if self.vpid is None:
            self.vpid = self.pid
        if self.vtid is None:
            self.vtid = self.tid

    @property
    def cmdline(self) -> str:
        """Falco's ``proc.cmdline``: the name followed by the arguments (argv[1:])."""
        return " ".join([self.comm, *self.args]) if self.args else self.comm

    def ancestors(self):
        """Yield the parent, the grandparent, ... up to the root."""
        p = self.parent
        seen = 0
        while p is not None and seen < 64:
            yield p
            p = p.parent
            seen += 1

    def copy(self) -> Process:
        """A new version of this process, every attribute shared (its fd table too)."""
        return _copy_process(self, Process.__new__(Process))

    def fork(self, pid: int) -> Process:
        """A child ``pid`` as a fork makes it: a copy of what a fork copies (see the
        declarations' ``copied``); its ids, parent and start are the caller's to set."""
        return _fork_process(self, Process(pid))

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, comm={self.comm!r}, ppid={self.ppid})"


@dataclass(slots=True, eq=False, repr=False)
class FdInfo:
    """A file descriptor: a file, a directory or a socket (``fd.*``)."""

    num: int = state(-1, "the fd's number, -1 for a failed open (fd.num)", always=True)
    type: FdType = state("file", "Falco's fd.type", copied="share", always=True)
    name: str = state("", "a file's path, or a socket's tuple cip:cport->sip:sport (fd.name)",
                      copied="share", always=True)
    ino: int = state(0, "inode number (fd.ino)", copied="share")
    dev: int = state(0, "device number (fd.dev)", copied="share")
    realpath: str | None = state(None, "a file's path as the kernel resolved it from the "
                                 "opened file, links and /proc/PID/root followed (fd.realpath; "
                                 "'...' and its last components when cut short; null: not "
                                 "read)", copied="share")
    sip: IPAddress | None = state(None, "a socket's server IP address", copied="share")
    sport: int | None = state(None, "a socket's server port", copied="share")
    cip: IPAddress | None = state(None, "a socket's client IP address", copied="share")
    cport: int | None = state(None, "a socket's client port", copied="share")
    l4proto: str | None = state(None, "tcp, udp, icmp, raw", copied="share")
    sockfamily: str | None = state(None, "ip, unix", copied="share")
    is_server: bool | None = state(None, "this end listens or accepted: the local end is the "
                                   "server", copied="share")
    open_flags: int = state(0, "the flags it was opened with (O_CLOEXEC is followed)")

    def dup(self, num: int) -> FdInfo:
        """The new fd ``num`` of a dup of this one (see the declarations' ``copied``)."""
        return _dup_fd(self, FdInfo(num))

    def __repr__(self) -> str:
        return f"FdInfo(num={self.num}, type={self.type!r}, name={self.name!r})"


@dataclass(slots=True)
class Mount:
    """One container mount, as Docker reports it."""

    source: str = state(doc="the host path")
    dest: str = state(doc="the path in the container")
    mode: str = state("", "the mount's mode (ro, z...)")
    rw: bool = state(True, "mounted read-write")
    propagation: str = state("", "rprivate, rshared...")


@dataclass(slots=True)
class Container:
    """A container's metadata (``container.*``, ``k8s.*``)."""

    id: str = state(doc="12-hex short id (container.id)")
    full_id: str = state("", "the full 64-hex id (container.full_id)")
    type: str = state("docker", "the runtime (container.type)")
    name: str | None = state(None, "container.name")
    image: str | None = state(None, "repository:tag as the user named it (container.image)")
    image_repository: str | None = state(None, "container.image.repository")
    image_tag: str | None = state(None, "container.image.tag")
    image_id: str | None = state(None, "container.image.id")
    image_digest: str | None = state(None, "container.image.digest")
    privileged: bool | None = state(None, "container.privileged")
    mounts: list[Mount] = state(doc="container.mounts", factory=list)
    labels: dict[str, str] = state(doc="container.label", factory=dict)
    start_ts: int | None = state(None, "start, ns since the epoch (container.start_ts)")
    healthcheck: str | None = state(None, "the health check command")
    liveness_probe: list[str] = state(doc="its Kubernetes liveness probe's exec command, "
                                      "argv (container.liveness_probe)", factory=list)
    readiness_probe: list[str] = state(doc="its Kubernetes readiness probe's exec command, "
                                       "argv (container.readiness_probe)", factory=list)
    pod_probes: dict[str, tuple[list[str], list[str]]] = state(
        doc="a Docker pod sandbox's: the (liveness, readiness) exec commands of each container "
        "of its pod's spec, by name, which the pod's containers take theirs from",
        factory=dict, captured=False)
    ip: str | None = state(None, "container.ip")
    user: str | None = state(None, "the user it runs as (container.user)")
    host_pid: bool | None = state(None, "--pid=host (container.host_pid)")
    host_network: bool | None = state(None, "--network=host (container.host_network)")
    host_ipc: bool | None = state(None, "--ipc=host (container.host_ipc)")
    pod_labels: dict[str, str] = state(doc="its pod's labels, when known (k8s.pod.label)",
                                       factory=dict)
    cni_json: str | None = state(None, "its pod's CNI result as JSON, from a CRI runtime "
                                 "(k8s.pod.cni.json)")
    pid: int | None = state(None, "the host pid of its first process, the runtime's task "
                            "(Docker's State.Pid, containerd's task, the CRI's info.pid)")
    size_rw: int | None = state(None, "its size as the runtime reports it with Falco's "
                                "container plugin with_size (Docker's SizeRw, the CRI's "
                                "writable layer, containerd's image target); no field reads it")
    #: False while the metadata lookup is still pending or failed: fields are then unknown
    complete: bool = state(False, "false while the metadata lookup was pending: container "
                           "fields read as unknown")


# ---------------------------------------------------------------------------------------------
# Kernel facts: what an event carries beside Falco's arguments
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class KernelFacts:
    """What the live source read in the kernel for an event beside its Falco arguments, for
    the enrichers (``Event.kernel``; None when there is nothing).  The fd table adds what it
    finds while it reads them (``nameraw``, ``fd_name_changed``), which fields read.

    The lifecycle events carry a subclass: :class:`ForkFacts`, :class:`ExecFacts`,
    :class:`ExitFacts` (:data:`FACTS_OF`).  A capture stores them as ``extra``.
    """

    ino: int = state(0, "the inode number of the event's fd, 0 if not read: the fd table's "
                     "stamp of the entry")
    sockaddr: SockAddr | None = state(None, "the address a socket call named (connect, bind, "
                                      "sendto...) or got (accept, recvfrom...)")
    local: SockAddr | None = state(None, "the socket's own end (connect, accept, listen, dup)")
    peer: SockAddr | None = state(None, "the socket's remote end as the kernel had it (dup; "
                                  "all zeros: none)")
    sock_family: int | None = state(None, "a socket call (connect, accept, bind, listen, "
                                    "dup...): its socket's family as the kernel has it (AF_*; "
                                    "null: not a socket, or not read)")
    sock_type: int | None = state(None, "its socket's type (SOCK_*)")
    sock_proto: int | None = state(None, "its socket's protocol (IPPROTO_*, its low byte)")
    listen_fd: int | None = state(None, "accept's listening fd")
    nameraw: str | None = state(None, "the path as the process passed it, when the fd table "
                                "made the argument absolute (fd.nameraw)")
    fd_name_changed: bool = state(False, "the event changed the name of its fd, a UDP tuple "
                                  "(fd.name_changed)", key="fd.name_changed")
    cap_effective: int | None = state(None, "a credential call (setuid, capset...): the "
                                      "effective capability set after it")
    realpath: str | None = state(None, "an open: the path of the file it opened, walked in "
                                 "the kernel from the file (fd.realpath)")


@dataclass(slots=True)
class ForkFacts(KernelFacts):
    """A fork (``clone``, ``clone3``, ``fork``, ``vfork``, seen in the parent)."""

    child_tid: int = state(0, "the new task's id")
    is_thread: bool = state(False, "the new task is a thread (CLONE_THREAD)")


#: What an exec says of the new image's resources: the same attributes of :class:`ExecFacts`
#: and :class:`Process`.
EXEC_RESOURCES = ("vm_size", "vm_rss", "vm_swap", "pf_major", "pf_minor", "fdlimit")


@dataclass(slots=True)
class ExecFacts(KernelFacts):
    """An exec (``execve``, ``execveat``): what the kernel had at the exec."""

    exepath: str | None = state(None, "the path the kernel resolved")
    argv: list[str] = state(doc="the whole argv", factory=list)
    uid: int | None = state(None, "the effective user id after the exec")
    gid: int | None = state(None, "the effective group id after the exec")
    env: list[str] = state(doc="the environment the exec passed", factory=list)
    env_read: bool = state(False, "env was read from the exec (else /proc's is read)")
    cap_effective: int | None = state(None, "the capability sets after the exec (null: not "
                                      "read)")
    cap_permitted: int | None = state(None, "the permitted set after the exec")
    cap_inheritable: int | None = state(None, "the inheritable set after the exec")
    exe_inode: int = state(0, "the executable's inode number (0: not read)")
    exe_ctime: int = state(0, "the executable's ctime, ns since the epoch")
    exe_mtime: int = state(0, "the executable's mtime, ns since the epoch")
    exe_upper_layer: bool = state(False, "the executable is in an overlayfs upper layer")
    vm_size: int | None = state(None, "memory after the exec, kB: total (null: not read)")
    vm_rss: int | None = state(None, "resident, kB")
    vm_swap: int | None = state(None, "swapped, kB")
    pf_major: int | None = state(None, "major page faults so far")
    pf_minor: int | None = state(None, "minor page faults so far")
    fdlimit: int | None = state(None, "the soft RLIMIT_NOFILE (-1: unlimited)")
    vpgid: int | None = state(None, "the process group id in its pid namespace (null: not "
                              "read)")
    sid: int | None = state(None, "the session id in its pid namespace")
    exe_writable: bool = state(False, "the executable is writable by the process")
    tty: int | None = state(None, "the controlling terminal")
    loginuid: int | None = state(None, "the audit user id")
    vpid: int | None = state(None, "the pid in the process's own PID namespace")
    old_pid: int = state(0, "the id the calling thread had (an exec by a thread takes the "
                         "leader's)")


@dataclass(slots=True)
class ExitFacts(KernelFacts):
    """A task's exit (``procexit``)."""

    group_dead: bool | None = state(None, "the last thread of its process exited")


#: The facts class of the lifecycle event types; every other type's is :class:`KernelFacts`.
FACTS_OF: dict[str, type[KernelFacts]] = {
    "execve": ExecFacts, "execveat": ExecFacts, "clone": ForkFacts, "clone3": ForkFacts,
    "fork": ForkFacts, "vfork": ForkFacts, "procexit": ExitFacts,
}
#: Every facts class, the base first.
FACTS_CLASSES: tuple[type[KernelFacts], ...] = (KernelFacts, ForkFacts, ExecFacts, ExitFacts)


_copy_process = _copier(Process, "_copy_process", lambda a: "share")
_fork_process = _copier(Process, "_fork_process", lambda a: a.copied)
_dup_fd = _copier(FdInfo, "_dup_fd", lambda a: a.copied)


#: A count or a time that is never negative (``evt.num``, ``evt.rawtime``, ``evt.cpu``).
UInt = int
#: Falco's ``evt.type``: a syscall's name (or a lifecycle event's: ``procexit``); never empty.
EventType = str


@dataclass(slots=True, eq=False, repr=False, init=False)
class Event:
    """One system call on its exit, plus the state enrichers attach.

    Declared as the state objects are (a capture stores what it declares; the capture's keys
    and schema come from here); its constructor is generated from the declarations
    (:func:`_initializer`): the attributes given a ``position`` are its arguments, in that
    order, every other one starts at its default.
    """

    num: UInt = state(0, "event number (evt.num)", position=6, always=True)
    ts: UInt = state(0, "ns since the epoch (evt.rawtime, evt.time)", position=1, always=True)
    type: EventType = state(doc="syscall name, Falco's evt.type (required)", position=0,
                            always=True)
    tid: int = state(0, "thread id (thread.tid; default: proc.tid)", position=2, always=True)
    pid: int = state(0, "process id (proc.pid; default: proc's); with no proc, names a process "
                     "of an earlier line", position=3, always=True)
    res: int = state(0, "return value, negative errno on failure (evt.res, evt.rawres, "
                     "evt.failed)", position=4, always=True)
    args: Args = state(doc="arguments in Falco's names, enter and exit merged, raw values "
                       "(evt.arg.*, evt.rawarg.*, evt.args); the short form accepts flag text "
                       "such as O_WRONLY|O_CREAT", factory=dict, position=5, always=True)
    cpu: UInt = state(0, "the CPU it ran on (evt.cpu)")
    cgroup_id: UInt = state(0, "the task's cgroup v2 id")
    source: str = state("syscall", "Falco's rule source (syscall)")
    proc: Process | None = state(None, "the process that made the call (proc.*, thread.*, "
                                 "user.*, group.*)")
    fd: FdInfo | None = state(None, "the fd the call is about: opened, used, accepted (fd.*)")
    fd2: FdInfo | None = state(None, "a second fd where there is one (dup's old fd)")
    container: Container | None = state(None, "the container it runs in (container.*, k8s.*)")
    kernel: KernelFacts | None = state(None, "what the kernel said beside the arguments, and "
                                       "what the fd table found (fd.nameraw, fd.name_changed)",
                                       key="extra")

    def __repr__(self) -> str:
        return f"Event({self.type}, tid={self.tid}, res={self.res}, args={self.args})"


Event.__init__ = _initializer(Event)  # type: ignore[method-assign]
