"""The container enricher (its Docker engine) against a real dockerd: events built from real
container processes (their real pid and kernel cgroup id), enriched, and read through Falco's
field readers."""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid

import pytest
import trio

from syswarden.core.event import Container, Event, Process
from syswarden.core.fields import FieldRegistry
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.engine import EngineOptions
from syswarden.plugins.enrichers.containers.engines.docker import DockerEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from syswarden.plugins.enrichers.containers.fields import FIELDS
from syswarden.plugins.enrichers.containers.metadata import parse_timestamp
from tests.helpers.docker import (
    CgroupProcess, RunningContainer, cgroup_id, docker, dockerd_pid, eventually, in_thread,
    process_event, start_dockerd, stop_dockerd, unique_name,
)

REG = FieldRegistry(FIELDS)

pytestmark = pytest.mark.docker


def read(name: str, evt: Event, arg=None):
    return REG.get(name).bind(arg).read(evt)


async def enrich(enricher: ContainerEnricher, *events: Event) -> None:
    """As the agent does: prepare the batch, then enrich each event."""
    await enricher.prepare(list(events))
    for evt in events:
        enricher.enrich(evt)


async def test_container_named_x(enricher, containers) -> None:
    name = unique_name("x")
    c: RunningContainer = await in_thread(containers.run, "nginx:latest", name=name)
    evt = process_event(c.pid)
    assert evt.proc.comm == "nginx" and evt.proc.vpid == 1
    await enrich(enricher, evt)
    assert read("container.id", evt) == c.short_id and len(c.short_id) == 12
    assert evt.proc.container_id == c.short_id
    assert read("container.full_id", evt) == c.id
    assert read("container.name", evt) == name
    assert read("container.image", evt) == "nginx:latest"
    assert read("container.image.repository", evt) == "nginx"
    assert read("container.image.tag", evt) == "latest"
    assert read("container.type", evt) == "docker"
    assert read("container.info", evt) == f"{name} (id={c.short_id})"
    assert isinstance(evt.container, Container) and evt.proc.container is evt.container
    # ``start`` follows ``create``: the cache is refreshed with the start time
    started = parse_timestamp(c.inspect["State"]["StartedAt"])
    await eventually(lambda: enricher.cache.get(c.short_id).start_ts == started)
    later = process_event(c.pid)
    await enrich(enricher, later)
    assert read("container.start_ts", later) == started
    assert read("container.duration", later) == later.ts - started


async def test_sensitive_mount_on_the_very_first_process(enricher, containers) -> None:
    c = await in_thread(containers.run, "nginx:latest", volumes=("/mnt:/tmp/mnt",))
    evt = process_event(c.pid)                  # its first process, right after the start
    assert evt.proc.vpid == 1
    await enrich(enricher, evt)
    assert read("container.mount.dest", evt, "/mnt*") == "/tmp/mnt"
    assert read("container.mount.dest", evt, "/proc*") is None
    assert "/mnt:/tmp/mnt:" in read("container.mounts", evt)


async def test_first_process_of_a_container_not_seen_yet_waits_for_its_lookup(
        enricher, containers) -> None:
    c = await in_thread(containers.run, "nginx:latest", volumes=("/mnt:/tmp/mnt",))
    await eventually(lambda: (enricher.cache.get(c.short_id) or Container("")).complete)
    del enricher.cache.entries[c.short_id]      # as if Docker's events had not arrived yet
    evt = process_event(c.pid)
    await enrich(enricher, evt)
    assert read("container.mount.dest", evt, "/mnt*") == "/tmp/mnt"
    assert enricher.metrics.get("enrich.container.batch_waits") == 1
    assert enricher.metrics.get("drops.enrich.container_pending") == 0


async def test_privileged_or_not(enricher, containers) -> None:
    # runc cannot start a --privileged container on this machine (no CAP_SYS_RESOURCE in the
    # bounding set): the container is created for real (Docker's metadata says privileged) and
    # a real process is put, as pid 1 of a new pid namespace, in the cgroup Docker gives it.
    priv_id = await in_thread(containers.create, "alpine:latest", privileged=True)
    plain = await in_thread(containers.run, "alpine:latest")
    with CgroupProcess(priv_id) as priv:
        e1, e2 = process_event(priv.pid), process_event(plain.pid)
        assert e1.proc.vpid == 1
        await enrich(enricher, e1, e2)
        assert read("container.id", e1) == priv_id[:12]
        assert read("container.privileged", e1) is True
        assert read("container.privileged", e2) is False


