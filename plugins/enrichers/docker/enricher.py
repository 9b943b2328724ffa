"""The Docker enricher: the container of every event, and its metadata from the Docker API.

Per event (``enrich``, synchronous, after the process enricher):

1. The container id comes from the event's kernel cgroup id (``evt.cgroup_id``, or the
   process's, inherited through the process table), resolved once per cgroup by
   :class:`~.cgroup.CgroupResolver`.  It follows the process: a process that moves into a
   container's cgroup (``runc init`` before it execs the container's first program) gets the
   container from its next event on.  A process from the ``/proc`` snapshot with no cgroup id
   has its ``/proc/PID/cgroup`` read once.
2. ``proc.container_id`` is set (``host`` or the short id) and ``evt.container`` (and
   ``proc.container``) to the cached :class:`~syswarden.core.event.Container` (None on the
   host).  Unknown metadata leaves a placeholder with the id and the runtime only, counted in
   ``drops.enrich.docker_pending`` (a lookup was still running), ``drops.enrich.docker_unavailable``
   (the daemon is away) or ``enrich.docker.not_docker`` (Docker does not know the container).

Per batch (``prepare``, before any enricher's ``enrich``): the containers of the batch whose
metadata is missing are looked up and the batch waits for them, at most ``lookup_wait`` per
container, never while the daemon is away.

In the background (``run``): the connection to the daemon, which lists the running containers
and then follows ``/events`` (``create``/``start``/``rename`` -> inspect, ``destroy`` -> forget
after ``forget_after`` seconds); a few lookup workers; a sweeper.  When the daemon cannot be
reached (absent, socket missing, restarted, too slow) one warning is logged, fields read as
unknown, and the connection is retried with exponential backoff up to ``reconnect_max``; when
it comes back one info line says so and the cache is refreshed.  Nothing here raises into the
pipeline.
"""

from __future__ import annotations

import logging
from typing import Any

import trio

from syswarden.core.event import Container, Event
from syswarden.core.metrics import Metrics
from syswarden.core.protocols import Enricher

from .cache import ContainerCache, Pending
from .cgroup import HOST, HOST_REF, CgroupResolver, ContainerRef, read_proc_cgroup
from .client import DEFAULT_SOCKET, DockerClient, DockerUnavailable
from .metadata import container_from_inspect

log = logging.getLogger("syswarden.docker")

#: Docker events that (re)define what the cache holds about a container.
_REFRESH = frozenset({"create", "start", "rename", "update"})


