"""Compile and attach the BPF program in a short-lived helper process, keep only the fds.

bcc compiles with LLVM in-process: importing it and compiling costs the process about 150 MB
that stays resident.  The agent therefore never imports bcc itself.  It runs this file as a
helper (``python .../loader.py``: by its path, so that the helper imports nothing of syswarden),
sends it the program text and the tracepoints to attach, and receives over a unix socket
(``SCM_RIGHTS``) the file descriptors that keep everything alive: one perf event per attached
tracepoint, one link per fexit program (closing it detaches the program) and the maps (the two
rings, the drop counters).  The helper then exits.

The compile is most of the agent's start-up, so it may be started early (:func:`start`) and run
beside the rest of the start-up: nothing is attached until the agent says so
(:meth:`Pending.finish`), once its own state (the process table's ``/proc`` snapshot) is built.

Protocol on the socket: the agent sends one line, a JSON document (``{"text": ..., "tracepoints":
[[tp, fn], ...]}``); the helper compiles the program and loads its programs into the kernel (the
verifier checks them then), attaching nothing.  Then the agent sends the line ``attach`` (or
closes the socket: the helper exits, having attached nothing); the helper attaches and answers
with one message whose data is a JSON document (``{"maps": [names], "attached": [tps],
"missing": [tps], "seconds": {"import": s, "compile": s, "wait": s, "attach": s}}``, the
helper's own phases: ``compile`` includes loading the programs, ``wait`` is the time it waited
for ``attach``; or ``{"error": ..., "hint": ...}``, sent as soon as a step fails) and whose
ancillary data carries the fds, maps first, then the perf events in the order of ``attached``.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
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
    #: the helper's phases: bcc imported, the program compiled and loaded, the wait for the
    #: agent's word, the hooks attached
    seconds: dict[str, float] = field(default_factory=dict)


class LoadError(Exception):
    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.hint = hint


#: Seconds the helper may take to compile, load and attach (~1-2 s on a quiet machine).
LOAD_TIMEOUT = 120.0


class Pending:
    """A helper compiling and loading a program; it attaches nothing before :meth:`finish`."""

    def __init__(self, text: str, tracepoints: list[tuple[str, str]],
                 timeout: float | None = None) -> None:
        self.timeout = timeout or LOAD_TIMEOUT
        self.started = time.monotonic()
        self.sock, child = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # -P: its folder is not put on sys.path (its modules are not top-level ones)
            self.proc = subprocess.Popen([sys.executable, "-P", os.path.abspath(__file__),
                                          str(child.fileno()), str(os.getpid())],
                                         pass_fds=[child.fileno()], stdin=subprocess.DEVNULL,
                                         stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        except BaseException:
            self.sock.close()
            raise
        finally:
            child.close()
        request = json.dumps({"text": text, "tracepoints": tracepoints})
        try:
            self.sock.sendall(request.encode() + b"\n")
        except OSError:
            pass        # the helper has gone already: finish() says why

    def finish(self) -> Loaded:
        """Let the helper attach once it has loaded the program; return the fds it passed
        (blocking until then, up to the timeout counted from the start)."""
        chunks: list[bytes] = []
        fds: list[int] = []
        proc = self.proc
        try:
            try:
                self.sock.sendall(b"attach\n")
            except OSError:
                pass    # it has failed and gone: its answer says why
            deadline = self.started + self.timeout
            while True:
                self.sock.settimeout(max(0.001, deadline - time.monotonic()))
                data, got, _flags, _addr = socket.recv_fds(self.sock, 1 << 20, 1024)
                fds += got
                if not data:
                    break
                chunks.append(data)
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            proc.wait(max(0.001, deadline - time.monotonic()))
        except (TimeoutError, subprocess.TimeoutExpired):
            proc.kill()
            proc.wait()
            for fd in fds:
                os.close(fd)
            raise LoadError(f"the BPF loader did not finish within {self.timeout:g} s "
                            "(compiling, loading and attaching the program)",
                            "a machine this loaded compiles slowly: try again when it is "
                            "quieter") from None
        finally:
            self._close()
        try:
            reply = json.loads(b"".join(chunks) or b"{}")
        except ValueError:
            reply = {}
        if "error" in reply or not reply:
            for fd in fds:
                os.close(fd)
            raise LoadError(reply.get("error") or
                            f"the BPF loader failed: {err.strip()[-500:]}",
                            reply.get("hint", ""))
        names, attached = reply["maps"], reply["attached"]
        maps = dict(zip(names, fds[:len(names)]))
        perf = dict(zip(attached, fds[len(names):]))
        return Loaded(maps, perf, reply.get("missing", []), reply.get("seconds", {}))

    def cancel(self) -> None:
        """Give up: the helper ends without attaching anything."""
        self._close()
        self.proc.kill()
        self.proc.wait()

    def _close(self) -> None:
        self.sock.close()
        if self.proc.stderr:
            self.proc.stderr.close()


def start(text: str, tracepoints: list[tuple[str, str]],
          timeout: float | None = None) -> Pending:
    """Start a helper compiling and loading the program (returns at once)."""
    return Pending(text, tracepoints, timeout)


def load(text: str, tracepoints: list[tuple[str, str]], timeout: float | None = None) -> Loaded:
    """Run the helper to the end; return the fds it passed (blocking: ~1-2 s)."""
    return start(text, tracepoints, timeout).finish()


# ---------------------------------------------------------------------------------------------
# The helper side
# ---------------------------------------------------------------------------------------------

#: fexit mode hooks (``fentry:<function>``, ``fexit:<function>``) -> where bcc keeps their fds.
KFUNC_HOOKS = {"fentry": "kfunc_entry_fds", "fexit": "kfunc_exit_fds"}
#: The hook category of a raw tracepoint program (``raw_tp:sys_exit``: program.tracepoints()).
RAW_TP = "raw_tp"

HINT = "run `make setup` (installs python3-bpfcc and links the kernel headers), as root"


def _prog_type(bpf_class: Any, cat: str) -> int:
    """bcc's program type for a hook category."""
    if cat in KFUNC_HOOKS:
        return bpf_class.TRACING
    return bpf_class.RAW_TRACEPOINT if cat == RAW_TP else bpf_class.TRACEPOINT


