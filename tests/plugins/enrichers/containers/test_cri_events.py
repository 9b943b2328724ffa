"""The CRI engine on the CRI's container event stream (``GetContainerEvents``), against a real
containerd 1.7 (Debian 13's, beside Debian 12's 1.6, which does not serve it): pods created
through the CRI as the kubelet creates them, the CRI engine alone (no containerd engine to
announce them)."""

from __future__ import annotations

import os
from typing import Iterator

import pytest

from syswarden.core.event import Container, Event
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.engine import EngineOptions
from syswarden.plugins.enrichers.containers.engines.cri import CriEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from tests.helpers.containerd import APP_IMAGE, Containerd, Kubelet, containerd_next  # noqa: F401
from tests.helpers.docker import eventually, in_thread, unique_name
from tests.helpers.runtimes import live_alerts, read

pytestmark = [pytest.mark.docker, pytest.mark.root]


@pytest.fixture(scope="module")
def kubelet(containerd_next: Containerd) -> Iterator[Kubelet]:  # noqa: F811
    k = Kubelet(containerd_next.socket)
    try:
        yield k
    finally:
        k.close()


async def test_a_pods_container_is_known_before_its_first_process(
        nursery, containerd_next, kubelet) -> None:  # noqa: F811
    """``lookup_wait`` 0, the CRI engine alone: once CreateContainer returns (no process in the
    container yet) its metadata arrives from the stream's created event; its first process,
    seen by the real eBPF source, is enriched: no batch ever waits with ``lookup_wait`` 0."""
    engine = CriEngine(containerd_next.socket, 5.0)
    e = ContainerEnricher(Metrics(), [engine], lookup_wait=0.0, reconnect_min=0.1,
                          reconnect_max=0.3, startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    alerts = await live_alerts(nursery, e, "evt.type = execve and container.id != host and "
                               "k8s.ns.name = stream", "%container.name %k8s.pod.name")
    pod = await in_thread(kubelet.run_pod, unique_name("ev"), "stream", {"app": "ev"})
    cid = await in_thread(kubelet.create_container, pod, "first", APP_IMAGE, "sleep", "120")
    await eventually(lambda: (e.cache.get(cid[:12]) or Container("")).complete)
    assert engine.streams is True
    pid = await in_thread(kubelet.start_container, cid)

    def first() -> Event | None:
        return next((evt for evt, _ in alerts if evt.pid == pid), None)
    await eventually(lambda: first() is not None)
    evt = first()
    assert evt.proc.vpid == 1 and read("container.name", evt) == "first"
    assert read("k8s.pod.name", evt) == pod.name
    # the started event looked it up again: the first process's pid is known
    await eventually(lambda: e.cache.get(cid[:12]).pid == pid)
    assert os.path.exists(f"/proc/{pid}")


async def test_hooks_choose_the_cri_events(nursery, containerd_next, kubelet) -> None:  # noqa: F811
    """``hooks: [start]``: the CRI's created event starts no lookup, its started event does
    (the stream is ordered: once the started container is cached and nothing is pending, the
    one only created would have been looked up already)."""
    engine = CriEngine(containerd_next.socket, 5.0,
                       options=EngineOptions(hooks=frozenset({"start"})))
    e = ContainerEnricher(Metrics(), [engine], reconnect_min=0.1, reconnect_max=0.3,
                          startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    pod = await in_thread(kubelet.run_pod, unique_name("hk"), "hooks")
    created = await in_thread(kubelet.create_container, pod, "created", APP_IMAGE, "sleep",
                              "60")
    started = await in_thread(kubelet.create_container, pod, "started", APP_IMAGE, "sleep",
                              "60")
    pid = await in_thread(kubelet.start_container, started)
    await eventually(lambda: (e.cache.get(started[:12]) or Container("")).complete
                     and not e.cache.pending)
    assert e.cache.get(created[:12]) is None
    assert e.cache.get(started[:12]).pid == pid
