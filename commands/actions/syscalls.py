"""Falco's rules on single system calls: ptrace, setuid, setns, unshare, userfaultfd, bpf,
socket(AF_PACKET), dup2 onto a standard stream, memfd execution.  Each call is made for real
and changes nothing (it fails, or it is undone)."""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import sys

from .base import PYTHON, FalcoAction, Run, removed, sh


def exec_from_dev_shm(run: Run) -> None:
    path = f"/dev/shm/{run.token()}"
    with removed(path):
        shutil.copy2(shutil.which("true") or "/bin/true", path)
        sh(path)


def exec_from_memfd(run: Run) -> None:
    code = ("import os, shutil; fd = os.memfd_create('sw-gen', 0); "
            "os.write(fd, open(shutil.which('true'), 'rb').read()); "
            "os.execve(fd, ['sw-memfd-true'], {})")
    sh(sys.executable, "-c", code)


def setns_non_runtime(run: Run) -> None:
    # join the namespace we are already in: a real setns(2), changing nothing
    sh(sys.executable, "-c", "import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
                             "fd = os.open('/proc/self/ns/uts', os.O_RDONLY); libc.setns(fd, 0)")


def ptrace_attach(run: Run) -> None:
    child = subprocess.Popen(["sleep", "5"])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        attach, detach = 16, 17
        if libc.ptrace(attach, child.pid, None, None) == 0:
            os.waitpid(child.pid, 0)
            libc.ptrace(detach, child.pid, None, None)
    finally:
        child.kill()
        child.wait()


def ptrace_traceme(run: Run) -> None:
    sh(sys.executable, "-c", "import ctypes; ctypes.CDLL(None).ptrace(0, 0, None, None)")


def _as_daemon(code: str) -> None:
    """``code`` run by Python as the daemon user (real and effective ids)."""
    sh("setpriv", "--reuid=daemon", "--regid=daemon", "--clear-groups", PYTHON, "-c", code)


def non_sudo_setuid(run: Run) -> None:
    _as_daemon("import os\ntry: os.setuid(2)\nexcept OSError: pass")


def userfaultfd_unprivileged(run: Run) -> None:
    # UFFD_USER_MODE_ONLY: allowed to an unprivileged user; the fd is closed on exit
    _as_daemon("import ctypes; ctypes.CDLL(None).syscall(323, 1)")


def bpf_prog_load(run: Run) -> None:
    # BPF_PROG_LOAD with an empty attribute: refused by the kernel (EINVAL), nothing loaded
    sh(PYTHON, "-c", "import ctypes; attr = ctypes.create_string_buffer(128); "
                     "ctypes.CDLL(None).syscall(321, 5, attr, 128)")


def unshare_in_container(run: Run) -> None:
    run.in_container("busybox unshare -u true")


def packet_socket_in_container(run: Run) -> None:
    run.in_container("busybox arping -c 1 -w 1 -I lo 127.0.0.1")


def redirect_stdout_to_socket(run: Run) -> None:
    run.in_container("nc -l -p 9000 >/dev/null & sleep 0.3; "
                     "bash -c 'exec 1<>/dev/tcp/127.0.0.1/9000; echo sw-gen'; wait")


ACTIONS: tuple[FalcoAction, ...] = (
    FalcoAction("exec-from-dev-shm", ("Execution from /dev/shm",), "a binary run from /dev/shm",
                exec_from_dev_shm),
    FalcoAction("exec-from-memfd", ("Fileless execution via memfd_create",),
                "a binary run from a memfd (fileless)", exec_from_memfd),
    FalcoAction("setns-non-runtime", ("Change thread namespace",),
                "setns(2) by a process that is not a container runtime", setns_non_runtime),
    FalcoAction("ptrace-attach", ("PTRACE attached to process",),
                "PTRACE_ATTACH to a child sleep process", ptrace_attach),
    FalcoAction("ptrace-traceme", ("PTRACE anti-debug attempt",), "PTRACE_TRACEME",
                ptrace_traceme),
    FalcoAction("non-sudo-setuid", ("Non sudo setuid",),
                "setuid(2) by a process of the daemon user (refused)", non_sudo_setuid),
    FalcoAction("userfaultfd-unprivileged",
                ("Unprivileged Delegation of Page Faults Handling to a Userspace Process",),
                "userfaultfd(2) by the daemon user", userfaultfd_unprivileged),
    FalcoAction("bpf-prog-load", ("BPF Program Not Profiled",),
                "bpf(BPF_PROG_LOAD) with an empty program (refused)", bpf_prog_load),
    FalcoAction("unshare-in-container", ("Change namespace privileges via unshare",),
                "in the container: unshare(2) without CAP_SYS_ADMIN (refused)",
                unshare_in_container),
    FalcoAction("packet-socket-in-container", ("Packet socket created in container",),
                "in the container: arping opens an AF_PACKET socket", packet_socket_in_container),
    FalcoAction("redirect-stdout-to-socket",
                ("Redirect STDOUT/STDIN to Network Connection in Container",),
                "in the container: bash redirects its stdout to a TCP connection",
                redirect_stdout_to_socket),
)
