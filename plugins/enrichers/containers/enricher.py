"""The container enricher: the container of every event, its metadata from the engines.

Per event (``enrich``, synchronous, after the process enricher):

1. The container id comes from the event's kernel cgroup id (``evt.cgroup_id``, or the
   process's, inherited through the process table), resolved once per cgroup by
   :class:`~syswarden.core.cgroup_ids.CgroupResolver`.  It follows the process: a process that moves into a
   container's cgroup (``runc init`` before it execs the container's first program) gets the
   container from its next event on.  A process from the ``/proc`` snapshot with no cgroup id
   has its ``/proc/PID/cgroup`` read once.
2. ``proc.container_id`` is set (``host`` or the short id) and ``evt.container`` (and
   ``proc.container``) to the cached :class:`~syswarden.core.event.Container` (None on the
   host).  Unknown metadata leaves a placeholder with the id and the runtime only, counted in
   ``drops.enrich.container_pending`` (a lookup was still running),
   ``drops.enrich.container_unavailable`` (its engines are away) or
   ``enrich.container.unknown`` (no engine knows the container).
3. At a successful exec in a container whose metadata is known, the health probe the process
   runs as, if any (``proc.health_probe``, :func:`health_probe`: Falco's thread category, read
   by ``proc.is_container_healthcheck``, ``..._liveness_probe``, ``..._readiness_probe``).

Per batch (``prepare``, before any enricher's ``enrich``): the containers of the batch whose
metadata is missing are looked up and the batch waits for them, at most ``lookup_wait`` per
container, never while their engines are away.

In the background (``run``): one connection per engine (:class:`~.engine.ContainerEngine`),
which lists the running containers and then follows the engine's event stream (a ``refresh``
-> a lookup, ``destroy`` -> forget after ``forget_after`` seconds); a few lookup workers, which
ask the engines that may know a container's runtime (its ``container.type``) in
:data:`~.engine.ENGINES` order; a sweeper.  When an engine cannot be reached (socket missing,
runtime restarted, too slow) one warning is logged, its containers' fields read as unknown, and
the connection is retried with exponential backoff up to ``reconnect_max``; when it comes back
one info line says so and the cache is refreshed.  Nothing here raises into the pipeline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Iterable

import trio

from syswarden.core.cgroup_ids import CgroupResolver
from syswarden.core.cgroups import HOST, HOST_REF, SHORT_ID_LEN, ContainerRef, read_proc_cgroup
from syswarden.core.event import Container, Event, Process
from syswarden.core.metrics import Metrics
from syswarden.core.protocols import Enricher

from .cache import ContainerCache, Pending
from .engine import ContainerEngine, EngineUnavailable

log = logging.getLogger("syswarden.container")

#: seconds between two asks of a container no engine knows yet, while an event waits for it
LOOKUP_RETRY = 0.05
_EXEC = frozenset({"execve", "execveat"})


def health_probe(p: Process, c: Container) -> str:
    """The health probe a process runs as, at its exec in container ``c``: Falco's category of
    a thread (``healthcheck``, ``liveness``, ``readiness``; ``""`` for none).  The container's
    first process (vpid 1) runs none; a process whose parent runs one runs the same (so do the
    children it forks: the table copies it); else the process runs the probe whose command is
    its own (argv[0] and its arguments, the liveness probe's, the readiness probe's, then
    the health check's) when none of its ancestors is the container's first process (the probe
    runs beside the container's programs, not under them); else it keeps what it had (an exec
    does not end a probe)."""
    if p.vpid == 1:
        return ""
    parent = p.parent
    if parent is not None and parent.health_probe:
        return parent.health_probe
    if not (c.liveness_probe or c.readiness_probe or c.healthcheck):
        return p.health_probe
    argv = [p.exe, *p.args]
    if argv == c.liveness_probe:
        kind = "liveness"
    elif argv == c.readiness_probe:
        kind = "readiness"
    elif c.healthcheck and c.healthcheck != "NONE" \
            and c.healthcheck in (" ".join(argv), p.cmdline):
        kind = "healthcheck"
    else:
        return p.health_probe
    for a in p.ancestors():
        if a.vpid == 1 and a.container_id not in ("", HOST):
            return p.health_probe           # under the container's first process
    return kind


@dataclass(eq=False)
class _Link:
    """One engine and the state of its connection."""

    engine: ContainerEngine
    available: bool = False
    warned: bool = False


class ContainerEnricher(Enricher):
    name = "container"

    def __init__(self, metrics: Metrics, engines: Iterable[ContainerEngine] = (),
                 lookup_wait: float = 0.2, reconnect_min: float = 0.5,
                 reconnect_max: float = 30.0, forget_after: float = 60.0, workers: int = 4,
                 startup_wait: float = 2.0, resolver: CgroupResolver | None = None) -> None:
        self.metrics = metrics
        self.links = [_Link(e) for e in engines]
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.forget_after = forget_after
        self.workers = workers
        self.startup_wait = startup_wait
        self.resolver = resolver if resolver is not None else CgroupResolver()
        self.cache = ContainerCache(metrics, lookup_wait=lookup_wait)
        self._routes: dict[str, list[_Link]] = {}
        self._warned_unknown = False

    @property
    def engines(self) -> list[ContainerEngine]:
        return [link.engine for link in self.links]

    @property
    def available(self) -> bool:
        """Connected to at least one engine (read by tests too)."""
        return any(link.available for link in self.links)

    def engine_available(self, name: str) -> bool:
        return any(link.available for link in self.links if link.engine.name == name)

    def _links_for(self, kind: str) -> list[_Link]:
        """The engines that may know a container of this runtime (every engine for ``""``)."""
        links = self._routes.get(kind)
        if links is None:
            links = [link for link in self.links if not kind or kind in link.engine.types]
            self._routes[kind] = links
        return links

    def _up_for(self, kind: str) -> bool:
        return any(link.available for link in self._links_for(kind))

    # -- per event ------------------------------------------------------------------------

    def _ref_of(self, evt: Event) -> ContainerRef | None:
        proc = evt.proc
        cg = evt.cgroup_id or (proc.cgroup_id if proc is not None else 0)
        if cg:
            ref = self.resolver.resolve(cg)
            if ref is not None:
                return ref
        if proc is None:
            return None
        if proc.container_id:
            return None             # known already (inherited, or from an earlier event)
        if proc.pid > 0:
            # a /proc snapshot process (no cgroup id), or a cgroup the kernel no longer knows
            ref = read_proc_cgroup(proc.pid)
            self.metrics.inc("enrich.container.proc_reads")
            return ref
        return None

    def enrich(self, evt: Event) -> None:
        proc = evt.proc
        if evt.container is not None:           # a replayed capture carries it already
            if proc is not None and not proc.container_id:
                proc.container_id = evt.container.id
            return
        ref = self._ref_of(evt)
        if ref is not None:
            cid = ref.id
            if proc is not None and proc.container_id != cid:
                proc.container_id = cid
        elif proc is not None and proc.container_id:
            cid = proc.container_id
            ref = HOST_REF if cid == HOST else ContainerRef(cid, "", "")
        else:
            return                                # unknown: fields read unknown
        if cid == HOST:
            if proc is not None:
                proc.container = None
            return
        container = self.cache.get(cid)
        if container is None or not container.complete:
            container = self._missing(ref, container)
        elif container.start_ts is None and proc is not None and proc.vpid == 1 \
                and proc.start_ts:
            container.start_ts = proc.start_ts  # Falco's: the pid namespace's init start
        evt.container = container
        if proc is not None:
            proc.container = container
            if evt.type in _EXEC and evt.res == 0 and container.complete:
                proc.health_probe = health_probe(proc, container)

    def _missing(self, ref: ContainerRef, container: Container | None) -> Container:
        cache = self.cache
        kind = container.type if container is not None and not ref.type else ref.type
        if not self._links_for(kind):
            self._unknown(ref)
        elif not self._up_for(kind):
            self.metrics.inc("drops.enrich.container_unavailable")
        elif ref.id in cache.pending:
            self.metrics.inc("drops.enrich.container_pending")
        elif cache.request(ref) is not None:
            self.metrics.inc("drops.enrich.container_pending")
        else:
            self._unknown(ref)
        return container if container is not None else cache.placeholder(ref)

    def _unknown(self, ref: ContainerRef) -> None:
        self.metrics.inc("enrich.container.unknown")
        if not self._warned_unknown:
            self._warned_unknown = True
            engines = ", ".join(repr(e) for e in self.engines) or "no engine"
            log.warning("container %s (%s) is known to no engine (%s): gone before its "
                        "metadata arrived, or another runtime's; its fields read as unknown "
                        "(counted in enrich.container.unknown)", ref.id, ref.type or "?",
                        engines)

    # -- per batch ------------------------------------------------------------------------

    async def prepare(self, batch: list[Event]) -> None:
        """Start the lookups this batch needs and wait for them, bounded."""
        if not self.available:
            return
        cache = self.cache
        resolve = self.resolver.resolve
        waits: list[Pending] = []
        now = trio.current_time()
        last = -1
        for evt in batch:
            cg = evt.cgroup_id
            if not cg or cg == last:
                continue
            last = cg
            ref = resolve(cg)
            if ref is None or ref.id == HOST:
                continue
            entry = cache.entries.get(ref.id)
            if entry is not None and entry.complete:
                continue
            if not self._up_for(ref.type):
                continue
            pend = cache.request(ref)
            if pend is not None and cache.needed(pend, now) and pend not in waits:
                waits.append(pend)
        if waits:
            self.metrics.inc("enrich.container.batch_waits")
            await cache.wait(waits)

    # -- background -----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the cache fresh until cancelled.  Started once the first attempt to reach
        every engine ended (or ``startup_wait`` passed)."""
        firsts = [trio.Event() for _ in self.links]
        try:
            async with trio.open_nursery() as nursery:
                for link, first in zip(self.links, firsts):
                    nursery.start_soon(self._connection, link, first, nursery)
                for _ in range(self.workers):
                    nursery.start_soon(self._lookups, self.cache.receive.clone())
                nursery.start_soon(self._sweeper)
                with trio.move_on_after(self.startup_wait):
                    for first in firsts:
                        await first.wait()
                task_status.started()
        finally:
            for link in self.links:
                link.available = False
            self.cache.release_all()
            self.resolver.close()
            with trio.CancelScope(shield=True):
                for link in self.links:
                    await link.engine.aclose()

    async def _connection(self, link: _Link, first: trio.Event,
                          nursery: trio.Nursery) -> None:
        engine = link.engine
        delay = self.reconnect_min
        while True:
            try:
                version = await engine.ping()
                self._up(link, version)
                delay = self.reconnect_min
                nursery.start_soon(self._resync, link, first)
                async for news in engine.events():
                    short = news.full_id[:SHORT_ID_LEN]
                    if news.action == "refresh":
                        self.cache.request(ContainerRef(short, news.full_id, engine.name),
                                           force=True, background=True)
                    elif news.action == "destroy":
                        self.cache.destroyed(short, self.forget_after)
                raise EngineUnavailable(f"{engine.socket}: the event stream ended")
            except EngineUnavailable as exc:
                self._down(link, str(exc))
            first.set()
            await trio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _up(self, link: _Link, version: str) -> None:
        link.available = True
        name = link.engine.name
        if link.warned:
            log.info("%s: reconnected to %s (%s); container metadata is back", name,
                     link.engine.socket, version)
            link.warned = False
        else:
            log.info("%s: connected to %s (%s)", name, link.engine.socket, version)

    def _down(self, link: _Link, why: str) -> None:
        link.available = False
        self.cache.release_all(link.engine.types)
        name = link.engine.name
        if not link.warned:
            log.warning("%s: cannot reach the runtime (%s); its containers' fields read as "
                        "unknown until it is back (retrying with backoff up to %ss)",
                        name, why, self.reconnect_max)
            link.warned = True
        self.metrics.inc(f"enrich.container.{name}.connect_failures")

    async def _resync(self, link: _Link, first: trio.Event) -> None:
        """After a (re)connection: look up every running container and every container seen
        while the engine was away."""
        engine = link.engine
        try:
            ids = await engine.list_running()
        except EngineUnavailable:
            first.set()
            return
        pendings = []
        for full in ids:
            pend = self.cache.request(ContainerRef(full[:SHORT_ID_LEN], full, engine.name),
                                      background=True)
            if pend is not None:
                pendings.append(pend)
        for entry in list(self.cache.entries.values()):
            if not entry.complete and entry.type in engine.types:
                pend = self.cache.request(ContainerRef(entry.id, entry.full_id, entry.type),
                                          force=True, background=True)
                if pend is not None:
                    pendings.append(pend)
        with trio.move_on_after(self.startup_wait):
            for pend in pendings:
                await pend.done.wait()
        first.set()

    async def _lookups(self, recv: trio.MemoryReceiveChannel[ContainerRef]) -> None:
        async with recv:
            async for ref in recv:
                await self._lookup(ref)

    async def _lookup(self, ref: ContainerRef) -> None:
        """Ask the engines that may know ``ref`` in order; the first answer is cached.  When
        none knows it yet and an event waits for it, ask again until that event's deadline:
        a runtime registers a container a moment after announcing it (containerd's
        /containers/create comes before the CRI has the container)."""
        cache = self.cache
        try:
            while True:
                found, failed = await self._ask_engines(ref)
                if found:
                    return
                pend = cache.pending.get(ref.id)
                if failed or not self._up_for(ref.type):
                    return
                if pend is None or pend.deadline is None:
                    return            # only a runtime's event asked: not remembered as unknown
                if trio.current_time() + LOOKUP_RETRY >= pend.deadline:
                    cache.not_found(ref)
                    return
                await trio.sleep(LOOKUP_RETRY)
        finally:
            pend = cache.finish(ref.id)
            if pend is not None and pend.again and self._up_for(ref.type):
                cache.request(ref, force=True, background=True)

    async def _ask_engines(self, ref: ContainerRef) -> tuple[bool, bool]:
        """(found and cached, an engine failed)."""
        cache = self.cache
        failed = False
        for link in self._links_for(ref.type):
            if not link.available:
                continue
            try:
                container = await link.engine.inspect(ref.full_id or ref.id)
            except EngineUnavailable as exc:
                log.debug("%s: lookup of %s failed: %s", link.engine.name, ref.id, exc)
                self.metrics.inc("enrich.container.lookup_failures")
                failed = True
                continue
            if container is None:
                continue
            sandbox = cache.sandbox_to_fetch(container)
            if sandbox is not None:
                # a pod's container: its pod labels are the sandbox's; fetch it in the same
                # lookup so whoever waits for this container gets them too
                try:
                    box = await link.engine.inspect(sandbox.full_id)
                except EngineUnavailable:
                    box = None
                if box is not None:
                    cache.put(box)
            cache.put(container)
            self.metrics.inc("enrich.container.lookups")
            return True, failed
        return False, failed

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(max(1.0, self.forget_after / 4))
            self.cache.sweep()
            self.metrics.set("enrich.container.containers", len(self.cache.entries))