async def test_host_process_reads_host(enricher) -> None:
    evt = process_event(os.getpid())
    await enrich(enricher, evt)
    assert read("container.id", evt) == "host" and evt.proc.container_id == "host"
    assert read("container.name", evt) == "host"
    assert read("container.image.repository", evt) is None
    assert evt.container is None


async def test_snapshot_process_reads_proc_once(enricher, containers) -> None:
    c = await in_thread(containers.run, "alpine:latest")
    evt = process_event(c.pid, cg=0)            # from the /proc snapshot: no cgroup id
    evt.proc.cgroup_id = 0
    await enrich(enricher, evt)
    assert read("container.id", evt) == c.short_id
    assert read("container.image", evt) == "alpine:latest"
    again = Event("openat", ts=time.time_ns(), tid=c.pid, pid=c.pid)
    again.proc = evt.proc
    await enrich(enricher, again)
    assert read("container.name", again) == c.name
    assert enricher.metrics.get("enrich.container.proc_reads") == 1


async def test_container_follows_the_cgroup_of_each_event(enricher, containers) -> None:
    """runc's init is a host process until it joins the container's cgroup and execs."""
    c = await in_thread(containers.run, "alpine:latest")
    proc = Process(c.pid, vpid=1, cgroup_id=cgroup_id(os.getpid()), container_id="host")
    evt = Event("execve", ts=time.time_ns(), tid=c.pid, pid=c.pid)
    evt.proc, evt.cgroup_id = proc, cgroup_id(c.pid)
    await enrich(enricher, evt)
    assert proc.container_id == c.short_id
    assert read("container.name", evt) == c.name


async def test_kubernetes_fields_from_the_kubelet_labels(enricher, containers) -> None:
    uid = str(uuid.uuid4())
    pod = {"io.kubernetes.pod.namespace": "shop", "io.kubernetes.pod.name": "web-0",
           "io.kubernetes.pod.uid": uid}
    sandbox = await in_thread(containers.run, "alpine:latest",
                              name=f"k8s_POD_web-0_shop_{uid}_0",
                              labels={**pod, "io.kubernetes.docker.type": "podsandbox",
                                      "app": "web", "tier": "front"})
    app = await in_thread(containers.run, "nginx:latest", name=f"k8s_app_web-0_shop_{uid}_0",
                          labels={**pod, "io.kubernetes.container.name": "app",
                                  "io.kubernetes.docker.type": "container",
                                  "io.kubernetes.sandbox.id": sandbox.id})
    evt = process_event(app.pid)
    await enrich(enricher, evt)
    assert read("k8s.ns.name", evt) == "shop"
    assert read("k8s.pod.name", evt) == "web-0"
    assert read("k8s.pod.uid", evt) == uid
    assert read("k8s.pod.sandbox_id", evt) == sandbox.short_id
    assert read("k8s.pod.label", evt, "app") == "web"
    labels = read("k8s.pod.labels", evt).split(",")       # the image's labels are there too
    assert {"app:web", "tier:front"} <= set(labels)
    assert not [x for x in labels if x.startswith("io.kubernetes.")]
    host = process_event(os.getpid())
    await enrich(enricher, host)
    assert read("k8s.ns.name", host) is None


async def test_docker_absent_one_warning_no_wait(nursery, containers, caplog) -> None:
    caplog.set_level(logging.INFO, logger="syswarden.container")
    c = await in_thread(containers.run, "alpine:latest")
    e = ContainerEnricher(Metrics(), [DockerEngine("/nonexistent/docker.sock")],
                          lookup_wait=30.0, reconnect_min=0.05, reconnect_max=0.1)
    await nursery.start(e.run)
    await eventually(lambda: e.metrics.get("enrich.container.docker.connect_failures") >= 3)
    with trio.fail_after(10):                   # a hang guard: prepare must not wait 30 s
        evt = process_event(c.pid)
        await enrich(e, evt)
    assert read("container.id", evt) == c.short_id     # from the cgroup, Docker or not
    assert read("container.name", evt) is None
    assert e.metrics.get("enrich.container.batch_waits") == 0
    assert e.metrics.get("drops.enrich.container_unavailable") == 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "/nonexistent/docker.sock" in warnings[0].getMessage()


