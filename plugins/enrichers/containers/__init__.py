"""The container enricher plugin: ``container.*`` and ``k8s.*`` for every event.

The container id comes from the kernel cgroup id of each event (every runtime: Docker,
containerd/CRI, CRI-O, podman; cgroup v1 and v2); name, image, mounts, privileged, labels and
the pod's metadata come from the container engines (:mod:`.engine`): Docker's and podman's
Engine API, containerd's gRPC API, the CRI (containerd's CRI plugin, CRI-O), cached and kept
fresh from their event streams.  See ``docs/containers.md``.

Config (the ``container`` section; ``engines`` is Falco's container plugin ``engines:``)::

    container:
      enabled: true
      lookup_wait: 0.2        # seconds a batch may wait for a new container's metadata
      api_timeout: 2.0        # seconds per engine API request
      reconnect_max: 30.0     # backoff ceiling, seconds, while an engine is away
      forget_after: 60.0      # seconds a removed container stays known
      label_max_len: 100      # Falco's: a label whose value is longer is dropped
      with_size: false        # Falco's: ask each container's size (slow)
      hooks: [create, start]  # Falco's: the runtime events that start a lookup
      engines:
        docker: {enabled: true, sockets: []}      # []: the usual paths, off when none exists
        podman: {enabled: true, sockets: []}
        containerd: {enabled: true, sockets: []}
        cri: {enabled: true, sockets: []}
"""

from __future__ import annotations

import logging
from typing import Any

from syswarden.core.config import MAX_SECONDS, Key, Section
from syswarden.core.hookspecs import hookimpl

from .engine import (ENGINE_NAMES, HOOKS, LABEL_MAX_LEN, ContainerEngine, EngineOptions,
                     engine_class, present_sockets)
from .fields import FIELDS

SECTION = "container"

log = logging.getLogger("syswarden.container")

#: Falco's container plugin engines with no engine here: accepted, never used.
FALCO_ONLY_ENGINES = ("lxc", "libvirt_lxc", "bpm")


def _engine_section(name: str) -> Section:
    return Section({
        "enabled": Key(bool, True, f"ask the {name} engine for container metadata"),
        "sockets": Key(list, [], f"{name} API sockets; empty: the usual paths, and the engine "
                       "is off when none of them exists at start", items=str),
    }, doc=f"the {name} engine")


def _engines_schema() -> Section:
    keys = {name: Key(_engine_section(name), doc=f"the {name} engine") for name in ENGINE_NAMES}
    for name in FALCO_ONLY_ENGINES:
        keys[name] = Key(Section({
            "enabled": Key(bool, False, "accepted for Falco compatibility; no such engine here"),
        }), doc=f"Falco's {name} engine (accepted, not supported)")
    return Section(keys, doc="the container engines (Falco's container plugin engines)")


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {SECTION: Section({
        "enabled": Key(bool, True, "attach container metadata from the container engines "
                       "(off: rules requiring Falco's container plugin are refused)"),
        "lookup_wait": Key(float, 0.2, "seconds a batch may wait for the metadata of a "
                           "container seen for the first time (then fields read unknown)", min=0,
                           max=60),
        "api_timeout": Key(float, 2.0, "seconds each engine API request may take", min=0,
                           max=3600),
        "reconnect_max": Key(float, 30.0, "longest wait, seconds, between reconnection "
                             "attempts while an engine is away", min=0,
                             max=3600),
        "forget_after": Key(float, 60.0, "seconds a removed container's metadata is kept for "
                            "the late events of its processes", min=0,
                            max=MAX_SECONDS),
        "label_max_len": Key(int, LABEL_MAX_LEN, "Falco's container plugin label_max_len: a "
                             "container or pod label whose value is longer (bytes) is dropped",
                             min=0),
        "with_size": Key(bool, False, "Falco's container plugin with_size: ask each "
                         "container's size (slow; no field reads it, captures keep it)"),
        "hooks": Key(list, list(HOOKS), "Falco's container plugin hooks: the runtime events "
                     "that start a lookup (create, start; Falco's default is [create]); "
                     "without them a container is looked up when an event first carries it",
                     items=str, check=_hooks_problem),
        "engines": Key(_engines_schema(), doc="the container engines (Falco's container plugin "
                       "engines)"),
    }, doc="container metadata from Docker, podman, containerd and the CRI (Falco's container "
           "plugin)")}


