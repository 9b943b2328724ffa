"""The process table: every process the agent knows, kept by the lifecycle events.

At start the table is a snapshot of ``/proc``.  From then on it follows the events:

* a fork (``clone``/``fork``/``vfork`` event, sent by ``sched_process_fork`` in the parent)
  creates the child as a copy of the parent (comm, argv, cwd, tty, session, users, cgroups,
  fds); a new thread maps its tid to the process and counts in its threads (``proc.nthreads``,
  which a thread's exit and an exec, which leaves one thread, count down);
* an exec replaces comm, argv, the executable path, the uid/gid, the controlling tty and the
  login uid with what the kernel captured at exec (nothing is read from /proc for them, so a
  process that lives a millisecond is still fully known); what the kernel side does not send
  (session, process group, namespace pid, environment, cgroups) is read from ``/proc/PID`` at that
  moment when the process is still there, and otherwise kept from the parent it was copied from
  (they are inherited across fork and exec);
* an exit marks the process exited; it stays in the table for ``grace`` seconds (events still
  in flight may name it) and is then removed.  Its children keep a reference to it, so a parent
  that has exited keeps its last-known name (``runc:[1:CHILD]`` for a shell that ``docker exec``
  started).

The table is bounded (``max_entries``: ``process.max_entries``, or Falco's
``falco_libs.thread_table_size``): past it, exited entries go first, then the oldest; each
eviction of a live entry is counted (``drops.process.evicted``), the first one logged.
"""

from __future__ import annotations

import collections
import logging
import os
import posixpath
import re
import time
from typing import Any, Callable

from syswarden.core.cgroup_ids import CgroupResolver
from syswarden.core.cgroups import cgroup2_root, read_proc_cgroup_text, unified_path
from syswarden.core.event import (EXEC_RESOURCES, Event, ExecFacts, ExitFacts, ForkFacts,
                                   Process)

from . import users

log = logging.getLogger("syswarden.process")

CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
_FD_PATH = re.compile(r"^/(?:dev|proc/self)/fd/(\d+)$")
UNSET_LOGINUID = 0xFFFFFFFF
#: /proc/PID/status's capability sets -> the Process attribute.
_CAPS = {"CapEff": "cap_effective", "CapPrm": "cap_permitted", "CapInh": "cap_inheritable"}
#: The facts of a fork or an exec that carries none (a replayed or hand-written event).
_NO_FORK = ForkFacts()
_NO_EXEC = ExecFacts()


def _read(path: str, mode: str = "r") -> Any:
    try:
        with open(path, mode) as f:
            return f.read()
    except OSError:
        return None


def readlink_or_none(path: str) -> str | None:
    """``os.readlink``, None when the link cannot be read (the process is gone)."""
    try:
        return os.readlink(path)
    except OSError:
        return None


def _boot_time_ns() -> int:
    text = _read("/proc/stat") or ""
    for line in text.splitlines():
        if line.startswith("btime "):
            return int(line.split()[1]) * 1_000_000_000
    return 0


def cgroup_id_of(pid: int) -> int:
    """The cgroup v2 id of a process (the inode of its cgroup directory), 0 if unknown."""
    text = read_proc_cgroup_text(pid)
    path = unified_path(text) if text else None
    root = cgroup2_root() if path is not None else None
    if root is None:
        return 0
    try:
        return os.stat(root.rstrip("/") + path).st_ino
    except OSError:
        return 0


def falco_cgroups(text: str, v2_controllers: Callable[[str], list[str]]) -> list[str]:
    """``/proc/PID/cgroup`` as Falco lists a thread's cgroups (libscap's procfs reader): each
    controller of a v1 hierarchy as ``controller=path`` (a named hierarchy as
    ``name=systemd=path``), and the v2 hierarchy's path once per controller it has there
    (``v2_controllers(path)``; none: not listed)."""
    out: list[str] = []
    for line in text.splitlines():
        ident, _, rest = line.partition(":")
        subsys, _, path = rest.partition(":")
        if subsys:
            out += [f"{c}={path}" for c in subsys.split(",")]
        elif ident == "0":
            out += [f"{c}={path}" for c in v2_controllers(path)]
    return out


#: PF_EXITING in /proc/PID/stat's flags: set when the task starts to exit, never cleared.
_PF_EXITING = 0x4


