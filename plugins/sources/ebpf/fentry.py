"""Whether this kernel runs fexit programs, asked of the kernel itself in a few milliseconds.

A syscall tracepoint, once enabled, sends every syscall of every process through the kernel's
slow path (about 45 ns each here, watched or not: getppid 1.16x with the agent).  An fexit
program is attached to one kernel function, the syscall's own (``__x64_sys_openat``), and costs
nothing to the syscalls nobody follows.  Kernels allow it from 5.5 on x86_64 with BTF, unless
something forbids it (this machine's kernel answers EPERM).  :func:`probe` loads and attaches
a two-instruction fexit program through bpf(2) (no bcc, no compiler) to find out, before the
real program is rendered for one mode or the other.
"""

from __future__ import annotations

import errno
import functools
import os
import platform

from . import bpf_syscall

# r0 = 0; exit
_INSNS = bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


@functools.cache
def probe(func_id: int | None) -> tuple[bool, str]:
    """(usable, why not) for an fexit program on the kernel function of BTF id ``func_id``
    (None: the kernel has no such function).  Loads and attaches an empty program there, then
    closes both.  Cached: the answer does not change while the system runs."""
    if platform.machine() != "x86_64":
        return False, "fexit programs are used on x86_64 only"
    if func_id is None:
        return False, "the kernel's BTF does not have the syscall functions"
    try:
        prog = bpf_syscall.prog_load(bpf_syscall.PROG_TYPE_TRACING, "sw_probe", _INSNS, "GPL",
                                     expected_attach_type=bpf_syscall.TRACE_FEXIT,
                                     attach_btf_id=func_id)
    except OSError as exc:
        return False, f"the kernel refuses fexit programs ({_name(exc)})"
    try:
        link = bpf_syscall.raw_tracepoint_open(None, prog)
    except OSError as exc:
        return False, f"the kernel cannot attach fexit programs ({_name(exc)})"
    finally:
        os.close(prog)
    os.close(link)
    return True, ""


def _name(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno, exc.errno)}: {os.strerror(exc.errno)}"
