"""Live: the real eBPF source hands over each event's kernel cgroup id; the Docker enricher gives
the container's first exec (runc's init exec'ing the container's program) its metadata."""

from __future__ import annotations

import os

import pytest
import trio

from syswarden.core.event import Event
from syswarden.core.fields import FieldRegistry
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.fields import FIELDS
from tests.helpers.docker import eventually, in_thread
from tests.helpers.runtimes import live_alerts

REG = FieldRegistry(FIELDS)

pytestmark = [pytest.mark.root, pytest.mark.docker]


def read(name: str, evt: Event, arg=None):
    return REG.get(name).bind(arg).read(evt)


async def test_first_exec_of_a_sensitive_mount_container(enricher, containers, nursery) -> None:
    if os.geteuid() != 0:
        pytest.skip("the eBPF source needs root")
    from syswarden.plugins.sources.ebpf.source import EbpfSource

    source = EbpfSource({}, {"execve"}, os.getpid(), Metrics())
    send, recv = trio.open_memory_channel[list[Event]](256)
    await nursery.start(source.run, send)
    execs: list[Event] = []

    async def consume() -> None:
        async with recv:
            async for batch in recv:          # what the agent's enrich stage does
                await enricher.prepare(batch)
                for evt in batch:
                    enricher.enrich(evt)
                    if evt.type == "execve" and evt.container is not None:
                        execs.append(evt)
    nursery.start_soon(consume)

    c = await in_thread(containers.run, "nginx:latest", "nginx", "300",
                        volumes=("/mnt:/tmp/mnt",))
    await eventually(lambda: any(e.pid == c.pid and e.res == 0 for e in execs))
    first = next(e for e in execs if e.pid == c.pid and e.res == 0)
    assert first.cgroup_id and read("container.id", first) == c.short_id
    assert read("container.name", first) == c.name
    assert read("container.image.repository", first) == "nginx"
    assert read("container.mount.dest", first, "/mnt*") == "/tmp/mnt"
    assert enricher.metrics.get("drops.enrich.container_pending") == 0


async def test_seed_launch_sensitive_mount_condition_live(enricher, containers, nursery,
                                                          compat) -> None:
    """eBPF source -> process enricher -> Docker enricher, then the seed's own condition of
    "Launch Sensitive Mount Container" (compiled by the rule compiler) on every event: it
    holds for the container's first exec, and for nothing of a container without the mount."""
    import yaml

    docs = yaml.safe_load((compat / "seed-rules" / "falco_rules_5.yaml").read_text())
    macros = {d["macro"]: d["condition"] for d in docs if isinstance(d, dict) and "macro" in d}
    need = ("spawned_process", "container_started", "container", "sensitive_mount")
    alerts = await live_alerts(nursery, enricher,
                               "container_started and container and sensitive_mount",
                               "%evt.type", macros={n: macros[n] for n in need},
                               syscalls=frozenset({"execve", "execveat"}))

    plain = await in_thread(containers.run, "nginx:latest", "nginx", "300")
    mounted = await in_thread(containers.run, "nginx:latest", "nginx", "300",
                              volumes=("/mnt:/tmp/mnt",))
    await eventually(lambda: any(e.pid == mounted.pid for e, _ in alerts))
    first = next(e for e, _ in alerts if e.pid == mounted.pid)
    assert first.proc.vpid == 1 and first.proc.comm == "nginx"
    assert read("container.id", first) == mounted.short_id
    assert not [e for e, _ in alerts if read("container.id", e) == plain.short_id]