def _exiting(st: list[str]) -> bool:
    """Whether /proc/PID/stat (as :meth:`ProcReader.stat` splits it) says the task is exiting
    or has exited (a zombie)."""
    if st[1:2] in (["Z"], ["X"]):
        return True
    try:
        return bool(int(st[7]) & _PF_EXITING)
    except (IndexError, ValueError):
        return False


def with_unified(cgroups: list[str], path: str) -> list[str]:
    """A Falco cgroup list with the v2 hierarchy's entries (the last, as /proc lists it) set to
    ``path``: the kernel's cgroup id says where a process is on that hierarchy, not on the v1
    ones of a hybrid host, whose entries are kept."""
    v2 = _v2_controllers(path)
    ours = set(_v2_controllers("/")) | set(v2)
    return [c for c in cgroups if c.partition("=")[0] not in ours] + \
        [f"{c}={path}" for c in v2]


#: v2 cgroup path -> (when read, its controllers): a cgroup's controllers change when an
#: administrator enables one for its parent, rarely; an exec in it is frequent
_CONTROLLERS: dict[str, tuple[float, list[str]]] = {}
_CONTROLLERS_TTL_S = 5.0


def _v2_controllers(path: str) -> list[str]:
    """The controllers of the v2 cgroup ``path``: its ``cgroup.controllers``, or its nearest
    ancestor's that has some (the hierarchy's root's at most); read again after
    :data:`_CONTROLLERS_TTL_S`."""
    now = time.monotonic()
    got = _CONTROLLERS.get(path)
    if got is not None and now - got[0] < _CONTROLLERS_TTL_S:
        return got[1]
    if len(_CONTROLLERS) > 4096:
        _CONTROLLERS.clear()
    controllers = _read_v2_controllers(path)
    _CONTROLLERS[path] = (now, controllers)
    return controllers


def _read_v2_controllers(path: str) -> list[str]:
    root = cgroup2_root()
    if root is None:
        return []
    path = posixpath.normpath("/" + path)
    while True:
        text = _read(f"{root}{path if path != '/' else ''}/cgroup.controllers")
        if text and text.split():
            return text.split()
        if path == "/":
            return []
        path = posixpath.dirname(path)


