"""core/protocols.py: the plugin objects' base classes, and the objects that do not subclass
them (a third-party plugin written against the methods alone), wrapped once at start-up."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from syswarden.core.agent import Agent
from syswarden.core.errors import PluginError
from syswarden.core.protocols import Enricher, Filter, Output, Source, adapt
from syswarden.testing import make_agent

#: A plugin whose objects subclass nothing: only the required methods, and a few optional ones
#: (the source's stop, the output's reopen); the rest comes from the bases' defaults.
PLAIN_PLUGIN = '''
import trio

from syswarden.core.alert import Alert, Priority
from syswarden.core.event import Event
from syswarden.core.hookspecs import hookimpl

PLUGIN_NAME = "plain"


class PlainSource:
    name = "plain-source"

    def __init__(self):
        self.asked_to_stop = trio.Event()

    async def run(self, send, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        await send.send([Event("plain", num=n) for n in (1, 2, 3)])
        await self.asked_to_stop.wait()
        await send.send([Event("plain", num=4)])    # what it still held: sent, then return

    def stop(self):                                 # returns None, as before the bases
        self.asked_to_stop.set()


class PlainEnricher:
    name = "plain-enricher"

    def enrich(self, event):
        event.args["enriched"] = True


class PlainFilter:
    name = "plain-filter"

    def check(self, event):
        if event.args.get("enriched"):
            return [Alert("plain", Priority.WARNING, f"event {event.num}", 0,
                          {"evt.num": event.num})]
        return None


class PlainOutput:
    name = "plain-output"

    def __init__(self):
        self.delivered = []
        self.reopened = 0

    async def run(self, alerts, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async with alerts:
            async for alert in alerts:
                self.delivered.append(alert.output_fields["evt.num"])

    def reopen(self):
        self.reopened += 1


@hookimpl
def syswarden_make_sources(ctx):
    return PlainSource()


@hookimpl
def syswarden_make_enrichers(ctx):
    return PlainEnricher()


@hookimpl
def syswarden_make_filters(ctx):
    return PlainFilter()


@hookimpl
def syswarden_make_outputs(ctx):
    return PlainOutput()
'''


def plain_agent(tmp_path, source: str = PLAIN_PLUGIN) -> Agent:
    """The agent of that plugin, loaded as a user loads it: by its path in the config."""
    plugin = tmp_path / "plain_plugin.py"
    plugin.write_text(source)
    return make_agent(tmp_path, config={"plugins": [str(plugin)],
                                        "pipeline": {"stats_interval": 0}})


async def test_a_plugin_that_subclasses_nothing_runs_with_the_bases_defaults(tmp_path):
    agent = plain_agent(tmp_path)
    [source], [enricher], [filt], [output] = (agent.sources, agent.enrichers, agent.filters,
                                              agent.outputs)
    for obj, base in ((source, Source), (enricher, Enricher), (filt, Filter), (output, Output)):
        assert isinstance(obj, base) and type(obj.plugin).__name__.startswith("Plain")
    # wrapped once at start-up: the hot path holds the plugin's own bound methods
    assert agent._checks == [("plain-filter", filt.plugin.check)]
    assert enricher.enrich == enricher.plugin.enrich
    assert enricher.enrich.__self__ is enricher.plugin
    # what the plugin lacks: the bases' defaults
    assert filt.event_types() is None and agent.open_prefilter() is None
    assert list(filt.describe()) == [] and output.settings.min_priority is None
    assert filt.describe_json() is None and filt.rules_files() == []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        os.kill(os.getpid(), signal.SIGUSR1)           # its own reopen()
        with trio.fail_after(10):
            while not output.plugin.reopened:
                await trio.sleep(0.01)
        assert await agent.reload() is True            # no reload(), no set_event_types()
        agent.request_stop()                           # its own stop(): it returns by itself
    assert output.plugin.delivered == [1, 2, 3, 4]
    assert agent.metrics.get("events.judged") == 4


@pytest.mark.parametrize("kind, obj, missing", [
    ("output", type("NoRun", (), {"name": "x"})(), "run"),
    ("filter", type("NoCheck", (), {"name": "x", "reload": lambda self, config: None})(),
     "check"),
    ("source", type("NoName", (), {"run": lambda self, send: None})(), "name"),
    ("enricher", object(), "name, enrich"),
])
def test_an_object_without_a_required_member_is_refused_naming_it(kind, obj, missing):
    with pytest.raises(PluginError) as exc:
        adapt(kind, obj)
    assert exc.value.message.endswith(f"has no {missing}")
    assert exc.value.hint == f"subclass syswarden.core.protocols.{kind.capitalize()}"


def test_a_plugin_object_without_a_required_method_stops_the_start_up(tmp_path):
    broken = PLAIN_PLUGIN.replace("def run(self, alerts,", "def _run(self, alerts,")
    with pytest.raises(PluginError, match="the output .*PlainOutput.* has no run"):
        plain_agent(tmp_path, broken)


def test_a_subclass_is_used_as_it_is_and_must_implement_the_required_methods():
    class Mine(Filter):
        name = "mine"

        def check(self, event):
            return None

    mine = Mine()
    assert adapt("filter", mine) is mine
    assert mine.event_types() is None and mine.open_prefilter() is None
    assert mine.socket_prefilter() is None and list(mine.describe()) == []
    assert mine.describe_json("any rule") is None and mine.rules_files() == []

    class Forgot(Output):
        name = "forgot"

    with pytest.raises(TypeError, match="abstract"):
        Forgot()


async def test_the_defaults_do_nothing():
    class Src(Source):
        async def run(self, send, *, task_status=trio.TASK_STATUS_IGNORED):
            task_status.started()

    class Enr(Enricher):
        def enrich(self, event):
            pass

    src, enr = Src(), Enr()
    assert src.stop() is False                  # not graceful: the agent cancels it
    src.set_event_types({"openat"})
    src.set_open_prefilter(None)
    src.set_socket_prefilter(None)
    src.preload()                               # nothing to prepare
    await enr.prepare([])
    async with trio.open_nursery() as nursery:
        await nursery.start(enr.run)            # no service: started, then returns
