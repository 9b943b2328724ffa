"""What a container engine implements: one runtime's API, behind the enricher's shared cache.

The container enricher (:mod:`.enricher`) owns what every runtime shares: the cgroup id ->
container id resolution, the cache, the bounded waits, the reconnection with backoff and its
one warning, the counters.  An engine only speaks its runtime's API:

- :meth:`ContainerEngine.ping` once per (re)connection,
- :meth:`ContainerEngine.inspect` a container into a :class:`~syswarden.core.event.Container`
  (None when the runtime does not know it),
- :meth:`ContainerEngine.list_running` after a (re)connection,
- :meth:`ContainerEngine.events` to learn of new and removed containers (the default has no
  stream: lookups then start when an event first carries the container).

What every engine honours the same way is its :class:`EngineOptions` (Falco's container plugin
``label_max_len``, ``with_size`` and ``hooks``): :func:`~.metadata.short_labels` drops the
long labels, ``with_size`` asks the runtime for the container's size, ``hooks`` says which
of the runtime's events (a container created, started) start a lookup.

Every failure to reach the runtime is raised as :class:`EngineUnavailable`, the one thing the
enricher catches.  The built-in engines are listed in :data:`ENGINES`, each ``(name, module,
class)``; ``types`` says which ``container.type`` values (from the cgroup layout) an engine
may know, so a lookup asks only the engines that can answer it.
"""

from __future__ import annotations

import abc
import importlib
import logging
import os
from dataclasses import dataclass
from typing import Any, AsyncIterator

import trio

from syswarden.core.event import Container

log = logging.getLogger("syswarden.container")


class EngineUnavailable(Exception):
    """The runtime could not be reached or did not answer in time."""


@dataclass(frozen=True, slots=True)
class EngineEvent:
    """A runtime's news about one container: ``refresh`` (created, started, renamed: look it
    up again) or ``destroy`` (removed: forget it after a grace period)."""

    full_id: str
    action: str  # "refresh" | "destroy"


#: Falco's container plugin ``hooks``: the runtime events that may start a lookup
HOOKS = ("create", "start")
#: Falco's container plugin ``label_max_len`` default
LABEL_MAX_LEN = 100


@dataclass(frozen=True, slots=True)
class EngineOptions:
    """What Falco's container plugin says of every engine: a label whose value is longer than
    ``label_max_len`` bytes is dropped (not cut); ``with_size`` asks the runtime for the
    container's size (slow); ``hooks`` are the runtime events (``create``, ``start``) whose
    news starts a lookup: without ``create`` a container is looked up when started (or when
    an event first carries it), without either when an event first carries it."""

    label_max_len: int = LABEL_MAX_LEN
    with_size: bool = False
    hooks: frozenset[str] = frozenset(HOOKS)


#: the options of an engine made without any
DEFAULT_OPTIONS = EngineOptions()


class ContainerEngine(abc.ABC):
    """One runtime's API on one socket.  ``timeout`` bounds every request (not the stream)."""

    #: the engine's key in ``container.engines`` and its name in logs and counters
    name: str = ""
    #: the ``container.type`` values (from cgroups) of the containers this engine may know
    types: frozenset[str] = frozenset()
    #: the sockets it is found on when none is configured, in the order they are tried
    default_sockets: tuple[str, ...] = ()
    #: seconds between two pings of a runtime that has no event stream
    heartbeat: float = 2.0

    def __init__(self, socket: str, timeout: float = 2.0,
                 options: EngineOptions = DEFAULT_OPTIONS) -> None:
        self.socket = socket
        self.timeout = timeout
        self.options = options
        self._warned_unreadable = False

    def unreadable(self, container_id: str, what: str) -> None:
        """Part of a container's metadata could not be read (a malformed or oversized pod
        spec annotation): one warning per engine, the next ones at debug level; the container
        is kept without that part."""
        level = logging.DEBUG if self._warned_unreadable else logging.WARNING
        self._warned_unreadable = True
        log.log(level, "%s: container %s: %s; read as absent (further ones at debug level)",
                self.name, container_id[:12], what)

    def hooked(self, hook: str) -> bool:
        """Whether the runtime's ``hook`` event (``create``, ``start``) starts a lookup."""
        return hook in self.options.hooks

    @abc.abstractmethod
    async def ping(self) -> str:
        """The runtime's version; raises :class:`EngineUnavailable`."""

    @abc.abstractmethod
    async def inspect(self, full_id: str) -> Container | None:
        """A complete :class:`Container` for a full id (or an unambiguous prefix), None when
        the runtime does not know it; raises :class:`EngineUnavailable`."""

    @abc.abstractmethod
    async def list_running(self) -> list[str]:
        """Full ids of the running containers; raises :class:`EngineUnavailable`."""

    async def events(self) -> AsyncIterator[EngineEvent]:
        """The runtime's container events until its stream ends; raises
        :class:`EngineUnavailable` when the stream breaks.  The default has no stream (a
        lookup starts when an event first carries the container): it pings the runtime every
        ``heartbeat`` seconds, so that a runtime gone away is noticed."""
        while True:
            await trio.sleep(self.heartbeat)
            await self.ping()
        yield EngineEvent("", "")  # pragma: no cover (an async generator)

    async def aclose(self) -> None:
        """Release the connection.  The default has nothing to release."""

    async def __aenter__(self) -> "ContainerEngine":
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        return f"{self.name} engine on {self.socket}"


#: The built-in engines: (name, module, class), in the order a lookup asks them (the CRI
#: before containerd: a kubelet's container is a pod's, and the CRI knows the pod).
ENGINES: tuple[tuple[str, str, str], ...] = (
    ("docker", "syswarden.plugins.enrichers.containers.engines.docker", "DockerEngine"),
    ("podman", "syswarden.plugins.enrichers.containers.engines.docker", "PodmanEngine"),
    ("cri", "syswarden.plugins.enrichers.containers.engines.cri", "CriEngine"),
    ("containerd", "syswarden.plugins.enrichers.containers.engines.containerd",
     "ContainerdEngine"),
)

ENGINE_NAMES = tuple(name for name, _, _ in ENGINES)


def engine_class(name: str) -> type[ContainerEngine]:
    """The class of a built-in engine (imported on demand: gRPC only when it is used)."""
    for engine, module, cls in ENGINES:
        if engine == name:
            return getattr(importlib.import_module(module), cls)
    raise KeyError(name)


def present_sockets(paths: tuple[str, ...] | list[str]) -> list[str]:
    """The paths that are unix sockets now (globs such as ``/run/user/*/podman/podman.sock``
    expanded), in order, each socket once (``/var/run`` is often ``/run``)."""
    import glob
    import stat

    out: list[str] = []
    seen: set[tuple[int, int]] = set()
    for pattern in paths:
        for path in sorted(glob.glob(pattern)) if any(c in pattern for c in "*?[") \
                else [pattern]:
            try:
                st = os.stat(path)
            except OSError:
                continue
            if stat.S_ISSOCK(st.st_mode) and (st.st_dev, st.st_ino) not in seen:
                seen.add((st.st_dev, st.st_ino))
                out.append(path)
    return out