class DockerEnricher(Enricher):
    name = "docker"

    def __init__(self, metrics: Metrics, socket: str = DEFAULT_SOCKET, lookup_wait: float = 0.2,
                 api_timeout: float = 2.0, reconnect_min: float = 0.5,
                 reconnect_max: float = 30.0, forget_after: float = 60.0, workers: int = 4,
                 startup_wait: float = 2.0, resolver: CgroupResolver | None = None) -> None:
        self.metrics = metrics
        self.socket = socket
        self.api_timeout = api_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.forget_after = forget_after
        self.workers = workers
        self.startup_wait = startup_wait
        self.resolver = resolver if resolver is not None else CgroupResolver()
        self.cache = ContainerCache(metrics, lookup_wait=lookup_wait)
        self.available = False              # connected to the daemon (read by tests too)
        self._warned = False

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
            self.metrics.inc("enrich.docker.proc_reads")
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

    def _missing(self, ref: ContainerRef, container: Container | None) -> Container:
        cache = self.cache
        if not self.available:
            self.metrics.inc("drops.enrich.docker_unavailable")
        elif ref.id in cache.pending:
            self.metrics.inc("drops.enrich.docker_pending")
        elif cache.request(ref) is not None:
            self.metrics.inc("drops.enrich.docker_pending")
        else:
            self.metrics.inc("enrich.docker.not_docker")
        return container if container is not None else cache.placeholder(ref)

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
            pend = cache.request(ref)
            if pend is not None and cache.needed(pend, now) and pend not in waits:
                waits.append(pend)
        if waits:
            self.metrics.inc("enrich.docker.batch_waits")
            await cache.wait(waits)

    # -- background -----------------------------------------------------------------------

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Keep the cache fresh until cancelled.  Started once the first attempt to reach the
        daemon ended (or ``startup_wait`` passed)."""
        first = trio.Event()
        try:
            async with DockerClient(self.socket, self.api_timeout) as client:
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(self._connection, client, first, nursery)
                    for _ in range(self.workers):
                        nursery.start_soon(self._lookups, client, self.cache.receive.clone())
                    nursery.start_soon(self._sweeper)
                    with trio.move_on_after(self.startup_wait):
                        await first.wait()
                    task_status.started()
        finally:
            self.available = False
            self.cache.release_all()
            self.resolver.close()

    async def _connection(self, client: DockerClient, first: trio.Event,
                          nursery: trio.Nursery) -> None:
        delay = self.reconnect_min
        while True:
            try:
                version = await client.ping()
                self._up(version)
                delay = self.reconnect_min
                nursery.start_soon(self._resync, client, first)
                async for doc in client.events():
                    self._on_event(doc)
                raise DockerUnavailable(f"{self.socket}: the event stream ended")
            except DockerUnavailable as exc:
                self._down(str(exc))
            first.set()
            await trio.sleep(delay)
            delay = min(delay * 2, self.reconnect_max)

    def _up(self, version: str) -> None:
        self.available = True
        if self._warned:
            log.info("docker: reconnected to %s (API %s); container metadata is back",
                     self.socket, version)
            self._warned = False
        else:
            log.debug("docker: connected to %s (API %s)", self.socket, version)

    def _down(self, why: str) -> None:
        self.available = False
        self.cache.release_all()
        if not self._warned:
            log.warning("docker: cannot reach the daemon (%s); container fields read as unknown "
                        "until it is back (retrying with backoff up to %ss)",
                        why, self.reconnect_max)
            self._warned = True
        self.metrics.inc("enrich.docker.connect_failures")

    async def _resync(self, client: DockerClient, first: trio.Event) -> None:
        """After a (re)connection: look up every running container and every container seen
        while the daemon was away."""
        try:
            ids = await client.list_ids()
        except DockerUnavailable:
            first.set()
            return
        pendings = []
        for full in ids:
            pend = self.cache.request(ContainerRef(full[:12], full, "docker"), background=True)
            if pend is not None:
                pendings.append(pend)
        for entry in list(self.cache.entries.values()):
            if not entry.complete:
                pend = self.cache.request(ContainerRef(entry.id, entry.full_id, entry.type),
                                          force=True, background=True)
                if pend is not None:
                    pendings.append(pend)
        with trio.move_on_after(self.startup_wait):
            for pend in pendings:
                await pend.done.wait()
        first.set()

    def _on_event(self, doc: dict[str, Any]) -> None:
        action = str(doc.get("Action") or doc.get("status") or "")
        full = str((doc.get("Actor") or {}).get("ID") or doc.get("id") or "")
        if len(full) < 12:
            return
        short = full[:12]
        if action in _REFRESH:
            self.cache.request(ContainerRef(short, full, "docker"), force=True, background=True)
        elif action == "destroy":
            self.cache.destroyed(short, self.forget_after)

    async def _lookups(self, client: DockerClient,
                       recv: trio.MemoryReceiveChannel[ContainerRef]) -> None:
        async with recv:
            async for ref in recv:
                await self._lookup(client, ref)

    async def _lookup(self, client: DockerClient, ref: ContainerRef) -> None:
        cache = self.cache
        try:
            if not self.available:
                return
            try:
                doc = await client.inspect(ref.full_id or ref.id)
            except DockerUnavailable as exc:
                log.debug("docker: lookup of %s failed: %s", ref.id, exc)
                self.metrics.inc("enrich.docker.lookup_failures")
                return
            if doc is None:
                cache.not_found(ref)
                return
            container = container_from_inspect(doc)
            sandbox = cache.sandbox_to_fetch(container)
            if sandbox is not None:
                # a pod's container: its pod labels are the sandbox's; fetch it in the same
                # lookup so whoever waits for this container gets them too
                try:
                    box = await client.inspect(sandbox.full_id)
                except DockerUnavailable:
                    box = None
                if box is not None:
                    cache.put(container_from_inspect(box))
            cache.put(container)
            self.metrics.inc("enrich.docker.lookups")
        finally:
            pend = cache.finish(ref.id)
            if pend is not None and pend.again and self.available:
                cache.request(ref, force=True, background=True)

    async def _sweeper(self) -> None:
        while True:
            await trio.sleep(max(1.0, self.forget_after / 4))
            self.cache.sweep()
            self.metrics.set("enrich.docker.containers", len(self.cache.entries))
