"""The container metadata cache: what is known, what is being looked up, what is waiting.

Keyed by Falco's 12-hex short id.  An entry is a :class:`~syswarden.core.event.Container`:
complete once an engine answered, a placeholder (``complete=False``, id and runtime type from
the cgroup) while a lookup is pending or when no engine knows the container.

``request(ref)`` never blocks: it records a :class:`Pending` lookup with a deadline
(now + ``lookup_wait``; for a lookup the daemon's events asked for, from when an event first
needs it: ``needed``) and queues the id for the lookup workers (a bounded channel; a full
queue is counted in ``drops.enrich.container_lookup_queue``).  ``wait(pendings)`` is what the
enricher's ``prepare`` awaits: until every lookup finished or the latest deadline passed; an
id is waited for at most ``lookup_wait`` once, however many batches carry it.

Pod labels and probes: a container the kubelet started through Docker carries
``io.kubernetes.sandbox.id``; its pod's labels are the labels of that sandbox container,
attached as ``container.pod_labels``, and its probes those the sandbox's pod spec gives its name
(``container.pod_probes``), when both are known (whichever arrives last links them).  A CRI
engine gives the pod's labels and the probes with the container: they are kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import trio

from syswarden.core.cgroups import SHORT_ID_LEN, ContainerRef
from syswarden.core.event import Container
from syswarden.core.metrics import Metrics

from .metadata import K8S_CONTAINER, K8S_SANDBOX, probes_of


@dataclass
class Pending:
    """A lookup in flight: ``done`` is set when it ends (found, not found or failed)."""

    ref: ContainerRef
    deadline: float | None               # trio clock; None: no event has needed it yet
    done: trio.Event = field(default_factory=trio.Event)
    again: bool = False                  # asked again meanwhile (``start`` after ``create``)


class ContainerCache:
    def __init__(self, metrics: Metrics, lookup_wait: float = 0.2, queue_size: int = 4096,
                 retry_after: float = 30.0, max_entries: int = 16384) -> None:
        self.metrics = metrics
        self.lookup_wait = lookup_wait
        self.retry_after = retry_after
        self.max_entries = max_entries
        self.entries: dict[str, Container] = {}
        self.pending: dict[str, Pending] = {}
        self._not_found: dict[str, float] = {}    # short id -> monotonic time of a 404
        self._doomed: dict[str, float] = {}       # short id -> monotonic time to forget it
        self.send, self.receive = trio.open_memory_channel[ContainerRef](queue_size)

    # -- reading (hot path) ---------------------------------------------------------------

    def get(self, short_id: str) -> Container | None:
        return self.entries.get(short_id)

    def placeholder(self, ref: ContainerRef) -> Container:
        """The entry for a container whose metadata is not known (yet): id and type only."""
        entry = self.entries.get(ref.id)
        if entry is None:
            entry = Container(id=ref.id, full_id=ref.full_id, type=ref.type, complete=False)
            self._store(entry)
        return entry

    # -- lookups --------------------------------------------------------------------------

    def needs_lookup(self, short_id: str) -> bool:
        entry = self.entries.get(short_id)
        if entry is not None and entry.complete:
            return False
        if short_id in self.pending:
            return False
        seen = self._not_found.get(short_id)
        return seen is None or time.monotonic() - seen >= self.retry_after

    def request(self, ref: ContainerRef, force: bool = False,
                background: bool = False) -> Pending | None:
        """Queue a lookup of ``ref`` unless one is pending or not needed; return the pending
        lookup (None when there is none).  A ``background`` lookup (the daemon announced the
        container) has no deadline until :meth:`needed`: a container's first process, judged
        after a lookup that started at its ``create``, still gets its ``lookup_wait``."""
        pend = self.pending.get(ref.id)
        if pend is not None:
            if force:
                pend.again = True
            return pend
        if not force and not self.needs_lookup(ref.id):
            return None
        pend = Pending(ref, None if background else trio.current_time() + self.lookup_wait)
        try:
            self.send.send_nowait(ref)
        except trio.WouldBlock:
            self.metrics.inc("drops.enrich.container_lookup_queue")
            return None
        self.pending[ref.id] = pend
        return pend

    def finish(self, short_id: str) -> Pending | None:
        """A lookup ended (whatever its outcome): wake whoever waits for it."""
        pend = self.pending.pop(short_id, None)
        if pend is not None:
            pend.done.set()
        return pend

    def release_all(self, types: frozenset[str] | None = None) -> None:
        """An engine went away: no pending lookup of the containers it knows (of these
        ``types``; None: every one) will answer; stop anyone waiting."""
        for short_id, pend in list(self.pending.items()):
            if types is None or pend.ref.type in types:
                self.finish(short_id)

    def needed(self, pend: Pending, now: float) -> bool:
        """An event needs this lookup: whether it is still worth waiting for (its deadline,
        set now if no event needed it before, is ahead)."""
        if pend.deadline is None:
            pend.deadline = now + self.lookup_wait
        return pend.deadline > now

    async def wait(self, pendings: list[Pending]) -> None:
        """Wait until these lookups end or the latest of their deadlines passes."""
        deadline = max(p.deadline for p in pendings)
        with trio.move_on_at(deadline):
            for p in pendings:
                await p.done.wait()

    # -- results --------------------------------------------------------------------------

    def put(self, container: Container) -> None:
        """Store a looked-up container (replacing its placeholder) and link pod labels."""
        old = self.entries.get(container.id)
        if old is not None and not container.type:
            container.type = old.type
        self._not_found.pop(container.id, None)
        self._store(container)
        sandbox = container.labels.get(K8S_SANDBOX)
        if sandbox:
            box = self.entries.get(sandbox[:SHORT_ID_LEN])
            if box is not None and box.complete:
                _from_sandbox(container, box)
        full = container.full_id
        for other in self.entries.values():
            if other.complete and other.labels.get(K8S_SANDBOX) == full:
                _from_sandbox(other, container)

    def sandbox_to_fetch(self, container: Container) -> ContainerRef | None:
        """The sandbox of a pod container when its labels are not known yet."""
        sandbox = container.labels.get(K8S_SANDBOX)
        if container.pod_labels or not sandbox or len(sandbox) < SHORT_ID_LEN:
            return None
        box = self.entries.get(sandbox[:SHORT_ID_LEN])
        if box is not None and box.complete:
            return None
        return ContainerRef(sandbox[:SHORT_ID_LEN], sandbox, container.type)

    def not_found(self, ref: ContainerRef) -> None:
        """No engine knows this container (another runtime's, or already removed)."""
        self._not_found[ref.id] = time.monotonic()
        self.placeholder(ref)

    def destroyed(self, short_id: str, grace: float) -> None:
        """Its runtime removed the container: forget it after ``grace`` seconds (late events of
        its last processes still find it)."""
        self._doomed[short_id] = time.monotonic() + grace

    def sweep(self) -> int:
        """Forget the containers whose grace period is over; return how many."""
        now = time.monotonic()
        gone = [cid for cid, t in self._doomed.items() if t <= now]
        for cid in gone:
            self._doomed.pop(cid, None)
            self.entries.pop(cid, None)
            self._not_found.pop(cid, None)
        for cid in [c for c, t in self._not_found.items() if now - t > self.retry_after * 4]:
            self._not_found.pop(cid, None)
        return len(gone)

    def _store(self, container: Container) -> None:
        self.entries[container.id] = container
        if len(self.entries) > self.max_entries:
            oldest = next(iter(self.entries))
            self.entries.pop(oldest, None)
            self.metrics.inc("enrich.container.evicted")


def _from_sandbox(container: Container, box: Container) -> None:
    """What a pod's container takes from its pod's sandbox container (Docker's kubelet shim
    puts the pod's labels and annotations on the sandbox alone): the pod's labels, and the
    probes the pod's spec gives the container of its name when it has none of its own (Falco
    copies the sandbox's; the health check is then not considered, as Falco's)."""
    if not container.pod_labels:
        container.pod_labels = box.labels
    if box.pod_probes and not (container.pod_probes or container.liveness_probe
                               or container.readiness_probe):
        live, ready = probes_of(box.pod_probes, container.labels.get(K8S_CONTAINER))
        if live or ready:
            container.liveness_probe, container.readiness_probe = live, ready
            container.healthcheck = None