class ProcReader:
    """Reads what /proc says of a live process into a Process (best effort, never raises).

    ``root=None`` reads nothing (a replay: the processes are another machine's, so nothing of
    the local /proc may describe them); ``live`` says which.
    """

    def __init__(self, root: str | None = "/proc") -> None:
        self.root = root
        self.live = root is not None
        self.boot_ns = _boot_time_ns() if self.live else 0

    def stat(self, pid: int) -> list[str] | None:
        if not self.live:
            return None
        text = _read(f"{self.root}/{pid}/stat")
        if not text:
            return None
        rpar = text.rfind(")")
        return [text[text.find("(") + 1:rpar]] + text[rpar + 2:].split()

    def fill_live(self, p: Process, *, image: bool = True, st: list[str] | None = None,
                  status: str | None = None) -> bool:
        """tty, session, process group, namespace ids, login uid and (``image``) env and
        capabilities: True if alive (not exiting: a zombie, or a task whose exit began, is
        not).  ``st``, ``status``: /proc/PID/stat (as :meth:`stat`
        splits it) and /proc/PID/status, when just read."""
        if st is None:
            st = self.stat(p.pid)
        if st is None:
            return False
        if _exiting(st):
            # it is exiting: what /proc still shows is no longer its own (cgroup v1 moves an
            # exiting task to the roots), so it is gone for this purpose
            return False
        ids = self._from_stat(p, st)
        if ids is None:
            return False
        sid, pgrp = ids
        if status is None:
            status = _read(f"{self.root}/{p.pid}/status") or ""
        ns: dict[str, list[int]] = {}
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("NSpid", "NSpgid", "NSsid"):
                try:
                    ns[key] = [int(x) for x in value.split()]
                except ValueError:
                    pass
            elif key in _CAPS and image:
                try:
                    setattr(p, _CAPS[key], int(value.strip(), 16))
                except ValueError:
                    pass
        p.vpid = ns.get("NSpid", [p.pid])[-1]
        p.vpgid = ns.get("NSpgid", [pgrp])[-1]
        p.sid = ns.get("NSsid", [sid])[-1]
        login = _read(f"{self.root}/{p.pid}/loginuid")
        if login and login.strip().isdigit():
            p.loginuid = int(login)
        env = _read(f"{self.root}/{p.pid}/environ", "rb") if image else None
        if env:
            p.env = [e.decode("utf-8", "surrogateescape") for e in env.split(b"\0") if e]
        return self.fill_cgroups(p)

    def fill_cgroups(self, p: Process) -> bool:
        """The cgroups (alone, for an exec whose record said the rest: tty, session, process
        group, namespace pid, login uid, capabilities, environment; last, for
        :meth:`fill_live`): True if alive.  stat is read after the cgroups: a task that began
        to exit meanwhile is not alive, and the cgroups read may be the roots."""
        if not self.live:
            return False
        cgroups = read_proc_cgroup_text(p.pid, self.root)
        st = self.stat(p.pid)
        if st is None or _exiting(st) or self._from_stat(p, st) is None:
            return False
        if cgroups:
            p.cgroups = falco_cgroups(cgroups, _v2_controllers)
        p.live = True
        return True

    @staticmethod
    def _from_stat(p: Process, st: list[str]) -> tuple[int, int] | None:
        """What /proc/PID/stat (as :meth:`stat` splits it) tells of a live process, set on
        ``p``; its (session, process group) as this namespace numbers them, None when it
        cannot be parsed."""
        # st: [comm, state, ppid, pgrp, session, tty_nr, tpgid, flags, ...]
        try:
            p.tty = int(st[5])
            return int(st[4]), int(st[3])
        except (IndexError, ValueError):
            return None

    def alive(self, pid: int) -> bool:
        """Whether process ``pid`` is still there with its namespaces (not a zombie)."""
        return self.live and os.path.exists(f"{self.root}/{pid}/ns/mnt")

    def snapshot_one(self, pid: int) -> Process | None:
        """A Process built entirely from /proc (start-up snapshot, or an unknown pid)."""
        st = self.stat(pid)
        if st is None:
            return None
        p = Process(pid)
        p.comm = st[0]
        try:
            p.ppid = int(st[2])
            p.start_ts = self.boot_ns + int(st[20]) * 1_000_000_000 // CLK_TCK
        except (IndexError, ValueError):
            pass
        cmd = _read(f"{self.root}/{pid}/cmdline", "rb") or b""
        argv = [a.decode("utf-8", "surrogateescape") for a in cmd.split(b"\0")]
        if argv and argv[-1] == "":
            argv.pop()
        p.exe = argv[0] if argv else p.comm
        p.args = argv[1:]
        exe = readlink_or_none(f"{self.root}/{pid}/exe") or ""
        if exe.endswith(" (deleted)"):
            exe = exe[:-10]
        if exe.startswith("/memfd:"):
            exe = "memfd:" + exe[7:]
        p.exepath = exe
        p.is_exe_from_memfd = exe.startswith("memfd:")
        try:
            st_exe = os.stat(f"{self.root}/{pid}/exe")
            p.exe_ino, p.exe_ctime, p.exe_mtime = st_exe.st_ino, st_exe.st_ctime_ns, \
                st_exe.st_mtime_ns
        except OSError:
            pass
        p.cwd = readlink_or_none(f"{self.root}/{pid}/cwd") or ""
        status = _read(f"{self.root}/{pid}/status") or ""
        for line in status.splitlines():
            key, _, value = line.partition(":")
            if key in ("Uid", "Gid"):
                try:
                    eff = int(value.split()[1])      # real, effective, saved, fs
                except (IndexError, ValueError):
                    continue
                if key == "Uid":
                    p.uid = eff                      # Falco's user.uid is the effective one
                else:
                    p.gid = eff
        self.fill_live(p, st=st, status=status)
        p.cgroup_id = cgroup_id_of(pid)
        try:
            p.nthreads = len(os.listdir(f"{self.root}/{pid}/task"))
        except OSError:
            pass
        return p


