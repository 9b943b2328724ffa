"""The podman engine and a rootless podman: the API service of an unprivileged user on that
user's usual socket (``/run/user/<uid>/podman/podman.sock``), found without configuration, its
containers' processes (real syscalls, the real eBPF source) enriched."""

from __future__ import annotations

import pytest

from syswarden.core.config import load_config
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.plugins.enrichers import containers as plugin
from syswarden.plugins.enrichers.containers.engines.docker import PodmanEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from tests.helpers.containerd import APP_IMAGE
from tests.helpers.docker import eventually, in_thread
from tests.helpers.podman import rootless_podman  # noqa: F401
from tests.helpers.runtimes import live_alerts, read

pytestmark = [pytest.mark.docker, pytest.mark.root]


async def test_rootless_socket_found_and_its_containers_enriched(
        nursery, tmp_path, rootless_podman) -> None:  # noqa: F811
    """No socket configured: the podman engine finds the user's socket among its usual
    paths; a container the user runs is enriched from its first exec on."""
    path = tmp_path / "syswarden.yaml"
    path.write_text("container:\n  engines:\n    docker: {enabled: false}\n"
                    "    cri: {enabled: false}\n    containerd: {enabled: false}\n")
    section = load_config(str(path), schemas=make_plugin_manager().schemas())["container"]
    engines = plugin.make_engines(section, 5.0)
    assert rootless_podman.socket in [e.socket for e in engines]
    assert all(isinstance(e, PodmanEngine) for e in engines)
    e = ContainerEnricher(Metrics(), engines, lookup_wait=5.0, reconnect_min=0.1,
                          reconnect_max=0.3, startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    alerts = await live_alerts(nursery, e, "evt.type in (openat, execve) and "
                               "container.type = podman",
                               "%evt.type %fd.name %container.name %container.image "
                               "%container.label[team]")
    c = await in_thread(rootless_podman.run, APP_IMAGE, "sh", "-c",
                        "cat /etc/passwd; exec sleep 120", labels={"team": "rootless"})
    await eventually(lambda: any("/etc/passwd" in text and c.name in text
                                 for _, text in alerts))
    text = next(text for _, text in alerts if "/etc/passwd" in text and c.name in text)
    assert text == f"openat /etc/passwd {c.name} {APP_IMAGE} rootless"
    first = next(evt for evt, _ in alerts if evt.type == "execve" and evt.pid == c.pid)
    assert first.proc.vpid == 1 and read("container.name", first) == c.name
    assert read("container.id", first) == c.short_id
    assert first.container.pid == c.pid
