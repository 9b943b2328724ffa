"""Fixtures for the output tests: alerts, a config, and the real receivers (always stopped)."""

from __future__ import annotations

import itertools
import time

import pytest
import trio

from syswarden.core.alert import Alert, Priority
from syswarden.core.metrics import Metrics
from syswarden.core.outputs import OutputRunner

from .receivers import Alertmanager, HttpReceiver, Redmine, Rsyslog

_seq = itertools.count()


def make_alert(i: int | None = None, rule: str = "Terminal shell in container",
               priority: Priority = Priority.NOTICE, **fields) -> Alert:
    n = next(_seq) if i is None else i
    output_fields = {"proc.name": "bash", "container.id": "4f1a2b3c4d5e", "seq": n}
    output_fields.update(fields)
    return Alert(rule=rule, priority=priority,
                 output=f"A shell was spawned in a container (seq={n} "
                        f"proc={output_fields['proc.name']})",
                 time_ns=time.time_ns(), output_fields=output_fields, tags=["shell", "mitre"])


def base_config(**over) -> dict:
    config = {
        "json_output": False, "json_include_output_property": True,
        "json_include_tags_property": True, "time_format_iso_8601": False,
        "buffered_outputs": False, "priority": "debug",
        "outputs": {"rate": 0, "max_burst": 1000},
        "pipeline": {"output_queue": 1000, "shutdown_grace": 5.0},
    }
    config.update(over)
    return config


class Driven:
    """An output run the way the agent runs it: behind an OutputRunner, in a nursery."""

    def __init__(self, output, config: dict, metrics: Metrics) -> None:
        self.output = output
        self.metrics = metrics
        self.runner = OutputRunner.for_output(output, config, metrics)
        self.finished = trio.Event()

    async def _run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        try:
            await self.runner.run(task_status=task_status)
        finally:
            self.finished.set()

    def offer(self, alerts) -> None:
        for alert in alerts:
            self.runner.offer(alert)

    async def stop(self, timeout: float = 30.0) -> None:
        self.runner.close()
        with trio.fail_after(timeout):
            await self.finished.wait()


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
async def drive(nursery, metrics):
    """``await drive(output, config)`` starts it; the test offers alerts and stops it."""
    async def start(output, config=None) -> Driven:
        driven = Driven(output, config or base_config(), metrics)
        await nursery.start(driven._run)
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
