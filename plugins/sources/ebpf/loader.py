"""Compile and attach the BPF program in a short-lived helper process, keep only the fds.

bcc compiles with LLVM in-process: importing it and compiling costs the process about 150 MB
that stays resident.  The agent therefore never imports bcc itself.  It starts this module as
a helper (``python -m syswarden.plugins.sources.ebpf.loader``), sends it the program text and
the tracepoints to attach, and receives over a unix socket (``SCM_RIGHTS``) the file
descriptors that keep everything alive: one perf event per attached tracepoint, one link per
fexit program (closing it detaches the program) and the maps (the two rings, the drop
counters).  The helper then exits.

Protocol on the socket: the agent sends one JSON document (``{"text": ..., "tracepoints":
[[tp, fn], ...]}``) and shuts down its write side; the helper answers with one message whose
data is a JSON document (``{"maps": [names], "attached": [tps], "missing": [tps], "seconds":
{"import": s, "compile": s, "attach": s}}``, the helper's own phases, or
``{"error": ..., "hint": ...}``) and whose ancillary data carries the fds, maps first, then the
perf events in the order of ``attached``.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from typing import Any

MAPS = ("proc_ring", "evt_ring", "counters", "proc_names", "rule_names", "names_ready",
        "host_cgroups")
TRACEFS = "/sys/kernel/tracing"


@dataclass
class Loaded:
    maps: dict[str, int]
    attached: dict[str, int]            # hook -> its fd (a perf event, an fexit link)
    missing: list[str] = field(default_factory=list)
    #: the helper's phases: bcc imported, the program compiled and loaded, the hooks attached
    seconds: dict[str, float] = field(default_factory=dict)


class LoadError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


#: Seconds the helper may take to compile, load and attach (~1-2 s on a quiet machine).
LOAD_TIMEOUT = 120.0


def load(text: str, tracepoints: list[tuple[str, str]], timeout: float | None = None) -> Loaded:
    """Run the helper; return the fds it passed (blocking: ~1-2 s)."""
    timeout = timeout or LOAD_TIMEOUT
    parent, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    chunks: list[bytes] = []
    fds: list[int] = []
    try:
        proc = subprocess.Popen([sys.executable, "-m", __name__, str(child.fileno())],
                                pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        child.close()
        parent.sendall(json.dumps({"text": text, "tracepoints": tracepoints}).encode())
        parent.shutdown(socket.SHUT_WR)
        parent.settimeout(timeout)
        while True:
            data, got, _flags, _addr = socket.recv_fds(parent, 1 << 20, 1024)
            fds += got
            if not data:
                break
            chunks.append(data)
        err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
        proc.wait(timeout)
    except (TimeoutError, subprocess.TimeoutExpired):
        proc.kill()
        proc.wait()
        for fd in fds:
            os.close(fd)
        raise LoadError(f"the BPF loader did not finish within {timeout:g} s (compiling, "
                        "loading and attaching the program)",
                        "a machine this loaded compiles slowly: try again when it is quieter"
                        ) from None
    finally:
        parent.close()
    try:
        reply = json.loads(b"".join(chunks) or b"{}")
    except ValueError:
        reply = {}
    if "error" in reply or not reply:
        for fd in fds:
            os.close(fd)
        raise LoadError(reply.get("error") or f"the BPF loader failed: {err.strip()[-500:]}",
                        reply.get("hint", ""))
    names, attached = reply["maps"], reply["attached"]
    maps = dict(zip(names, fds[:len(names)]))
    perf = dict(zip(attached, fds[len(names):]))
    return Loaded(maps, perf, reply.get("missing", []), reply.get("seconds", {}))


# ---------------------------------------------------------------------------------------------
# The helper side
# ---------------------------------------------------------------------------------------------

#: fexit mode hooks (``fentry:<function>``, ``fexit:<function>``) -> where bcc keeps their fds.
KFUNC_HOOKS = {"fentry": "kfunc_entry_fds", "fexit": "kfunc_exit_fds"}
#: The hook category of a raw tracepoint program (``raw_tp:sys_exit``: program.tracepoints()).
RAW_TP = "raw_tp"

HINT = "run `make setup` (installs python3-bpfcc and links the kernel headers), as root"


def _helper(sock: socket.socket) -> None:
    buf = b""
    while True:
        data = sock.recv(1 << 20)
        if not data:
            break
        buf += data
    req = json.loads(buf)
    t0 = time.perf_counter()
    try:
        import bcc  # noqa: PLC0415
    except Exception as exc:
        _reply(sock, {"error": f"the eBPF source needs bcc, which cannot be imported ({exc})",
                      "hint": HINT})
        return
    t1 = time.perf_counter()
    try:
        bpf = bcc.BPF(text=req["text"].encode(), cflags=["-Wno-unused-function"])
    except Exception as exc:
        _reply(sock, {"error": f"the BPF program could not be compiled or loaded: {exc}",
                      "hint": HINT})
        return
    t2 = time.perf_counter()
    attached, missing, fds = [], [], []
    for tp, fn in req["tracepoints"]:
        cat, name = tp.split(":", 1)
        if cat in KFUNC_HOOKS:   # bcc attached it while loading (kfunc__/kretfunc__ names)
            # (bcc 0.26 keys it by the program's name; later ones may qualify it with the
            # module, kfunc__vmlinux__<function>)
            fds_by_prog = getattr(bpf, KFUNC_HOOKS[cat])
            key = next((k for k in fds_by_prog if k == fn.encode()
                        or k.endswith(b"__" + name.encode())), None)
            if key is None:
                _reply(sock, {"error": f"bcc did not attach {fn} to {tp}", "hint": HINT})
                return
            attached.append(tp)
            fds.append(fds_by_prog[key])
            continue
        if cat == RAW_TP:        # a raw tracepoint program (sys_enter, sys_exit)
            attach, fds_of, key = bpf.attach_raw_tracepoint, bpf.raw_tracepoint_fds, name
        else:
            if not os.path.isdir(f"{TRACEFS}/events/{cat}/{name}"):
                missing.append(tp)
                continue
            attach, fds_of, key = bpf.attach_tracepoint, bpf.tracepoint_fds, tp
        if tp in attached:
            continue
        try:
            attach(tp=key.encode(), fn_name=fn.encode())
        except Exception as exc:
            _reply(sock, {"error": f"could not attach {fn} to {tp}: {exc}", "hint": HINT})
            return
        attached.append(tp)
        fds.append(fds_of[key.encode()])
    map_fds = [bpf[name.encode()].map_fd for name in MAPS]
    seconds = {"import": t1 - t0, "compile": t2 - t1, "attach": time.perf_counter() - t2}
    _reply(sock, {"maps": list(MAPS), "attached": attached, "missing": missing,
                  "seconds": seconds}, map_fds + fds)
    # exit without bcc's cleanup (which would detach): the agent now holds the fds
    os._exit(0)


def _reply(sock: socket.socket, doc: dict[str, Any], fds: list[int] = ()) -> None:
    socket.send_fds(sock, [json.dumps(doc).encode()], list(fds))
    sock.close()


# ---------------------------------------------------------------------------------------------
# Reading a per-CPU array map without bcc: the bpf(2) syscall
# ---------------------------------------------------------------------------------------------

_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(os.uname().machine, 321)
_BPF_MAP_LOOKUP_ELEM = 1
_BPF_MAP_UPDATE_ELEM = 2
_BPF_MAP_GET_NEXT_KEY = 4
BPF_ANY, BPF_NOEXIST = 0, 1
_libc = ctypes.CDLL(None, use_errno=True)


class _MapAttr(ctypes.Structure):
    _fields_ = [("map_fd", ctypes.c_uint32), ("pad", ctypes.c_uint32),
                ("key", ctypes.c_uint64), ("value", ctypes.c_uint64),
                ("flags", ctypes.c_uint64)]


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
    attr = _MapAttr(map_fd, 0, ctypes.addressof(k), ctypes.addressof(values), 0)
    rc = _libc.syscall(_SYS_BPF, _BPF_MAP_LOOKUP_ELEM, ctypes.byref(attr), ctypes.sizeof(attr))
    if rc != 0:
        raise OSError(ctypes.get_errno(), "bpf(BPF_MAP_LOOKUP_ELEM) failed")
    return sum(values)



def _map_call(cmd: int, map_fd: int, key: Any, value: Any, flags: int = 0) -> int:
    attr = _MapAttr(map_fd, 0, ctypes.addressof(key), ctypes.addressof(value), flags)
    rc = _libc.syscall(_SYS_BPF, cmd, ctypes.byref(attr), ctypes.sizeof(attr))
    return 0 if rc == 0 else ctypes.get_errno()


def map_update(map_fd: int, key: bytes, value: bytes, flags: int = BPF_ANY) -> bool:
    """Write one element of a map; False when it was not written (``BPF_NOEXIST`` and the key
    is there, or the map is full).  Raises OSError for another failure."""
    k = ctypes.create_string_buffer(key, len(key))
    v = ctypes.create_string_buffer(value, len(value))
    err = _map_call(_BPF_MAP_UPDATE_ELEM, map_fd, k, v, flags)
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
        rc = _libc.syscall(_SYS_BPF, _BPF_MAP_GET_NEXT_KEY, ctypes.byref(attr),
                           ctypes.sizeof(attr))
        if rc != 0:
            return out
        first = False
        ctypes.memmove(key, nxt, key_size)
        if _map_call(_BPF_MAP_LOOKUP_ELEM, map_fd, key, value) == 0:
            out.append((key.raw, value.raw))


if __name__ == "__main__":
    _helper(socket.socket(fileno=int(sys.argv[1])))
