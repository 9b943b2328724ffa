"""The live eBPF source on the real kernel: real processes, real syscalls, enriched fields."""

from __future__ import annotations

import ipaddress
import logging
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest
import trio

from syswarden.core.errors import SourceError
from syswarden.plugins.enrichers.process.enricher import ProcessEnricher
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf import tracefs
from syswarden.plugins.sources.ebpf.source import LOST_WITH_ROOM, EbpfSource
from syswarden.testing import read_field as field
from tests.helpers.ebpf import (ARGS_FROM, RELOAD_TIMEOUT, descends_from_me, events_of,
                                exit_hook, finit_module_attempt, needs_root, run_live)

pytestmark = [needs_root, pytest.mark.root]

FILE_TYPES = {"open", "openat", "openat2", "creat"}


def mine(live, types):
    return [e for e in live.events if e.type in types and descends_from_me(e)]


@ARGS_FROM
async def test_open_for_writing_a_unique_file(tmp_path, args_from):
    path = tmp_path / f"written-{uuid.uuid4().hex}.txt"

    async def action(live):
        await trio.run_process(["/bin/sh", "-c", f"echo hello > {path}"])

    live = await run_live({"openat", "open"}, action, {"args_from": args_from})
    assert live.source.cfg["args_from"] == args_from
    opens = [e for e in mine(live, FILE_TYPES) if e.args.get("name") == str(path)]
    assert len(opens) == 1, ([e for e in mine(live, FILE_TYPES)],
                             [(e, e.proc) for e in live.events if str(path) in str(e.args)],
                             len(live.events), live.source.drop_counts())
    ev = opens[0]
    assert ev.res >= 0
    assert field("fd.name", ev) == str(path)
    assert field("fd.directory", ev) == str(tmp_path)
    assert field("fd.filename", ev) == path.name
    assert field("fd.num", ev) == ev.res
    assert field("fd.typechar", ev) == "f"
    assert field("evt.is_open_write", ev) is True
    assert field("evt.is_open_read", ev) is False
    assert field("proc.name", ev) == "sh"
    assert field("user.name", ev) == "root"
    assert field("user.uid", ev) == 0
    assert field("proc.pid", ev) == ev.pid
    assert ev.cgroup_id != 0 and ev.proc.cgroup_id == ev.cgroup_id


async def test_exec_of_renamed_binary_from_renamed_shell_under_a_pty(tmp_path):
    tag = uuid.uuid4().hex[:6]
    shell = tmp_path / f"sh{tag}"
    prog = tmp_path / f"tru{tag}"
    shutil.copy("/bin/dash", shell)
    shutil.copy("/bin/true", prog)
    my_comm = open("/proc/self/comm").read().strip()

    async def action(live):
        pid, master = os.forkpty()
        if pid == 0:  # the child: the renamed shell on the pty's slave side
            try:
                os.execv(str(shell), [str(shell), "-c", f"{prog} alpha beta; sleep 0.3"])
            finally:
                os._exit(127)
        try:
            while True:  # keep the pty drained until the shell exits
                try:
                    await trio.lowlevel.wait_readable(master)
                    if not os.read(master, 4096):
                        break
                except OSError:
                    break
        finally:
            os.close(master)
            await trio.to_thread.run_sync(os.waitpid, pid, 0)

    live = await run_live({"execve"}, action)
    execs = [e for e in mine(live, {"execve"}) if e.res == 0 and e.proc.comm == prog.name]
    assert len(execs) == 1, [(e, e.proc) for e in mine(live, {"execve"})]
    ev = execs[0]
    assert field("proc.name", ev) == prog.name
    assert field("proc.cmdline", ev) == f"{prog.name} alpha beta"
    assert field("proc.args", ev) == "alpha beta"
    assert field("proc.exe", ev) == str(prog)
    assert field("proc.exepath", ev) == os.path.realpath(prog)
    assert field("proc.pname", ev) == shell.name
    assert field("proc.aname", ev, 1) == shell.name
    assert field("proc.aname", ev, 2) == my_comm
    assert field("proc.apid", ev, 2) == os.getpid()
    assert shell.name in field("proc.aname", ev)          # any ancestor
    assert field("proc.tty", ev) not in (None, 0)
    assert field("proc.pcmdline", ev).startswith(f"{shell.name} -c {prog} alpha beta")
    assert field("evt.arg", ev, "exe") == str(prog)