@pytest.mark.slow
async def test_api_slow_bounded_wait_then_fields_return(nursery, containers) -> None:
    c = await in_thread(containers.run, "alpine:latest")
    e = ContainerEnricher(Metrics(), [DockerEngine(timeout=3.0)], lookup_wait=0.3,
                          reconnect_min=0.1, reconnect_max=0.5)
    await nursery.start(e.run)
    await eventually(lambda: (e.cache.get(c.short_id) or Container("")).complete)
    del e.cache.entries[c.short_id]
    pid = dockerd_pid()
    os.kill(pid, signal.SIGSTOP)                # the API stops answering
    try:
        evt = process_event(c.pid)
        await enrich(e, evt)
        assert c.short_id in e.cache.pending    # it went on without the answer
        assert read("container.name", evt) is None
        assert e.metrics.get("drops.enrich.container_pending") == 1
    finally:
        os.kill(pid, signal.SIGCONT)
    await eventually(lambda: not e.cache.pending and e.available)
    later = process_event(c.pid)
    await enrich(e, later)
    assert read("container.name", later) == c.name


@pytest.mark.slow
async def test_dockerd_stopped_mid_run(enricher, containers, caplog) -> None:
    caplog.set_level(logging.INFO, logger="syswarden.container")
    before = await in_thread(containers.run, "alpine:latest")
    unseen = await in_thread(containers.run, "alpine:latest")
    e1 = process_event(before.pid)
    await enrich(enricher, e1)
    assert read("container.name", e1) == before.name
    cg_unseen = cgroup_id(unseen.pid)
    enricher.resolver.resolve(cg_unseen)        # its cgroup id is known (as for a live event)
    await eventually(lambda: (enricher.cache.get(unseen.short_id) or Container("")).complete)
    del enricher.cache.entries[unseen.short_id]
    try:
        await in_thread(stop_dockerd)
        await eventually(lambda: not enricher.available)
        failures = enricher.metrics.get("enrich.container.docker.connect_failures")
        await eventually(lambda: enricher.metrics.get(      # it keeps retrying, quietly
            "enrich.container.docker.connect_failures") >= failures + 3)
        evt = Event("openat", ts=time.time_ns(), tid=unseen.pid, pid=unseen.pid)
        evt.cgroup_id = cg_unseen
        evt.proc = Process(unseen.pid, cgroup_id=cg_unseen)
        with trio.fail_after(10):
            await enrich(enricher, evt)
        assert read("container.id", evt) == unseen.short_id
        assert read("container.name", evt) is None
        assert enricher.metrics.get("drops.enrich.container_unavailable") >= 1
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1
    finally:
        await in_thread(start_dockerd)
    await eventually(lambda: enricher.available)
    after = await in_thread(containers.run, "nginx:latest", name=unique_name("after"))
    e2 = process_event(after.pid)
    await enrich(enricher, e2)
    assert read("container.name", e2) == after.name
    assert read("container.image.repository", e2) == "nginx"
    await eventually(lambda: (enricher.cache.get(unseen.short_id) or Container("")).complete)
    assert any("reconnected" in r.getMessage() for r in caplog.records)


def _seed_macros(compat, *names: str) -> dict[str, str]:
    import yaml

    docs = yaml.safe_load((compat / "seed-rules" / "falco_rules_5.yaml").read_text())
    found = {d["macro"]: d["condition"] for d in docs if isinstance(d, dict) and "macro" in d}
    return {n: found[n] for n in names}


