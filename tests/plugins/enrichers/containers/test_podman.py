"""The podman engine against a real podman API service on a private socket (its own storage and
run root): containers made through the service, real processes and syscalls in them."""

from __future__ import annotations

import logging

import pytest
import trio

from syswarden.core.event import Container
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.engines.docker import PodmanEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from tests.helpers.containerd import APP_IMAGE
from tests.helpers.docker import eventually, in_thread, process_event
from tests.helpers.podman import podman  # noqa: F401
from tests.helpers.runtimes import enrich, live_alerts, read

pytestmark = [pytest.mark.docker, pytest.mark.root]


async def started(nursery, socket: str, **kw) -> ContainerEnricher:
    e = ContainerEnricher(Metrics(), [PodmanEngine(socket, 5.0)],
                          **{"lookup_wait": 5.0, "reconnect_min": 0.1, "reconnect_max": 0.3,
                             "startup_wait": 10.0, **kw})
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    return e


async def test_podman_container(nursery, podman) -> None:  # noqa: F811
    c = await in_thread(podman.run, APP_IMAGE, "sleep", "120", labels={"team": "data"},
                        volumes=("/mnt:/tmp/mnt:ro",))
    e = await started(nursery, podman.socket)
    evt = process_event(c.pid)
    await enrich(e, evt)
    assert read("container.id", evt) == c.short_id
    assert read("container.type", evt) == "podman"
    assert read("container.name", evt) == c.name
    assert read("container.image", evt) == APP_IMAGE
    assert read("container.image.repository", evt) == "sw.local/team/web"
    assert read("container.image.tag", evt) == "1.2"
    assert len(read("container.image.id", evt)) == 64
    assert read("container.label", evt, "team") == "data"
    assert read("container.mount.dest", evt, "/mnt*") == "/tmp/mnt"
    assert read("container.mount.rdwr", evt, "/mnt*") == "false"
    assert read("container.privileged", evt) is False
    assert e.metrics.get("enrich.container.unknown") == 0


async def test_first_process_from_the_event_stream(nursery, podman) -> None:  # noqa: F811
    """``lookup_wait`` 0: the metadata the first process finds came from podman's events."""
    e = await started(nursery, podman.socket, lookup_wait=0.0)
    c = await in_thread(podman.run, APP_IMAGE, "sleep", "120")
    await eventually(lambda: (e.cache.get(c.short_id) or Container("")).complete)
    evt = process_event(c.pid)
    await enrich(e, evt)
    assert read("container.name", evt) == c.name
    assert e.metrics.get("drops.enrich.container_pending") == 0
    assert e.metrics.get("enrich.container.batch_waits") == 0


async def test_live_first_exec_and_alert(nursery, podman) -> None:  # noqa: F811
    e = await started(nursery, podman.socket)
    alerts = await live_alerts(nursery, e, "evt.type in (openat, execve) and "
                               "container.type = podman",
                               "%evt.type %fd.name %container.name %container.image "
                               "%container.label[team]")
    c = await in_thread(podman.run, APP_IMAGE, "sh", "-c", "cat /etc/passwd; exec sleep 120",
                        labels={"team": "shop"})
    await eventually(lambda: any("/etc/passwd" in text and c.name in text
                                 for _, text in alerts))
    first = next(evt for evt, _ in alerts if evt.type == "execve" and evt.pid == c.pid)
    assert first.proc.vpid == 1 and read("container.name", first) == c.name
    text = next(text for _, text in alerts if "/etc/passwd" in text and c.name in text)
    assert text == f"openat /etc/passwd {c.name} {APP_IMAGE} shop"


async def test_service_restarted_while_running(nursery, podman, caplog) -> None:  # noqa: F811
    caplog.set_level(logging.INFO, logger="syswarden.container")
    c = await in_thread(podman.run, APP_IMAGE, "sleep", "120")
    e = await started(nursery, podman.socket)
    try:
        await in_thread(podman.kill)
        await eventually(lambda: not e.available)
        evt = process_event(c.pid)
        e.cache.entries.pop(c.short_id, None)
        with trio.fail_after(10):
            await enrich(e, evt)
        assert read("container.id", evt) == c.short_id and read("container.name", evt) is None
        assert e.metrics.get("drops.enrich.container_unavailable") == 1
    finally:
        await in_thread(podman.start)
    await eventually(lambda: e.available)
    await eventually(lambda: (e.cache.get(c.short_id) or Container("")).complete)
    after = process_event(c.pid)
    await enrich(e, after)
    assert read("container.name", after) == c.name
    warned = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warned) == 1 and warned[0].startswith("podman:")
    assert any("reconnected" in r.getMessage() for r in caplog.records)
