"""The agent's wiring, with the kit plugins (tests/core/plugin_kit.py) as stages."""

from __future__ import annotations

import json
import logging
import os
import pathlib
import re
import signal
import threading

import pytest
import trio

from syswarden.core.agent import Agent
from syswarden.core.config import load_config
from syswarden.core.plugins import BUILTIN_PLUGINS, make_plugin_manager
from syswarden.core.protocols import adapt

KIT_PATH = str(pathlib.Path(__file__).with_name("plugin_kit.py"))

ONLY_KIT = [name for name, _, _ in BUILTIN_PLUGINS]


def make_agent(tmp_path, **kit) -> Agent:
    rules = tmp_path / "kit-rules.json"
    if not rules.exists():
        rules.write_text(json.dumps({"type": kit.pop("alert_type", "kit")}))
    out = tmp_path / "alerts.txt"
    cfg = {"plugins": [KIT_PATH], "disabled_plugins": ONLY_KIT,
           "kit": {"rules": str(rules), "output": str(out), **kit},
           "pipeline": {"stats_interval": 0, "shutdown_grace": 5}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(cfg))
    plugins = make_plugin_manager(cfg)
    config = load_config(str(path), (), plugins.schemas())
    agent = Agent(config, plugins, config_path=str(path))
    agent.build()
    return agent


def delivered(tmp_path) -> list[int]:
    path = tmp_path / "alerts.txt"
    return [int(x) for x in path.read_text().split()] if path.exists() else []


async def test_events_flow_in_order_and_the_agent_stops_when_the_source_ends(tmp_path):
    agent = make_agent(tmp_path, count=500, batch=7)
    assert await agent.run() == 0
    assert delivered(tmp_path) == list(range(1, 501))
    assert agent.metrics.get("events.in") == 500
    assert agent.metrics.get("alerts.rule.kit kit") == 500