class ProcessTable:
    """pid -> Process, plus tid -> pid for threads; see the module docstring."""

    def __init__(self, max_entries: int = 65536, grace_s: float = 5.0,
                 reader: ProcReader | None = None,
                 count: Callable[[str, int], None] | None = None, agent_pid: int = 0) -> None:
        self.agent_pid = agent_pid
        self.procs: dict[int, Process] = {}
        self.threads: dict[int, int] = {}
        self.max_entries = max_entries
        self.grace_ns = int(grace_s * 1e9)
        self.reader = reader or ProcReader()
        self._exited: collections.deque[tuple[int, int, Process]] = collections.deque()
        self._count = count or (lambda name, n=1: None)
        self._said_full = False     # the first eviction of a live process is logged
        self._realpath_cache: dict[str, str] = {}
        #: cgroup id -> a process of it seen alive (the root of its user database)
        self._alive_in_cgroup: dict[int, int] = {}
        #: kernel cgroup id -> its path, for this machine's processes (a replay's are not)
        self.cgroup_paths = CgroupResolver() if self.reader.live else None

    # -- start-up ------------------------------------------------------------------------------

    def snapshot(self) -> int:
        """Load every process of /proc; link parents.  Returns how many were loaded."""
        root = self.reader.root
        try:
            pids = [int(d) for d in os.listdir(root) if d.isdigit()] if root else []
        except OSError:
            pids = []
        for pid in pids:
            p = self.reader.snapshot_one(pid)
            if p is None:
                continue
            self._set_names(p)
            self.procs[pid] = p
            try:
                for t in os.listdir(f"{root}/{pid}/task"):
                    if t.isdigit() and int(t) != pid:
                        self.threads[int(t)] = pid
            except OSError:
                pass
        for p in self.procs.values():
            p.parent = self.procs.get(p.ppid)
        return len(self.procs)

    # -- lookups -------------------------------------------------------------------------------

    def get(self, tid: int, pid: int = 0) -> Process | None:
        """The process of a thread: by pid, by tid, or (unknown so far) read from /proc."""
        if pid:  # the kernel always says which process a thread belongs to
            p = self.procs.get(pid)
            return p if p is not None else self._discover(pid)
        owner = self.threads.get(tid)
        p = self.procs.get(owner) if owner is not None else self.procs.get(tid)
        return p if p is not None else self._discover(tid)

    def _discover(self, pid: int) -> Process | None:
        if pid <= 0:
            return None
        p = self.reader.snapshot_one(pid)
        if p is None:
            return None
        p.parent = self.procs.get(p.ppid) or self._discover_parent(p.ppid)
        self._set_names(p)
        self._insert(pid, p)
        self._count("process.discovered", 1)
        return p

    def _discover_parent(self, ppid: int) -> Process | None:
        if ppid <= 0 or ppid in self.procs:
            return self.procs.get(ppid)
        p = self.reader.snapshot_one(ppid)
        if p is None:
            return None
        self._set_names(p)
        p.parent = self.procs.get(p.ppid)
        self._insert(ppid, p)
        return p

    def renew(self, p: Process) -> Process:
        """A new version of ``p``, put in the table in its place, for a change of its state.

        Events already enriched keep the version they were given: each event is judged with the
        process as it was at that syscall, even when a later event of the same batch (an exec,
        a setuid) changes the process before the rule stage reads the earlier one.  The fd table
        is shared between versions (an event's fd is attached to the event itself).
        """
        q = p.copy()
        if self.procs.get(p.pid) is p:
            self.procs[p.pid] = q
        return q

    def _insert(self, pid: int, p: Process) -> None:
        self.procs[pid] = p
        if len(self.procs) > self.max_entries:
            self._evict()

    def _evict(self) -> None:
        while self._exited and len(self.procs) > self.max_entries:
            _, pid, p = self._exited.popleft()
            if self.procs.get(pid) is p:
                del self.procs[pid]
        while len(self.procs) > self.max_entries:
            pid = next(iter(self.procs))
            del self.procs[pid]
            self._count("drops.process.evicted", 1)
            if not self._said_full:
                self._said_full = True
                log.warning("process table full (%d processes: falco_libs.thread_table_size "
                            "or process.max_entries): the oldest live processes are evicted, "
                            "each counted in drops.process.evicted "
                            "(scap.n_drops_full_threadtable)", self.max_entries)

    def _set_names(self, p: Process, alive: bool = False) -> None:
        """``alive``: just read from /proc, so its own root holds its databases."""
        if not p.live:          # another machine's (a replay): its databases are not here
            return
        root = users.root_of(p if alive else self.names_of(p))
        p.user = users.user_name_in(root, p.uid)
        p.group = users.group_name_in(root, p.gid)
        p.loginname = users.login_name(p.loginuid)

    # -- events --------------------------------------------------------------------------------

    def on_fork(self, ev: Event) -> Process | None:
        """A clone/fork seen in the parent: the child is a copy of it (or a new thread)."""
        parent = self.get(ev.tid, ev.pid)
        facts = ev.kernel if isinstance(ev.kernel, ForkFacts) else _NO_FORK
        child = facts.child_tid or ev.res or 0
        if child <= 0:
            return parent
        if facts.is_thread:
            self.threads[child] = ev.pid
            if parent is not None and parent.nthreads:
                self.renew(parent).nthreads = parent.nthreads + 1
            return parent
        known = self.procs.get(child)
        if known is not None and known.exit_ts is None and known.start_ts >= ev.ts:
            return parent  # the same fork seen twice (two programs overlap during a reload)
        if parent is not None:
            c = parent.fork(child)          # what a fork copies: core/event.py's declarations
            c.ppid = parent.pid
            c.vpid = child if parent.vpid == parent.pid else 0
        else:
            c = Process(child)
            c.ppid = ev.pid
        c.live = self.reader.live
        c.parent = parent
        c.from_agent = parent is not None and (parent.from_agent or
                                               (self.agent_pid and parent.pid == self.agent_pid))
        c.start_ts = ev.ts
        c.nthreads = 1
        if ev.cgroup_id:
            c.cgroup_id = ev.cgroup_id
        self._insert(child, c)
        return parent

    def on_exec(self, ev: Event) -> Process:
        """A successful exec: the process gets its new image (argv, path from the kernel)."""
        pid = ev.pid
        facts = ev.kernel if isinstance(ev.kernel, ExecFacts) else _NO_EXEC
        old_pid = facts.old_pid
        if old_pid and old_pid != pid:
            self.threads.pop(old_pid, None)
        p = self.get(ev.tid, pid)       # unknown so far: read from /proc if still there
        if p is not None:
            p = self.renew(p)
        else:
            p = Process(pid)
            p.ppid = 0
            p.live = self.reader.live
            p.start_ts = ev.ts
            self._insert(pid, p)
            self._count("process.exec_unknown", 1)
        args = ev.args
        argv = facts.argv
        p.comm = args.get("comm") or p.comm
        p.exe = args.get("exe") or (argv[0] if argv else p.comm)
        p.args = list(argv[1:])
        p.exepath = self.resolve_exepath(p, facts.exepath or args.get("filename") or "")
        p.is_exe_from_memfd = p.exepath.startswith("memfd:")
        p.exit_ts = None
        p.nthreads = 1                  # an exec leaves the process one thread
        if ev.cgroup_id:
            p.cgroup_id = ev.cgroup_id
        p.fds = {n: f for n, f in p.fds.items() if not (f.open_flags & 0o2000000)}  # O_CLOEXEC
        before = p.loginuid
        # what the kernel said of the new image (its environment, capabilities, executable)
        # wins; /proc, read a few milliseconds late if at all, fills what it did not say
        kernel_image = facts.env_read
        if kernel_image and None not in (facts.cap_effective, facts.tty, facts.loginuid,
                                         facts.vpgid) and facts.vpid:
            alive = self.reader.fill_cgroups(p)     # the record said all the rest
        else:
            alive = self.reader.fill_live(p, image=not kernel_image)
        if not alive and ev.cgroup_id and self.cgroup_paths is not None:
            # gone before /proc could be read: its cgroup as the kernel said at the exec (what
            # the fork copied is the parent's, and the child may have moved since)
            path = self.cgroup_paths.path_of(ev.cgroup_id)
            if path is not None:
                p.cgroups = with_unified(p.cgroups, path)
        if kernel_image:
            p.env = facts.env
        if facts.cap_effective is not None:
            p.cap_effective = facts.cap_effective
            p.cap_permitted = facts.cap_permitted
            p.cap_inheritable = facts.cap_inheritable
        if facts.exe_inode:
            p.exe_ino, p.exe_ctime, p.exe_mtime = facts.exe_inode, facts.exe_ctime, \
                facts.exe_mtime
            p.is_exe_upper_layer = facts.exe_upper_layer
            p.is_exe_writable = facts.exe_writable
        if facts.vm_size is not None:
            for name in EXEC_RESOURCES:
                setattr(p, name, getattr(facts, name))
        if alive and p.cgroup_id:
            self._alive_in_cgroup[p.cgroup_id] = p.pid
        # the names again at every exec, the ids changed or not: a `docker exec`'s process took
        # its ids (setresuid) before it entered the container's root
        if facts.uid is not None:
            p.uid = facts.uid
        if facts.gid is not None:
            p.gid = facts.gid
        self._set_names(p, alive)
        # the kernel's own values at exec (read through BTF offsets) win over /proc's, which
        # are a few milliseconds late or gone
        if facts.tty is not None:
            p.tty = facts.tty
        if facts.loginuid is not None:
            p.loginuid = facts.loginuid
        if facts.vpid:
            p.vpid = p.vtid = facts.vpid
        if facts.vpgid is not None:
            p.vpgid, p.sid = facts.vpgid, facts.sid
        if p.loginuid != before:
            p.loginname = users.login_name(p.loginuid)
        return p

    def names_of(self, p: Process) -> Process:
        """The process whose /proc/PID/root holds the user database of ``p``: itself while it
        lives, else (a process gone before its exec is decoded) a live one of its cgroup, as the
        processes of a container share their root."""
        if self.reader.alive(p.pid) or not p.cgroup_id:
            return p
        peer = self._alive_in_cgroup.get(p.cgroup_id)
        if peer is None or (peer and not self.reader.alive(peer)):
            # once per cgroup until one of its processes is seen alive again (0: none)
            peer = next((q.pid for q in self.procs.values()
                         if q.cgroup_id == p.cgroup_id and q.exit_ts is None and q.live
                         and self.reader.alive(q.pid)), 0)
            self._alive_in_cgroup[p.cgroup_id] = peer
        return Process(peer, container_id=p.container_id) if peer else p

    def resolve_exepath(self, p: Process, path: str) -> str:
        """The executable path made absolute (against the cwd) and, on the host, with its
        symlinks resolved as the kernel's exe link shows it (cached per path).  An exec of an
        fd (``execveat(fd, "", AT_EMPTY_PATH)``: the kernel names it ``/dev/fd/N``) is the
        file that fd is: ``memfd:NAME`` for a memfd (fileless execution)."""
        if not path:
            return path
        m = _FD_PATH.match(path)
        if m:
            return self._exec_fd_path(p, int(m.group(1))) or path
        if not path.startswith("/"):
            path = posixpath.normpath(posixpath.join(p.cwd or "/", path))
        if (p.container_id and p.container_id != "host") or not p.live:
            return path
        got = self._realpath_cache.get(path)
        if got is None:
            got = os.path.realpath(path) if os.path.exists(path) else path
            if len(self._realpath_cache) > 4096:
                self._realpath_cache.clear()
            self._realpath_cache[path] = got
        return got

    def _exec_fd_path(self, p: Process, num: int) -> str | None:
        # a memfd's entry is exact (its close is followed); a file's may be stale (a file's
        # close is not followed, nor an open no rule needs): the new image's link first
        f = p.fds.get(num)
        if f is not None and f.name and f.type == "memfd":
            return f.name
        link = readlink_or_none(f"{self.reader.root}/{p.pid}/exe") if p.live else None
        if link:
            if link.endswith(" (deleted)"):
                link = link[:-10]
            return "memfd:" + link[7:] if link.startswith("/memfd:") else link
        return f.name if f is not None and f.name else None

    def on_exit(self, ev: Event) -> Process | None:
        p = self.get(ev.tid, ev.pid)
        if ev.tid != ev.pid:
            self.threads.pop(ev.tid, None)
        group_dead = ev.kernel.group_dead if isinstance(ev.kernel, ExitFacts) else None
        if p is not None and p.nthreads > 1 and (group_dead is False or
                                                 (group_dead is None and ev.tid != ev.pid)):
            self.renew(p).nthreads = p.nthreads - 1     # one of its threads ended
        if p is not None and (group_dead or ev.tid == ev.pid):
            if group_dead is not False:         # unknown: the leader's exit ends the group
                p.exit_ts = ev.ts
                self._exited.append((ev.ts, p.pid, p))
        self.expire(ev.ts)
        return p

    def expire(self, now_ns: int) -> None:
        """Remove the entries of processes that exited more than ``grace`` ago."""
        limit = now_ns - self.grace_ns
        q = self._exited
        while q and q[0][0] <= limit:
            _, pid, p = q.popleft()
            if self.procs.get(pid) is p:
                del self.procs[pid]

    def names(self) -> list[tuple[int, str]]:
        """(pid, ``proc.name``) of every process the table holds (callable from another
        thread: a copy taken while the table changes is taken again)."""
        while True:
            try:
                return [(pid, p.comm) for pid, p in list(self.procs.items()) if p.comm]
            except RuntimeError:            # the dict changed size while it was copied
                continue

    def __len__(self) -> int:
        return len(self.procs)

    def thread_count(self) -> int:
        """The threads known apart from their process's main thread."""
        return len(self.threads)

    def fd_count(self) -> int:
        """The fds the table holds, over every process (a report's figure: one pass)."""
        return sum(len(p.fds) for p in list(self.procs.values()))
