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

import ctypes
import errno
import functools
import os
import platform

from .loader import _SYS_BPF, _libc

_BPF_PROG_LOAD = 5
_BPF_RAW_TRACEPOINT_OPEN = 17
_PROG_TYPE_TRACING = 26
_TRACE_FEXIT = 25
# r0 = 0; exit
_INSNS = bytes([0xb7, 0, 0, 0, 0, 0, 0, 0, 0x95, 0, 0, 0, 0, 0, 0, 0])


class _ProgLoad(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * 16),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32),
                ("attach_prog_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32 * 9)]


class _RawTpOpen(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32),
                ("pad", ctypes.c_uint32 * 5)]


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    fd = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    if fd < 0:
        raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
    return fd


@functools.cache
def probe(func_id: int | None) -> tuple[bool, str]:
    """(usable, why not) for an fexit program on the kernel function of BTF id ``func_id``
    (None: the kernel has no such function).  Loads and attaches an empty program there, then
    closes both.  Cached: the answer does not change while the system runs."""
    if platform.machine() != "x86_64":
        return False, "fexit programs are used on x86_64 only"
    if func_id is None:
        return False, "the kernel's BTF does not have the syscall functions"
    insns = ctypes.create_string_buffer(_INSNS, len(_INSNS))
    license_ = ctypes.create_string_buffer(b"GPL")
    attr = _ProgLoad(prog_type=_PROG_TYPE_TRACING, insn_cnt=len(_INSNS) // 8,
                     insns=ctypes.addressof(insns), license=ctypes.addressof(license_),
                     prog_name=b"sw_probe", expected_attach_type=_TRACE_FEXIT,
                     attach_btf_id=func_id)
    try:
        prog = _bpf(_BPF_PROG_LOAD, attr)
    except OSError as exc:
        return False, f"the kernel refuses fexit programs ({_name(exc)})"
    try:
        link = _bpf(_BPF_RAW_TRACEPOINT_OPEN, _RawTpOpen(name=0, prog_fd=prog))
    except OSError as exc:
        return False, f"the kernel cannot attach fexit programs ({_name(exc)})"
    finally:
        os.close(prog)
    os.close(link)
    return True, ""


def _name(exc: OSError) -> str:
    return f"{errno.errorcode.get(exc.errno, exc.errno)}: {exc.strerror}"
