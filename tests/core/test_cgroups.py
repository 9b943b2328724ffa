"""The one reader of /proc/PID/cgroup and what its text says (the container parsers are tested
in tests/plugins/enrichers/containers/test_cgroup.py)."""

from __future__ import annotations

import os
import subprocess

from syswarden.core.cgroups import read_proc_cgroup_text, unified_path


def test_the_text_of_a_live_process_and_none_for_one_gone() -> None:
    with open(f"/proc/{os.getpid()}/cgroup") as fh:
        assert read_proc_cgroup_text(os.getpid()) == fh.read()
    gone = subprocess.Popen(["true"])
    gone.wait()
    assert read_proc_cgroup_text(gone.pid) is None
    assert read_proc_cgroup_text(os.getpid(), proc_root="/nonexistent") is None


def test_the_unified_path_is_the_0_line() -> None:
    text = "12:pids:/docker/x\n1:name=systemd:/user.slice\n0::/system.slice/a.scope \n"
    assert unified_path(text) == "/system.slice/a.scope"
    assert unified_path("4:memory:/x\n") is None                # v1 only
    assert unified_path("0::/\n") == "/"
