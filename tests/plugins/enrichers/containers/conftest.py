"""Fixtures for the container enricher tests (its Docker engine): a real dockerd, locally built
images, containers that are always removed, and a running enricher."""

from __future__ import annotations

import pytest

from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher
from syswarden.plugins.enrichers.containers.engines.docker import DockerEngine
from tests.helpers.docker import containers, docker_images, dockerd, eventually  # noqa: F401


@pytest.fixture
async def enricher(nursery, docker_images) -> ContainerEnricher:  # noqa: F811
    """A running enricher, connected to the real daemon.  ``lookup_wait`` is generous so that
    a loaded test machine does not turn a bounded wait into a flaky test."""
    e = ContainerEnricher(Metrics(), [DockerEngine()], lookup_wait=5.0, reconnect_min=0.1,
                          reconnect_max=0.5, startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    return e
