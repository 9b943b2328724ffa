"""The fleet's heartbeat and ``syswarden fleet status``.

Every ``fleet.heartbeat_interval`` each agent puts one JSON document under its hostname in the
key-value bucket ``fleet.bucket`` (history 1: the bucket holds each node's last heartbeat):
hostname, version, start time and uptime, the rules it runs (source, revision, sha256, the last
refused revision and why), events per second over the interval, its drops (every ``*.dropped``
and ``drops.*`` counter), and each output's state (``outputs.NAME.*`` counters and gauges).

``fleet status`` reads the bucket and flags a node ``silent`` (no heartbeat for
``fleet.silent_after`` intervals), ``dropping`` (its drops grew between its last two
heartbeats), ``old-revision`` (it runs an older rules revision than the bucket's latest) and
``rules-error`` (it refused a revision).
"""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import trio

from syswarden import __version__
from syswarden.core.alert import HOSTNAME
from syswarden.core.protocols import PluginContext, Service
from syswarden.plugins.outputs.nats.connection import NatsLink
from syswarden.plugins.outputs.nats.output import subject_token

from .rules_source import RulesState

log = logging.getLogger("syswarden.fleet")


async def fleet_bucket(link: NatsLink, section: dict[str, Any], create: bool) -> Any:
    import nats.js.errors
    if link.nc is None:
        await link.connect()
    try:
        return await link.js.key_value(section["bucket"])
    except nats.js.errors.BucketNotFoundError:
        if not create:
            raise
    return await link.js.create_key_value(bucket=section["bucket"], history=1,
                                          replicas=section["replicas"])


def heartbeat_doc(metrics: Any, rules: RulesState, started: float, previous: dict | None,
                  now: float) -> dict[str, Any]:
    snap = metrics.snapshot()
    events = int(snap.get("events.in", 0) or 0)
    drops = sum(metrics.drops().values())
    rate = 0.0
    if previous is not None and now > previous["_t"]:
        rate = (events - previous["_events"]) / (now - previous["_t"])
    outputs: dict[str, dict[str, Any]] = {}
    for key, value in snap.items():
        if key.startswith("outputs."):
            name, _, what = key[len("outputs."):].partition(".")
            outputs.setdefault(name, {})[what] = value
    return {"hostname": HOSTNAME, "version": __version__, "started": started, "time": now,
            "uptime": round(now - started, 1), "rules": rules.as_dict(),
            "events_per_s": round(rate, 1), "events": events, "drops": drops,
            "previous_drops": previous["drops"] if previous else drops, "outputs": outputs,
            "_t": now, "_events": events}


class Heartbeat(Service):
    name = "heartbeat"

    def __init__(self, ctx: PluginContext, rules: RulesState, section: dict[str, Any],
                 interval: float) -> None:
        self.ctx = ctx
        self.rules = rules
        self.section = section
        self.interval = interval
        self.link = NatsLink(ctx.config.get("nats") or {}, "fleet")
        self.started = time.time()
        self.sent = 0
        self._failures = 0

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        previous: dict | None = None
        key = subject_token(HOSTNAME)
        try:
            while True:
                doc = heartbeat_doc(self.ctx.metrics, self.rules, self.started, previous,
                                    time.time())
                try:
                    await self.link.call(self._put, key, json.dumps(doc).encode())
                    self.sent += 1
                    self._failures = 0
                except Exception as exc:
                    self._failures += 1
                    if self._failures in (1, 10) or self._failures % 100 == 0:
                        log.warning("fleet: heartbeat not sent (%s: %s)", type(exc).__name__,
                                    exc)
                previous = doc
                await trio.sleep(self.interval)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(self.link.stop)

    async def _put(self, key: str, value: bytes) -> None:
        kv = await fleet_bucket(self.link, self.section, create=True)
        await kv.put(key, value)


# -- fleet status ---------------------------------------------------------------------------

def node_flags(doc: dict[str, Any], now: float, silent_after: float, latest: int) -> list[str]:
    flags = []
    if now - float(doc.get("time", 0)) > silent_after:
        flags.append("silent")
    if int(doc.get("drops", 0)) > int(doc.get("previous_drops", 0)):
        flags.append("dropping")
    rules = doc.get("rules") or {}
    if rules.get("source") == "nats" and latest and int(rules.get("revision", 0)) < latest:
        flags.append("old-revision")
    if rules.get("error"):
        flags.append("rules-error")
    return flags


def render_status(nodes: list[dict[str, Any]], now: float, silent_after: float,
                  latest: int) -> str:
    """The ``fleet status`` table, one line per node, and each node's rules error under it."""
    head = f"{'NODE':<24} {'LAST SEEN':>10} {'RULES':>6} {'EV/S':>8} {'DROPS':>7}  " \
           f"{'OUTPUTS':<28} FLAGS"
    lines = [f"rules revision in the bucket: {latest or '-'}", head]
    for doc in sorted(nodes, key=lambda d: d.get("hostname", "")):
        rules = doc.get("rules") or {}
        outs = ",".join(f"{name}:{'up' if o.get('connected', 1) else 'down'}"
                        f"{'/' + str(o['spooled']) + ' spooled' if o.get('spooled') else ''}"
                        for name, o in sorted((doc.get("outputs") or {}).items()))
        rev = rules.get("revision") if rules.get("source") == "nats" else "files"
        flags = node_flags(doc, now, silent_after, latest)
        lines.append(f"{doc.get('hostname', '?'):<24} {now - float(doc.get('time', 0)):>9.0f}s "
                     f"{rev!s:>6} {doc.get('events_per_s', 0):>8} {doc.get('drops', 0):>7}  "
                     f"{outs or '-':<28} {','.join(flags) or 'ok'}")
        if rules.get("error"):
            lines.append(f"    revision {rules.get('error_revision')} refused: "
                         f"{str(rules['error']).splitlines()[0]}")
    return "\n".join(lines)
