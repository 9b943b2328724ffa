"""The containerd and CRI engines against a real standalone containerd (its CRI plugin on) beside
dockerd: containers created through containerd's API in namespace k8s.io, pods created through
the CRI as the kubelet creates them (RunPodSandbox with host networking and the locally imported
pause image, CreateContainer, StartContainer), real processes and syscalls in them."""

from __future__ import annotations

import logging
import os
import time

import pytest
import trio

from syswarden.core.event import Container, Event, Process
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.engine import EngineOptions
from syswarden.plugins.enrichers.containers.engines.containerd import ContainerdEngine
from syswarden.plugins.enrichers.containers.engines.cri import CriEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from syswarden.plugins.enrichers.containers.metadata import process_start_ns
from tests.helpers.containerd import APP_IMAGE, containerd, kubelet  # noqa: F401
from tests.helpers.docker import cgroup_id, eventually, in_thread, process_event, unique_name
from tests.helpers.runtimes import PROBE_OUTPUT, enrich, live_alerts, probes_told_apart, read

pytestmark = [pytest.mark.docker, pytest.mark.root]


async def started(nursery, socket: str, **kw) -> ContainerEnricher:
    """An enricher with the CRI and containerd engines on ``socket``, connected."""
    e = ContainerEnricher(Metrics(), [CriEngine(socket, 5.0),
                                      ContainerdEngine(socket, 5.0, cri_managed=False)],
                          **{"lookup_wait": 5.0, "reconnect_min": 0.1, "reconnect_max": 0.3,
                             "startup_wait": 10.0, **kw})
    await nursery.start(e.run)
    await eventually(lambda: e.engine_available("cri") and e.engine_available("containerd"))
    return e


async def test_containerd_container_in_k8s_io(nursery, containerd) -> None:  # noqa: F811
    """A container made through containerd's own API (``ctr run``): no CRI metadata, so the
    containerd engine answers: image, labels, OCI spec."""
    c = await in_thread(containerd.run, APP_IMAGE, "sleep", "120",
                        labels={"io.kubernetes.pod.name": "batch-7",
                                "io.kubernetes.pod.namespace": "jobs", "team": "data"})
    e = await started(nursery, containerd.socket)
    evt = process_event(c.pid)
    await enrich(e, evt)
    assert read("container.id", evt) == c.short_id
    assert read("container.type", evt) == "containerd"
    assert read("container.name", evt) == c.short_id     # as Falco's containerd engine names it
    assert read("container.image", evt) == APP_IMAGE
    assert read("container.image.repository", evt) == "sw.local/team/web"
    assert read("container.image.tag", evt) == "1.2"
    assert read("container.image.digest", evt).startswith("sha256:")
    assert read("container.label", evt, "team") == "data"
    assert read("k8s.pod.name", evt) == "batch-7" and read("k8s.ns.name", evt) == "jobs"
    assert read("container.privileged", evt) is False
    assert read("container.user", evt) == "0"
    assert read("container.host_pid", evt) is False
    # the task's pid is its first process; container.start_ts is when that process started,
    # as Falco reads it (the start of the pid namespace's init), not the container's creation
    assert evt.container.pid == c.pid
    assert read("container.start_ts", evt) == process_start_ns(c.pid)
    assert e.metrics.get("enrich.container.lookups") >= 1


