"""The BPF program renderer: pure, no root needed."""

from __future__ import annotations

import re

from syswarden.core import syscalls as core_syscalls
from syswarden.plugins.sources.ebpf import program as P


def handlers(text: str) -> set[str]:
    return set(re.findall(r"^int sw_exit_(\w+)\(", text, re.M))


def test_only_the_needed_and_state_syscalls_get_an_exit_handler():
    text = P.render_program({"openat", "connect"}, {})
    got = handlers(text)
    assert {"openat", "connect"} <= got
    assert "mkdirat" not in got and "unlink" not in got
    # state: dup*, chdir, fchdir, set*id, setsid; the fork family has none (sent from
    # sched_process_fork); close is not followed (the fd table's entries carry a stamp)
    assert {"dup", "dup2", "dup3", "chdir", "fchdir", "setuid", "setsid"} <= got
    assert "close" not in got
    assert not {"clone", "clone3", "fork", "vfork"} & got
    assert "exec" in got                       # sw_exit_exec: execve/execveat always


def test_none_means_every_supported_syscall():
    got = handlers(P.render_program(None))
    assert got == {n for n in P.BY_NAME if n not in P.FORK_SYSCALLS} | {"exec"}


def test_config_and_agent_pid_are_baked_in():
    text = P.render_program(set(), {"path_max": 300, "argv_max": 100, "evt_ring_pages": 3,
                                    "proc_ring_pages": 8, "max_args": 7}, agent_pid=4242)
    assert "#define AGENT_PID 4242" in text
    assert "#define PATH_MAX_B 512" in text          # rounded up to a power of two
    assert "#define ARGV_MAX_B 256" in text          # at least 256
    assert "#define MAX_ARGS 7" in text
    assert "BPF_RINGBUF_OUTPUT(evt_ring, 4);" in text
    assert "BPF_RINGBUF_OUTPUT(proc_ring, 8);" in text
    assert "@" not in re.sub(r"//.*", "", text)       # every marker replaced


def test_whole_config_is_accepted_too():
    text = P.render_program(set(), {"ebpf": {"max_args": 9}, "priority": "debug"})
    assert "#define MAX_ARGS 9" in text


def test_tracepoints_follow_the_event_types():
    tps = dict(P.tracepoints({"openat"}))
    assert tps["syscalls:sys_enter_openat"] == "sw_enter4"
    assert tps["syscalls:sys_exit_openat"] == "sw_exit_openat"
    assert "syscalls:sys_exit_mkdirat" not in tps
    for base in ("sched:sched_process_fork", "sched:sched_process_exec",
                 "sched:sched_process_exit", "syscalls:sys_enter_execve",
                 "syscalls:sys_enter_clone", "syscalls:sys_enter_clone3"):
        assert base in tps
    assert "syscalls:sys_exit_clone" not in tps
    assert dict(P.tracepoints({"umount2"}))["syscalls:sys_exit_umount"] == "sw_exit_umount2"


def test_with_the_registers_a_syscall_costs_its_exit_tracepoint_only():
    regs = {"args_from": "regs"}
    tps = dict(P.tracepoints({"openat", "connect"}, regs))
    assert tps["syscalls:sys_exit_openat"] == "sw_exit_openat"
    assert tps["syscalls:sys_exit_dup2"] == "sw_exit_dup2"
    assert "syscalls:sys_exit_close" not in tps        # not followed unless a rule needs it
    # the enter of exec stays (argv is gone after a successful exec); the fork family has no
    # tracepoint of its own (sched_process_fork reads the parent's registers)
    assert {tp for tp in tps if ":sys_enter_" in tp} == {
        "syscalls:sys_enter_execve", "syscalls:sys_enter_execveat"}
    assert not [tp for tp in tps if tp.startswith("syscalls:") and (
        "clone" in tp or tp.endswith("fork"))]
    assert "sched:sched_process_fork" in tps
    assert "#define TASK_REGS 1" in P.render_program({"openat"}, regs)
    assert "#define TASK_REGS 0" in P.render_program({"openat"}, {"args_from": "enter"})
    # with enter, both tracepoints of every followed syscall
    enter = dict(P.tracepoints({"openat"}, {"args_from": "enter"}))
    assert {"syscalls:sys_enter_openat", "syscalls:sys_exit_openat",
            "syscalls:sys_enter_clone3"} <= set(enter)


def test_auto_is_made_concrete_before_rendering(monkeypatch):
    monkeypatch.setattr(P, "registers_usable", lambda: True)
    assert P.resolve_args_from("auto") == "regs"
    monkeypatch.setattr(P, "registers_usable", lambda: False)
    assert P.resolve_args_from("auto") == "enter"
    assert P.resolve_args_from("regs") == "regs"     # asked for: the kernel has the last word


def test_argument_names_agree_with_the_core_event_table():
    """Every argument the source fills is one Falco (core/syscalls.py) knows for that event."""
    for sc in P.SYSCALLS:
        known = core_syscalls.arg_names(sc.name)
        assert known, f"{sc.name} is not in core/syscalls.py"
        names = [a[0] for a in sc.args if a is not None and not a[0].startswith("_")]
        names.append(sc.res)
        if any(a is not None and a[1] == P.HOW for a in sc.args):
            names = [n for n in names if n != "how"] + ["flags", "mode", "resolve"]
        unknown = [n for n in names if n not in known]
        assert not unknown, f"{sc.name}: {unknown} not in {known}"
    for name in P.EXEC_SYSCALLS:
        assert {"res", "exe", "args", "tid", "pid", "comm"} <= set(core_syscalls.arg_names(name))
