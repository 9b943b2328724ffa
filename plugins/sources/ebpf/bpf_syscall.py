"""The bpf(2) and perf_event_open(2) system calls the source makes without bcc.

The agent never imports bcc (:mod:`.loader`): it reads and writes the maps it was handed with
these calls.  The loader helper also uses them to load a program kept from an earlier start
(:mod:`.compiled`) without compiling it: create its maps, load its programs, attach them to
tracepoints.  This module imports nothing but the standard library, so that the helper, which
imports nothing of syswarden, can load it by its path.

Layouts are the kernel's (``include/uapi/linux/bpf.h``, ``perf_event.h``): each attribute
structure here holds the fields up to the last one set, the rest being zero for the kernel.
"""

from __future__ import annotations

import ctypes
import fcntl
import os
from typing import Any

_MACHINE = os.uname().machine
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(_MACHINE, 321)
_SYS_PERF_EVENT_OPEN = {"x86_64": 298, "aarch64": 241}.get(_MACHINE, 298)

# bpf(2) commands
_MAP_CREATE = 0
_MAP_LOOKUP_ELEM = 1
_MAP_UPDATE_ELEM = 2
_MAP_GET_NEXT_KEY = 4
_PROG_LOAD = 5
_OBJ_GET_INFO_BY_FD = 15
_RAW_TRACEPOINT_OPEN = 17

BPF_ANY, BPF_NOEXIST = 0, 1
OBJ_NAME_LEN = 16

_libc = ctypes.CDLL(None, use_errno=True)


class BpfError(OSError):
    """A bpf(2) or perf_event_open(2) call the kernel refused; ``log`` is the verifier's."""

    def __init__(self, err: int, what: str, log: str = "") -> None:
        super().__init__(err, f"{what}: {os.strerror(err)}" + (f"\n{log}" if log else ""))
        self.log = log


def _bpf(cmd: int, attr: ctypes.Structure) -> int:
    """The call's result (a file descriptor for the commands that make one), or -errno."""
    rc = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    return rc if rc >= 0 else -ctypes.get_errno()


# -- maps -------------------------------------------------------------------------------------

class _MapAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


class _MapCreateAttr(ctypes.Structure):
    _fields_ = [("map_type", ctypes.c_uint32), ("key_size", ctypes.c_uint32),
                ("value_size", ctypes.c_uint32), ("max_entries", ctypes.c_uint32),
                ("map_flags", ctypes.c_uint32), ("inner_map_fd", ctypes.c_uint32),
                ("numa_node", ctypes.c_uint32), ("map_name", ctypes.c_char * OBJ_NAME_LEN)]


class _InfoAttr(ctypes.Structure):
    _fields_ = [("bpf_fd", ctypes.c_uint32), ("info_len", ctypes.c_uint32),
                ("info", ctypes.c_uint64)]


class _MapInfo(ctypes.Structure):
    _fields_ = [("type", ctypes.c_uint32), ("id", ctypes.c_uint32),
                ("key_size", ctypes.c_uint32), ("value_size", ctypes.c_uint32),
                ("max_entries", ctypes.c_uint32), ("map_flags", ctypes.c_uint32),
                ("name", ctypes.c_char * OBJ_NAME_LEN)]


#: What defines a map: enough to create the same one again (:func:`map_create`).
MAP_FIELDS = ("type", "key_size", "value_size", "max_entries", "map_flags", "name")


def map_info(map_fd: int) -> dict[str, Any]:
    """The kernel's description of a map (the :data:`MAP_FIELDS`)."""
    info = _MapInfo()
    attr = _InfoAttr(map_fd, ctypes.sizeof(info), ctypes.addressof(info))
    rc = _bpf(_OBJ_GET_INFO_BY_FD, attr)
    if rc < 0:
        raise BpfError(-rc, "bpf(BPF_OBJ_GET_INFO_BY_FD) on a map")
    return {f: getattr(info, f).decode() if f == "name" else getattr(info, f)
            for f in MAP_FIELDS}


