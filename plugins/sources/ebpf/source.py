"""The live source: load the BPF program, attach what is needed, read the rings.

* Loaded by a helper process (:mod:`.loader`): bcc compiles with LLVM, which would stay
  resident in the agent; the helper compiles, attaches and hands over the file descriptors
  (maps, one perf event per attached tracepoint, one link per fexit program), then exits.
  The agent never imports bcc.  :meth:`EbpfSource.preload` starts the helper while the agent
  builds the rest of its start-up; it attaches when :meth:`EbpfSource.load` says so.
* Attached (see :func:`resolved_config` for how): the sched lifecycle tracepoints,
  execve/execveat and, for every syscall the rules need plus those the state tables need, an
  fexit program on its kernel function where the kernel runs them, else its ``sys_exit_*``
  tracepoint (and ``sys_enter_*`` when the arguments are stored at enter, with the clone
  enters).  :meth:`EbpfSource.set_event_types` detaches what a rule reload no longer needs
  (closing their fds) and, when it needs more, loads a new program and switches to it.
* Read: both rings are mapped (:mod:`.ringbuf`) and read together (the process ring first),
  the records decoded with ``struct`` and sent as one batch, in time order.  After a batch
  that emptied them the reader sleeps ``poll_ms`` while the next records gather (at most one
  read per ``poll_ms`` under a steady load: a record waits at most that long); once a read
  finds them empty it awaits their fds with ``trio.lowlevel.wait_readable``, and the kernel
  wakes it with the first record sent after the reader caught up (the ring buffer's own
  notification), so an idle agent has no timer to serve.
* Counted: the kernel counts, per category, records attempted and records dropped (a full
  ring, a full map); :meth:`EbpfSource.drop_counts` and the ``drops.kernel.<category>``
  metrics report them.  Falco's ``syscall_event_drops`` behaviour (a drop ratio threshold,
  actions ``log``/``alert``, rate-limited) runs once a second.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import struct
import subprocess
import time
from typing import Any, Callable

import trio

from syswarden.core.errors import SourceError
from syswarden.core.event import Event
from syswarden.core.protocols import Source
from syswarden.core.rules.prefilter import OpenPrefilter
from syswarden.core.rules.procnames import COMM_LEN, comm_key, name_masks
from syswarden.core.rules.sockfilter import SocketPrefilter

from . import bpf_syscall, btf, fentry, loader, name_filter, record, tracefs
from . import program as P
from .decode import Decoder
from .program_cache import ProgramCache
from .ringbuf import MmapRing

log = logging.getLogger("syswarden.ebpf")

#: counters[] (the kernel's, by category: :data:`.record.CATEGORIES`): ring outputs retried,
#: opens kept in the kernel, records lost with room in their ring (the ring's lock refused
#: three times; the rest of the drops: a full ring), socket syscalls kept in the kernel
RETRIED, FILTERED, LOST_WITH_ROOM, SOCKS_FILTERED = (
    record.counter(name) for name in ("RETRY", "FILTERED", "ROOM", "SOCK_FILTERED"))
N_COUNTERS = record.N_COUNTERS
TRACEFS = "/sys/kernel/tracing"
#: How long the reader waits on empty rings before it looks again anyway (the kernel wakes
#: it when a record comes; a stop or a reload wakes it at once).
IDLE_WAIT_S = 1.0
HINT = loader.HINT


def require_bcc() -> None:
    """bcc must be importable (by the loader helper); checked without importing it here."""
    try:
        spec = importlib.util.find_spec("bcc")
    except (ImportError, ValueError):
        spec = None
    if spec is None:
        raise SourceError("the eBPF source needs bcc (python3-bpfcc), which is not installed "
                          "or not importable", hint=HINT)


def check_environment() -> None:
    """Fail early, with one clear message, when the live source cannot work here."""
    if os.geteuid() != 0:
        raise SourceError("the eBPF source needs root (loading BPF programs is privileged)",
                          hint="run syswarden as root, or replay a capture with -e FILE")
    require_bcc()
    if not os.path.isdir(f"{TRACEFS}/events"):
        rc = os.system(f"mount -t tracefs nodev {TRACEFS} >/dev/null 2>&1")
        if rc != 0 or not os.path.isdir(f"{TRACEFS}/events"):
            raise SourceError(f"tracefs is not mounted at {TRACEFS} and could not be mounted",
                              hint=f"mount -t tracefs nodev {TRACEFS}")


def resolved_config(config: dict[str, Any] | None) -> dict[str, Any]:
    """The ``ebpf`` section as this machine will run it: the defaults, what the program needs
    of the kernel's BTF (``btf`` offsets, ``kfuncs``) and tracepoints (``tp`` offsets), the
    syscalls without a tracepoint (with ``raw_fallback``) and of those the ones the kernel is
    built without (``not_built``), and ``attach``/``args_from`` made
    concrete (what was asked is kept in ``asked``: the source falls back from an ``auto``
    choice the kernel then refuses)."""
    cfg = {**P.DEFAULTS, **(config or {})}
    if "btf" not in cfg or "kfuncs" not in cfg:
        offsets, kfuncs = btf.kernel_info(functions=P.KFUNC_CANDIDATES)
        cfg.setdefault("btf", offsets)
        cfg.setdefault("kfuncs", kfuncs)
    if "no_tracepoint" not in cfg:
        cfg["no_tracepoint"] = [
            sc.name for sc in P.SYSCALLS
            if not os.path.isdir(f"{TRACEFS}/events/syscalls/sys_exit_{sc.tracepoint}")]
    if "not_built" not in cfg:
        cfg["not_built"] = P.not_built(cfg.get("no_tracepoint") or ())
    if "tp" not in cfg:
        cfg["tp"] = tracefs.offsets()
        if cfg["tp"] is None:
            log.warning("ebpf: the sched tracepoints' formats cannot be read under %s; their "
                        "layout is assumed to be Linux 6.16's", TRACEFS)
    cfg["asked"] = {"attach": cfg.get("attach", "auto"),
                    "args_from": cfg.get("args_from", "auto")}
    if cfg["asked"] == {"attach": P.FENTRY, "args_from": "enter"}:
        raise SourceError("ebpf.attach is fentry and ebpf.args_from is enter: fexit programs "
                          "read the arguments from the registers",
                          hint="set ebpf.args_from to auto or regs")
    cfg["attach"] = resolve_attach(cfg)
    cfg["args_from"] = "regs" if P.fentry_mode(cfg) else P.resolve_args_from(cfg["args_from"])
    return cfg


def resolve_attach(cfg: dict[str, Any]) -> str:
    """``ebpf.attach`` made concrete: ``fentry`` when this kernel runs fexit programs on the
    syscalls' functions (asked of it, see :mod:`.fentry`) and ``args_from`` is not ``enter``,
    else ``tracepoint``; ``fentry`` asked for explicitly on a kernel that refuses it is an
    error.  ``cfg["kfuncs"]`` holds the functions the kernel's BTF has."""
    asked = cfg.get("attach", "auto")
    if asked == P.TRACEPOINT:
        return asked
    if asked == "auto" and cfg.get("args_from") == "enter":
        return P.TRACEPOINT         # arguments stored at enter: the enter tracepoints
    usable, why = fentry.probe((cfg.get("kfuncs") or {}).get("__x64_sys_openat"))
    if usable and not P.registers_usable():
        usable, why = False, "the syscalls' registers cannot be read here"
    if usable:
        return P.FENTRY
    if asked == P.FENTRY:
        raise SourceError(f"ebpf.attach is fentry, but {why}",
                          hint="set ebpf.attach to auto or tracepoint")
    log.info("ebpf: %s; syscalls are followed through tracepoints", why)
    return P.TRACEPOINT