async def test_rename_unlink_mkdir_paths_are_absolute(tmp_path):
    script = "mkdir sub && touch a && mv a b && rm b"
    types = {"mkdir", "mkdirat", "rename", "renameat", "renameat2", "unlink", "unlinkat"}

    async def action(live):
        await trio.run_process(["/bin/sh", "-c", script], cwd=str(tmp_path))

    live = await run_live(types, action)
    evs = mine(live, types)
    mk = [e for e in evs if e.type in ("mkdir", "mkdirat")]
    assert [e.args["path"] for e in mk] == [str(tmp_path / "sub")]
    rn = [e for e in evs if e.type.startswith("rename")]
    assert [(e.args["oldpath"], e.args["newpath"]) for e in rn] == \
        [(str(tmp_path / "a"), str(tmp_path / "b"))]
    rm = [e for e in evs if e.type.startswith("unlink")]
    assert [e.args.get("name") or e.args.get("path") for e in rm] == [str(tmp_path / "b")]
    assert all(e.res == 0 for e in mk + rn + rm)
    assert {field("proc.name", e) for e in mk + rn + rm} == {"mkdir", "mv", "rm"}


@ARGS_FROM
async def test_an_open_that_creates_its_file_is_told_from_one_that_truncates(tmp_path, args_from):
    """O_F_CREATED (Falco's flag) from the new file's f_mode, read at offsets from BTF."""
    path = tmp_path / f"log-{uuid.uuid4().hex}"

    async def action(live):
        for _ in range(2):     # the first creates the file, the second truncates it
            await trio.run_process(["/bin/sh", "-c", f": > {path}"])

    live = await run_live({"openat"}, action, {"args_from": args_from})
    opens = [e for e in mine(live, FILE_TYPES) if e.args.get("name") == str(path)]
    assert len(opens) == 2, opens
    first, second = opens
    assert first.args["flags"] & os.O_CREAT and second.args["flags"] & os.O_CREAT
    assert field("evt.is_open_create", first) is True
    assert "O_F_CREATED" in field("evt.arg", first, "flags")
    assert field("evt.is_open_create", second) is False
    assert "O_F_CREATED" not in field("evt.arg", second, "flags")


@ARGS_FROM
async def test_connect_to_a_loopback_port(args_from):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    code = ("import socket,time; s=socket.create_connection(('127.0.0.1', %d)); "
            "time.sleep(0.2)" % port)

    async def action(live):
        await trio.run_process([sys.executable, "-c", code])

    try:
        live = await run_live({"connect", "socket"}, action, {"args_from": args_from})
    finally:
        server.close()
    conns = [e for e in mine(live, {"connect"})
             if e.kernel is not None and e.kernel.sockaddr is not None
             and e.kernel.sockaddr[2] == port]
    assert len(conns) == 1
    ev = conns[0]
    assert ev.res == 0
    assert field("fd.rip", ev) == ipaddress.IPv4Address("127.0.0.1")
    assert field("fd.rport", ev) == port
    assert field("fd.sip", ev) == ipaddress.IPv4Address("127.0.0.1")
    assert field("fd.sport", ev) == port
    assert field("fd.l4proto", ev) == "tcp"
    assert field("fd.sockfamily", ev) == "ip"
    assert field("fd.typechar", ev) == "4"
    assert field("fd.is_server", ev) is False
    # the client's end comes from /proc/net while the process lives (it sleeps 0.2 s)
    assert field("fd.lport", ev) not in (None, 0)
    assert field("fd.name", ev) == f"127.0.0.1:{field('fd.lport', ev)}->127.0.0.1:{port}"
    assert ev.args["addr"] == f"127.0.0.1:{port}"
    assert ev.args["tuple"] == field("fd.name", ev)


@ARGS_FROM
async def test_a_fork_and_a_thread_are_told_apart_by_their_clone_flags(args_from):
    """The fork record carries the clone flags (from the parent's registers, or from the
    clone/clone3 enter): CLONE_THREAD makes a thread of the process, not a new process."""
    code = ("import os, threading\n"
            "t = threading.Thread(target=lambda: None); t.start(); t.join()\n"
            "pid = os.fork()\n"
            "if pid == 0: os._exit(0)\n"
            "os.waitpid(pid, 0)\n")

    async def action(live):
        await trio.run_process([sys.executable, "-c", code])

    live = await run_live(set(), action, {"args_from": args_from})
    pids = {e.pid for e in live.events if e.type == "execve" and descends_from_me(e)}
    forks = [e for e in live.events if e.type in P.FORK_SYSCALLS and e.pid in pids]
    threads = [e for e in forks if e.kernel.is_thread]
    children = [e for e in forks if not e.kernel.is_thread]
    assert len(threads) == 1 and len(children) == 1, forks
    assert threads[0].type == "clone3" and children[0].type == "clone"   # glibc's choices
    assert threads[0].res > 0 and children[0].res > 0


