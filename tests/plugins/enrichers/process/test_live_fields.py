"""Fields the kernel gives at exec and through credential calls, on real processes and real
containers: every value checked here is one the process is gone before its event is decoded, so
nothing of it may come from /proc (Falco's values: the effective ids, the exec's environment,
capabilities that follow setuid, the executable's overlay layer)."""

from __future__ import annotations

import os
import shutil
import sys

import pytest
import trio

from syswarden.testing import read_field as field
from tests.helpers.docker import containers, docker, docker_images, dockerd  # noqa: F401
from tests.helpers.ebpf import descends_from_me, needs_root, run_live

pytestmark = [needs_root, pytest.mark.root]

NOBODY = 65534


def execs_of(live, exe: str) -> list:
    return [e for e in live.events if e.type == "execve" and e.res == 0
            and e.proc is not None and e.proc.exepath == exe]


@pytest.fixture(scope="module")
def suid_nobody(tmp_path_factory):
    """A copy of /bin/sleep owned by nobody, setuid and setgid: run by root, its effective
    ids are nobody's and its real ones root's."""
    d = tmp_path_factory.mktemp("suid")
    d.chmod(0o755)
    path = d / "sw-suid-sleep"
    shutil.copy2(os.path.realpath(shutil.which("sleep")), path)
    os.chown(path, NOBODY, NOBODY)
    path.chmod(0o6755)                      # setuid and setgid
    return str(path)


async def test_effective_ids_environment_and_capabilities_from_the_kernel(suid_nobody):
    drop = ("import os; os.setgid(65534); os.setuid(65534); "
            "open('/proc/self/status').close(); os.execv('/bin/true', ['true'])")

    async def action(live):
        await trio.run_process([suid_nobody, "0"])
        # VAR=x cmd: the variable is in the exec's environment only (Falco's GLIBC_TUNABLES rule)
        await trio.run_process(["/bin/sh", "-c", "SW_FIDE_VAR=x-y /bin/true"])
        await trio.run_process([sys.executable, "-S", "-c", drop])

    live = await run_live({"openat", "setuid", "setgid"}, action)
    [suid] = execs_of(live, suid_nobody)
    assert field("user.uid", suid) == NOBODY and field("group.gid", suid) == NOBODY
    assert field("user.name", suid) == "nobody"
    # root's exec of a setuid-nobody file: permitted keeps root's set, effective is emptied
    assert field("thread.cap_effective", suid) == ""
    assert "CAP_SYS_ADMIN" in field("thread.cap_permitted", suid)
    st = os.stat(suid_nobody)
    assert field("proc.exe_ino", suid) == st.st_ino
    assert field("proc.exe_ino.mtime", suid) == st.st_mtime_ns
    assert field("proc.exe_ino.ctime", suid) == st.st_ctime_ns
    assert field("proc.is_exe_writable", suid) is True       # nobody owns it (u+w)
    assert field("proc.is_exe_upper_layer", suid) is False

    [true, as_nobody] = [e for e in execs_of(live, "/usr/bin/true") + execs_of(live, "/bin/true")
                         if descends_from_me(e)]
    assert field("proc.env", true, "SW_FIDE_VAR") == "x-y"
    assert "SW_FIDE_VAR=x-y" in field("proc.env", true)
    assert field("user.uid", true) == 0 and field("user.name", true) == "root"
    assert field("proc.is_exe_writable", true) is True        # root: CAP_DAC_OVERRIDE

    setuids = [e for e in live.events if e.type == "setuid" and descends_from_me(e)]
    assert setuids and field("user.uid", setuids[-1]) == NOBODY
    assert field("thread.cap_effective", setuids[-1]) == ""  # setuid dropped them
    opens = [e for e in live.events if e.type == "openat" and descends_from_me(e)
             and e.args.get("name") == "/proc/self/status"]
    assert opens and field("user.name", opens[-1]) == "nobody"
    st = os.stat("/proc/self/status")
    assert (field("fd.dev", opens[-1]), field("fd.dev.major", opens[-1]),
            field("fd.dev.minor", opens[-1])) == (st.st_dev, os.major(st.st_dev),
                                                  os.minor(st.st_dev))
    assert field("group.gid", opens[-1]) == NOBODY
    assert field("thread.cap_effective", opens[-1]) == ""
    # root's file, 0755, run by nobody without capabilities
    assert field("user.name", as_nobody) == "nobody"
    assert field("proc.is_exe_writable", as_nobody) is False
    before = [e for e in live.events if e.type == "execve" and e.proc is not None
              and e.proc.exepath == os.path.realpath(sys.executable)]
    assert before and "CAP_SYS_ADMIN" in field("thread.cap_effective", before[-1])


