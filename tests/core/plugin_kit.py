"""Test plugins for the agent: a source of synthetic events, an enricher that fails on
purpose, a filter that alerts on one event type, an output that records alerts.

These stand in for the real plugins only where the test is about the agent's wiring (order,
drain, error isolation); the real plugins have tests of their own against the kernel, dockerd
and real receivers.  Loaded by the agent through the config (``plugins: [<this file>]``).
"""

from __future__ import annotations

import json
import os

import trio

from syswarden.core.alert import Alert, Priority
from syswarden.core.config import Key, Section
from syswarden.core.event import Event
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Enricher, Filter, Output, Source

PLUGIN_NAME = "kit"


class CountingSource(Source):
    """Sends ``count`` events numbered 1..count (type ``kit``; every ``fail_every``-th is
    ``boom``), in batches (``pace`` seconds apart), then ends; with ``forever`` it then waits
    to be cancelled."""

    name = "kit-source"

    def __init__(self, section: dict) -> None:
        self.count = section["count"]
        self.batch = section["batch"]
        self.forever = section["forever"]
        self.fail_every = section["fail_every"]
        self.crash = section["crash"]
        self.pace = section["pace"]

    async def run(self, send, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        n = 0
        while n < self.count:
            batch = []
            for _ in range(min(self.batch, self.count - n)):
                n += 1
                kind = "boom" if self.fail_every and n % self.fail_every == 0 else "kit"
                batch.append(Event(kind, ts=1_700_000_000_000_000_000 + n, num=n))
            await send.send(batch)
            await trio.sleep(self.pace)
        if self.crash:
            raise RuntimeError("the kit source broke on purpose")
        if self.forever:
            await trio.sleep_forever()


class FailingEnricher(Enricher):
    """Raises on ``boom`` events: the agent must count it and let the rest flow."""

    name = "kit-enricher"

    def enrich(self, event: Event) -> None:
        if event.type == "boom":
            raise ValueError(f"cannot enrich event {event.num}")


class TypeFilter(Filter):
    """Alerts on every event of the configured type, with the event number in the output.
    Its 'rules' are a JSON file ({"type": ...}) so a reload can fail for real."""

    name = "kit-filter"

    def __init__(self, section: dict) -> None:
        self.rules_path = section["rules"]
        self.reload(None)

    def reload(self, config) -> None:
        path = (config or {}).get("kit", {}).get("rules", self.rules_path)
        with open(path) as fh:
            rules = json.load(fh)  # a broken file raises here
        from syswarden.core.errors import RuleError
        if "type" not in rules:
            raise RuleError("kit rules need a 'type'")
        self.alert_type = rules["type"]

    def event_types(self):
        return {self.alert_type}

    def check(self, event: Event):
        if event.type == self.alert_type:
            return [Alert(f"kit {self.alert_type}", Priority.WARNING, f"event {event.num}",
                          event.ts, {"evt.num": event.num})]
        return None


class RecordingOutput(Output):
    """Appends each alert's event number to a file, one per line (slowly, if asked)."""

    name = "kit-output"

    def __init__(self, section: dict) -> None:
        self.path = section["output"]
        self.delay = section["output_delay"]

    async def run(self, alerts, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()
        async with alerts:
            with open(self.path, "a") as fh:
                async for alert in alerts:
                    if self.delay:
                        await trio.sleep(self.delay)
                    fh.write(f"{alert.output_fields['evt.num']}\n")
                    fh.flush()


@hookimpl
def syswarden_config_schema():
    return {"kit": Section({
        "count": Key(int, 100), "batch": Key(int, 7), "forever": Key(bool, False),
        "fail_every": Key(int, 0), "crash": Key(bool, False), "rules": Key(str, ""), "output": Key(str, ""),
        "output_delay": Key(float, 0.0), "pace": Key(float, 0.0),
    })}


@hookimpl
def syswarden_make_sources(ctx):
    return CountingSource(ctx.section("kit"))


@hookimpl
def syswarden_make_enrichers(ctx):
    return FailingEnricher()


@hookimpl
def syswarden_make_filters(ctx):
    return TypeFilter(ctx.section("kit"))


@hookimpl
def syswarden_make_outputs(ctx):
    return RecordingOutput(ctx.section("kit"))


KIT_PATH = os.path.abspath(__file__)  # what the agent tests put under plugins:
