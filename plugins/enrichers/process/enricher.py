"""The process enricher: attaches ``evt.proc`` and ``evt.fd`` from the process and fd tables.

Per event, in pipeline order: the lifecycle events update the process table first (so an
``execve`` event already shows the new image, as in Falco), then the event gets its process
(``evt.proc``) and, for the syscalls that name one, its fd (``evt.fd``).  Both are filled only
when missing: a replayed capture, which carries them, passes through unchanged.  Beside the
pipeline it runs the lookups of the names the rules compare ``fd.*ip.name`` with.
"""

from __future__ import annotations

from typing import Any, Callable

import trio

from syswarden.core import dns
from syswarden.core.event import Event, Process
from syswarden.core.protocols import Enricher

from . import users
from .fds import FdTable
from .table import ProcessTable, ProcReader

_EXEC = ("execve", "execveat")
_FORK = ("clone", "clone3", "fork", "vfork")


class ProcessEnricher(Enricher):
    name = "process"

    def __init__(self, metrics: Any = None, *, max_entries: int = 65536, grace_s: float = 5.0,
                 snapshot: bool = True, agent_pid: int = 0, replay: bool = False) -> None:
        self.metrics = metrics
        count: Callable[[str, int], None] = (metrics.inc if metrics is not None
                                             else (lambda name, n=1: None))
        # a replay's processes are another machine's: nothing of the local /proc is read
        self.table = ProcessTable(max_entries=max_entries, grace_s=grace_s, count=count,
                                  agent_pid=agent_pid,
                                  reader=ProcReader(None if replay else "/proc"))
        self.fds = FdTable(count=count)
        if snapshot:
            self.table.snapshot()
        if metrics is not None:       # the state's size, read at each report (bench_memory's)
            metrics.watch("state.processes", self.table.__len__)
            metrics.watch("state.threads", self.table.thread_count)
            metrics.watch("state.fds", self.table.fd_count)
        t = self.table
        self._state: dict[str, Callable[[Event], Process | None]] = {
            "procexit": t.on_exit,
        }
        for name in _FORK:
            self._state[name] = t.on_fork
        #: credential calls -> the argument that sets the effective uid, gid (Falco's)
        self._uid_events = {"setuid": ("uid", None), "setresuid": ("euid", None),
                            "setgid": (None, "gid"), "setresgid": (None, "egid"),
                            "capset": (None, None)}
        self._fd_handlers = self.fds.handlers
        self._procs = self.table.procs
        #: event types that change the process table: the slow path
        self._special = frozenset(_EXEC) | frozenset(self._state) | \
            frozenset(self._uid_events) | {"setsid"}

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Look up, off the hot path, the names the rules compare this plugin's socket name
        fields with (``fd.sip.name = NAME``; :mod:`syswarden.core.dns`)."""
        task_status.started()
        await dns.RESOLVER.serve(self.metrics)

    def enrich(self, ev: Event) -> None:
        if ev.proc is not None:
            if ev.fd is None and ev.type in self._fd_handlers:
                self.fds.enrich(ev, ev.proc)
            return
        t = ev.type
        if t not in self._special:            # most events: look up, attach, resolve the fd
            p = self._procs.get(ev.pid)
            if p is None:
                p = self.table.get(ev.tid, ev.pid)
                if p is None:
                    return
            if ev.cgroup_id and not p.cgroup_id:
                p.cgroup_id = ev.cgroup_id
            ev.proc = p
            handler = self._fd_handlers.get(t)
            if handler is not None:
                handler(ev, p)
            return
        if t in _EXEC:
            if ev.res == 0:
                p = self.table.on_exec(ev)
                ev.args.setdefault("ptid", p.ppid)
                ev.args.setdefault("cwd", p.cwd)
            else:
                p = self.table.get(ev.tid, ev.pid)
        else:
            handler = self._state.get(t)
            p = handler(ev) if handler is not None else self.table.get(ev.tid, ev.pid)
        if p is None:
            return
        if ev.cgroup_id and not p.cgroup_id:
            p.cgroup_id = ev.cgroup_id
        if t in self._uid_events and ev.res == 0:
            p = self.table.renew(p)    # earlier events keep the credentials they had
            self._uid_change(ev, p)
        elif t == "setsid" and ev.res >= 0:
            p = self.table.renew(p)
            p.sid = ev.res if p.vpid == p.pid else p.sid
            p.tty = 0
        ev.proc = p
        if t in self._fd_handlers:
            self.fds.enrich(ev, p)

    def _uid_change(self, ev: Event, p: Process) -> None:
        ukey, gkey = self._uid_events[ev.type]
        # the names from this machine's databases, for its own processes only (a replay's are
        # unknown until its capture says)
        names = self.table.names_of(p) if p.live else None
        if ukey is not None:
            uid = ev.args.get(ukey)
            if isinstance(uid, int) and uid != 0xFFFFFFFF:
                p.uid = uid
                p.user = users.user_name(names, uid) if names is not None else None
        if gkey is not None:
            gid = ev.args.get(gkey)
            if isinstance(gid, int) and gid != 0xFFFFFFFF:
                p.gid = gid
                p.group = users.group_name(names, gid) if names is not None else None
        caps = ev.kernel.cap_effective if ev.kernel is not None else None
        if caps is not None:          # the kernel's set after the call (a setuid drops it)
            p.cap_effective = caps