async def test_cri_pod_as_the_kubelet_makes_it(nursery, containerd, kubelet) -> None:  # noqa: F811
    """RunPodSandbox, CreateContainer, StartContainer, then a real process's event: the CRI
    engine gives the CRI container name, the image, the pod's name, namespace, uid, labels,
    sandbox; the OCI spec's user and the pod's host networking; the mount."""
    pod = await in_thread(kubelet.run_pod, unique_name("web"), "prod",
                          {"app": "web", "tier": "front"})
    cid = await in_thread(kubelet.create_container, pod, "nginx", APP_IMAGE, "sleep", "120",
                          mounts=(("/mnt", "/tmp/mnt", True),))
    pid = await in_thread(kubelet.start_container, cid)
    e = await started(nursery, containerd.socket)
    evt = process_event(pid)
    await enrich(e, evt)
    assert read("container.id", evt) == cid[:12]
    assert read("container.type", evt) == "containerd"
    assert read("container.name", evt) == "nginx"
    assert read("container.image", evt) == APP_IMAGE
    assert read("container.image.repository", evt) == "sw.local/team/web"
    assert read("container.image.tag", evt) == "1.2"
    assert len(read("container.image.id", evt)) == 64
    assert read("k8s.pod.name", evt) == pod.name
    assert read("k8s.ns.name", evt) == "prod"
    assert read("k8s.pod.uid", evt) == pod.uid
    assert read("k8s.pod.label", evt, "app") == "web"
    assert read("k8s.pod.labels", evt) == "app:web,tier:front"
    assert read("k8s.pod.full_sandbox_id", evt) == pod.sandbox_id
    assert read("k8s.pod.sandbox_id", evt) == pod.sandbox_id[:12]
    assert read("container.host_network", evt) is True
    assert read("container.privileged", evt) is False
    assert read("container.mount.dest", evt, "/mnt*") == "/tmp/mnt"
    assert read("container.mount.rdwr", evt, "/mnt*") == "false"
    assert read("container.mount.propagation", evt, "/mnt*") == "private"
    assert read("container.user", evt) == "0"
    assert read("container.host_pid", evt) is False
    assert read("container.start_ts", evt) > 0
    assert evt.container.pid == pid
    # the pod's pause process is in a container of its own: the CRI's pod sandbox
    pause = process_event(await in_thread(kubelet.sandbox_pid, pod))
    await enrich(e, pause)
    assert read("container.id", pause) == pod.sandbox_id[:12]
    assert read("container.name", pause) == pod.name
    assert read("k8s.pod.name", pause) == pod.name
    assert read("k8s.pod.label", pause, "tier") == "front"
    assert e.metrics.get("enrich.container.unknown") == 0


async def test_first_process_from_the_event_stream(nursery, containerd,  # noqa: F811
                                                   kubelet) -> None:  # noqa: F811
    """``lookup_wait`` 0: no batch ever waits, so the metadata a container's first process
    finds was fetched because containerd's /containers/create and /tasks/start events said so."""
    e = await started(nursery, containerd.socket, lookup_wait=0.0)
    pod = await in_thread(kubelet.run_pod, unique_name("evt"), "prod", {"app": "evt"})
    cid = await in_thread(kubelet.create_container, pod, "worker", APP_IMAGE, "sleep", "120")
    pid = await in_thread(kubelet.start_container, cid)
    await eventually(lambda: (e.cache.get(cid[:12]) or Container("")).complete
                     and cid[:12] not in e.cache.pending)
    evt = process_event(pid)
    await enrich(e, evt)
    assert read("container.name", evt) == "worker" and read("k8s.pod.name", evt) == pod.name
    assert e.metrics.get("drops.enrich.container_pending") == 0
    assert e.metrics.get("enrich.container.batch_waits") == 0


async def test_live_first_exec_and_alert_of_a_pod(nursery, containerd,  # noqa: F811
                                                  kubelet) -> None:  # noqa: F811
    """The real eBPF source, the process enricher and this enricher, then a rule's output:
    a file opened in a pod's container raises an alert that carries the container's name and
    image and the pod's name, namespace and labels; the container's first exec is enriched."""
    e = await started(nursery, containerd.socket)
    alerts = await live_alerts(
        nursery, e, "evt.type in (openat, execve) and container.id != host "
        "and k8s.ns.name = shop", "%evt.type %fd.name %container.name %container.image "
        "%k8s.pod.name %k8s.ns.name %k8s.pod.labels")
    pod = await in_thread(kubelet.run_pod, unique_name("cart"), "shop", {"app": "cart"})
    cid = await in_thread(kubelet.create_container, pod, "cart", APP_IMAGE, "sh", "-c",
                          "cat /etc/passwd; exec sleep 120")
    pid = await in_thread(kubelet.start_container, cid)
    expected = f"openat /etc/passwd cart {APP_IMAGE} {pod.name} shop app:cart"
    # pid 1 execs twice (runc's init -> sh, then sh -> sleep): both alerts, the first included
    def execs() -> list[Event]:
        return [evt for evt, _ in alerts if evt.type == "execve" and evt.pid == pid]
    await eventually(lambda: any(text == expected for _, text in alerts) and len(execs()) == 2)
    for evt in execs():
        assert evt.proc.vpid == 1 and read("container.name", evt) == "cart"
        assert read("container.image", evt) == APP_IMAGE