def map_create(defn: dict[str, Any]) -> int:
    """A new map as :func:`map_info` described one; its file descriptor."""
    attr = _MapCreateAttr(int(defn["type"]), int(defn["key_size"]), int(defn["value_size"]),
                          int(defn["max_entries"]), int(defn["map_flags"]), 0, 0,
                          str(defn["name"]).encode()[:OBJ_NAME_LEN - 1])
    fd = _bpf(_MAP_CREATE, attr)
    if fd < 0:
        raise BpfError(-fd, f"bpf(BPF_MAP_CREATE) for the map {defn['name']}")
    return fd


def _map_call(cmd: int, map_fd: int, key: Any, value: Any, flags: int = 0) -> int:
    attr = _MapAttr(map_fd, 0, ctypes.addressof(key), ctypes.addressof(value), flags)
    rc = _bpf(cmd, attr)
    return 0 if rc >= 0 else -rc


def possible_cpus() -> int:
    """Number of possible CPUs (the size of a per-CPU map value), from sysfs."""
    try:
        text = open("/sys/devices/system/cpu/possible").read().strip()
    except OSError:
        return os.cpu_count() or 1
    n = 0
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        n = max(n, int(hi or lo) + 1)
    return n


def percpu_u64_sum(map_fd: int, key: int, ncpu: int) -> int:
    """The sum over CPUs of a u64 per-CPU array element."""
    k = ctypes.c_uint32(key)
    values = (ctypes.c_uint64 * ncpu)()
    err = _map_call(_MAP_LOOKUP_ELEM, map_fd, k, values)
    if err:
        raise OSError(err, "bpf(BPF_MAP_LOOKUP_ELEM) failed")
    return sum(values)


def map_update(map_fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> bool:
    """Write one element of a map; False when it was not written (``BPF_NOEXIST`` and the key
    is there, or the map is full).  Raises OSError for another failure."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    err = _map_call(_MAP_UPDATE_ELEM, map_fd, k, v, flags)
    if err in (0, 17, 7):                   # EEXIST, E2BIG (full)
        return not err
    raise OSError(err, "bpf(BPF_MAP_UPDATE_ELEM) failed")


def map_items(map_fd: int, key_size: int, value_size: int) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a hash map (an element removed meanwhile is left out)."""
    out: list[tuple[bytes, bytes]] = []
    key = ctypes.create_string_buffer(key_size)
    nxt = ctypes.create_string_buffer(key_size)
    value = ctypes.create_string_buffer(value_size)
    first = True
    while True:
        attr = _MapAttr(map_fd, 0, 0 if first else ctypes.addressof(key),
                        ctypes.addressof(nxt), 0)
        if _bpf(_MAP_GET_NEXT_KEY, attr) < 0:
            return out
        first = False
        ctypes.memmove(key, nxt, key_size)
        if _map_call(_MAP_LOOKUP_ELEM, map_fd, key, value) == 0:
            out.append((key.raw, value.raw))


# -- programs ---------------------------------------------------------------------------------

class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32), ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64), ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32), ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64), ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32), ("prog_name", ctypes.c_char * OBJ_NAME_LEN),
                ("prog_ifindex", ctypes.c_uint32), ("expected_attach_type", ctypes.c_uint32),
                ("prog_btf_fd", ctypes.c_uint32), ("func_info_rec_size", ctypes.c_uint32),
                ("func_info", ctypes.c_uint64), ("func_info_cnt", ctypes.c_uint32),
                ("line_info_rec_size", ctypes.c_uint32), ("line_info", ctypes.c_uint64),
                ("line_info_cnt", ctypes.c_uint32), ("attach_btf_id", ctypes.c_uint32)]


#: Bytes of the verifier's log kept when a program is refused (its end says why).
LOG_SIZE = 1 << 20


PROG_TYPE_TRACING = 26
TRACE_FENTRY, TRACE_FEXIT = 24, 25


