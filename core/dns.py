"""The names of socket addresses as Falco knows them: forward lookups of the names rules write.

Falco compares ``fd.sip.name = NAME`` (``fd.cip.name``, ``fd.lip.name``, ``fd.rip.name``;
``=``, ``!=`` and ``in`` only) by resolving NAME and testing whether the socket's address is one
of NAME's addresses: libsinsp's DNS manager resolves each name a rule compares with
(``getaddrinfo``: ``/etc/hosts``, then DNS), keeps its addresses, and refreshes them in a
thread, every 10 seconds at first, the interval doubled at each refresh up to 320 seconds.  The
same manager gives a field's value in an output: the name learned that way for the address
(the first in name order when several have it), nothing for an address no rule's name
resolved to.

:class:`NameResolver` does the same, off the hot path: the rule engine registers the names its
running rules compare with (:meth:`NameResolver.want`; a disabled rule's are never looked up),
a comparison is a set lookup (:meth:`NameResolver.match`), and
the lookups run in worker threads from :meth:`NameResolver.serve` in the agent's nursery (run
by the process enricher, whose fields these are): at most :data:`CONCURRENT` at a time, each
given :data:`TIMEOUT` seconds, at most :data:`MAX_NAMES` names (more are refused and
counted), every lookup and failure counted.  Until a name's first lookup answers, nothing
matches it.  :data:`RESOLVER` is the agent's (one per process, as Falco's); a rule test gives
its engine its own, answering from the test file's ``hosts`` alone (:meth:`NameResolver.
answer`), so a replay never asks the machine's resolver.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from typing import Any, Callable, Iterable

import trio

log = logging.getLogger("syswarden.dns")

#: Falco's fields of a socket end's name -> the field of that end's address
NAME_FIELDS: dict[str, str] = {"fd.cip.name": "fd.cip", "fd.sip.name": "fd.sip",
                               "fd.lip.name": "fd.lip", "fd.rip.name": "fd.rip"}
#: the operators Falco allows on them
NAME_OPERATORS = ("=", "!=", "in")

#: seconds between a name's first lookups, then doubled up to REFRESH_MAX (libsinsp's)
REFRESH_BASE = 10.0
REFRESH_MAX = 320.0
#: names followed at most; lookups at once; seconds a lookup may take
MAX_NAMES = 1024
CONCURRENT = 4
TIMEOUT = 5.0
#: seconds between two looks for names due
TICK = 0.5

Address = Any      # an ipaddress address


def system_lookup(name: str) -> frozenset[Address]:
    """``name``'s addresses as ``getaddrinfo`` gives them (``/etc/hosts``, then DNS); raises
    ``OSError`` when it has none."""
    out = set()
    for family, _, _, _, sockaddr in socket.getaddrinfo(name, None):
        if family in (socket.AF_INET, socket.AF_INET6):
            out.add(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
    return frozenset(out)


class NameResolver:
    """Names to addresses, for the name fields' comparisons and values (see the module)."""

    def __init__(self, lookup: Callable[[str], frozenset[Address]] = system_lookup) -> None:
        self._lookup = lookup
        self._lock = threading.Lock()
        self._addrs: dict[str, frozenset[Address]] = {}     # name -> its addresses
        self._names: dict[Address, str] = {}                 # address -> its first name
        self._due: dict[str, tuple[float, float]] = {}       # name -> (next lookup, interval)
        self._static = False
        #: lookups made, lookups that failed or timed out, names refused (over MAX_NAMES)
        self.counts = {"dns.lookups": 0, "dns.failures": 0, "drops.dns.names": 0}

    # -- the rules' side ----------------------------------------------------------------------

    def want(self, names: Iterable[str]) -> None:
        """Follow ``names`` (a rule compares a name field with them): looked up when due."""
        with self._lock:
            for name in names:
                if name in self._due or self._static:
                    continue
                if len(self._due) >= MAX_NAMES:
                    self.counts["drops.dns.names"] += 1
                    log.warning("dns: %d names followed already, %r is not (it matches no "
                                "address)", MAX_NAMES, name)
                    continue
                self._due[name] = (0.0, REFRESH_BASE)

    def match(self, name: str, addr: Address) -> bool:
        """Whether ``addr`` is one of ``name``'s addresses (known so far)."""
        return addr in self._addrs.get(name, ())

    def name_of(self, addr: Address) -> str | None:
        """The name a rule's name resolved to ``addr`` (None: none did)."""
        return self._names.get(addr) if addr is not None else None

    def names(self) -> list[str]:
        """The names followed."""
        return sorted(self._due) if not self._static else sorted(self._addrs)

    # -- answers ------------------------------------------------------------------------------

    def answer(self, hosts: dict[str, Iterable[str]]) -> None:
        """Answer from ``hosts`` (name -> addresses) alone, as an ``/etc/hosts`` would, and
        never look anything up (a rule test's answers)."""
        with self._lock:
            self._static = True
            self._due.clear()
        for name, addrs in hosts.items():
            self._learn(name, frozenset(ipaddress.ip_address(a) for a in addrs))

    def _learn(self, name: str, addrs: frozenset[Address]) -> None:
        with self._lock:
            addr_of = dict(self._addrs)
            addr_of[name] = addrs
            names: dict[Address, str] = {}
            for n in sorted(addr_of):
                for a in addr_of[n]:
                    names.setdefault(a, n)
            self._addrs, self._names = addr_of, names      # swapped whole: readers never lock

    def due(self, now: float) -> list[str]:
        """The names whose lookup is due at ``now`` (monotonic), marked as looked up."""
        out = []
        with self._lock:
            for name, (at, interval) in self._due.items():
                if at <= now:
                    out.append(name)
                    self._due[name] = (now + interval, min(interval * 2, REFRESH_MAX))
        return out

    def refresh(self, name: str) -> None:
        """Look ``name`` up now (blocking: a worker thread's) and keep what it answers; a
        failure keeps the addresses known before."""
        self.counts["dns.lookups"] += 1
        try:
            addrs = self._lookup(name)
        except (OSError, UnicodeError, ValueError):
            self.counts["dns.failures"] += 1
            return
        self._learn(name, addrs)

    async def serve(self, metrics: Any = None) -> None:
        """Look the names up as they fall due, until cancelled."""
        limiter = trio.CapacityLimiter(CONCURRENT)
        busy: set[str] = set()

        async def one(name: str) -> None:
            try:
                with trio.move_on_after(TIMEOUT) as scope:
                    await trio.to_thread.run_sync(self.refresh, name, limiter=limiter,
                                                  abandon_on_cancel=True)
                if scope.cancelled_caught:
                    self.counts["dns.failures"] += 1
            finally:
                busy.discard(name)

        async with trio.open_nursery() as lookups:
            while True:
                for name in self.due(time.monotonic()):
                    if name not in busy:
                        busy.add(name)
                        lookups.start_soon(one, name)
                if metrics is not None:
                    for key, n in self.counts.items():
                        metrics.set(key, n)
                    metrics.set("dns.names", len(self._due))
                await trio.sleep(TICK)


class NameMatch:
    """A compiled comparison of a name field: ``addr`` is one of ``names``' addresses
    (``negate``: it is not; ``!=``).  :meth:`follow` gives the names to the resolver: the rule
    engine calls it for the rules that run (a disabled rule's names are never looked up)."""

    __slots__ = ("resolver", "names", "negate")

    def __init__(self, resolver: NameResolver, names: tuple[str, ...], negate: bool) -> None:
        self.resolver = resolver
        self.names = names
        self.negate = negate

    def __call__(self, addr: Address) -> bool:
        match = self.resolver.match
        return any(match(n, addr) for n in self.names) != self.negate

    def follow(self) -> None:
        self.resolver.want(self.names)


#: The agent's resolver (the rules compiled in this process register their names here).
RESOLVER = NameResolver()