async def test_cri_probes_from_the_pods_annotation_live(nursery, containerd,  # noqa: F811
                                                        kubelet) -> None:  # noqa: F811
    """A pod applied with ``kubectl apply`` carries its spec in the annotation
    ``kubectl.kubernetes.io/last-applied-configuration``, which the CRI gives back with the pod
    sandbox: the container takes the probes of its own name in the spec (not the first
    container's), and what the kubelet runs as an exec probe (``ExecSync``) is told apart by the
    live pipeline from another exec and from the container's own programs."""
    import json

    from syswarden.plugins.enrichers.containers.metadata import LAST_APPLIED

    def exec_probe(command: list[str]) -> dict:
        return {"exec": {"command": command}, "periodSeconds": 10}
    ready = ["sh", "-c", "cat /etc/hostname; exec cat /etc/hostname"]
    spec = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "probed"},
            "spec": {"containers": [
                {"name": "other", "livenessProbe": exec_probe(["cat", "/etc/other"])},
                {"name": "app", "livenessProbe": exec_probe(["cat", "/tmp/healthy"]),
                 "readinessProbe": exec_probe(ready)}]}}
    e = await started(nursery, containerd.socket)
    alerts = await live_alerts(
        nursery, e, "evt.type = execve and k8s.ns.name = probes and container.name = app",
        PROBE_OUTPUT, syscalls=frozenset({"execve"}))
    pod = await in_thread(kubelet.run_pod, unique_name("probed"), "probes", None,
                          {LAST_APPLIED: json.dumps(spec)})
    cid = await in_thread(kubelet.create_container, pod, "app", APP_IMAGE, "sh", "-c",
                          "cat /tmp/healthy; exec sleep 120")
    await in_thread(kubelet.start_container, cid)
    await eventually(lambda: any(t.endswith("sleep 120") for _, t in alerts))
    for command in (["cat", "/tmp/healthy"], ["cat", "/etc/other"], ready):
        await in_thread(kubelet.exec_sync, cid, *command)
    no = "false false false"
    await probes_told_apart(alerts, ("cat /tmp/healthy", " ".join(ready)), [
        (no, "sh -c cat /tmp/healthy; exec sleep 120"),
        (no, "cat /tmp/healthy"),                               # the container's own
        (no, "sleep 120"),
        ("true false false", "cat /tmp/healthy"),               # the kubelet's probe
        (no, "cat /etc/other"),                                 # the other container's
        ("false true false", " ".join(ready)),
        ("false true false", "cat /etc/hostname"),              # its child
        ("false true false", "cat /etc/hostname")])             # what it execs into