#: Threads started and ended, each count marked (once the kernel has it: a joined thread may
#: not have exited yet) by an open of its own name, then an exec
THREADS = ("import os, threading, time\n"
           "def mark(n, threads):\n"
           "    while len(os.listdir('/proc/self/task')) != threads: time.sleep(0.001)\n"
           "    try: os.open(f'/tmp/sw-threads-{n}-absent', os.O_RDONLY)\n"
           "    except OSError: pass\n"
           "stop = threading.Event()\n"
           "a = threading.Thread(target=stop.wait); a.start()\n"
           "b = threading.Thread(target=lambda: None); b.start(); b.join()\n"
           "mark('after-b', 2)\n"
           "c = threading.Thread(target=stop.wait); c.start()\n"
           "mark('three', 3)\n"
           "stop.set(); a.join(); c.join()\n"
           "mark('one', 1)\n"
           "os.execv('/bin/true', ['true'])\n")


async def test_threads_and_cgroups_of_a_process_gone_before_its_events_are_read(tmp_path):
    async def action(live):
        await trio.run_process([sys.executable, "-S", "-c", THREADS])

    live = await run_live({"openat"}, action)
    marks = {e.args["name"].split("sw-threads-")[1].split("-absent")[0]: e
             for e in live.events if e.type == "openat" and descends_from_me(e)
             and "sw-threads-" in (e.args.get("name") or "")}
    # the counts as the kernel's clones and exits told them: the process is gone, /proc says
    # nothing of it any more
    assert not os.path.exists(f"/proc/{marks['one'].pid}/task")
    assert field("proc.nthreads", marks["after-b"]) == 2        # the leader and a
    assert field("proc.nthreads", marks["three"]) == 3
    assert field("proc.nchilds", marks["three"]) == 2
    assert field("proc.nthreads", marks["one"]) == 1
    assert field("proc.nchilds", marks["one"]) == 0
    [true] = [e for e in execs_of(live, "/usr/bin/true") + execs_of(live, "/bin/true")
              if descends_from_me(e) and e.pid == marks["one"].pid]
    assert field("proc.nthreads", true) == 1
    # the cgroups, Falco's list read at the exec or inherited from the parent: this one's
    mine = open("/proc/self/cgroup").read()
    cgroups = field("thread.cgroups", true)
    for line in mine.splitlines():
        _, subsys, path = line.split(":", 2)
        for c in filter(None, subsys.split(",")):
            assert f"{c}={path}" in cgroups.split(" ")
            assert field("thread.cgroup", true, c) == path


async def test_short_lived_container_processes(containers):  # noqa: F811
    box = containers.run("alpine:latest", "sleep", "60")
    docker("exec", box.id, "sh", "-c", "echo swfide:x:4321:4321::/home/sw:/bin/sh >> "
           "/etc/passwd && echo swfide:x:4321: >> /etc/group")

    async def action(live):
        # gone long before their exec is decoded: names from the container's own passwd
        await trio.run_process(["docker", "exec", "-u", "4321:4321", box.id, "sh", "-c",
                                "exit 0"])
        # a binary written in the container (its overlay upper layer), then run
        await trio.run_process(["docker", "exec", box.id, "sh", "-c",
                                "cp /bin/busybox /tmp/true && /tmp/true"])

    live = await run_live({"openat"}, action)
    shells = [e for e in live.events if e.type == "execve" and e.res == 0 and e.proc is not None
              and e.proc.comm == "sh" and e.cgroup_id == box_cgroup(box.pid)]
    as_user = [e for e in shells if field("user.uid", e) == 4321]
    assert as_user, [(e, e.proc.uid) for e in shells]
    assert field("user.name", as_user[0]) == "swfide"          # the host has no uid 4321
    assert field("group.name", as_user[0]) == "swfide"
    assert [field("user.name", e) for e in shells if field("user.uid", e) == 0][:1] == ["root"]
    [dropped] = [e for e in live.events if e.type == "execve" and e.res == 0
                 and e.proc is not None and e.proc.exepath == "/tmp/true"]
    assert field("proc.is_exe_upper_layer", dropped) is True
    assert all(field("proc.is_exe_upper_layer", e) is False for e in shells)