@ARGS_FROM
async def test_the_local_ends_of_a_connect_and_an_accept_come_from_the_kernel(args_from):
    """Read from the kernel's socket at exit, so known even for a process gone at once."""
    code = ("import ctypes, socket\n"
            "srv = socket.socket(); srv.bind(('127.0.0.1', 0)); srv.listen(2)\n"
            "cli = socket.create_connection(srv.getsockname())\n"
            "conn, _ = srv.accept()\n"
            "cli2 = socket.create_connection(srv.getsockname())\n"
            "assert ctypes.CDLL(None).accept(srv.fileno(), None, None) >= 0  # no address\n"
            "print(cli.getsockname()[1], srv.getsockname()[1], cli2.getsockname()[1])\n")
    ports = []

    async def action(live):
        done = await trio.run_process([sys.executable, "-c", code], capture_stdout=True)
        ports.extend(int(x) for x in done.stdout.split())

    live = await run_live({"connect", "accept", "accept4", "socket", "bind"}, action,
                          {"args_from": args_from})
    cport, sport, cport2 = ports
    loop = ipaddress.IPv4Address("127.0.0.1")
    conns = [e for e in mine(live, {"connect"}) if e.kernel is not None
             and e.kernel.sockaddr is not None and e.kernel.sockaddr[2] == sport]
    accepts = [e for e in mine(live, {"accept", "accept4"}) if e.res >= 0]
    assert len(conns) == 2 and len(accepts) == 2, (conns, accepts)
    # the accept without an address buffer: the client's end read from the new socket
    assert accepts[1].args["tuple"] == f"127.0.0.1:{cport2}->127.0.0.1:{sport}"
    assert conns[0].kernel.local == ("ipv4", loop, cport)
    assert accepts[0].kernel.local == ("ipv4", loop, sport)
    assert field("fd.name", conns[0]) == f"127.0.0.1:{cport}->127.0.0.1:{sport}"
    assert field("fd.name", accepts[0]) == f"127.0.0.1:{cport}->127.0.0.1:{sport}"
    assert field("fd.lport", accepts[0]) == sport and field("fd.rport", accepts[0]) == cport


def test_a_process_that_exits_at_once_is_fully_resolved():
    """Decoded only after the process is gone: nothing can come from /proc."""
    enricher = ProcessEnricher(snapshot=True)
    events = events_of(EbpfSource({}, {"execve"}, os.getpid()),
                       lambda: subprocess.run(["/bin/true", "quick", "exit"], check=True))
    execs = [e for e in events if e.type == "execve" and e.res == 0
             and e.args.get("args") == ["quick", "exit"]]
    assert len(execs) == 1
    ev = execs[0]
    assert not os.path.exists(f"/proc/{ev.pid}")
    for e in events:
        enricher.enrich(e)
    assert field("proc.name", ev) == "true"
    assert field("proc.cmdline", ev) == "true quick exit"
    assert field("proc.exepath", ev) == os.path.realpath("/bin/true")
    assert field("proc.pname", ev) == open("/proc/self/comm").read().strip()
    assert field("proc.ppid", ev) == os.getpid()
    assert field("user.name", ev) == "root"
    exits = [e for e in events if e.type == "procexit" and e.pid == ev.pid]
    assert len(exits) == 1 and exits[0].proc is ev.proc and ev.proc.exit_ts is not None


