"""The agent: one root trio nursery wiring sources -> enrichers -> filters -> outputs.

Start-up (:meth:`Agent.build`, the one way an agent is assembled) resolves every plugin once:
the filters first (their rules say which syscalls are needed), then the sources (told those
event types), the enrichers and the outputs, each output wrapped in an
:class:`~syswarden.core.outputs.OutputRunner` with its own bounded queue.  From then on the hot
path calls plain bound methods; no ``pm.hook`` per event.

The stages, in the agent's nursery::

    sources --batches--> enrich stage --batches--> filter stage --alerts--> output queues
           (channel_batches)          (channel_batches)           (offer: never blocks)

Events are numbered (``evt.num``) in arrival order from 1 when their source did not number
them.  Events of the agent's own descendants (a program output and what it runs; the process
enricher marks them ``Process.from_agent``) are not judged: an output never feeds itself.
The filter stage times the judging of one event per batch, the last (the newest when the source
read: under load any type, in proportion): ``rules.eval_ns.<type>`` and
``rules.eval_events.<type>``, the rule engine's time per event type on ``/metrics``
(:mod:`~syswarden.core.exposition`), at a cost per batch, not per event.

Readiness: once every source has started and the pipeline runs, the agent logs a line containing
``syswarden ready`` (always, whatever ``log_level``), and :attr:`Agent.ready` is set.  Then
one info line ``start-up: ...`` gives the seconds each phase took (:attr:`Agent.startup`): the
filters built (rules compiled), the sources, enrichers (the process table's ``/proc`` snapshot)
and outputs built, the webserver listening (:mod:`~syswarden.core.webserver`), and the
outputs, enricher services and sources started (the eBPF source
compiles and attaches its program then; its own line splits that time).

Services (``syswarden_make_services``: the fleet's heartbeat and rules watcher) start with the
enrichers' services and stop with them; a plugin that keeps the rules
(``syswarden_rules_files``) names the files the filters load, at start-up and on each reload.

Signals: SIGINT/SIGTERM stop the sources, let the stages drain, give the outputs
``pipeline.shutdown_grace`` seconds to flush, and return 0 (a second signal stops at once).
SIGHUP reloads the config file and the rules (on a failure the old rules keep running, the error
is logged) and reopens outputs; with ``watch_config_files`` a change to the config file, its
``config_files`` or the rules files does the same; SIGUSR1 reopens outputs (logrotate).

Failures: an exception while one plugin handles one event is caught at the stage boundary,
counted (``errors.<stage>.<plugin>``) and logged with the plugin's name; the event goes on.  A
crashed task (a source that dies) stops the agent with a clear message and exit code 1.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import os
import signal
import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any, TypeVar

import trio

from .alert import Alert, Priority
from .config import RELOADED_KEYS, load_config, watched_state
from .errors import ConfigError, RuleError, SourceError, SyswardenError, UnsafePathError
from .event import Event
from .falco_keys import selected_syscalls
from .metrics import Metrics
from .outputs import OutputRunner
from .plugins import Plugins
from .protocols import Enricher, Filter, Output, PluginContext, Service, Source, adapt
from .rules.prefilter import OpenPrefilter
from .rules.sockfilter import SocketPrefilter
from .webserver import serve as serve_webserver

log = logging.getLogger("syswarden.agent")

T = TypeVar("T")

#: seconds a source whose stop() answers True gets to send what it still holds and return
SOURCE_STOP_GRACE = 2.0

#: Errors that, raised before the agent is ready, are bad input (a config value, a path an
#: output refuses to write through): :meth:`Agent.run` raises them for the CLI's exit code 2.
BAD_INPUT = (ConfigError, UnsafePathError)

#: The stages :meth:`Agent.build` resolves, in this order.
STAGES = ("filters", "sources", "enrichers", "outputs")

#: seconds between two looks at the watched config and rules files (watch_config_files)
WATCH_INTERVAL = 1.0

#: log the first N errors of one plugin with a traceback, then one in every EVERY
ERRORS_LOGGED_FULLY = 5
ERRORS_EVERY = 1000


def _every(answers: Iterable[T | None]) -> list[T] | None:
    """The answers, or None as soon as one is None (that filter needs everything)."""
    out: list[T] = []
    for answer in answers:
        if answer is None:
            return None
        out.append(answer)
    return out


def _leaves(group: BaseExceptionGroup) -> list[BaseException]:
    out: list[BaseException] = []
    for exc in group.exceptions:
        out.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return out


class Agent:
    #: start-up phases, in order, as :attr:`startup` and the ``start-up:`` line name them
    STARTUP_PHASES = ("filters", "sources", "enrichers", "outputs", "webserver",
                      "outputs started", "services started", "sources started")

    def __init__(self, config: dict[str, Any], plugins: Plugins, *,
                 config_path: str | None = None, overrides: tuple[str, ...] = (),
                 rules_files: list[str] | None = None, replay_file: str | None = None,
                 max_seconds: float | None = None, metrics: Metrics | None = None) -> None:
        self.config = config
        self.plugins = plugins
        self.config_path = config_path
        self.overrides = overrides
        self.rules_files = rules_files
        self.replay_file = replay_file or config.get("_replay_file")   # -e, or engine.kind
        self.max_seconds = max_seconds
        self.metrics = metrics or Metrics()
        self.ready = trio.Event()
        self.stopping = trio.Event()
        self._sources_scope = trio.CancelScope()
        self._error_counts: dict[str, int] = {}
        self.filters: list[Filter] = []
        self.sources: list[Source] = []
        self.enrichers: list[Enricher] = []
        self.outputs: list[Output] = []
        self.runners: list[OutputRunner] = []
        self.services: list[Service] = []
        self._checks: list[tuple[str, Callable]] = []
        self._offers: list[Callable] = []
        self.startup: dict[str, float] = {}     # phase -> seconds (STARTUP_PHASES)
        self._current_config = config           # as last (re)loaded: watched, base_syscalls
        self._watch_seen: tuple | None = None   # the watched files' state (watch_config_files)
        self._reload_lock = trio.Lock()
        #: what waits for each stage ("enrich", "filter"), once the pipeline runs (/healthz)
        self.stage_inputs: dict[str, trio.MemoryReceiveChannel[list[Event]]] = {}
        self.ended_sources: list[str] = []      # sources that returned before a stop

    @contextlib.contextmanager
    def _phase(self, name: str) -> Iterator[None]:
        t0 = time.perf_counter()
        try:
            yield
        finally:
            self.startup[name] = time.perf_counter() - t0

    # -- start-up ------------------------------------------------------------------------------

    def build(self, stages: Iterable[str] = STAGES, *,
              record: Callable[[Agent], Filter] | None = None, preload: bool = False) -> None:
        """Resolve the plugin objects of ``stages`` once, in the order of :data:`STAGES`.

        The one way an agent is assembled: the run builds every stage; ``-L`` and
        ``--dump-ebpf`` only the filters.  Without the filters, the sources attach every
        syscall they support.  ``record`` makes an agent that records instead of judging
        (``syswarden capture``): the filters only tell which syscalls to attach (with no open or
        socket prefilter: every event of those types is kept), no outputs are built, and the
        filter stage is the object ``record(agent)`` returns once the sources and enrichers
        are built.  ``preload`` (an agent built to run): each source's slow preparation (the
        eBPF program's compile) starts as soon as the sources are built, and goes on while the
        enrichers and outputs are built and started (:meth:`Source.preload`).  Raises
        SyswardenError on a user's mistake.
        """
        stages = frozenset(stages)
        if not stages <= set(STAGES):
            raise ValueError(f"unknown stage(s): {', '.join(sorted(stages - set(STAGES)))}")
        self.ctx = PluginContext(self.config, self.metrics, self.plugins.fields(),
                                 replay_file=self.replay_file, agent_pid=os.getpid(),
                                 # an alert about the agent goes to the outputs
                                 emit_alert=self.emit_internal_alert if record is None else None,
                                 reload=self.reload)
        if "filters" in stages:
            self._take_rules_source(self.config)
            with self._phase("filters"):
                self.filters = self.plugins.make("filter", self.ctx)
                self.ctx.event_types = self.event_types()
                if record is None:
                    self.ctx.open_prefilter = self.open_prefilter()
                    self.ctx.socket_prefilter = self.socket_prefilter()
        if "sources" in stages:
            with self._phase("sources"):
                self.sources = self.plugins.make("source", self.ctx)
                if preload:
                    for source in self.sources:
                        source.preload()
            if not self.sources and record is not None:
                raise SourceError("no live event source is enabled",
                                  hint="enable the ebpf source")
            if not self.sources:
                raise SourceError("no event source is enabled",
                                  hint="enable the ebpf source, or replay a capture with -e FILE")
        if "enrichers" in stages:
            with self._phase("enrichers"):
                self.enrichers = self.plugins.make("enricher", self.ctx)
        if record is not None:
            self.filters = [adapt("filter", record(self))]
        elif "outputs" in stages:
            with self._phase("outputs"):
                self.outputs = self.plugins.make("output", self.ctx)
            self.runners = [OutputRunner.for_output(o, self.config, self.metrics)
                            for o in self.outputs]
            self.services = self.plugins.make("service", self.ctx)
        self._checks = [(f.name, f.check) for f in self.filters]
        self._offers = [r.offer for r in self.runners]

    def event_types(self) -> set[str] | None:
        """The syscalls the filters need: their union, or None when one needs every event;
        with Falco's ``base_syscalls`` applied as Falco applies it
        (:func:`~syswarden.core.falco_keys.selected_syscalls`)."""
        types: set[str] | None = set()
        for f in self.filters:
            needed = f.event_types()
            if needed is None:
                types = None
                break
            types |= set(needed)
        return selected_syscalls(types, self._current_config.get("base_syscalls") or {})

    def open_prefilter(self) -> OpenPrefilter | None:
        """The opens some filter may care about: the union of the filters' prefilters, or None
        when one needs every open."""
        pfs = _every(f.open_prefilter() for f in self.filters)
        if pfs is None:
            return None
        return OpenPrefilter(tuple(dict.fromkeys(t for pf in pfs for t in pf.terms)))

    def socket_prefilter(self) -> SocketPrefilter | None:
        """The socket families some filter may care about, per socket syscall: the union of
        the filters' prefilters, or None when one needs every family."""
        pfs = _every(f.socket_prefilter() for f in self.filters)
        return None if pfs is None else SocketPrefilter.union(pfs)

    # -- running -------------------------------------------------------------------------------

    async def run(self) -> int:
        """Run until the sources end or a stop is asked; return the exit code (0, or 1 when a
        stage failed).  Bad input found while starting (:data:`BAD_INPUT`) is raised instead."""
        grace = float(self.config["pipeline"]["shutdown_grace"])
        bad_input: SyswardenError | None = None
        try:
            async with trio.open_nursery() as root:
                root.start_soon(self._watch_signals, root.cancel_scope)
                with self._phase("webserver"):              # and the metrics snapshots
                    await root.start(serve_webserver, self)
                if self.max_seconds:
                    root.start_soon(self._stop_after, self.max_seconds)
                interval = float(self.config["pipeline"]["stats_interval"])
                if interval > 0:
                    root.start_soon(self._report_periodically, interval)
                async with trio.open_nursery() as outputs:
                    flushed = [trio.Event() for _ in self.runners]
                    with self._phase("outputs started"):
                        for runner, done in zip(self.runners, flushed):
                            await outputs.start(self._run_output, runner, done)
                    async with trio.open_nursery() as services:
                        with self._phase("services started"):
                            for enricher in self.enrichers:
                                await services.start(enricher.run)
                            for service in self.services:
                                await services.start(service.run)
                        await self._pipeline()
                        services.cancel_scope.cancel()
                    for runner in self.runners:
                        runner.close()
                    with trio.move_on_after(grace):
                        for done in flushed:
                            await done.wait()
                    self._count_unflushed()
                    outputs.cancel_scope.cancel()
                root.cancel_scope.cancel()
        except* SyswardenError as group:
            leaves = _leaves(group)
            if not self.ready.is_set() and all(isinstance(e, BAD_INPUT) for e in leaves):
                bad_input = leaves[0]           # the CLI's exit 2, as before the agent runs
            else:
                for exc in leaves:
                    log.error("%s", exc)
            failed = True
        except* Exception as group:
            for exc in _leaves(group):
                log.critical("agent crashed: %s: %s", type(exc).__name__, exc, exc_info=exc)
            failed = True
        else:
            failed = False
        finally:
            self._report(final=True)
        if bad_input is not None:
            raise bad_input
        return 1 if failed else 0

    async def _run_output(self, runner: OutputRunner, done: trio.Event, *,
                          task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await runner.run(task_status=task_status)
        finally:
            done.set()

    def request_stop(self) -> None:
        """Stop the sources; the stages drain and the outputs flush.

        Each source's ``stop()`` is called: one that answers True returns by itself after
        sending what it still holds (the eBPF rings' last records), within SOURCE_STOP_GRACE
        seconds; the others are cancelled at once (or at that deadline, when some source stops
        gracefully)."""
        if self.stopping.is_set():
            return
        self.stopping.set()
        graceful = [source for source in self.sources if source.stop()]
        if graceful:
            self._sources_scope.deadline = trio.current_time() + SOURCE_STOP_GRACE
        else:
            self._sources_scope.cancel()

    async def _stop_after(self, seconds: float) -> None:
        await trio.sleep(seconds)
        log.info("stopping after %s seconds (-M)", seconds)
        self.request_stop()

    async def _pipeline(self) -> None:
        size = int(self.config["pipeline"]["channel_batches"])
        src_send, src_recv = trio.open_memory_channel[list[Event]](size)
        enr_send, enr_recv = trio.open_memory_channel[list[Event]](size)
        self.stage_inputs = {"enrich": src_recv, "filter": enr_recv}
        async with trio.open_nursery() as stages:
            stages.start_soon(self._enrich_stage, src_recv, enr_send)
            stages.start_soon(self._filter_stage, enr_recv)
            await self._run_sources(src_send)

    async def _run_sources(self, send: trio.MemorySendChannel[list[Event]]) -> None:
        async with send:
            with self._sources_scope:
                async with trio.open_nursery() as nursery:
                    with self._phase("sources started"):
                        for source in self.sources:
                            await nursery.start(self._run_source, source, send.clone())
                    self._announce_ready()

    async def _run_source(self, source: Source, send: trio.MemorySendChannel[list[Event]], *,
                          task_status=trio.TASK_STATUS_IGNORED) -> None:
        async with send:
            try:
                await source.run(send, task_status=task_status)
            except SyswardenError:
                raise
            except Exception as exc:
                raise SourceError(f"source {source.name!r} failed: "
                                  f"{type(exc).__name__}: {exc}") from exc
            if not self.stopping.is_set():
                self.ended_sources.append(source.name)

    def _announce_ready(self) -> None:
        _settle_gc()
        types = self.ctx.event_types
        level = max(logging.INFO, log.getEffectiveLevel())
        log.log(level, "syswarden ready: sources=%s enrichers=%s filters=%s outputs=%s "
                "event_types=%s", ",".join(s.name for s in self.sources),
                ",".join(e.name for e in self.enrichers), ",".join(f.name for f in self.filters),
                ",".join(o.name for o in self.outputs),
                "all" if types is None else len(types))
        log.info("start-up: %s", ", ".join(f"{name} {self.startup.get(name, 0.0):.3f} s"
                                            for name in self.STARTUP_PHASES))
        self.ready.set()

    async def _enrich_stage(self, recv: trio.MemoryReceiveChannel[list[Event]],
                            send: trio.MemorySendChannel[list[Event]]) -> None:
        enrich = [(e.name, e.enrich) for e in self.enrichers]
        prepare = [(e.name, e.prepare) for e in self.enrichers]
        number = 0
        async with recv, send:
            async for batch in recv:
                self.metrics.inc("events.in", len(batch))
                if batch:                   # how old its newest event is (/metrics)
                    self.metrics.set("latency.enrich", time.time_ns() - batch[-1].ts)
                for evt in batch:   # evt.num: arrival order, from 1, unless the source set it
                    if not evt.num:
                        number += 1
                        evt.num = number
                for name, prep in prepare:
                    try:
                        await prep(batch)
                    except Exception as exc:
                        self._plugin_error("enrich", name, exc, None)
                for evt in batch:
                    for name, fn in enrich:
                        try:
                            fn(evt)
                        except Exception as exc:
                            self._plugin_error("enrich", name, exc, evt)
                await send.send(batch)

    async def _filter_stage(self, recv: trio.MemoryReceiveChannel[list[Event]]) -> None:
        metrics = self.metrics
        perf = time.perf_counter_ns
        async with recv:
            async for batch in recv:
                checks, offers = self._checks, self._offers
                skipped = 0
                # every event but the last, then the last alone, timed: the rule engine's time
                # per event type at a cost per batch, not per event
                n = len(batch)
                for part in (islice(batch, max(0, n - 1)), batch[n - 1:]):
                    t0 = perf()
                    for evt in part:
                        proc = evt.proc
                        if proc is not None and proc.from_agent:
                            skipped += 1    # the agent's own children (a program output)
                            continue
                        for name, check in checks:
                            try:
                                alerts = check(evt)
                            except Exception as exc:
                                self._plugin_error("filter", name, exc, evt)
                                continue
                            if alerts:
                                for alert in alerts:
                                    metrics.count_alert(alert)
                                    for offer in offers:
                                        offer(alert)
                if batch:
                    last = batch[-1]
                    if last.proc is None or not last.proc.from_agent:
                        metrics.inc(f"rules.eval_ns.{last.type}", perf() - t0)
                        metrics.inc(f"rules.eval_events.{last.type}")
                    metrics.set("latency.filter", time.time_ns() - last.ts)
                metrics.inc("events.judged", n - skipped)
                if skipped:
                    metrics.inc("events.from_agent", skipped)

    def emit_internal_alert(self, output: str, fields: dict[str, Any],
                            rule: str = "Falco internal: syscall event drop",
                            priority: Priority = Priority.CRITICAL) -> None:
        """An alert about the agent itself (Falco's internal alerts: syscall event drops),
        offered to every output like a rule's alert.  Called from the agent's trio thread."""
        alert = Alert(rule, priority, output, time.time_ns(), dict(fields),
                      tags=["syswarden", "internal"], source="internal")
        self.metrics.count_alert(alert)
        for offer in self._offers:
            offer(alert)

    def _plugin_error(self, stage: str, plugin: str, exc: Exception, evt: Event | None) -> None:
        key = f"errors.{stage}.{plugin}"
        self.metrics.inc(key)
        n = self._error_counts[key] = self._error_counts.get(key, 0) + 1
        if n <= ERRORS_LOGGED_FULLY:
            log.warning("%s plugin %r failed on %r: %s: %s", stage, plugin, evt,
                        type(exc).__name__, exc, exc_info=exc)
        elif n % ERRORS_EVERY == 0:
            log.warning("%s plugin %r has failed %d times (last: %s: %s)", stage, plugin, n,
                        type(exc).__name__, exc)

    def _count_unflushed(self) -> None:
        """Alerts still queued when the grace period ran out are lost: count them."""
        for runner in self.runners:
            left = runner.pending()
            if left:
                self.metrics.inc(f"outputs.{runner.name}.dropped", left)
                log.error("output %r: %d alerts not delivered within the shutdown grace period",
                          runner.name, left)

    # -- signals, reload, reports ---------------------------------------------------------------

    async def _watch_signals(self, root_scope: trio.CancelScope) -> None:
        """Answer signals, a stop at once even while a reload runs: a SIGHUP's reload is a task
        of its own (abandoned by a stop), and SIGHUPs during one ask for one more after it."""
        wanted = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1)
        ask, asked = trio.open_memory_channel[None](1)    # one pending reload at most
        reloading = trio.CancelScope()
        with trio.open_signal_receiver(*wanted) as signals:
            async with trio.open_nursery() as reloads:
                reloads.start_soon(self._reload_when_asked, asked, reloading)
                if self.config.get("watch_config_files"):
                    reloads.start_soon(self._watch_files, ask)
                async for signum in signals:
                    if signum in (signal.SIGINT, signal.SIGTERM):
                        reloading.cancel()
                        if self.stopping.is_set():
                            log.warning("second stop signal: stopping now")
                            root_scope.cancel()
                        else:
                            log.info("%s: stopping", signal.Signals(signum).name)
                            self.request_stop()
                    elif signum == signal.SIGHUP:
                        with contextlib.suppress(trio.WouldBlock):
                            ask.send_nowait(None)
                    else:
                        self._reopen_outputs()

    async def _reload_when_asked(self, asked: trio.MemoryReceiveChannel[None],
                                 scope: trio.CancelScope) -> None:
        with scope:
            async for _ in asked:
                await self.reload()
                self._reopen_outputs()

    async def _watch_files(self, ask: trio.MemorySendChannel[None]) -> None:
        """Falco's ``watch_config_files``: the config file, the ``config_files`` (and the
        files dropped into their directories) and the rules files, checked every
        WATCH_INTERVAL seconds; a change asks for a reload as SIGHUP does."""
        self._watch_seen = await trio.to_thread.run_sync(watched_state, self.config,
                                                         self.rules_files)
        while True:
            await trio.sleep(WATCH_INTERVAL)
            now = await trio.to_thread.run_sync(watched_state, self._current_config,
                                                self.rules_files)
            if now != self._watch_seen:
                self._watch_seen = now
                log.info("a watched config or rules file changed: reloading")
                with contextlib.suppress(trio.WouldBlock):
                    ask.send_nowait(None)

    def _reopen_outputs(self) -> None:
        for output in self.outputs:
            try:
                output.reopen()
            except Exception as exc:
                log.error("output %r could not reopen: %s", output.name, exc)

    async def reload(self) -> bool:
        """Re-read the config file and the rules; keep what runs when anything fails.  One
        reload at a time; the files it reads are no change for ``watch_config_files``."""
        async with self._reload_lock:
            if self._watch_seen is not None:
                self._watch_seen = await trio.to_thread.run_sync(
                    watched_state, self._current_config, self.rules_files)
            return await self._reload()

    async def _reload(self) -> bool:
        log.info("reloading config and rules")
        try:
            config = load_config(self.config_path, self.overrides, self.plugins.schemas())
            if self.rules_files:
                config["rules_file"] = list(self.rules_files)
            self._take_rules_source(config)
        except SyswardenError as exc:
            log.error("reload failed, keeping the running config and rules: %s", exc)
            return False
        for f in self.filters:
            try:
                await trio.to_thread.run_sync(f.reload, config, abandon_on_cancel=True)
            except Exception as exc:
                detail = str(exc) if isinstance(exc, RuleError) else \
                    f"{type(exc).__name__}: {exc}"
                log.error("reload failed, keeping the running rules: filter %r: %s",
                          f.name, detail)
                return False
        changed = sorted(k for k in set(config) | set(self._current_config)
                         if not k.startswith("_") and k not in RELOADED_KEYS
                         and config.get(k) != self._current_config.get(k))
        if changed:
            log.warning("reload: the rules are reloaded; %s changed, which takes effect at the "
                        "next start", ", ".join(changed))
        self._current_config = config
        self.ctx.event_types = self.event_types()
        self.ctx.open_prefilter = self.open_prefilter()
        self.ctx.socket_prefilter = self.socket_prefilter()
        for source in self.sources:
            # the prefilters first: a source reloads its program once it has the event types
            source.set_open_prefilter(self.ctx.open_prefilter)
            source.set_socket_prefilter(self.ctx.socket_prefilter)
            source.set_event_types(self.ctx.event_types)
        log.info("reloaded: event_types=%s", "all" if self.ctx.event_types is None
                 else len(self.ctx.event_types))
        return True

    def _take_rules_source(self, config: dict[str, Any]) -> None:
        """The rules a plugin keeps (``syswarden_rules_files``) replace ``rules_file``,
        unless ``-r`` named the rules."""
        if not self.rules_files:
            files = self.plugins.rules_files(config)
            if files is not None:
                config["rules_file"] = files

    async def _report_periodically(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            self._report(final=False)

    def _report(self, final: bool) -> None:
        summary = self.metrics.summary()
        if final:
            log.info("counters at exit: %s", summary or "none")
        elif summary:
            log.info("counters: %s", summary)
        drops = self.metrics.drops()
        if drops:
            log.warning("dropped: %s", " ".join(f"{k}={v}" for k, v in sorted(drops.items())))


#: Collections between two of the next generation: events are freed by reference counting, so
#: the cycle collector rarely has garbage to find, and a full collection over the process table
#: and the caches stalls the pipeline (p99 detection latency at 10,000 events/s, on a machine
#: also running 1,000 short-lived processes a second: 62-73 ms with Python's defaults, 23-28 ms
#: with these).
GC_THRESHOLDS = (20_000, 50, 50)


def _settle_gc() -> None:
    """Once started: what start-up built (rules, fields, the /proc snapshot) is moved out of
    the collector's sight for good, and collections are spaced out."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)
