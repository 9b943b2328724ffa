"""The Docker enricher plugin: ``container.*`` and ``k8s.*`` for every event.

The container id comes from the kernel cgroup id of each event (every runtime: Docker,
containerd/CRI, CRI-O, podman; cgroup v1 and v2); name, image, mounts, privileged, labels and
the kubelet's pod metadata come from the Docker Engine API over its unix socket, cached and
kept fresh from Docker's ``/events`` stream.  See ``docs/containers.md``.

Config (the ``docker`` section)::

    docker:
      enabled: true
      socket: /var/run/docker.sock
      lookup_wait: 0.2        # seconds a batch may wait for a new container's metadata
      api_timeout: 2.0        # seconds per Docker API request
      reconnect_max: 30.0     # backoff ceiling, seconds, while the daemon is away
      forget_after: 60.0      # seconds a removed container stays known
"""

from __future__ import annotations

from typing import Any

from syswarden.core.config import MAX_SECONDS, Key, Section
from syswarden.core.hookspecs import hookimpl

from .client import DEFAULT_SOCKET
from .fields import FIELDS

SECTION = "docker"


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {SECTION: Section({
        "enabled": Key(bool, True, "attach container metadata from the Docker Engine API"),
        "socket": Key(str, DEFAULT_SOCKET, "path of the Docker Engine API unix socket"),
        "lookup_wait": Key(float, 0.2, "seconds a batch may wait for the metadata of a "
                           "container seen for the first time (then fields read unknown)", min=0,
                           max=60),
        "api_timeout": Key(float, 2.0, "seconds each Docker API request may take", min=0,
                           max=3600),
        "reconnect_max": Key(float, 30.0, "longest wait, seconds, between reconnection "
                             "attempts while the daemon is away", min=0,
                             max=3600),
        "forget_after": Key(float, 60.0, "seconds a removed container's metadata is kept for "
                            "the late events of its processes", min=0,
                            max=MAX_SECONDS),
    }, doc="container metadata from Docker (Falco's container_engines.docker)")}


@hookimpl
def syswarden_fields():
    return FIELDS


@hookimpl
def syswarden_make_enrichers(ctx: Any):
    section = ctx.section(SECTION)
    if not section.get("enabled", True):
        return None
    if ctx.replay_file:
        # a capture carries its containers; its cgroup ids are another moment's (or host's)
        return None
    from .enricher import DockerEnricher

    return DockerEnricher(
        ctx.metrics,
        socket=str(section.get("socket") or DEFAULT_SOCKET),
        lookup_wait=float(section.get("lookup_wait", 0.2)),
        api_timeout=float(section.get("api_timeout", 2.0)),
        reconnect_max=float(section.get("reconnect_max", 30.0)),
        forget_after=float(section.get("forget_after", 60.0)),
    )
