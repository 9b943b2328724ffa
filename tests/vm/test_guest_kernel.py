"""The live eBPF tests on a kernel that runs fexit programs: a guest of Debian 12's own kernel
(6.1) under qemu's software emulation (scripts/vm), since this machine's kernel refuses them
(EPERM) and has no hardware virtualisation.

The guest runs only what differs on its kernel (GUEST_TESTS), with the project shared read-only
from this checkout: the fexit mode (attach, feature probe, fallback, reload), a live test of each
kind of exit handler through fexit programs (opens, exec, sockets, fork and exit, setsid, the
open prefilter, the realpath walk), the BTF offsets the handlers read, the sched tracepoints' layouts (tracefs) and
the exit paths 6.1 lacks (no ``group_dead``).  Everything else the host's run covers: emulated,
each live test costs ten times what it costs on the host.  The first build of the guest image
takes a few minutes and about 500 MB of downloads (cached in /var/cache/syswarden-vm); the run
about 10 minutes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import xml.etree.ElementTree as ET

import pytest

from tests.helpers.paths import REPO

pytestmark = [pytest.mark.root, pytest.mark.slow,
              pytest.mark.skipif(os.geteuid() != 0, reason="needs root (qemu, debootstrap)")]

PROBE = ("from syswarden.plugins.sources.ebpf import btf, fentry; "
         "f = btf.kernel_info(functions=['__x64_sys_openat'])[1]; "
         "ok, why = fentry.probe(f.get('__x64_sys_openat')); "
         "print('fexit:', 'usable' if ok else why); raise SystemExit(0 if ok else 3)")

EBPF = "tests/plugins/sources/ebpf"

#: What the guest runs: whole files that are about the kernel, and the live tests below.
GUEST_FILES = ("test_fentry.py", "test_tracefs.py", "test_btf.py")

#: Live tests that must have passed in the guest (not been skipped).
MUST_PASS = (
    "test_fentry.py::test_the_source_follows_syscalls_the_way_the_kernel_allows",
    "test_fentry.py::test_the_probe_answers_for_this_kernel_and_auto_follows_it",
    "test_fentry.py::test_auto_falls_back_to_tracepoints_when_the_kernel_refuses_the_program",
    "test_fentry.py::test_a_syscall_with_neither_tracepoint_nor_function_is_followed_live_in_"
    "fexit_mode",
    "test_source.py::test_open_for_writing_a_unique_file[regs]",
    "test_source.py::test_open_for_writing_a_unique_file[enter]",
    "test_source.py::test_exec_of_renamed_binary_from_renamed_shell_under_a_pty",
    "test_source.py::test_connect_to_a_loopback_port[regs]",
    "test_source.py::test_a_fork_and_a_thread_are_told_apart_by_their_clone_flags[enter]",
    "test_source.py::test_a_thread_exit_is_told_from_its_process_exit[signal-live]",
    "test_source.py::test_setsid_returns_the_new_session_which_the_process_then_leads",
    "test_source.py::test_only_the_needed_tracepoints_are_attached_and_a_reload_changes_them",
    "test_open_prefilter.py::test_the_kernel_keeps_exactly_the_opens_the_reference_keeps[regs]",
    "test_open_prefilter.py::test_the_kernel_tests_substrings_globs_and_dot_files_as_the_"
    "reference[regs]",
    "test_socket_prefilter.py::test_the_kernel_keeps_exactly_the_socket_events_the_reference_"
    "keeps[mixed-regs]",
    "test_source.py::test_rename_unlink_mkdir_paths_are_absolute",
    "test_source.py::test_an_open_that_creates_its_file_is_told_from_one_that_truncates[regs]",
    "test_source.py::test_the_local_ends_of_a_connect_and_an_accept_come_from_the_kernel[regs]",
    "test_source.py::test_a_graceful_stop_sends_what_the_rings_still_hold",
    "test_realpath.py::test_the_realpath_is_the_file_opened_and_the_identity_is_stat_s"
    "[regs-symlink-sym-target]",
    "test_realpath.py::test_the_realpath_is_the_file_opened_and_the_identity_is_stat_s"
    "[regs-bind-mnt/inside-mnt/inside]",
    "test_realpath.py::test_hostile_names_give_a_bounded_path_marked_when_cut[regs]",
    "test_program_cache.py::test_a_second_start_loads_the_kept_program_which_sends_what_the_"
    "compiled_one_did",
)

GUEST_TESTS = tuple(f"{EBPF}/{f}" for f in GUEST_FILES) + tuple(
    f"{EBPF}/{t}" for t in MUST_PASS if t.split("::")[0] not in GUEST_FILES)


def test_the_kernel_dependent_tests_pass_on_a_kernel_that_runs_fexit_programs(tmp_path):
    if not shutil.which("qemu-system-x86_64") and not shutil.which("apt-get"):
        pytest.skip("neither qemu nor apt-get to install it")
    cmd = (f'python -c "{PROBE}" && python -m pytest -p no:cacheprovider -q '
           f'--junitxml=/out/junit.xml {" ".join(GUEST_TESTS)}')
    env = {**os.environ, "SYSWARDEN_VM_OUT": str(tmp_path)}
    run = subprocess.run(["bash", "scripts/vm/run.sh", cmd], cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=3600)
    out = run.stdout + run.stderr
    assert "fexit: usable" in out, out[-3000:]
    assert run.returncode == 0, out[-6000:]
    cases = {}
    for case in ET.parse(tmp_path / "junit.xml").getroot().iter("testcase"):
        name = f"{case.get('classname').rsplit('.', 1)[-1]}.py::{case.get('name')}"
        cases[name] = "skipped" if case.find("skipped") is not None else \
            "failed" if case.find("failure") is not None or case.find("error") is not None \
            else "passed"
    assert not [n for n, s in cases.items() if s == "failed"]
    for name in MUST_PASS:
        assert cases.get(name) == "passed", (name, cases.get(name))
    assert sum(s == "passed" for s in cases.values()) >= len(MUST_PASS) + 10