async def test_container_gone_before_its_metadata(nursery, containerd, kubelet,  # noqa: F811
                                                  caplog) -> None:
    """A container removed before anyone asked about it: its id (from its cgroup, seen while
    it lived) stays, its fields read unknown, one warning, counted."""
    caplog.set_level(logging.INFO, logger="syswarden.container")
    e = await started(nursery, containerd.socket, lookup_wait=0.5)
    pod = await in_thread(kubelet.run_pod, unique_name("gone"), "prod")
    cid = await in_thread(kubelet.create_container, pod, "brief", APP_IMAGE, "sleep", "120")
    pid = await in_thread(kubelet.start_container, cid)
    cg = cgroup_id(pid)
    e.resolver.resolve(cg)                      # its cgroup seen while it lived
    await eventually(lambda: (e.cache.get(cid[:12]) or Container("")).complete)
    await in_thread(kubelet.remove_container, cid)
    await eventually(lambda: not e.cache.pending)
    del e.cache.entries[cid[:12]]               # as if its events had not arrived
    evts = []
    for _ in range(2):      # the first waits its lookup_wait, the second comes after it
        evt = Event("openat", ts=time.time_ns(), tid=pid, pid=pid)
        evt.cgroup_id = cg
        evt.proc = Process(pid, cgroup_id=cg)
        await enrich(e, evt)
        evts.append(evt)
        await eventually(lambda: not e.cache.pending)
    assert [read("container.id", x) for x in evts] == [cid[:12]] * 2
    assert [read("container.name", x) for x in evts] == [None, None]
    assert e.metrics.get("enrich.container.batch_waits") == 1
    assert e.metrics.get("enrich.container.unknown") >= 1
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and cid[:12] in warnings[0].getMessage()


async def test_socket_missing_at_start_then_runtime_restarted(nursery, containerd,  # noqa: F811
                                                              kubelet, caplog) -> None:
    """Faults: a configured socket that is not there (one warning, fields unknown, no wait);
    the runtime restarted while running (one warning, one line when it is back, the pod's
    fields back after)."""
    caplog.set_level(logging.INFO, logger="syswarden.container")
    missing = ContainerEnricher(Metrics(), [CriEngine("/nonexistent/cri.sock", 1.0)],
                                lookup_wait=30.0, reconnect_min=0.05, reconnect_max=0.1)
    await nursery.start(missing.run)
    await eventually(lambda: missing.metrics.get("enrich.container.cri.connect_failures") >= 3)
    pod = await in_thread(kubelet.run_pod, unique_name("rst"), "prod", {"app": "rst"})
    cid = await in_thread(kubelet.create_container, pod, "app", APP_IMAGE, "sleep", "120")
    pid = await in_thread(kubelet.start_container, cid)
    with trio.fail_after(10):                   # a hang guard: no 30 s wait
        evt = process_event(pid)
        await enrich(missing, evt)
    assert read("container.id", evt) == cid[:12] and read("container.name", evt) is None
    assert missing.metrics.get("drops.enrich.container_unavailable") == 1
    warned = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and "/nonexistent/cri.sock" in warned[0].getMessage()
    caplog.clear()

    e = await started(nursery, containerd.socket)
    try:
        await in_thread(containerd.kill)
        await eventually(lambda: not e.available)
        during = process_event(pid)
        del e.cache.entries[cid[:12]]
        with trio.fail_after(10):
            await enrich(e, during)
        assert read("container.name", during) is None
        assert e.metrics.get("drops.enrich.container_unavailable") >= 1
    finally:
        await in_thread(containerd.start)
    await eventually(lambda: e.engine_available("cri") and e.engine_available("containerd"))
    await eventually(lambda: (e.cache.get(cid[:12]) or Container("")).complete)
    after = process_event(pid)
    await enrich(e, after)
    assert read("container.name", after) == "app" and read("k8s.pod.name", after) == pod.name
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 2                     # one per engine on that socket
    assert {w.split(":")[0] for w in warned} == {"cri", "containerd"}
    back = [r.getMessage() for r in caplog.records if "reconnected" in r.getMessage()]
    assert len(back) == 2


