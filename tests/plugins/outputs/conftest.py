"""Fixtures for the output tests: an output driven as the agent drives it, and the real
receivers (always stopped).  Alerts and configs come from :mod:`syswarden.testing`."""

from __future__ import annotations

import pytest

from syswarden.core.metrics import Metrics
from syswarden.testing import DrivenOutput, base_config

from .receivers import Alertmanager, HttpReceiver, Redmine, Rsyslog


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def drive(nursery, metrics):
    """``await drive(output, config)`` starts it; the test offers alerts and stops it."""
    async def start(output, config=None) -> DrivenOutput:
        driven = DrivenOutput(output, config or base_config(), metrics)
        await nursery.start(driven.run)
        return driven
    return start


@pytest.fixture
async def receiver(nursery):
    r = HttpReceiver()
    await nursery.start(r.serve)
    yield r
    r.down()


@pytest.fixture(scope="module")
def rsyslog():
    daemon = Rsyslog()
    yield daemon
    daemon.close()


@pytest.fixture(scope="module")
def alertmanager():
    daemon = Alertmanager()
    yield daemon
    daemon.close()


@pytest.fixture(scope="session")
def redmine():
    daemon = Redmine()
    yield daemon
    daemon.close()