def _helper(sock: socket.socket) -> None:
    lines = sock.makefile("rb")
    req = json.loads(lines.readline() or b"null")
    if req is None:
        return                        # the agent has gone
    t0 = time.perf_counter()
    try:
        import bcc  # noqa: PLC0415
    except Exception as exc:
        _reply(sock, {"error": f"the eBPF source needs bcc, which cannot be imported ({exc})",
                      "hint": HINT})
        return

    class Deferred(bcc.BPF):
        """bcc attaches the kfunc__/kretfunc__ programs it compiles at once: here not before
        the agent's ``attach``."""

        def _trace_autoload(self) -> None:
            pass

    t1 = time.perf_counter()
    hooks = [(tp, fn, *tp.split(":", 1)) for tp, fn in req["tracepoints"]]
    missing = [tp for tp, _fn, cat, name in hooks if cat not in KFUNC_HOOKS and cat != RAW_TP
               and not os.path.isdir(f"{TRACEFS}/events/{cat}/{name}")]
    try:
        bpf = Deferred(text=req["text"].encode(), cflags=["-Wno-unused-function"])
        _load_all(bpf, [(fn, _prog_type(bcc.BPF, cat)) for tp, fn, cat, _name in hooks
                        if tp not in missing])
    except Exception as exc:
        _reply(sock, {"error": f"the BPF program could not be compiled or loaded: {exc}",
                      "hint": HINT})
        return
    t2 = time.perf_counter()
    if lines.readline() != b"attach\n":
        return                        # the agent has gone: nothing was attached
    t3 = time.perf_counter()
    attached, fds = [], []
    for tp, fn, cat, name in hooks:
        if tp in missing or tp in attached:
            continue
        try:
            if cat in KFUNC_HOOKS:
                (bpf.attach_kfunc if cat == "fentry" else bpf.attach_kretfunc)(fn_name=fn.encode())
                fds.append(getattr(bpf, KFUNC_HOOKS[cat])[fn.encode()])
            elif cat == RAW_TP:       # a raw tracepoint program (sys_enter, sys_exit)
                bpf.attach_raw_tracepoint(tp=name.encode(), fn_name=fn.encode())
                fds.append(bpf.raw_tracepoint_fds[name.encode()])
            else:
                bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
                fds.append(bpf.tracepoint_fds[tp.encode()])
        except Exception as exc:
            _reply(sock, {"error": f"could not attach {fn} to {tp}: {exc}", "hint": HINT})
            return
        attached.append(tp)
    map_fds = [bpf[name.encode()].map_fd for name in MAPS]
    seconds = {"import": t1 - t0, "compile": t2 - t1, "wait": t3 - t2,
               "attach": time.perf_counter() - t3}
    _reply(sock, {"maps": list(MAPS), "attached": attached, "missing": missing,
                  "seconds": seconds}, map_fds + fds)
    # exit without bcc's cleanup (which would detach): the agent now holds the fds
    os._exit(0)


def _load_all(bpf: Any, funcs: list[tuple[str, int]]) -> None:
    """Load (the kernel verifies) every program now, attached when told: on two threads, the
    largest first, as the verifier runs in each loading thread's own system call (the
    prefilters' scans make the open handlers the longest to verify: about half the load with
    Falco's rules).  Raises the first failure."""
    import bcc  # noqa: PLC0415

    def size(fn: str) -> int:
        return bcc.lib.bpf_function_size(bpf.module, fn.encode())

    order = sorted(dict(funcs).items(), key=lambda item: -size(item[0]))
    with ThreadPoolExecutor(max_workers=min(2, os.cpu_count() or 1)) as pool:
        for done in [pool.submit(bpf.load_func, fn.encode(), kind) for fn, kind in order]:
            done.result()


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


_PR_SET_PDEATHSIG = 1


if __name__ == "__main__":
    # killed with the agent (a compile it gave up need not run to its end)
    _libc.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
    if os.getppid() == int(sys.argv[2]):
        _helper(socket.socket(fileno=int(sys.argv[1])))