async def test_cri_without_an_event_stream_falls_back(nursery, containerd,  # noqa: F811
                                                      kubelet, caplog) -> None:  # noqa: F811
    """Debian 12's containerd (1.6) answers GetContainerEvents with UNIMPLEMENTED: one log
    line, the CRI engine pings instead, and a pod's first process (the real eBPF source) is
    still enriched through the CRI engine alone, its batch waiting for the lookup."""
    caplog.set_level(logging.INFO, logger="syswarden.container")
    engine = CriEngine(containerd.socket, 5.0)
    engine.heartbeat = 0.2
    e = ContainerEnricher(Metrics(), [engine], lookup_wait=5.0, reconnect_min=0.1,
                          reconnect_max=0.3, startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: engine.streams is False)
    alerts = await live_alerts(nursery, e, "evt.type = execve and container.id != host and "
                               "k8s.ns.name = polled", "%container.name %k8s.pod.name")
    pod = await in_thread(kubelet.run_pod, unique_name("poll"), "polled")
    cid = await in_thread(kubelet.create_container, pod, "polled", APP_IMAGE, "sleep", "120")
    pid = await in_thread(kubelet.start_container, cid)
    await eventually(lambda: any(evt.pid == pid for evt, _ in alerts))
    evt = next(evt for evt, _ in alerts if evt.pid == pid)
    assert evt.proc.vpid == 1 and read("container.name", evt) == "polled"
    assert e.metrics.get("enrich.container.batch_waits") >= 1
    said = [r.getMessage() for r in caplog.records if "event stream" in r.getMessage()]
    assert len(said) == 1 and "UNIMPLEMENTED" in said[0] and e.available
    assert e.metrics.get("enrich.container.cri.connect_failures") == 0


async def test_hooks_choose_containerds_topics(nursery, containerd) -> None:  # noqa: F811
    """``hooks: [start]``: containerd's /containers/create starts no lookup (a container only
    created stays unknown), /tasks/start does.  The stream is ordered: once the started one is
    cached and nothing is pending, the created one would have been looked up already."""
    import uuid

    e = ContainerEnricher(Metrics(), [ContainerdEngine(
        containerd.socket, 5.0, options=EngineOptions(hooks=frozenset({"start"})))],
        reconnect_min=0.1, reconnect_max=0.3, startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    created = uuid.uuid4().hex + uuid.uuid4().hex
    await in_thread(containerd.ctr, "containers", "create", APP_IMAGE, created, "sleep", "60")
    started = await in_thread(containerd.run, APP_IMAGE, "sleep", "60")
    await eventually(lambda: (e.cache.get(started.short_id) or Container("")).complete
                     and not e.cache.pending)
    assert e.cache.get(created[:12]) is None
    assert e.cache.get(started.short_id).pid == started.pid


async def test_label_max_len_and_with_size_on_containerd_and_the_cri(
        containerd, kubelet) -> None:  # noqa: F811
    """``label_max_len`` drops the long container and pod labels (the kubelet's pod name,
    namespace and uid, which the CRI engine sets from the sandbox, stay); ``with_size`` asks
    the CRI for the writable layer (``ContainerStats``) and containerd for its image target's
    size, as Falco's engines do; without it no size is asked."""
    long = "v" * 41
    pod = await in_thread(kubelet.run_pod, unique_name("sz"), "sizes",
                          {"app": "sz", "note": long})
    cid = await in_thread(kubelet.create_container, pod, "sized", APP_IMAGE, "sleep", "120",
                          labels={"team": "data", "note": long})
    await in_thread(kubelet.start_container, cid)
    c = await in_thread(containerd.run, APP_IMAGE, "sleep", "120", labels={"note": long,
                                                                           "team": "data"})
    options = EngineOptions(label_max_len=40, with_size=True)
    async with CriEngine(containerd.socket, 5.0, options=options) as cri:
        await cri.ping()
        got = await cri.inspect(cid)
    async with CriEngine(containerd.socket, 5.0) as cri:
        plain = await cri.inspect(cid)
    assert got.labels["team"] == "data" and "note" not in got.labels
    assert got.pod_labels["app"] == "sz" and "note" not in got.pod_labels
    assert got.labels["io.kubernetes.pod.name"] == pod.name
    assert isinstance(got.size_rw, int) and got.size_rw >= 0
    assert plain.labels["note"] == long and plain.pod_labels["note"] == long
    assert plain.size_rw is None
    async with ContainerdEngine(containerd.socket, 5.0, options=options) as ctd:
        mine = await ctd.inspect(c.id)
    assert mine.labels["team"] == "data" and "note" not in mine.labels and mine.size_rw > 0
