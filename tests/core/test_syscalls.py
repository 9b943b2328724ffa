"""The syscall table: names, argument order, and flags rendered as Falco prints them.

Flag values come from Python's ``os``/``socket`` modules, i.e. from this machine's C headers,
not from our own constants.
"""

from __future__ import annotations

import errno
import os
import socket

import pytest
from syswarden.core import syscalls as sc

ISSUE_4_TYPES = """execve execveat open openat openat2 creat connect accept accept4 listen bind
socket rename renameat renameat2 unlink unlinkat mkdir mkdirat rmdir link linkat symlink
symlinkat chmod fchmod fchmodat setns unshare mount umount2 ptrace init_module finit_module
delete_module setuid setgid setresuid setresgid memfd_create dup dup2 dup3 sendto sendmsg bpf
userfaultfd clone clone3 fork vfork close chdir fchdir procexit""".split()


def test_every_supported_type_has_arguments():
    missing = [t for t in ISSUE_4_TYPES if t not in sc.EVENTS]
    assert missing == []
    assert set(ISSUE_4_TYPES) <= sc.KNOWN_EVENT_TYPES


def test_every_type_named_in_the_compat_files_is_known(compat):
    """Loading Falco's files reports no unknown event type (those would be located warnings)."""
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.engine import load_rules
    paths = sorted(str(p) for p in compat.glob("*/*rules*.yaml"))
    for path in paths:
        result, _, _ = load_rules([path], collect_fields())
        assert [str(w) for w in result.warnings if "unknown event type" in w.message] == []


def test_an_unknown_type_is_reported(tmp_path):
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.engine import load_rules
    p = tmp_path / "r.yaml"
    p.write_text("- rule: R\n  desc: d\n  condition: evt.type in (openat, bogus)\n"
                 "  output: o\n  priority: info\n")
    result, _, _ = load_rules([str(p)], collect_fields())
    [w] = [w for w in result.warnings if "unknown event type" in w.message]
    assert (w.location.line, w.location.col) == (3, 35)


@pytest.mark.parametrize("evt_type, exit_args, first_enter", [
    ("openat", ("fd", "dirfd", "name", "flags", "mode", "dev", "ino"), "dirfd"),
    ("socket", ("fd",), "domain"),
    ("connect", ("res", "tuple"), "fd"),
    ("ptrace", ("res", "addr", "data"), "request"),
    ("setns", ("res",), "fd"),
    ("renameat2", ("res", "olddirfd", "oldpath", "newdirfd", "newpath", "flags"), None),
])
def test_exit_and_enter_parameters(evt_type, exit_args, first_enter):
    assert sc.EXIT_ARGS[evt_type] == exit_args
    assert sc.ENTER_ARGS.get(evt_type, (None,))[0] == first_enter
    # the merged list holds both halves, each name once
    merged = sc.arg_names(evt_type)
    assert len(merged) == len(set(merged))
    assert set(exit_args) | set(sc.ENTER_ARGS.get(evt_type, ())) <= set(merged)


@pytest.mark.parametrize("flags, text", [
    (os.O_RDONLY, "O_RDONLY"),
    (os.O_WRONLY | os.O_CREAT | os.O_TRUNC, "O_TRUNC|O_CREAT|O_WRONLY"),
    (os.O_RDWR | os.O_APPEND | os.O_CLOEXEC, "O_APPEND|O_RDWR|O_CLOEXEC"),
    (os.O_RDONLY | os.O_DIRECTORY | os.O_NONBLOCK | os.O_CLOEXEC,
     "O_DIRECTORY|O_NONBLOCK|O_RDONLY|O_CLOEXEC"),
    (os.O_WRONLY | os.O_SYNC, "O_SYNC|O_WRONLY"),
    (os.O_WRONLY | os.O_DSYNC, "O_DSYNC|O_WRONLY"),
    (os.O_RDWR | os.O_TMPFILE, "O_RDWR|O_TMPFILE"),
    (os.O_RDONLY | os.O_NOFOLLOW | os.O_PATH, "O_RDONLY|O_NOFOLLOW|O_PATH"),
])
def test_open_flags_as_falco_prints_them(flags, text):
    assert sc.render_arg("openat", "flags", flags) == text


def test_other_renderers():
    assert sc.render_arg("socket", "domain", socket.AF_PACKET) == "AF_PACKET"
    assert sc.render_arg("socket", "domain", socket.AF_INET6) == "AF_INET6"
    assert sc.render_arg("ptrace", "request", 16) == "PTRACE_ATTACH"
    assert sc.render_arg("ptrace", "request", 0x4206) == "PTRACE_SEIZE"
    assert sc.render_arg("unshare", "flags", 0x20000 | 0x10000000) == "CLONE_NEWNS|CLONE_NEWUSER"
    assert sc.render_arg("unlinkat", "flags", 0x200) == "AT_REMOVEDIR"
    assert sc.render_arg("memfd_create", "flags", 1) == "MFD_CLOEXEC"
    assert sc.render_arg("openat", "mode", 0o644) == "0644"
    assert sc.render_arg("openat", "fd", -errno.ENOENT) == "ENOENT"
    assert sc.render_arg("openat", "fd", 3) == "3"
    assert sc.render_arg("openat", "name", b"/etc/x") == "/etc/x"
    assert sc.render_arg("openat", "name", None) is None
    assert sc.render_arg("execve", "args", ["-l", "/tmp"]) == "-l /tmp"


@pytest.mark.parametrize("res, text", [(0, "SUCCESS"), (5, "SUCCESS"),
                                       (-errno.EACCES, "EACCES"), (-errno.EPERM, "EPERM"),
                                       (-9999, "-9999")])
def test_errno_names(res, text):
    assert sc.render_errno(res) == text


def test_real_open_flags_from_a_real_open(tmp_path):
    """The flags Python's open() passes, rendered: what a live capture of it would show."""
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        assert sc.render_arg("openat", "flags", flags) == "O_TRUNC|O_CREAT|O_WRONLY|O_CLOEXEC"
    finally:
        os.close(fd)


def test_chmod_modes_print_as_falcos_mode_flags():
    from syswarden.core.syscalls import render_arg
    text = render_arg("fchmodat", "mode", 0o4755)
    assert set(text.split("|")) == {"S_IXOTH", "S_IROTH", "S_IXGRP", "S_IRGRP", "S_IXUSR",
                                     "S_IWUSR", "S_IRUSR", "S_ISUID"}
    assert render_arg("openat", "mode", 0o644) == "0644"  # open's mode stays octal, as in Falco
