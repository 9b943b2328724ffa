"""Fixtures for the Docker enricher tests: a real dockerd, locally built images, containers that
are always removed, and a running enricher."""

from __future__ import annotations

import functools
from typing import Any, Callable

import pytest
import trio

from tests.helpers.docker import containers, docker_images, dockerd  # noqa: F401
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.docker.enricher import DockerEnricher


async def in_thread(fn: Callable, *args: Any, **kw: Any) -> Any:
    """Run a blocking helper (the docker CLI) off the trio loop, so the enricher keeps
    following Docker's events meanwhile."""
    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw))


async def eventually(cond: Callable[[], bool], guard: float = 60.0) -> None:
    """Poll ``cond`` until true; ``guard`` only stops a hung test (it is not a timing check)."""
    with trio.fail_after(guard):
        while not cond():
            await trio.sleep(0.05)


@pytest.fixture
async def enricher(nursery, docker_images) -> DockerEnricher:  # noqa: F811
    e = DockerEnricher(Metrics(), lookup_wait=5.0, reconnect_min=0.1, reconnect_max=0.5,
                       startup_wait=10.0)
    await nursery.start(e.run)
    await eventually(lambda: e.available)
    return e