@pytest.mark.parametrize("from_tracepoint", [True, False], ids=["tracepoint", "signal-live"])
def test_a_thread_exit_is_told_from_its_process_exit(from_tracepoint):
    """group_dead: from sched_process_exit's field where the kernel has it (6.16 on), else
    read in the kernel from the process's count of live threads (signal->live)."""
    tp = tracefs.offsets()
    if from_tracepoint and "TP_EXIT_GROUP_DEAD" not in tp:
        pytest.skip("this kernel's sched_process_exit has no group_dead field")
    if not from_tracepoint:
        tp.pop("TP_EXIT_GROUP_DEAD", None)
    src = EbpfSource({"tp": tp}, set(), os.getpid())
    assert ("#define TP_EXIT_GROUP_DEAD" in src.program_text()) == from_tracepoint
    child = []

    def action():
        p = subprocess.Popen([sys.executable, "-c", "import threading, time\n"
                              "t = threading.Thread(target=time.sleep, args=(0.05,))\n"
                              "t.start(); t.join(); time.sleep(0.05)"])
        child.append(p.pid)
        p.wait()

    events = events_of(src, action)
    exits = [e for e in events if e.type == "procexit" and e.pid == child[0]]
    assert len(exits) == 2                            # the thread, then the main thread
    thread, main = sorted(exits, key=lambda e: e.ts)
    assert thread.tid != child[0] and thread.kernel.group_dead is False
    assert main.tid == child[0] and main.kernel.group_dead is True


def test_setsid_returns_the_new_session_which_the_process_then_leads():
    """setsid is followed for the process table (with fexit programs: through its body,
    ``__do_sys_setsid``, whose result is its second argument on x86_64)."""
    child = []

    def action():
        p = subprocess.Popen([sys.executable, "-c", "import os; os.setsid()"])
        child.append(p.pid)
        p.wait()

    events = events_of(EbpfSource({}, set(), os.getpid()), action)
    setsids = [e for e in events if e.type == "setsid" and e.pid == child[0]]
    assert len(setsids) == 1 and setsids[0].res == child[0]
    enricher = ProcessEnricher(snapshot=True)
    for e in events:
        enricher.enrich(e)
    assert field("proc.sid", setsids[0]) == child[0]


def test_the_first_process_of_a_new_pid_namespace_reads_vpid_1_after_it_is_gone():
    """proc.vpid comes from the kernel at exec (a container's first process is vpid 1)."""
    enricher = ProcessEnricher(snapshot=True)
    tag = uuid.uuid4().hex[:8]
    events = events_of(EbpfSource({}, {"execve"}, os.getpid()), lambda: subprocess.run(
        ["unshare", "--pid", "--fork", "/bin/true", "vpid", tag], check=True))
    execs = [e for e in events if e.type == "execve" and e.res == 0
             and e.args.get("args") == ["vpid", tag]]
    assert len(execs) == 1
    ev = execs[0]
    assert not os.path.exists(f"/proc/{ev.pid}")
    for e in events:
        enricher.enrich(e)
    assert field("proc.vpid", ev) == 1 and field("proc.pid", ev) == ev.pid != 1
    unshare = [e for e in events if e.type == "execve" and e.args.get("exe") == "unshare"]
    assert unshare and field("proc.vpid", unshare[-1]) == unshare[-1].pid  # the host's own


async def test_only_the_needed_tracepoints_are_attached_and_a_reload_changes_them(tmp_path):
    async def action(live):
        src = live.source
        expected = {tp for tp, _ in P.tracepoints({"openat"}, src.cfg)} - set(src.unavailable)
        openat, mkdirat = exit_hook(src.cfg, "openat"), exit_hook(src.cfg, "mkdirat")
        assert set(src.attached) == expected
        assert mkdirat not in src.attached
        assert openat in src.attached
        # the arguments come from the saved registers here: no enter hook but exec's
        assert src.cfg["args_from"] == "regs"
        assert {tp for tp in src.attached if ":sys_enter_" in tp or tp.startswith("fentry:")} \
            == ({"fentry:__x64_sys_execve", "fentry:__x64_sys_execveat"}
                if P.fentry_mode(src.cfg) else
                {"syscalls:sys_enter_execve", "syscalls:sys_enter_execveat"})
        await trio.run_process(["/bin/mkdir", str(tmp_path / "before")])
        src.set_event_types({"openat", "mkdirat", "mkdir"})    # not compiled in: reloads
        with trio.fail_after(RELOAD_TIMEOUT):
            while mkdirat not in src.attached:
                await trio.sleep(0.05)
        await trio.run_process(["/bin/mkdir", str(tmp_path / "after")])
        await live.settle()
        src.set_event_types({"mkdirat"})                        # compiled in: detaches only
        assert openat not in src.attached
        assert mkdirat in src.attached

    live = await run_live({"openat"}, action)
    made = [e.args.get("path") for e in mine(live, {"mkdir", "mkdirat"})]
    assert made == [str(tmp_path / "after")], [
        (e, e.proc, e.proc and [a.pid for a in e.proc.ancestors()]) for e in live.events
        if e.type.startswith("mkdir") and str(tmp_path) in str(e.args)]
    assert any(e.type == "openat" for e in mine(live, {"openat"}))