def box_cgroup(pid: int) -> int:
    from syswarden.plugins.enrichers.process.table import cgroup_id_of
    return cgroup_id_of(pid)


def test_a_container_health_check_is_told_apart(tmp_path, containers):  # noqa: F811
    import json
    import time

    from syswarden.testing import running_agent
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: Health check\n  desc: x\n  priority: NOTICE\n"
                     "  condition: evt.type = execve and proc.is_container_healthcheck = true\n"
                     "  output: check %proc.cmdline\n"
                     "- rule: Not a health check\n  desc: x\n  priority: NOTICE\n"
                     "  condition: evt.type = execve and container.id != host and "
                     "proc.is_container_healthcheck = false and proc.name = sleep\n"
                     "  output: other %proc.cmdline\n")
    alerts = tmp_path / "alerts.json"
    with running_agent("-r", str(rules), "-o", "json_output=true",
                       "-o", "file_output.enabled=true", "-o", f"file_output.filename={alerts}",
                       "-o", "stdout_output.enabled=false"):
        box = containers.run("alpine:latest", "sleep", "60",
                             extra=("--health-cmd", "sleep 0", "--health-interval", "1s"))
        docker("exec", box.id, "sleep", "0")
        deadline = time.monotonic() + 20
        got: set = set()
        while time.monotonic() < deadline and "Health check" not in {r for r, _ in got}:
            time.sleep(0.3)
            lines = alerts.read_text().splitlines() if alerts.exists() else []
            got = {(a["rule"], a["output_fields"]["proc.cmdline"]) for a in map(json.loads, lines)}
    assert ("Health check", "sh -c sleep 0") in got or ("Health check", "sleep 0") in got, got
    assert ("Not a health check", "sleep 0") in got, got


async def test_the_cgroups_of_a_process_gone_before_proc_is_read_are_the_kernel_s():
    """A shell moves itself into a new cgroup and execs a program that exits at once: /proc
    is gone when the exec is decoded, and what the fork copied is the parent's cgroup; the
    exec's cgroup is the one the kernel sent with it."""
    import uuid

    from syswarden.core.cgroups import cgroup2_root
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy")
    name = f"sw-moved-{uuid.uuid4().hex[:8]}"
    path = os.path.join(root, name)
    os.mkdir(path)
    try:
        async def action(live):
            await trio.run_process(["sh", "-c", f"echo $$ > {path}/cgroup.procs && "
                                    f"exec /bin/true"])

        live = await run_live({"openat"}, action)
    finally:
        os.rmdir(path)
    [true] = [e for e in execs_of(live, "/usr/bin/true") + execs_of(live, "/bin/true")
              if descends_from_me(e)]
    assert not os.path.exists(f"/proc/{true.pid}/task")
    cgroups = field("thread.cgroups", true).split(" ")
    v2 = open(os.path.join(root, "cgroup.controllers")).read().split()
    moved = [c for c in cgroups if c.partition("=")[0] in v2]
    assert moved and all(c.endswith(f"=/{name}") for c in moved), cgroups
    # a hybrid host's v1 hierarchies: the shell did not move there, the parent's are kept
    mine = [ln.split(":", 2) for ln in open("/proc/self/cgroup").read().splitlines()]
    for _, subsys, where in mine:
        for c in filter(None, subsys.split(",")):
            assert f"{c}={where}" in cgroups