def _hooks_problem(hooks: Any) -> str | None:
    bad = [h for h in hooks if h not in HOOKS] if isinstance(hooks, list) else hooks
    return f"{bad!r}: the hooks are {', '.join(HOOKS)}" if bad else None


@hookimpl
def syswarden_validate_config(config: dict[str, Any]) -> list[str] | None:
    """The Falco container plugin's ``init_config`` keys, taken into this section as they
    are: checked here as the schema checks this section's own."""
    section = config.get(SECTION) or {}
    errors = []

    def wrong(key: str, problem: str) -> None:
        errors.append(f"{SECTION}.{key} (the container plugin's init_config.{key}): {problem}")
    most = section.get("label_max_len", LABEL_MAX_LEN)
    if isinstance(most, bool) or not isinstance(most, int) or most < 0:
        wrong("label_max_len", f"{most!r} is not a length (an integer, 0 or more)")
    if not isinstance(section.get("with_size", False), bool):
        wrong("with_size", f"{section['with_size']!r} is not true or false")
    problem = _hooks_problem(section.get("hooks", list(HOOKS)))
    if problem:
        wrong("hooks", problem)
    return errors or None


@hookimpl
def syswarden_fields():
    return FIELDS


def engine_options(section: dict[str, Any]) -> EngineOptions:
    """What every engine honours: Falco's ``label_max_len``, ``with_size``, ``hooks``."""
    return EngineOptions(label_max_len=int(section.get("label_max_len", LABEL_MAX_LEN)),
                         with_size=bool(section.get("with_size", False)),
                         hooks=frozenset(section.get("hooks", HOOKS)))


def make_engines(section: dict[str, Any], timeout: float) -> list[ContainerEngine]:
    """The engines the config enables: one per configured socket (a missing one is retried,
    with one warning), or one per usual socket that exists now (none: the engine is off, with
    one log line)."""
    options = engine_options(section)
    chosen: list[tuple[type[ContainerEngine], list[str]]] = []
    conf = section.get("engines") or {}
    for name in ENGINE_NAMES:
        entry = conf.get(name) or {}
        if not entry.get("enabled", True):
            continue
        try:
            cls = engine_class(name)
        except ImportError as exc:
            log.warning("%s: engine not available (%s); run scripts/setup.sh", name, exc)
            continue
        sockets = list(entry.get("sockets") or [])
        if not sockets:
            sockets = present_sockets(cls.default_sockets)
            if not sockets:
                log.info("%s: no socket at %s; engine off", name,
                         ", ".join(cls.default_sockets))
                continue
        chosen.append((cls, sockets))
    # a containerd socket the CRI engine also asks: the CRI answers for the pods' containers
    cri = {s for cls, sockets in chosen if cls.name == "cri" for s in sockets}
    engines: list[ContainerEngine] = []
    for cls, sockets in chosen:
        for socket in sockets:
            if cls.name == "containerd":
                engines.append(cls(socket, timeout, cri_managed=socket not in cri,
                                   options=options))
            else:
                engines.append(cls(socket, timeout, options=options))
    return engines


@hookimpl
def syswarden_make_enrichers(ctx: Any):
    section = ctx.section(SECTION)
    if not section.get("enabled", True):
        return None
    if ctx.replay_file:
        # a capture carries its containers; its cgroup ids are another moment's (or host's)
        return None
    from .enricher import ContainerEnricher

    return ContainerEnricher(
        ctx.metrics,
        make_engines(section, float(section.get("api_timeout", 2.0))),
        lookup_wait=float(section.get("lookup_wait", 0.2)),
        reconnect_max=float(section.get("reconnect_max", 30.0)),
        forget_after=float(section.get("forget_after", 60.0)),
    )