async def test_seed_conditions_on_real_containers(enricher, containers, compat) -> None:
    """The seed's own macros, compiled by the real rule compiler, over enriched events."""
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.compiler import compile_condition

    macros = _seed_macros(compat, "container", "sensitive_mount")
    sensitive = compile_condition("container and sensitive_mount", collect_fields(),
                                  macros=macros)
    mounted = await in_thread(containers.run, "nginx:latest", volumes=("/mnt:/tmp/mnt",))
    plain = await in_thread(containers.run, "nginx:latest")
    e1, e2, e3 = process_event(mounted.pid), process_event(plain.pid), process_event(os.getpid())
    await enrich(enricher, e1, e2, e3)
    assert [sensitive(e) for e in (e1, e2, e3)] == [True, False, False]


async def test_another_runtimes_container_has_id_and_type_only(enricher) -> None:
    """A CRI-O container (a real process in a real cgroup laid out as CRI-O does) with only the
    Docker engine on: no engine may know it, so the id and the runtime are known and the rest
    reads unknown, counted, without asking Docker."""
    full = uuid.uuid4().hex + uuid.uuid4().hex
    path = f"/kubepods.slice/kubepods-burstable.slice/crio-{full}.scope"
    with CgroupProcess(full, path=path) as proc:
        evt = process_event(proc.pid)
        await enrich(enricher, evt)          # no lookup: Docker cannot know a CRI-O container
        assert full[:12] not in enricher.cache.pending
        again = process_event(proc.pid)
        await enrich(enricher, again)
    assert read("container.id", again) == full[:12]
    assert read("container.type", again) == "cri-o"
    assert read("container.name", again) is None
    assert read("container.info", again) == f"<NA> (id={full[:12]})"
    assert enricher.metrics.get("enrich.container.unknown") == 2
    assert enricher.metrics.get("drops.enrich.container_pending") == 0


async def test_removed_container_is_forgotten_after_its_grace(nursery, containers) -> None:
    e = ContainerEnricher(Metrics(), [DockerEngine()], forget_after=0.2)
    await nursery.start(e.run)
    c = await in_thread(containers.run, "alpine:latest")
    await eventually(lambda: (e.cache.get(c.short_id) or Container("")).complete)
    await in_thread(containers.remove, c.id)
    await eventually(lambda: e.cache.get(c.short_id) is None)


async def test_falco_plugin_keys_label_max_len_with_size_and_the_pid(containers) -> None:
    """Falco's ``label_max_len`` drops a label whose value is longer (in bytes) whole;
    ``with_size`` asks Docker for the writable layer's size; the first process's pid is
    recorded."""
    labels = {"short": "x" * 100, "long": "y" * 101, "wide": "\u00e9" * 51}  # 102 bytes
    c = await in_thread(containers.run, "nginx:latest", labels=labels)
    await in_thread(docker, "exec", c.id, "sh", "-c", "head -c 300000 /bin/busybox > /big")
    async with DockerEngine() as engine:
        plain = await engine.inspect(c.id)
    assert plain.labels["short"] == labels["short"]
    assert "long" not in plain.labels and "wide" not in plain.labels
    assert plain.size_rw is None and plain.pid == c.pid
    async with DockerEngine(options=EngineOptions(label_max_len=102, with_size=True)) as engine:
        sized = await engine.inspect(c.id)
    assert sized.labels["long"] == labels["long"] and sized.labels["wide"] == labels["wide"]
    assert sized.size_rw >= 300_000


async def test_hooks_decide_which_runtime_events_start_a_lookup(nursery, containers) -> None:
    """``hooks: [start]``: a container only created is not looked up (Falco's ``create`` hook
    is off), one started is.  Docker's events come in order: once the started one is cached
    and no lookup is pending, a ``create`` lookup would have been made."""
    e = ContainerEnricher(Metrics(), [DockerEngine(options=EngineOptions(
        hooks=frozenset({"start"})))], reconnect_min=0.1, reconnect_max=0.5)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    created = await in_thread(containers.create, "alpine:latest")
    started = await in_thread(containers.run, "alpine:latest")
    await eventually(lambda: (e.cache.get(started.short_id) or Container("")).complete
                     and not e.cache.pending)
    assert e.cache.get(created[:12]) is None
    await in_thread(containers.start, created)
    await eventually(lambda: (e.cache.get(created[:12]) or Container("")).complete)
