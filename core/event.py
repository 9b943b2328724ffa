"""The event and the state objects that fields read.

An :class:`Event` is one system call, taken on its exit (``evt.dir`` is always ``<``), with its
arguments and return value.  Sources fill the syscall part; enrichers attach state: the
:class:`Process` that made the call (``proc.*``, ``thread.*``, ``user.*``, ``group.*``), the
:class:`FdInfo` the call is about (``fd.*``) and the :class:`Container` it runs in
(``container.*``, ``k8s.*``).  Enrichers only fill what is missing, so a replayed capture,
which already carries that state, flows through the same pipeline unchanged.

These are plain ``__slots__`` classes: the hot path reads them millions of times.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

#: Syscall argument names follow Falco's event tables (``evt.arg.<name>``): ``name`` or
#: ``path`` for paths, ``flags``, ``mode``, ``fd``, ``dirfd``, ``oldpath``/``newpath``,
#: ``tuple`` for sockets, ``request`` for ptrace, ``nstype`` for setns/unshare ...
Args = dict[str, Any]


class Process:
    """One process (thread group) as the process table knows it.

    ``parent`` is a reference, not a pid: a parent that has exited keeps its last-known name
    for as long as a descendant needs it.
    """

    __slots__ = (
        "pid", "tid", "ppid", "vpid", "vtid", "pidns", "sid", "vpgid",
        "comm", "exe", "exepath", "args", "cwd", "tty",
        "uid", "gid", "euid", "loginuid", "user", "group", "loginname",
        "start_ts", "exit_ts", "parent", "cgroup_id", "container_id", "container",
        "fds", "env", "is_exe_writable", "is_exe_upper_layer", "is_exe_from_memfd",
        "cap_effective", "exe_ino", "from_agent",
    )

    def __init__(self, pid: int, **kw: Any) -> None:
        self.pid = pid
        self.tid = pid
        self.ppid = 0
        self.vpid = pid
        self.vtid = pid
        self.pidns = 0
        self.sid = 0
        self.vpgid = 0
        self.comm = ""
        self.exe = ""
        self.exepath = ""
        self.args: list[str] = []
        self.cwd = ""
        self.tty = 0
        self.uid: int | None = None
        self.gid: int | None = None
        self.euid: int | None = None
        self.loginuid: int | None = None
        self.user: str | None = None        # resolved user.name (container-aware)
        self.group: str | None = None       # resolved group.name
        self.loginname: str | None = None   # resolved user.loginname
        self.start_ts = 0
        self.exit_ts: int | None = None
        self.parent: Process | None = None
        self.cgroup_id = 0
        self.container_id = ""             # "" unknown, "host", or a 12-hex short id
        self.container: Container | None = None
        self.fds: dict[int, FdInfo] = {}
        self.env: list[str] = []
        self.is_exe_writable = False
        self.is_exe_upper_layer = False
        self.is_exe_from_memfd = False
        self.cap_effective = 0
        self.exe_ino = 0
        #: started by the agent (a program output) or by one of its descendants: never judged,
        #: so an output can never raise the alerts that feed it
        self.from_agent = False
        for key, value in kw.items():
            setattr(self, key, value)

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

    def __repr__(self) -> str:
        return f"Process(pid={self.pid}, comm={self.comm!r}, ppid={self.ppid})"


class FdInfo:
    """A file descriptor: a file, a directory or a socket (``fd.*``).

    ``type`` is Falco's ``fd.type``: file, directory, ipv4, ipv6, unix, pipe, event, signalfd,
    eventpoll, inotify, timerfd, netlink, bpf, userfaultfd, io_uring, memfd.
    """

    __slots__ = (
        "num", "type", "name", "ino", "dev",
        "sip", "sport", "cip", "cport", "l4proto", "sockfamily", "is_server",
        "open_flags",
    )

    def __init__(self, num: int = -1, type: str = "file", name: str = "", **kw: Any) -> None:
        self.num = num
        self.type = type
        self.name = name
        self.ino = 0
        self.dev = 0
        self.sip = None        # server ip (ipaddress object) for sockets
        self.sport = None
        self.cip = None        # client ip
        self.cport = None
        self.l4proto = None    # tcp, udp, icmp, raw
        self.sockfamily = None  # ip, unix
        self.is_server = None  # True when this end listens/accepted (local is the server)
        self.open_flags = 0
        for key, value in kw.items():
            setattr(self, key, value)

    def __repr__(self) -> str:
        return f"FdInfo(num={self.num}, type={self.type!r}, name={self.name!r})"


@dataclass
class Mount:
    """One container mount, as Docker reports it."""

    source: str
    dest: str
    mode: str = ""
    rw: bool = True
    propagation: str = ""


@dataclass
class Container:
    """A container's metadata (``container.*``, ``k8s.*``)."""

    id: str                       # 12-hex short id
    full_id: str = ""
    type: str = "docker"
    name: str | None = None
    image: str | None = None      # repo:tag as the user named it
    image_repository: str | None = None
    image_tag: str | None = None
    image_id: str | None = None
    image_digest: str | None = None
    privileged: bool | None = None
    mounts: list[Mount] = field(default_factory=list)
    labels: dict[str, str] = field(default_factory=dict)
    start_ts: int | None = None   # ns since epoch
    healthcheck: str | None = None
    ip: str | None = None
    user: str | None = None
    host_pid: bool | None = None      # --pid=host
    host_network: bool | None = None  # --network=host
    host_ipc: bool | None = None      # --ipc=host
    pod_labels: dict[str, str] = field(default_factory=dict)  # k8s pod labels, when known
    #: False while the metadata lookup is still pending or failed: fields are then unknown
    complete: bool = False


class Event:
    """One system call on its exit, plus the state enrichers attach."""

    __slots__ = (
        "num", "ts", "type", "tid", "pid", "res", "args", "cpu",
        "proc", "fd", "fd2", "container", "cgroup_id", "source", "extra",
    )

    def __init__(
        self,
        type: str,
        ts: int = 0,
        tid: int = 0,
        pid: int = 0,
        res: int = 0,
        args: Args | None = None,
        num: int = 0,
    ) -> None:
        self.num = num
        self.ts = ts                      # ns since the epoch
        self.type = type                  # syscall name, Falco's evt.type
        self.tid = tid
        self.pid = pid
        self.res = res                    # return value (negative errno on failure)
        self.args: Args = args if args is not None else {}
        self.cpu = 0
        self.proc: Process | None = None
        self.fd: FdInfo | None = None     # the fd the event is about (opened, used, accepted)
        self.fd2: FdInfo | None = None    # a second fd where there is one (dup's old fd)
        self.container: Container | None = None
        self.cgroup_id = 0
        self.source = "syscall"
        self.extra: dict[str, Any] | None = None  # anything a plugin wants to hang off an event

    def __repr__(self) -> str:
        return f"Event({self.type}, tid={self.tid}, res={self.res}, args={self.args})"
