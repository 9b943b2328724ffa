"""The process table: /proc snapshot, then fork/exec/exit events."""

from __future__ import annotations

import os
import subprocess
import sys
import time

from syswarden.core.event import Event, ExecFacts, ExitFacts, ForkFacts, Process
from syswarden.plugins.enrichers.process.table import ProcessTable, ProcReader


def fork(parent_pid, child, ts, thread=False):
    ev = Event("clone", ts=ts, tid=parent_pid, pid=parent_pid, res=child)
    ev.kernel = ForkFacts(child_tid=child, is_thread=thread)
    return ev


def execev(pid, argv, comm, exepath, ts, uid=0, gid=0):
    ev = Event("execve", ts=ts, tid=pid, pid=pid, res=0,
               args={"res": 0, "exe": argv[0], "args": argv[1:], "comm": comm,
                     "filename": argv[0]})
    ev.kernel = ExecFacts(exepath=exepath, argv=argv, old_pid=pid, uid=uid, gid=gid)
    return ev


def exit_ev(pid, ts, tid=None):
    ev = Event("procexit", ts=ts, tid=tid or pid, pid=pid)
    ev.kernel = ExitFacts(group_dead=tid is None or tid == pid)
    return ev


def table_with(*procs, **kw):
    t = ProcessTable(reader=ProcReader(root="/nonexistent"), **kw)
    for p in procs:
        t.procs[p.pid] = p
    return t


def test_snapshot_knows_this_process_and_its_parent():
    t = ProcessTable()
    assert t.snapshot() > 1
    me = t.procs[os.getpid()]
    cmd = open(f"/proc/{os.getpid()}/cmdline", "rb").read().split(b"\0")
    assert me.comm == open(f"/proc/{os.getpid()}/comm").read().strip()
    assert me.exe == cmd[0].decode()
    assert me.exepath == os.path.realpath(sys.executable)
    assert me.cwd == os.getcwd()
    assert me.uid == os.getuid() and me.user is not None
    assert me.parent is t.procs.get(os.getppid())
    assert me.cgroup_id != 0 and me.start_ts > 0


def test_fork_copies_the_parent_and_exec_replaces_the_image():
    sh = Process(100, comm="bash", exe="bash", exepath="/usr/bin/bash", cwd="/srv", tty=5,
                 uid=0, user="root", sid=100, vpid=100)
    t = table_with(sh)
    t.on_fork(fork(100, 101, ts=10))
    c = t.procs[101]
    assert (c.comm, c.cwd, c.tty, c.user, c.ppid, c.parent) == ("bash", "/srv", 5, "root", 100, sh)
    assert c.start_ts == 10 and c.vpid == 101
    p = t.on_exec(execev(101, ["ls", "-l", "/x"], "ls", "/bin/ls", ts=11))
    assert p is t.procs[101] and p is not c       # a new version of the process
    assert (p.comm, p.exe, p.args, p.cmdline) == ("ls", "ls", ["-l", "/x"], "ls -l /x")
    assert p.exepath == os.path.realpath("/bin/ls")
    assert p.parent is sh and p.tty == 5          # inherited, the process is gone from /proc
    assert (c.comm, c.cmdline) == ("bash", "bash")  # what earlier events of the child saw


def test_threads_map_to_their_process():
    p = Process(200, comm="java")
    t = table_with(p)
    t.on_fork(fork(200, 201, ts=1, thread=True))
    assert 201 not in t.procs and t.get(201) is p and t.get(201, 200) is p
    t.on_exit(exit_ev(200, ts=2, tid=201))
    assert p.exit_ts is None and 201 not in t.threads


def test_an_exited_parent_keeps_its_name_and_entries_expire_after_grace():
    runc = Process(300, comm="runc:[1:CHILD]")
    t = table_with(runc, grace_s=1.0)
    t.on_fork(fork(300, 301, ts=1))
    t.on_exit(exit_ev(300, ts=2))
    assert runc.exit_ts == 2 and 300 in t.procs          # still known during the grace
    t.on_exec(execev(301, ["sh"], "sh", "/bin/sh", ts=3))
    t.expire(2 + 1_000_000_001)
    assert 300 not in t.procs
    assert t.procs[301].parent.comm == "runc:[1:CHILD]"  # kept by reference


def test_a_duplicate_fork_does_not_replace_the_child():
    t = table_with(Process(400, comm="a"))
    t.on_fork(fork(400, 401, ts=5))
    t.on_exec(execev(401, ["b"], "b", "/bin/b", ts=6))
    t.on_fork(fork(400, 401, ts=5))
    assert t.procs[401].comm == "b"


def test_the_table_is_bounded_and_evicts_exited_first():
    counted = []
    t = table_with(max_entries=20, count=lambda n, k=1: counted.append(n))
    for pid in range(1000, 1020):
        t.procs[pid] = Process(pid)
    t.on_exit(exit_ev(1005, ts=1))
    t.on_fork(fork(1000, 2000, ts=2))
    assert len(t.procs) == 20 and 1005 not in t.procs and 2000 in t.procs
    assert counted == []
    t.on_fork(fork(1000, 2001, ts=3))
    assert len(t.procs) == 20 and counted == ["drops.process.evicted"]


def test_an_unknown_live_process_is_read_from_proc():
    child = subprocess.Popen(["sleep", "5"])
    try:
        for _ in range(200):       # until the exec is complete (cmdline is the new image's)
            if open(f"/proc/{child.pid}/cmdline", "rb").read() == b"sleep\x005\x00":
                break
            time.sleep(0.005)
        t = ProcessTable()
        p = t.get(child.pid, child.pid)
        assert p is not None and p.comm == "sleep" and p.args == ["5"]
        assert p.parent is not None and p.parent.pid == os.getpid()
    finally:
        child.kill()
        child.wait()


def test_exec_of_a_memfd_is_fileless():
    from syswarden.core.event import FdInfo
    p = Process(700, comm="python3")
    p.fds[3] = FdInfo(3, "memfd", "memfd:payload")
    t = table_with(p)
    ev = execev(700, ["x"], "3", "/dev/fd/3", ts=1)
    p = t.on_exec(ev)
    assert p.exepath == "memfd:payload" and p.is_exe_from_memfd is True


def test_the_agents_descendants_are_marked_from_agent():
    agent = Process(900, comm="syswarden")
    other = Process(950, comm="bash")
    t = table_with(agent, other)
    t.agent_pid = 900
    t.on_fork(fork(900, 901, ts=1))                 # a program output's shell
    t.on_fork(fork(901, 902, ts=2))                 # what it runs
    t.on_fork(fork(950, 951, ts=3))                 # anyone else's child
    p = t.on_exec(execev(902, ["mail", "-s", "x"], "mail", "/usr/bin/mail", ts=4))
    assert t.procs[901].from_agent and p.from_agent
    assert not t.procs[951].from_agent and not agent.from_agent