def _fallback(cfg: dict[str, Any], exc: loader.LoadError) -> dict[str, Any]:
    """The config to try after the kernel refused the program built from ``cfg``: the next
    choice ``auto`` allows, or a :class:`SourceError` when there is none."""
    why = str(exc).splitlines()[0][:200]
    asked = cfg["asked"]
    if asked["attach"] == "auto" and P.fentry_mode(cfg):
        log.info("ebpf: the fexit programs were refused (%s); syscalls are followed through "
                 "tracepoints", why)
        return {**cfg, "attach": P.TRACEPOINT,
                "args_from": P.resolve_args_from(asked["args_from"])}
    if asked["args_from"] == "auto" and not P.fentry_mode(cfg) and cfg["args_from"] == "regs":
        log.info("ebpf: syscall arguments cannot be read from the registers here (%s); they "
                 "are stored at enter instead", why)
        return {**cfg, "args_from": "enter"}
    raise SourceError(str(exc), hint=exc.hint or HINT) from None


def _close_all(fds: list[int]) -> None:
    for fd in fds:
        try:
            os.close(fd)
        except OSError:
            pass


def _close_all_later(fds: list[int]) -> None:
    """Close fds without waiting for their release.  The last close of a tracepoint's perf
    event waits for an RCU grace period (~40 ms here, serialised in the kernel: seconds for a
    whole program).  A helper process inherits the fds and holds them until the agent has
    dropped its own references (it waits for the end of its stdin), then releases them in its
    own exit, so the agent's closes are never the last."""
    if not fds:
        return
    try:
        holder = subprocess.Popen(["cat"], pass_fds=fds, start_new_session=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
    except OSError:
        holder = None
    _close_all(fds)
    if holder is not None:
        holder.stdin.close()     # the holder exits now and releases the last references
        _HOLDERS.append(holder)
        _HOLDERS[:] = [p for p in _HOLDERS if p.poll() is None]


#: Holders not yet reaped (polled on the next call, so none is left a zombie for long).
_HOLDERS: list[subprocess.Popen] = []


class Program:
    """A loaded program as the agent holds it: map fds, hook fds (perf events, links), mapped
    rings."""

    def __init__(self, loaded: loader.Loaded, cfg: dict[str, Any], syscalls: set[str]) -> None:
        self.maps = loaded.maps
        self.attached = loaded.attached              # hook -> perf event or link fd
        self.missing = loaded.missing
        self.seconds = loaded.seconds                # the loader helper's phases
        self.from_kept = loaded.from_kept            # loaded without compiling
        self.compiled = syscalls
        self.rings = (MmapRing(self.maps["proc_ring"], P.ring_bytes(cfg["proc_ring_pages"])),
                      MmapRing(self.maps["evt_ring"], P.ring_bytes(cfg["evt_ring_pages"])))
        self.ncpu = bpf_syscall.possible_cpus()

    def ring_fds(self) -> list[int]:
        return [self.maps["proc_ring"], self.maps["evt_ring"]]

    def counters(self) -> list[int]:
        """[attempted, dropped] per category, then at RETRIED, FILTERED, LOST_WITH_ROOM and
        SOCKS_FILTERED those counts."""
        fd = self.maps["counters"]
        return [bpf_syscall.percpu_u64_sum(fd, i, self.ncpu) for i in range(N_COUNTERS)]

    def detach(self, tps: list[str]) -> None:
        """Close the fds of these hooks (a tracepoint's perf event waits for an RCU grace period
        on its last close, ~40 ms here)."""
        _close_all([self.attached.pop(tp) for tp in tps if tp in self.attached])

    def detach_later(self) -> None:
        """Stop the kernel side without waiting: the perf events close in a thread."""
        _close_all_later([self.attached.pop(tp) for tp in list(self.attached)])

    def close(self, wait: bool = True) -> None:
        """Unmap the rings and close every fd; with ``wait=False`` the closes (a few seconds:
        one RCU grace period per perf event) finish in a background thread."""
        for ring in self.rings:
            ring.close()
        fds = [self.attached.pop(tp) for tp in list(self.attached)] + list(self.maps.values())
        self.maps = {}
        if wait:
            _close_all(fds)
        else:
            _close_all_later(fds)


class DropMonitor:
    """Falco's ``syscall_event_drops``: once a second, when the share of events dropped in the
    last second exceeds ``threshold``, run the actions (``log``, ``alert``), rate-limited by a
    token bucket (``rate`` per second, ``max_burst``); ``exit`` stops the agent (exit code 1)."""

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
        if "exit" in self.actions:       # Falco's: the message, "Exiting.", the agent stops
            log.critical("%s", msg)
            log.critical("Exiting.")
            raise SourceError(f"{msg} Exiting. (syscall_event_drops.actions has exit)")
        return True


class EbpfSource(Source):
    """The live eBPF source (see the module docstring)."""

    name = "ebpf"

    def __init__(self, config: dict[str, Any], event_types: set[str] | None, agent_pid: int,
                 metrics: Any = None, alert: Callable[[str, dict], None] | None = None,
                 open_prefilter: OpenPrefilter | None = None,
                 socket_prefilter: SocketPrefilter | None = None,
                 process_names: Callable[[], list[tuple[int, str]]] | None = None) -> None:
        self.cfg = resolved_config(config)
        self.process_names = process_names or list
        self.event_types = None if event_types is None else set(event_types)
        self.open_prefilter = open_prefilter if self.cfg.get("open_prefilter", True) else None
        self.socket_prefilter = socket_prefilter if self.cfg.get("socket_prefilter", True) \
            else None
        self.agent_pid = agent_pid
        #: where compiled programs are kept between starts (None: compiled every time)
        self.cache = ProgramCache(self.cfg["program_cache"]) if self.cfg.get("program_cache") \
            else None
        self.metrics = metrics
        self.prog: Program | None = None
        self._batch: list[Event] = []
        self._stop_requested = False
        self._stop_ts: int | None = None    # event time of the graceful stop request
        self._needs_reload = False
        #: where each cgroup's processes run, as the kernel's host_cgroups has it
        self.places = name_filter.CgroupPlaces()
        #: the reader's wait while the rings are empty (cancelled to make it look again)
        self._idle: trio.CancelScope | None = None
        self._switched = trio.Event()
        self._kernel_prev = [0] * N_COUNTERS
        self.drops = DropMonitor(self.cfg.get("syscall_event_drops") or {}, alert)
        self.delivered = 0
        self.received = {"proc": 0, "events": 0}   # records read from each ring
        self.poll_s = max(0.001, float(self.cfg["poll_ms"]) / 1000)
        self.decode_errors = 0
        #: the program :meth:`preload` started: (its text, its hooks, the helper)
        self._pending: tuple[str, list[tuple[str, str]], loader.Pending] | None = None

    @functools.cached_property
    def decoder(self) -> Decoder:
        """The records' decoder (made when first needed, or by :meth:`preload` while the
        helper compiles: it compiles a decoding function per syscall)."""
        return Decoder()

    # -- loading -------------------------------------------------------------------------------

    def program_text(self, cfg: dict[str, Any] | None = None) -> str:
        return P.render_program(self.event_types, cfg or self.cfg,
                                open_prefilter=self.open_prefilter,
                                socket_prefilter=self.socket_prefilter)

    def _start(self, text: str, tps: list[tuple[str, str]]) -> loader.Pending:
        return loader.start(text, tps, agent_pid=self.agent_pid, cache=self.cache,
                            kfunc_ids=self.cfg.get("kfuncs"))

    def preload(self) -> None:
        """Start compiling and loading the program in the helper (it attaches nothing before
        :meth:`load`).  A machine the source cannot run on starts nothing: :meth:`load` says
        why."""
        if self._pending is not None:
            return
        try:
            check_environment()
        except SourceError:
            return
        text, tps = self.program_text(), P.tracepoints(self.event_types, self.cfg)
        self._pending = (text, tps, self._start(text, tps))
        self.decoder   # noqa: B018 (made while the helper compiles)

    def _load(self, cfg: dict[str, Any]) -> loader.Loaded:
        """The program for ``cfg`` loaded and attached: the preloaded one when it is that
        program, else one loaded now."""
        text, tps = self.program_text(cfg), P.tracepoints(self.event_types, cfg)
        pending, self._pending = self._pending, None
        if pending is not None:
            if pending[:2] == (text, tps):
                return pending[2].finish()
            pending[2].cancel()
        return self._start(text, tps).finish()

    def _build(self) -> Program:
        """Load and attach a program for the current event types (blocking: ~2 s, less when
        :meth:`preload` started it).  An ``auto`` choice the kernel refuses falls back (fexit
        programs -> tracepoints, the registers -> enter); the source's config changes only
        once a program is loaded."""
        check_environment()
        cfg = self.cfg
        t0 = time.perf_counter()
        while True:
            try:
                loaded = self._load(cfg)
                break
            except loader.LoadError as exc:
                cfg = _fallback(cfg, exc)
        self.cfg = cfg
        if loaded.missing:
            log.info("not on this kernel, not followed: %s", ", ".join(loaded.missing))
        unbuilt = [n for n in P.needed_syscalls(self.event_types)
                   if n in (cfg.get("not_built") or ())]
        if unbuilt and not cfg.get("raw_fallback"):
            log.warning("ebpf: %s: this kernel is built without them (every call fails with "
                        "ENOSYS) and they have no tracepoint: the attempts are not followed; "
                        "ebpf.raw_fallback: true follows them through a program every syscall "
                        "runs", ", ".join(unbuilt))
        kinds = sorted({hook.split(":", 1)[0] for hook in loaded.attached})
        log.info("ebpf: %d hooks attached (%s), syscall arguments from %s",
                 len(loaded.attached), ", ".join(kinds),
                 "the registers" if P.task_regs(self.cfg) else "enter tracepoints")
        took = loaded.seconds
        phases = ("import", "compile", "load", "attach")
        log.info("ebpf: program built in %.3f s (waited for %.3f s): %s, bcc import %.3f s, "
                 "compile %.3f s, load %.3f s, attach %.3f s",
                 sum(took.get(p, 0.0) for p in phases), time.perf_counter() - t0,
                 "kept from an earlier start" if loaded.from_kept else "compiled",
                 *(took.get(p, 0.0) for p in phases))
        if loaded.not_kept:
            log.info("ebpf: the program is compiled at every start: %s", loaded.not_kept)
        if self.open_prefilter is not None:
            log.info("ebpf: opens sent when: %s (or a directory, or a path not judged here)",
                     self.open_prefilter.describe())
        if self.socket_prefilter is not None:
            log.info("ebpf: socket syscalls sent for the families: %s (or not a socket)",
                     self.socket_prefilter.describe())
        return Program(loaded, cfg, set(P.needed_syscalls(self.event_types)))

    def load(self) -> None:
        """Load the program and attach (the first time)."""
        self.prog = self._build()
        self._give_names(self.prog, None)

    def _give_names(self, prog: Program, old: Program | None) -> None:
        """Write the names the prefilters test into a new program (``rule_names``, then
        ``names_ready``), the processes' names it did not learn itself (``proc_names``, see
        :mod:`.name_filter`): the old program's, or (the first) the process table's, and
        where each cgroup's processes run (``host_cgroups``)."""
        bits = P.name_bits(self.open_prefilter, self.socket_prefilter)
        masks = name_masks(bits)
        if all(bpf_syscall.map_update(prog.maps["rule_names"], key, struct.pack("=Q", m))
               for key, m in masks.items()):
            bpf_syscall.map_update(prog.maps["names_ready"], struct.pack("=I", 0),
                              struct.pack("=I", 1))
        else:
            log.warning("ebpf: the rules test %d process names, over what the kernel holds: "
                        "every process's events are sent", len(masks))
        if old is not None and "proc_names" in old.maps:
            items = bpf_syscall.map_items(old.maps["proc_names"], 4, COMM_LEN)
        else:
            items = [(struct.pack("=I", pid), key) for pid, name in self.process_names()
                     if (key := comm_key(name)) is not None]
        for pid, key in items:
            bpf_syscall.map_update(prog.maps["proc_names"], pid, key, bpf_syscall.BPF_NOEXIST)
        self._write_places(prog, self.places.all())

    @staticmethod
    def _write_places(prog: Program, places: dict[int, int]) -> None:
        for cgroup_id, place in places.items():
            if not bpf_syscall.map_update(prog.maps["host_cgroups"], struct.pack("=Q", cgroup_id),
                                     struct.pack("=I", place)):
                break                               # full: the others are not known (sent)

    @property
    def attached(self) -> dict[str, int]:
        return self.prog.attached if self.prog is not None else {}

    @property
    def unavailable(self) -> list[str]:
        return self.prog.missing if self.prog is not None else []

    @property
    def rings(self) -> tuple:
        return self.prog.rings if self.prog is not None else ()

    def set_open_prefilter(self, prefilter: OpenPrefilter | None) -> None:
        """Keep in the kernel the opens this prefilter says no rule can match (a rule reload;
        called before :meth:`set_event_types`).  A change loads a new program."""
        if not self.cfg.get("open_prefilter", True) or prefilter == self.open_prefilter:
            return
        self.open_prefilter = prefilter
        if self.prog is not None:
            self._needs_reload = True
            self._wake_reader()

    def set_socket_prefilter(self, prefilter: SocketPrefilter | None) -> None:
        """Keep in the kernel the socket syscalls on families this prefilter says no rule can
        match (a rule reload; called before :meth:`set_event_types`).  A change loads a new
        program."""
        if not self.cfg.get("socket_prefilter", True) or prefilter == self.socket_prefilter:
            return
        self.socket_prefilter = prefilter
        if self.prog is not None:
            self._needs_reload = True
            self._wake_reader()

    def set_event_types(self, types: set[str] | None) -> None:
        """Follow another set of syscalls (a rule reload).  Fewer: their perf events are
        closed (released by a helper: each release waits ~40 ms).  More: the reader loads a
        new program and switches to it; the two overlap for the switch, so a syscall ending in
        that window may be seen twice and none is missed."""
        self.event_types = None if types is None else set(types)
        prog = self.prog
        if prog is None:
            return
        wanted = {tp for tp, _ in P.tracepoints(self.event_types, self.cfg)} - set(prog.missing)
        if not wanted <= set(prog.attached):
            self._needs_reload = True
            self._wake_reader()
            return
        gone = [tp for tp in prog.attached if tp not in wanted]
        _close_all_later([prog.attached.pop(tp) for tp in gone])

    async def _switch(self) -> None:
        """Load the new program in a thread, switch the reader to it, retire the old one."""
        new = await trio.to_thread.run_sync(self._build)
        await trio.to_thread.run_sync(self._give_names, new, self.prog)
        old, self.prog = self.prog, new
        if old is not None:
            await trio.to_thread.run_sync(old.detach, list(old.attached))
            self._batch.extend(self._consume(old.rings))  # sent before it was detached
            self._account(old)
            old.close(wait=False)
        self._switched.set()

    def detach_all(self) -> None:
        """Stop the kernel side now (the rings stay readable)."""
        if self.prog is not None:
            self.prog.detach(list(self.prog.attached))

    def close(self, wait: bool = True) -> None:
        pending, self._pending = self._pending, None
        if pending is not None:
            pending[2].cancel()
        prog, self.prog = self.prog, None
        if prog is not None:
            prog.close(wait)

    # -- reading -------------------------------------------------------------------------------

    def _consume(self, rings: tuple[MmapRing, MmapRing], limit: int = 1024) -> list[Event]:
        out: list[Event] = []
        decode = self.decoder.decode
        before = self.decoder.errors
        got = rings[0].consume(decode, out, limit)
        self.received["proc"] += got
        if got and self.prog is not None and "host_cgroups" in self.prog.maps:
            # a process record from a cgroup made since the load: its place, for the kernel
            new = self.places.learn(out)
            if new:
                self._write_places(self.prog, new)
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

    def kernel_counters(self, prog: Program | None = None) -> list[int]:
        """[attempted, dropped] per category, summed over CPUs."""
        return (prog or self.prog).counters()

    def drop_counts(self) -> dict[str, int]:
        if self.prog is None:
            return {}
        c = self.kernel_counters()
        return {f"kernel.{cat.metric}": c[record.counter(cat.name, dropped=True)]
                for cat in record.CATEGORIES if cat.drops}

    def _account(self, retired: Any = None) -> None:
        """Turn the kernel counters' growth into metrics and the drop monitor's input.  A
        retired program (after a reload) is accounted one last time; the new one starts at 0."""
        c = self.kernel_counters(retired)
        prev, self._kernel_prev = self._kernel_prev, ([0] * len(c) if retired else c)
        dropped: dict[str, int] = {}
        attempted = 0
        for cat in record.CATEGORIES:
            at = record.counter(cat.name)
            if not cat.drops:               # a count of its own: its metric
                if self.metrics is not None and c[at] > prev[at]:
                    self.metrics.inc(cat.metric, c[at] - prev[at])
                continue
            d_drop = c[at + 1] - prev[at + 1]
            if cat.events:
                attempted += c[at] - prev[at]
            if d_drop:
                if cat.events:
                    dropped[cat.metric] = d_drop
                if self.metrics is not None:
                    self.metrics.inc(f"drops.kernel.{cat.metric}", d_drop)
        if self.metrics is not None and self.decode_errors:
            self.metrics.inc("drops.ebpf.decode", self.decode_errors)
            self.decode_errors = 0
        self.drops.check(attempted, dropped)

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
                nursery.cancel_scope.cancel()   # stopped gracefully: end the accounting too
        finally:
            self._shutdown()

    def stop(self) -> bool:
        """The agent's graceful stop: detach, send what the rings still hold, then return.
        What happened before this call is owed to the agent; the perf events are released in
        the background, so the kernel may still record a few later events, which are not."""
        self._stop_ts = time.monotonic_ns() + self.decoder.epoch_offset
        self._stop_requested = True
        self._wake_reader()
        return True

    def _shutdown(self) -> None:
        """Stop: what the kernel sent and nobody will read is counted, not lost silently."""
        if self.prog is None:
            return
        self.prog.detach_later()
        unread = self._consume(self.rings, limit=1 << 30) + self._batch
        self._batch = []
        try:
            self._account()
        except OSError:
            pass
        stop_ts = self._stop_ts
        late = 0 if stop_ts is None else sum(1 for ev in unread if ev.ts > stop_ts)
        left = len(unread) - late
        if self.metrics is not None:
            if left:
                self.metrics.inc("drops.ebpf.unread_at_stop", left)
            if late:
                self.metrics.inc("ebpf.after_stop", late)
        if late:
            log.debug("ebpf: %d events recorded after the stop request, not read", late)
        self.close(wait=False)

    async def _read_loop(self, send: trio.MemorySendChannel[list[Event]],
                         nursery: trio.Nursery) -> None:
        """Wait for either ring, drain both, send.  A backlog over half a ring is logged, and
        its largest size once the reader has caught up (the reader starved, or the next stage
        slow: what comes before a full ring's drops)."""
        backlog: dict[int, int] = {}     # ring -> the largest backlog of this episode
        while True:
            if self._stop_requested:
                self.prog.detach_later()
                for _ in range(2):   # again after a moment: records reserved on another CPU
                    while batch := self.drain():
                        await send.send(batch)
                    await trio.sleep(0.005)
                return
            if self._needs_reload:
                self._needs_reload = False
                self._switched = trio.Event()
                nursery.start_soon(self._switch)
            fds = self.prog.ring_fds()
            for ring in self.rings:      # a backlog over half a ring: the reader falls behind
                behind = ring.pending()
                if behind > ring.size // 2 and behind > backlog.get(id(ring), 0):
                    if not backlog.get(id(ring)):
                        log.info("ebpf: the reader is %.1f MB behind the kernel (a ring of "
                                 "%d MB)", behind / 1e6, ring.size >> 20)
                    backlog[id(ring)] = behind
                elif behind < ring.size // 8 and backlog.get(id(ring)):
                    log.info("ebpf: the reader caught up (it was at most %.1f MB behind)",
                             backlog.pop(id(ring)) / 1e6)
            batch = self.drain()
            if batch:
                await send.send(batch)
                if not any(ring.pending() for ring in self.rings):
                    await trio.sleep(self.poll_s)        # let the next records gather
                continue
            # Empty: wait for the kernel, which wakes the reader with the first record sent
            # after it caught up (and every WAKEUP_EVERY records): no timer while idle.
            with trio.move_on_after(IDLE_WAIT_S) as self._idle:
                await _wait_any(fds)
            self._idle = None

    def _wake_reader(self) -> None:
        """Make a reader waiting on empty rings look again (a stop, a reload)."""
        if self._idle is not None:
            self._idle.cancel()


async def _wait_any(fds: list[int]) -> None:
    """Return when any of the ring fds is readable."""
    async with trio.open_nursery() as n:
        for fd in fds:
            n.start_soon(_wait_then_cancel, fd, n.cancel_scope)


async def _wait_then_cancel(fd: int, scope: trio.CancelScope) -> None:
    await trio.lowlevel.wait_readable(fd)
    scope.cancel()


def _ts(ev: Event) -> int:
    return ev.ts