def test_the_program_build_is_timed_by_phase_and_logged(caplog):
    src = EbpfSource({"program_cache": ""}, {"openat"}, os.getpid())     # compiled
    with caplog.at_level(logging.INFO, logger="syswarden"):
        src.load()
    try:
        seconds = src.prog.seconds
    finally:
        src.close()
    assert set(seconds) == {"import", "compile", "load", "wait", "attach"}
    assert seconds["compile"] > 0 and seconds["load"] > 0
    assert all(v >= 0 for v in seconds.values())
    line = next(r.getMessage() for r in caplog.records if "program built in" in r.getMessage())
    assert f": compiled, bcc import {seconds['import']:.3f} s" in line
    assert f"compile {seconds['compile']:.3f} s, load {seconds['load']:.3f} s" in line


def _loader_helpers() -> list[int]:
    """The loader helpers this process runs."""
    me, out = os.getpid(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                cmd = f.read()
        except (OSError, IndexError, ValueError):
            continue
        if ppid == me and b"ebpf/loader.py" in cmd:
            out.append(int(pid))
    return out


def _bpf_programs(pid: int) -> int:
    """How many BPF programs process ``pid`` holds."""
    n = 0
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            n += os.readlink(f"/proc/{pid}/fd/{fd}") == "anon_inode:bpf-prog"
        except OSError:
            pass
    return n


def test_a_preloaded_program_is_loaded_beside_and_attached_only_when_the_source_loads():
    """preload() compiles and loads the programs in the helper while the agent builds the rest
    of its start-up; nothing is attached (no event is recorded) before load()."""
    src = EbpfSource({}, {"openat"}, os.getpid())
    programs = {fn for _tp, fn in P.tracepoints({"openat"}, src.cfg)}
    src.preload()
    [helper] = _loader_helpers()
    deadline = time.monotonic() + RELOAD_TIMEOUT
    while _bpf_programs(helper) < len(programs):      # compiled and loaded: it waits
        assert time.monotonic() < deadline and _loader_helpers() == [helper]
        time.sleep(0.05)
    tag = uuid.uuid4().hex
    before, after = f"/tmp/sw-before-{tag}", f"/tmp/sw-after-{tag}"
    waited = []
    try:
        subprocess.run(["/bin/sh", "-c", f": > {before}"], check=True)   # (this process's own
                                                                        # events are not sent)

        def create() -> None:
            waited.append(src.prog.seconds["wait"])
            subprocess.run(["/bin/sh", "-c", f": > {after}"], check=True)

        events = events_of(src, create)
    finally:
        for path in (before, after):
            if os.path.exists(path):
                os.unlink(path)
    names = {e.args.get("name") for e in events if e.type == "openat"}
    assert after in names and before not in names
    assert waited[0] > 0 and not _loader_helpers()


def test_a_source_closed_before_it_loads_gives_its_preloaded_program_up():
    src = EbpfSource({}, {"openat"}, os.getpid())
    src.preload()
    [helper] = _loader_helpers()
    src.close()
    assert helper not in _loader_helpers()


def test_tiny_ring_accounting_is_exact():
    """generated = delivered + dropped, per ring, with a ring far too small."""
    src = EbpfSource({"evt_ring_pages": 1}, {"openat"}, os.getpid())
    src.load()
    try:
        code = "for i in range(3000):\n    open('/dev/null').close()"
        subprocess.run([sys.executable, "-c", code], check=True)
        src.detach_all()
        time.sleep(0.2)
        events = []
        while True:
            got = src.drain()
            if not got:
                break
            events += got
        c = src.kernel_counters()
        reported = src.drop_counts()
    finally:
        src.close()
    attempted_proc, dropped_proc, attempted_evt, dropped_evt = c[0], c[1], c[2], c[3]
    assert dropped_evt > 0
    assert attempted_evt >= 3000
    assert src.received["events"] == attempted_evt - dropped_evt
    assert src.received["proc"] == attempted_proc - dropped_proc
    assert reported["kernel.events"] == dropped_evt
    # the ring was full for every one of them (nothing read it meanwhile): none is reported
    # as lost with room to spare, which a query of the wrong ring would say
    assert c[LOST_WITH_ROOM] == 0


async def test_a_reader_falling_behind_says_so_and_when_it_has_caught_up(caplog):
    """The next stage takes nothing for a while: the ring fills behind the reader, which logs
    the backlog before its drops, and its largest size once it has caught up."""
    src = EbpfSource({"evt_ring_pages": 4}, {"openat"}, os.getpid())
    send, recv = trio.open_memory_channel(0)
    gate = trio.Event()

    async def next_stage():
        await gate.wait()
        async with recv:
            async for _ in recv:
                pass

    code = "for i in range(3000):\n    open('/dev/null', 'w').close()"
    with caplog.at_level(logging.INFO, "syswarden.ebpf"):
        async with trio.open_nursery() as outer:
            outer.start_soon(next_stage)
            async with send:
                async with trio.open_nursery() as nursery:
                    await nursery.start(src.run, send)
                    await trio.run_process([sys.executable, "-c", code])  # nobody reads
                    gate.set()                                             # now it does
                    await trio.sleep(1.0)
                    src.stop()
    logged = [r.getMessage() for r in caplog.records]
    assert any("the reader is" in m and "MB behind the kernel" in m for m in logged), logged
    assert any("the reader caught up" in m for m in logged), logged


async def test_the_agent_itself_is_filtered_in_the_kernel(tmp_path):
    marker = tmp_path / "agent-own-file"

    async def action(live):
        marker.write_text("x")                      # the test process is the "agent"
        await trio.run_process(["/bin/cat", str(marker)])

    live = await run_live({"openat"}, action)
    names = [(e.pid, e.args.get("name")) for e in live.events if e.type == "openat"]
    assert all(pid != os.getpid() for pid, _ in names)
    assert any(name == str(marker) for _, name in names)   # the child's open is there


async def test_the_agents_own_threads_are_not_sent_its_children_are():
    """The agent's thread exits are filtered in the kernel, so its thread creations must be too
    (else each would stay in the process table for good); a child process of the agent (a
    program output) is sent, as its exit is."""
    import threading

    async def action(live):
        t = threading.Thread(target=lambda: None)   # the test process is the "agent"
        t.start()
        t.join()
        await trio.run_process(["/bin/true"])

    live = await run_live({"execve"}, action)
    forks = [e for e in live.events if e.type in ("clone", "clone3", "fork", "vfork")
             and e.pid == os.getpid()]
    assert forks and not [e for e in forks if e.kernel.is_thread]
    child = forks[-1].kernel.child_tid
    assert any(e.type == "procexit" and e.pid == child for e in live.events)


def test_records_crossing_the_end_of_a_small_ring_decode_intact(tmp_path):
    """A four-page ring wraps every hundred records: each must come out whole (the data area is
    mapped twice so a record crossing the end reads contiguous)."""
    src = EbpfSource({"evt_ring_pages": 4}, {"openat"}, os.getpid())
    src.load()
    names = [str(tmp_path / (f"{i:02d}" + "f" * (i % 50))) for i in range(60)]
    for n in names:
        open(n, "w").close()
    seen = []
    try:
        for n in names:
            subprocess.run(["/bin/cat", n], check=True)
            while True:
                got = src.drain()
                if not got:
                    break
                seen += [e.args.get("name") for e in got if e.type == "openat"]
        received = src.received["events"]
    finally:
        src.close()
    # the whole machine opens files too: a record may be dropped, those read must be whole
    ours = [n for n in seen if n and n.startswith(str(tmp_path))]
    assert received > 4 * 4096 // 112 * 3      # the ring wrapped several times
    assert len(ours) >= len(names) // 2 and set(ours) <= set(names)
    assert ours == sorted(ours, key=names.index)
    assert src.decode_errors == 0


def test_tty_of_a_process_gone_before_decoding_comes_from_the_kernel():
    """The docker exec -it case: a shell that exits at once, its tty set just before exec."""
    import pty

    enricher = ProcessEnricher(snapshot=True)
    src = EbpfSource({}, {"execve"}, os.getpid())
    assert src.cfg["btf"], "no BTF offsets read from /sys/kernel/btf/vmlinux"

    def on_a_tty() -> None:
        pid, master = pty.fork()
        if pid == 0:
            os.execv("/bin/true", ["/bin/true", "on-a-tty"])
        os.waitpid(pid, 0)
        os.close(master)

    events = events_of(src, on_a_tty)
    ev = [e for e in events if e.type == "execve" and e.args.get("args") == ["on-a-tty"]][0]
    assert not os.path.exists(f"/proc/{ev.pid}")
    for e in events:
        enricher.enrich(e)
    tty = field("proc.tty", ev)
    assert tty != 0 and os.major(tty) == 136          # a pseudo-terminal slave (/dev/pts/N)
    assert field("user.loginuid", ev) == (lambda v: -1 if v == 0xFFFFFFFF else v)(
        int(open("/proc/self/loginuid").read()))


def test_a_kernel_refusing_the_registers_falls_back_to_enter(monkeypatch):
    """FAKE fault: this kernel accepts bpf_task_pt_regs, so its refusal is simulated by a
    loader that fails once for a program rendered with TASK_REGS 1 (kept or not); the real loader then
    loads the enter version, which must work."""
    from syswarden.plugins.sources.ebpf import loader

    real = loader.start
    refused = []

    def refusing_start(text, tracepoints, *a, **kw):
        if "#define TASK_REGS 1" in text:
            refused.append(tracepoints)
            raise loader.LoadError("R1 type=scalar expected=ptr_ (simulated refusal)")
        return real(text, tracepoints, *a, **kw)

    monkeypatch.setattr(loader, "start", refusing_start)
    src = EbpfSource({}, {"openat"}, os.getpid())
    if src.cfg["args_from"] != "regs":
        pytest.skip("auto does not try the registers on this machine")
    path = f"/tmp/sw-fallback-{uuid.uuid4().hex}"

    def create() -> None:
        assert refused and src.cfg["args_from"] == "enter"
        assert "syscalls:sys_enter_openat" in src.attached
        subprocess.run(["/bin/sh", "-c", f": > {path}"], check=True)

    try:
        events = events_of(src, create)
    finally:
        if os.path.exists(path):
            os.unlink(path)
    assert [e for e in events if e.type == "openat" and e.args.get("name") == path]
    asked = EbpfSource({"args_from": "regs"}, {"openat"}, os.getpid())
    with pytest.raises(SourceError):          # asked for explicitly: no silent fallback
        asked.load()


@ARGS_FROM
def test_a_syscall_without_tracepoint_through_raw_tracepoints(args_from):
    if os.path.isdir("/sys/kernel/tracing/events/syscalls/sys_exit_finit_module"):
        pytest.skip("this kernel has finit_module's own tracepoint")
    off = EbpfSource({"args_from": args_from}, {"finit_module"}, os.getpid())   # the default
    assert not [tp for tp in dict(P.tracepoints({"finit_module"}, off.cfg)) if "raw" in tp]
    src = EbpfSource({"args_from": args_from, "raw_fallback": True}, {"finit_module"},
                     os.getpid())
    pids = []

    def load_a_module() -> None:
        raw = {tp for tp in src.attached if tp.startswith("raw_")}
        if src.cfg["not_built"]:            # no module support: sent from the enter alone
            assert raw == {"raw_tp:sys_enter"}
        else:
            assert raw == ({"raw_tp:sys_exit"} if args_from == "regs"
                           else {"raw_tp:sys_enter", "raw_tp:sys_exit"})
        pids.append(finit_module_attempt())

    events = events_of(src, load_a_module)
    got = [e for e in events if e.type == "finit_module" and e.pid == pids[0]]
    assert len(got) == 1 and got[0].res < 0 and isinstance(got[0].args["fd"], int)


async def test_a_graceful_stop_sends_what_the_rings_still_hold(tmp_path):
    from syswarden.core.metrics import Metrics
    metrics = Metrics()
    src = EbpfSource({}, {"openat"}, os.getpid(), metrics)
    got: list = []
    send, recv = trio.open_memory_channel(1000)
    path = tmp_path / f"last-{uuid.uuid4().hex}"
    async with trio.open_nursery() as nursery:
        async def consume():
            async with recv:
                async for batch in recv:
                    got.extend(batch)
        nursery.start_soon(consume)
        async with send:
            await nursery.start(src.run, send)
            subprocess.run(["/bin/sh", "-c", f": > {path}"], check=True)
            src.stop()   # at once: the open above may still sit in the ring
            with trio.fail_after(10):
                while src.prog is not None:
                    await trio.sleep(0.01)
    assert [e for e in got if e.type == "openat" and e.args.get("name") == str(path)]
    assert metrics.get("drops.ebpf.unread_at_stop") == 0