async def test_stop_drains_queued_alerts_through_a_slow_output(tmp_path):
    agent = make_agent(tmp_path, count=50, batch=50, forever=True, output_delay=0.01)
    codes = []

    async def runner():
        codes.append(await agent.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await agent.ready.wait()
        while agent.metrics.get("events.judged") < 50:
            await trio.sleep(0.01)
        assert len(delivered(tmp_path)) < 50, "the output should still be behind"
        agent.request_stop()
    assert codes == [0]
    assert delivered(tmp_path) == list(range(1, 51))


async def test_a_plugin_failing_on_one_event_is_counted_and_the_rest_flow_on(tmp_path, caplog):
    agent = make_agent(tmp_path, count=100, fail_every=10, alert_type="boom")
    with caplog.at_level(logging.WARNING, logger="syswarden"):
        assert await agent.run() == 0
    # the ten events the enricher failed on still reached the filter and raised their alerts
    assert delivered(tmp_path) == list(range(10, 101, 10))
    assert agent.metrics.get("errors.enrich.kit-enricher") == 10
    assert "kit-enricher" in caplog.text and "cannot enrich event 10" in caplog.text


async def test_sighup_with_a_broken_rules_file_keeps_the_old_rules(tmp_path, caplog):
    agent = make_agent(tmp_path, count=20, batch=20, forever=True)
    (tmp_path / "kit-rules.json").write_text("{ not json")
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        with caplog.at_level(logging.INFO, logger="syswarden"):
            os.kill(os.getpid(), signal.SIGHUP)
            for _ in range(200):
                if "reload failed" in caplog.text:
                    break
                await trio.sleep(0.01)
        agent.request_stop()
    assert "reload failed, keeping the running rules" in caplog.text
    assert agent.filters[0].alert_type == "kit"
    assert delivered(tmp_path) == list(range(1, 21))


async def test_sighup_with_good_rules_switches_them(tmp_path):
    agent = make_agent(tmp_path, count=5, forever=True)
    (tmp_path / "kit-rules.json").write_text(json.dumps({"type": "other"}))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        assert await agent.reload() is True
        agent.request_stop()
    assert agent.filters[0].alert_type == "other"
    assert agent.event_types() == {"other"}


async def test_sigterm_during_a_reload_that_hangs_stops_the_agent(tmp_path):
    """A reload stuck reading its rules (here a FIFO nobody writes: a hung network mount) does
    not keep the agent from answering SIGTERM; SIGHUPs meanwhile ask for one reload more."""
    agent = make_agent(tmp_path, count=5, forever=True)
    rules = tmp_path / "kit-rules.json"
    rules.unlink()
    os.mkfifo(rules)
    unblocked = threading.Event()

    def unblock():                  # a hang guard: the reload gets its file after 30 s
        with open(rules, "w") as fh:
            unblocked.set()
            fh.write("{}")
    guard = threading.Timer(30, unblock)
    guard.start()
    codes = []
    async with trio.open_nursery() as nursery:
        async def runner():
            codes.append(await agent.run())
            codes.append("stopped while the reload hung" if not unblocked.is_set() else "late")
        nursery.start_soon(runner)
        await agent.ready.wait()
        os.kill(os.getpid(), signal.SIGHUP)
        os.kill(os.getpid(), signal.SIGHUP)
        await trio.sleep(0.2)                           # the reload is blocked in open()
        os.kill(os.getpid(), signal.SIGTERM)
    guard.cancel()
    if not unblocked.is_set():
        unblock()                                       # release the abandoned thread
    assert codes == [0, "stopped while the reload hung"]
    assert delivered(tmp_path) == list(range(1, 6))
    assert agent.filters[0].alert_type == "kit"


async def test_sigterm_stops_the_agent_with_exit_code_zero(tmp_path):
    agent = make_agent(tmp_path, count=10, forever=True)
    codes = []

    async def runner():
        codes.append(await agent.run())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(runner)
        await agent.ready.wait()
        os.kill(os.getpid(), signal.SIGTERM)
    assert codes == [0]
    assert delivered(tmp_path) == list(range(1, 11))


async def test_a_crashed_source_stops_the_agent_with_exit_code_one(tmp_path, caplog):
    agent = make_agent(tmp_path, count=10, forever=True, crash=True)
    with caplog.at_level(logging.ERROR, logger="syswarden"):
        assert await agent.run() == 1
    assert "source 'kit-source' failed: RuntimeError: the kit source broke on purpose" \
        in caplog.text


async def test_readiness_is_announced_once_sources_run(tmp_path, caplog):
    agent = make_agent(tmp_path, count=3)
    with caplog.at_level(logging.INFO, logger="syswarden"):
        await agent.run()
    ready = [r for r in caplog.records if "syswarden ready" in r.getMessage()]
    assert len(ready) == 1
    assert "sources=kit-source" in ready[0].getMessage()


async def test_start_up_phases_are_timed_and_logged_once_ready(tmp_path, caplog):
    agent = make_agent(tmp_path, count=3)
    with caplog.at_level(logging.INFO, logger="syswarden"):
        await agent.run()
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("start-up:")]
    assert len(lines) == 1
    phases = dict(re.findall(r"([a-z ]+) (\d+\.\d+) s", lines[0].split(":", 1)[1]))
    assert {k.strip() for k in phases} == set(Agent.STARTUP_PHASES)
    assert set(agent.startup) == set(Agent.STARTUP_PHASES)
    assert all(v >= 0 for v in agent.startup.values())


def test_the_hot_path_holds_bound_methods_not_hook_callers(tmp_path):
    agent = make_agent(tmp_path)
    assert [name for name, _ in agent._checks] == ["kit-filter"]
    assert all(callable(offer) and offer.__self__ in agent.runners for offer in agent._offers)


@pytest.mark.parametrize("grace", [0.2])
async def test_alerts_left_after_the_grace_period_are_counted_as_dropped(tmp_path, grace):
    agent = make_agent(tmp_path, count=40, batch=40, forever=True, output_delay=0.1)
    agent.config["pipeline"]["shutdown_grace"] = grace
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        while agent.metrics.get("events.judged") < 40:
            await trio.sleep(0.01)
        agent.request_stop()
    written = len(delivered(tmp_path))
    assert written < 40
    # one alert may be in the output's hands when it is cancelled: at most one is unaccounted
    assert 40 - written - agent.metrics.get("outputs.kit-output.dropped") in (0, 1)


