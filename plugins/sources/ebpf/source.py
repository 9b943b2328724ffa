"""The live source: load the BPF program with bcc, attach what is needed, read the rings.

* Attached: the sched lifecycle tracepoints, execve/execveat, the clone enters (their flags
  tell a thread from a process) and, for every syscall the rules need plus those the state
  tables need, its ``sys_enter_*``/``sys_exit_*`` pair.  :meth:`EbpfSource.set_event_types`
  attaches and detaches on a rule reload (recompiling only when a syscall not compiled in is
  asked for).
* Read: both ring buffers' map fds are awaited with ``trio.lowlevel.wait_readable``; when one is
  readable both are read through their mmap (the process ring first), the records are
  decoded with ``struct`` and sent as one batch, in time order.
* Counted: the kernel counts, per category, records attempted and records dropped (a full
  ring, a full map); :meth:`EbpfSource.drop_counts` and the ``drops.kernel.<category>``
  metrics report them.  Falco's ``syscall_event_drops`` behaviour (a drop ratio threshold,
  actions ``log``/``alert``, rate-limited) runs once a second.
"""

from __future__ import annotations

import ctypes
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import trio

from syswarden.core.errors import SourceError
from syswarden.core.event import Event

from . import program as P
from .decode import Decoder
from .ringbuf import MmapRing

log = logging.getLogger("syswarden.ebpf")

#: Kernel counter categories, in program.c's order (CAT_*).
CATEGORIES = ("proc", "events", "pending", "exec")
TRACEFS = "/sys/kernel/tracing"
HINT = "run `make setup` (installs python3-bpfcc and links the kernel headers), as root"


def _load_bcc() -> Any:
    try:
        import bcc  # noqa: PLC0415
    except Exception as exc:  # ImportError, or libbcc failing to load
        raise SourceError(f"the eBPF source needs bcc, which cannot be imported ({exc})",
                          hint=HINT) from None
    return bcc


def check_environment() -> None:
    """Fail early, with one clear message, when the live source cannot work here."""
    if os.geteuid() != 0:
        raise SourceError("the eBPF source needs root (loading BPF programs is privileged)",
                          hint="run syswarden as root, or replay a capture with -e FILE")
    _load_bcc()
    if not os.path.isdir(f"{TRACEFS}/events"):
        rc = os.system(f"mount -t tracefs nodev {TRACEFS} >/dev/null 2>&1")
        if rc != 0 or not os.path.isdir(f"{TRACEFS}/events"):
            raise SourceError(f"tracefs is not mounted at {TRACEFS} and could not be mounted",
                              hint=f"mount -t tracefs nodev {TRACEFS}")


def tracepoint_exists(tp: str) -> bool:
    cat, name = tp.split(":", 1)
    return os.path.isdir(f"{TRACEFS}/events/{cat}/{name}")


