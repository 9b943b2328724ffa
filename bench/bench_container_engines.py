"""Container engines: enrichment cost per event, and metadata latency per engine.

For each engine (Docker on the shared dockerd, containerd and the CRI on a standalone containerd,
podman on a private API service: the tests' helpers start them), with a real container of it:

- ``enrich`` per event, the container cached (the hot path: cgroup id -> cached container), in
  ns per event, best of 3 rounds of N events;
- ``inspect``: one metadata lookup through the engine's API (median of 15, ms);
- start -> cached: from the runtime's start call returning to the enricher's cache holding the
  container's metadata, learnt from the runtime's event stream alone (``lookup_wait`` 0: no
  event of ours asked), median of 5, ms.  The CRI has no event stream in these runtimes: its
  containers are announced by the containerd engine's stream on the same socket.

Prints figures; asserts nothing.  Needs root and dockerd (scripts/dockerd.sh).

    .venv/bin/python bench/bench_container_engines.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import trio  # noqa: E402

from syswarden.core.event import Container  # noqa: E402
from syswarden.core.metrics import Metrics  # noqa: E402
from syswarden.plugins.enrichers.containers.engines.containerd import (  # noqa: E402
    ContainerdEngine,
)
from syswarden.plugins.enrichers.containers.engines.cri import CriEngine  # noqa: E402
from syswarden.plugins.enrichers.containers.engines.docker import (  # noqa: E402
    DockerEngine, PodmanEngine,
)
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher  # noqa: E402
from tests.helpers import containerd as ctd  # noqa: E402
from tests.helpers import docker as dh  # noqa: E402
from tests.helpers import podman as pm  # noqa: E402


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


async def _cached(e: ContainerEnricher, short: str) -> None:
    with trio.fail_after(30):
        while not (e.cache.get(short) or Container("")).complete:
            await trio.sleep(0.001)


async def measure(name: str, engines: list, start_one, events: int) -> dict:
    """``start_one()`` starts a container (blocking) and returns (full id, pid)."""
    out: dict = {"engine": name}
    async with trio.open_nursery() as nursery:
        e = ContainerEnricher(Metrics(), engines, lookup_wait=0.0, reconnect_min=0.1,
                              startup_wait=10.0)
        await nursery.start(e.run)
        latencies = []
        cid = pid = None
        for _ in range(5):
            t0 = time.perf_counter()
            cid, pid = await trio.to_thread.run_sync(start_one)
            await _cached(e, cid[:12])
            latencies.append(time.perf_counter() - t0)
        out["start_to_cached"] = statistics.median(latencies)
        start_call = []
        for _ in range(3):
            t0 = time.perf_counter()
            await trio.to_thread.run_sync(start_one)
            start_call.append(time.perf_counter() - t0)
        out["start_call"] = statistics.median(start_call)
        engine = engines[0]
        lookups = []
        for _ in range(15):
            t0 = time.perf_counter()
            got = await engine.inspect(cid)
            lookups.append(time.perf_counter() - t0)
            assert got is not None
        out["inspect"] = statistics.median(lookups)
        evt = dh.process_event(pid)
        e.enrich(evt)
        assert evt.container is not None and evt.container.complete
        best = float("inf")
        for _ in range(3):
            t0 = time.perf_counter()
            for _ in range(events):
                evt.container = None
                e.enrich(evt)
            best = min(best, time.perf_counter() - t0)
        out["enrich_ns"] = best / events * 1e9
        nursery.cancel_scope.cancel()
    return out


async def main_async(events: int) -> list[dict]:
    rows = []
    dh.ensure_dockerd()
    dh.ensure_images()
    ctd.build_images()
    with dh.Containers() as docker_containers:
        def docker_one():
            c = docker_containers.run("alpine:latest")
            return c.id, c.pid
        rows.append(await measure("docker", [DockerEngine()], docker_one, events))

    daemon = ctd.Containerd()
    daemon.start()
    kubelet = None
    try:
        daemon.import_image(ctd.PAUSE_IMAGE)
        daemon.import_image(ctd.APP_IMAGE)

        def ctr_one():
            c = daemon.run(ctd.APP_IMAGE, "sleep", "300")
            return c.id, c.pid
        rows.append(await measure("containerd", [ContainerdEngine(daemon.socket, 5.0)],
                                  ctr_one, events))
        kubelet = ctd.Kubelet(daemon.socket)
        pod = kubelet.run_pod("bench", "bench", {"app": "bench"})

        def cri_one():
            cid = kubelet.create_container(pod, f"c{time.monotonic_ns()}", ctd.APP_IMAGE,
                                           "sleep", "300")
            return cid, kubelet.start_container(cid)
        rows.append(await measure("cri (containerd)", [
            CriEngine(daemon.socket, 5.0),
            ContainerdEngine(daemon.socket, 5.0, cri_managed=False)], cri_one, events))
    finally:
        if kubelet is not None:
            kubelet.close()
        daemon.stop()

    service = pm.Podman()
    service.start()
    try:
        service.load(ctd.APP_IMAGE)

        def podman_one():
            c = service.run(ctd.APP_IMAGE, "sleep", "300")
            return c.id, c.pid
        rows.append(await measure("podman", [PodmanEngine(service.socket, 5.0)],
                                  podman_one, events))
    finally:
        service.stop()
    return rows


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000, help="events per enrich round")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    rows = trio.run(main_async, args.events)
    print(f"{'engine':<18} {'enrich/event':>13} {'inspect':>9} {'start call':>11} "
          f"{'start->cached':>14}")
    for r in rows:
        print(f"{r['engine']:<18} {r['enrich_ns']:>10.0f} ns {_ms(r['inspect']):>6} ms "
              f"{_ms(r['start_call']):>8} ms {_ms(r['start_to_cached']):>11} ms")
    print("start->cached: from issuing the start (CLI or CRI calls, included) to the metadata "
          "cached from the event stream; 'start call' is that call alone")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