async def test_an_internal_alert_reaches_the_outputs(tmp_path):
    agent = make_agent(tmp_path, count=1, forever=True)
    assert agent.ctx.emit_alert == agent.emit_internal_alert
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        agent.emit_internal_alert("Falco internal: syscall event drop. 7 system calls dropped "
                                  "in last second.", {"evt.num": 999, "n_drops": 7})
        agent.request_stop()
    assert 999 in delivered(tmp_path)
    assert agent.metrics.get("alerts.rule.Falco internal: syscall event drop") == 1


async def test_events_a_source_did_not_number_are_numbered_from_one(tmp_path):
    agent = make_agent(tmp_path, count=3)
    seen = []
    agent.enrichers[0].enrich = lambda evt: seen.append(evt.num)
    for src in agent.sources:
        src.run = _unnumbered(src.run)
    assert await agent.run() == 0
    assert seen == [1, 2, 3]


def _unnumbered(run):
    async def wrapper(send, *, task_status=trio.TASK_STATUS_IGNORED):
        class Strip:
            async def send(self, batch):
                for evt in batch:
                    evt.num = 0
                await send.send(batch)
        await run(Strip(), task_status=task_status)
    return wrapper


async def test_once_ready_start_up_objects_are_frozen_and_collections_spaced(tmp_path):
    import gc

    from syswarden.core.agent import GC_THRESHOLDS
    before = gc.get_threshold()
    gc.unfreeze()
    try:
        agent = make_agent(tmp_path, count=5, batch=5, forever=True)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run)
            await agent.ready.wait()
            assert gc.get_threshold() == GC_THRESHOLDS
            assert gc.get_freeze_count() > 0
            agent.request_stop()
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


async def test_the_sources_get_the_union_of_the_filters_open_prefilters(tmp_path):
    from syswarden.core.rules.prefilter import OK, WRITE, OpenPrefilter, Term
    agent = make_agent(tmp_path, count=5, forever=True)
    assert agent.ctx.open_prefilter is None          # the kit filter has no prefilter
    writes, shadow = Term(frozenset({OK, WRITE})), Term(frozenset(), frozenset({"/etc/shadow"}))
    agent.filters[0].open_prefilter = lambda: OpenPrefilter((writes,))
    other = type("Other", (), {"name": "other", "check": lambda self, event: None,
                               "event_types": lambda self: set(),
                               "reload": lambda self, config: None,
                               "open_prefilter": lambda self: OpenPrefilter((shadow, writes))})()
    agent.filters.append(adapt("filter", other))
    told: list = []
    agent.sources[0].set_open_prefilter = told.append
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        assert await agent.reload() is True
        agent.request_stop()
    assert told == [OpenPrefilter((writes, shadow))] and agent.ctx.open_prefilter == told[0]
    agent.filters.append(adapt("filter", type("NoPrefilter", (), {
        "name": "n", "check": lambda self, event: None})()))
    assert agent.open_prefilter() is None


async def test_the_sources_get_the_union_of_the_filters_socket_prefilters(tmp_path):
    from syswarden.core.rules.sockfilter import IP, UNIX, SocketPrefilter
    agent = make_agent(tmp_path, count=5, forever=True)
    assert agent.ctx.socket_prefilter is None        # the kit filter has no prefilter
    mine = SocketPrefilter((("connect", frozenset({IP})), ("sendto", frozenset({IP}))))
    agent.filters[0].socket_prefilter = lambda: mine
    other = type("Other", (), {"name": "other", "check": lambda self, event: None,
                               "event_types": lambda self: set(),
                               "reload": lambda self, config: None,
                               "socket_prefilter": lambda self: SocketPrefilter(
                                   (("sendto", frozenset({UNIX})),))})()
    agent.filters.append(adapt("filter", other))
    told: list = []
    agent.sources[0].set_socket_prefilter = told.append
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        assert await agent.reload() is True
        agent.request_stop()
    assert told == [SocketPrefilter((("sendto", frozenset({IP, UNIX})),))]
    assert agent.ctx.socket_prefilter == told[0]
    agent.filters.append(adapt("filter", type("NoPrefilter", (), {
        "name": "n", "check": lambda self, event: None})()))
    assert agent.socket_prefilter() is None