class DropMonitor:
    """Falco's ``syscall_event_drops``: once a second, when the share of events dropped in the
    last second exceeds ``threshold``, run the actions (``log``, ``alert``), rate-limited by a
    token bucket (``rate`` per second, ``max_burst``)."""

    def __init__(self, cfg: dict[str, Any], alert: Callable[[str, dict], None] | None) -> None:
        self.threshold = float(cfg.get("threshold", 0.1))
        self.actions = [a.lower() for a in cfg.get("actions", ["log", "alert"])]
        self.rate = float(cfg.get("rate", 0.03333))
        self.max_burst = float(cfg.get("max_burst", 1))
        self.simulate = bool(cfg.get("simulate_drops", False))
        self.tokens = self.max_burst
        self.last = time.monotonic()
        self.alert = alert
        self.fired = 0

    def check(self, attempted: int, dropped: dict[str, int]) -> bool:
        total = sum(dropped.values())
        if self.simulate:
            total = max(total, 1)
            attempted = max(attempted, total)
        if total == 0 or attempted == 0:
            return False
        ratio = total / attempted
        if ratio <= self.threshold:
            return False
        now = time.monotonic()
        self.tokens = min(self.max_burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        self.fired += 1
        detail = {f"n_drops_{k}": v for k, v in dropped.items()}
        detail["n_evts"] = attempted
        msg = (f"Falco internal: syscall event drop. {total} system calls dropped in last "
               f"second.")
        if "log" in self.actions:
            log.error("%s %s", msg, " ".join(f"{k}={v}" for k, v in detail.items()))
        if "alert" in self.actions:
            if self.alert is not None:
                self.alert(msg, detail)
            else:  # no alert sink offered by the agent: still never silent
                log.critical("%s (alert action) %s", msg,
                             " ".join(f"{k}={v}" for k, v in detail.items()))
        return True


class EbpfSource:
    """The live eBPF source (see the module docstring)."""

    name = "ebpf"

    def __init__(self, config: dict[str, Any], event_types: set[str] | None, agent_pid: int,
                 metrics: Any = None, alert: Callable[[str, dict], None] | None = None) -> None:
        self.cfg = {**P.DEFAULTS, **(config or {})}
        self.event_types = None if event_types is None else set(event_types)
        self.agent_pid = agent_pid
        self.metrics = metrics
        self.decoder = Decoder()
        self.bpf: Any = None
        self.attached: dict[str, str] = {}     # tracepoint -> function
        self.compiled: set[str] = set()        # syscalls with a compiled exit handler
        self.unavailable: list[str] = []       # tracepoints this kernel does not have
        self._batch: list[Event] = []
        self.rings: tuple = ()
        self._needs_reload = False
        self._switched = trio.Event()
        self._kernel_prev = [0] * (2 * len(CATEGORIES))
        self.drops = DropMonitor(self.cfg.get("syscall_event_drops") or {}, alert)
        self.delivered = 0
        self.received = {"proc": 0, "events": 0}   # records read from each ring
        self.poll_s = max(0.001, float(self.cfg["poll_ms"]) / 1000)
        self.decode_errors = 0

    # -- loading -------------------------------------------------------------------------------

    def program_text(self) -> str:
        return P.render_program(self.event_types, self.cfg, self.agent_pid)

    def _build(self) -> tuple[Any, dict[str, str], set[str], tuple[MmapRing, MmapRing]]:
        """Compile, load, map the rings and attach a new program for the current event types
        (blocking: about a second of clang).  Returns (bpf, attached, compiled, rings)."""
        check_environment()
        bcc = _load_bcc()
        try:
            bpf = bcc.BPF(text=self.program_text().encode(), cflags=["-Wno-unused-function"])
        except Exception as exc:
            raise SourceError(f"the BPF program could not be compiled or loaded: {exc}",
                              hint=HINT) from None
        rings = (MmapRing(bpf[b"proc_ring"].map_fd, P.ring_bytes(self.cfg["proc_ring_pages"])),
                 MmapRing(bpf[b"evt_ring"].map_fd, P.ring_bytes(self.cfg["evt_ring_pages"])))
        attached: dict[str, str] = {}
        self._attach(bpf, attached, P.tracepoints(self.event_types))
        return bpf, attached, set(P.needed_syscalls(self.event_types)), rings

    def load(self) -> None:
        """Load the program and attach (the first time)."""
        self.bpf, self.attached, self.compiled, self.rings = self._build()

    def _attach(self, bpf: Any, attached: dict[str, str],
                wanted: list[tuple[str, str]]) -> None:
        self.unavailable = []
        for tp, fn in wanted:
            if tp in attached:
                continue
            if not tracepoint_exists(tp):
                self.unavailable.append(tp)
                continue
            try:
                bpf.attach_tracepoint(tp=tp.encode(), fn_name=fn.encode())
            except Exception as exc:
                raise SourceError(f"could not attach {fn} to {tp}: {exc}", hint=HINT) from None
            attached[tp] = fn
        if self.unavailable:
            log.info("not on this kernel, not followed: %s", ", ".join(self.unavailable))

    @staticmethod
    def _detach(bpf: Any, tps: list[str]) -> None:
        """Detach tracepoints in parallel: each detach waits for an RCU grace period (~40 ms
        here), and concurrent waits share one."""
        if not tps:
            return
        with ThreadPoolExecutor(max_workers=min(32, len(tps))) as pool:
            list(pool.map(lambda tp: bpf.detach_tracepoint(tp=tp.encode()), tps))

    def set_event_types(self, types: set[str] | None) -> None:
        """Follow another set of syscalls (a rule reload): attach/detach now, or, when a
        syscall without a compiled handler is needed, let the reader build a new program and
        switch to it (the two overlap for the switch: a syscall ending in that window may be
        seen twice, none is missed)."""
        self.event_types = None if types is None else set(types)
        if self.bpf is None:
            return
        if not set(P.needed_syscalls(self.event_types)) <= self.compiled:
            self._needs_reload = True
            return
        wanted = dict(P.tracepoints(self.event_types))
        gone = [tp for tp in self.attached if tp not in wanted]
        self._detach(self.bpf, gone)
        for tp in gone:
            del self.attached[tp]
        self._attach(self.bpf, self.attached, list(wanted.items()))

    async def _switch(self) -> None:
        """Build the new program in a thread, switch the reader to it, retire the old one."""
        bpf, attached, compiled, rings = await trio.to_thread.run_sync(self._build)
        old, old_attached, old_rings = self.bpf, list(self.attached), self.rings
        self.bpf, self.attached, self.compiled, self.rings = bpf, attached, compiled, rings
        if old is not None:
            await trio.to_thread.run_sync(self._detach, old, old_attached)
            self._batch.extend(self._consume(old_rings))  # sent before it was detached
            self._account(old)
            for ring in old_rings:
                ring.close()
            old.cleanup()
        self._switched.set()

    def close(self) -> None:
        if self.bpf is not None:
            self._detach(self.bpf, list(self.attached))
            for ring in self.rings:
                ring.close()
            self.bpf.cleanup()
            self.bpf = None
            self.attached = {}

    # -- reading -------------------------------------------------------------------------------

    def _consume(self, rings: tuple[MmapRing, MmapRing], limit: int = 1024) -> list[Event]:
        out: list[Event] = []
        decode = self.decoder.decode
        before = self.decoder.errors
        self.received["proc"] += rings[0].consume(decode, out, limit)
        self.received["events"] += rings[1].consume(decode, out, limit)
        self.decode_errors += self.decoder.errors - before
        return out

    def drain(self) -> list[Event]:
        """Read both rings now (the process ring first); the events in time order."""
        batch = self._consume(self.rings)
        if self._batch:
            batch += self._batch
            self._batch = []
        if len(batch) > 1:
            batch.sort(key=_ts)
        self.delivered += len(batch)
        return batch

    def kernel_counters(self, bpf: Any = None) -> list[int]:
        """[attempted, dropped] per category, summed over CPUs."""
        table = (bpf or self.bpf)[b"counters"]
        out = []
        for i in range(2 * len(CATEGORIES)):
            out.append(sum(int(v) for v in table[ctypes.c_int(i)]))
        return out

    def drop_counts(self) -> dict[str, int]:
        if self.bpf is None:
            return {}
        c = self.kernel_counters()
        return {f"kernel.{cat}": c[2 * i + 1] for i, cat in enumerate(CATEGORIES)}

    def _account(self, retired: Any = None) -> None:
        """Turn the kernel counters' growth into metrics and the drop monitor's input.  A
        retired program (after a reload) is accounted one last time; the new one starts at 0."""
        c = self.kernel_counters(retired)
        prev, self._kernel_prev = self._kernel_prev, ([0] * len(c) if retired else c)
        dropped: dict[str, int] = {}
        attempted = 0
        for i, cat in enumerate(CATEGORIES):
            d_att = c[2 * i] - prev[2 * i]
            d_drop = c[2 * i + 1] - prev[2 * i + 1]
            if cat in ("proc", "events"):
                attempted += d_att
            if d_drop:
                dropped[cat] = d_drop
                if self.metrics is not None:
                    self.metrics.inc(f"drops.kernel.{cat}", d_drop)
        if self.metrics is not None and self.decode_errors:
            self.metrics.inc("drops.ebpf.decode", self.decode_errors)
            self.decode_errors = 0
        self.drops.check(attempted, {k: v for k, v in dropped.items()
                                     if k in ("proc", "events")})

    async def run(self, send: trio.MemorySendChannel[list[Event]], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await trio.to_thread.run_sync(self.load)
        try:
            task_status.started()
            async with trio.open_nursery() as nursery:

                async def account() -> None:
                    while True:
                        await trio.sleep(1.0)
                        self._account()

                nursery.start_soon(account)
                await self._read_loop(send, nursery)
        finally:
            self.close()

    async def _read_loop(self, send: trio.MemorySendChannel[list[Event]],
                         nursery: trio.Nursery) -> None:
        """Wait for either ring, drain both, send."""
        while True:
            if self._needs_reload:
                self._needs_reload = False
                self._switched = trio.Event()
                nursery.start_soon(self._switch)
            bpf = self.bpf
            batch = self.drain()
            if batch:
                await send.send(batch)
                continue
            await _wait_any([bpf[b"proc_ring"].map_fd, bpf[b"evt_ring"].map_fd],
                            timeout=self.poll_s)


async def _wait_any(fds: list[int], timeout: float) -> None:
    """Return when any fd is readable (the kernel wakes the reader every few records) or after
    ``timeout`` (records below that count wait at most this long)."""
    with trio.move_on_after(timeout):
        async with trio.open_nursery() as n:
            for fd in fds:
                n.start_soon(_wait_then_cancel, fd, n.cancel_scope)


async def _wait_then_cancel(fd: int, scope: trio.CancelScope) -> None:
    await trio.lowlevel.wait_readable(fd)
    scope.cancel()


def _ts(ev: Event) -> int:
    return ev.ts