def prog_load(prog_type: int, name: str, insns: bytes, license: str, kern_version: int = 0,
              expected_attach_type: int = 0, attach_btf_id: int = 0) -> int:
    """Load a program (the kernel verifies it, in this thread's call); its file descriptor.
    A refusal is loaded once more with the verifier's log, which the error then carries."""
    code = ctypes.create_string_buffer(insns, len(insns))
    lic = ctypes.create_string_buffer(license.encode())
    attr = _ProgLoadAttr(prog_type=prog_type, insn_cnt=len(insns) // 8,
                         insns=ctypes.addressof(code), license=ctypes.addressof(lic),
                         kern_version=kern_version, prog_name=name.encode()[:OBJ_NAME_LEN - 1],
                         expected_attach_type=expected_attach_type,
                         attach_btf_id=attach_btf_id)
    fd = _bpf(_PROG_LOAD, attr)
    if fd >= 0:
        return fd
    log = ctypes.create_string_buffer(LOG_SIZE)
    attr.log_level, attr.log_size, attr.log_buf = 1, LOG_SIZE, ctypes.addressof(log)
    again = _bpf(_PROG_LOAD, attr)
    if again >= 0:                          # loaded the second time: keep it
        return again
    text = log.value.decode(errors="replace").strip()
    raise BpfError(-fd, f"bpf(BPF_PROG_LOAD) for {name}", "\n".join(text.splitlines()[-20:]))


# -- attaching --------------------------------------------------------------------------------

class _RawTpAttr(ctypes.Structure):
    _fields_ = [("name", ctypes.c_uint64), ("prog_fd", ctypes.c_uint32),
                ("pad", ctypes.c_uint32)]


def raw_tracepoint_open(name: str | None, prog_fd: int) -> int:
    """Attach a raw tracepoint program (``sys_enter``...), or (``name`` None) a tracing program
    where it was loaded for (fexit); the link's fd (closing it detaches)."""
    tp = ctypes.create_string_buffer(name.encode()) if name is not None else None
    fd = _bpf(_RAW_TRACEPOINT_OPEN, _RawTpAttr(ctypes.addressof(tp) if tp else 0, prog_fd, 0))
    if fd < 0:
        raise BpfError(-fd, f"bpf(BPF_RAW_TRACEPOINT_OPEN) on {name or 'its function'}")
    return fd


class _PerfEventAttr(ctypes.Structure):        # PERF_ATTR_SIZE_VER0
    _fields_ = [("type", ctypes.c_uint32), ("size", ctypes.c_uint32),
                ("config", ctypes.c_uint64), ("sample_period", ctypes.c_uint64),
                ("sample_type", ctypes.c_uint64), ("read_format", ctypes.c_uint64),
                ("flags", ctypes.c_uint64), ("wakeup_events", ctypes.c_uint32),
                ("bp_type", ctypes.c_uint32), ("config1", ctypes.c_uint64)]


_PERF_TYPE_TRACEPOINT = 2
_PERF_SAMPLE_RAW = 1 << 10
_PERF_FLAG_FD_CLOEXEC = 1 << 3
_PERF_EVENT_IOC_ENABLE = 0x2400
_PERF_EVENT_IOC_SET_BPF = 0x40042408


def attach_tracepoint(tracefs: str, category: str, event: str, prog_fd: int) -> int:
    """Attach a tracepoint program as bcc does (a perf event of the tracepoint on CPU 0 for
    every process, the program set on it, enabled); the perf event's fd (closing detaches)."""
    with open(f"{tracefs}/events/{category}/{event}/id") as f:
        tp_id = int(f.read())
    attr = _PerfEventAttr(_PERF_TYPE_TRACEPOINT, ctypes.sizeof(_PerfEventAttr), tp_id, 1,
                          _PERF_SAMPLE_RAW, 0, 0, 1, 0, 0)
    fd = _libc.syscall(_SYS_PERF_EVENT_OPEN, ctypes.byref(attr), -1, 0, -1,
                       _PERF_FLAG_FD_CLOEXEC)
    if fd < 0:
        raise BpfError(ctypes.get_errno(), f"perf_event_open on {category}:{event}")
    try:
        fcntl.ioctl(fd, _PERF_EVENT_IOC_SET_BPF, prog_fd)
        fcntl.ioctl(fd, _PERF_EVENT_IOC_ENABLE, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd
