"""The ``fleet`` plugin: rules from a JetStream key-value bucket, each agent's heartbeat, and
the ``rules`` and ``fleet`` commands (docs/fleet.md).

- ``rules_source: {kind: nats, bucket, key}``: the rules come from the bucket
  (:mod:`.rules_source`); ``kind: files`` (the default) keeps ``rules_file``.
- ``fleet``: the heartbeat (:mod:`.heartbeat`), sent by an agent that uses NATS (the nats output
  or the rules source) unless ``heartbeat_interval`` is 0.
- ``syswarden rules push FILE...``, ``syswarden rules history``, ``syswarden fleet status``
  live above the plugins, in :mod:`syswarden.commands.fleet`.

The connection is the ``nats`` section, declared by the nats output plugin.
"""

from __future__ import annotations

import hashlib
import os
from typing import TYPE_CHECKING, Any

from syswarden.core.config import Key, Section
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import PluginContext, Service
from syswarden.plugins.outputs.nats.connection import duration_key, seconds

if TYPE_CHECKING:     # imported when used: an agent without NATS starts without them
    from .rules_source import RulesSource, RulesState

#: the agent's rules source, made by the first syswarden_rules_files call of this process
_source: RulesSource | None = None


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {
        "rules_source": Section({
            "kind": Key(str, "files", "files: rules_file; nats: the bucket below",
                        choices=("files", "nats")),
            "bucket": Key(str, "SYSWARDEN_RULES", "the JetStream key-value bucket"),
            "key": Key(str, "rules", "the bucket's key holding this agent's rules"),
            "history": Key(int, 20, "revisions a bucket created by 'rules push' keeps", min=1,
                           max=64),
            "replicas": Key(int, 3, "replicas of a bucket created by 'rules push'", min=1,
                            max=5),
            "poll_interval": duration_key("1s", "how often an agent asks for a new revision"),
            "dir": Key(str, "/var/lib/syswarden/fleet-rules", "the rules that loaded last, "
                            "kept for a start while NATS is away"),
        }, doc="where the rules come from (docs/fleet.md)"),
        "fleet": Section({
            "heartbeat_interval": duration_key("5s", "seconds between heartbeats; 0: none"),
            "bucket": Key(str, "SYSWARDEN_FLEET", "the key-value bucket of heartbeats"),
            "replicas": Key(int, 3, "replicas of the heartbeat bucket when created", min=1,
                            max=5),
            "silent_after": Key(float, 3.0, "heartbeat intervals without one before "
                                "'fleet status' calls a node silent", min=1, max=1000),
        }, doc="the fleet's heartbeat and status (docs/fleet.md)"),
    }


def _uses_nats(config: dict[str, Any]) -> bool:
    return config["rules_source"]["kind"] == "nats" or \
        bool((config.get("nats_output") or {}).get("enabled"))


@hookimpl
def syswarden_rules_files(config: dict[str, Any]) -> list[str] | None:
    global _source
    if config["rules_source"]["kind"] != "nats":
        return None
    if _source is None:
        from syswarden.core.plugins import collect_fields

        from .rules_source import RulesSource
        _source = RulesSource(config)
        _source.first_sync(collect_fields(config))
    return _source.files()


def _files_state(config: dict[str, Any]) -> RulesState:
    """What a heartbeat says of rules read from files: their sha256."""
    from .rules_source import RulesState

    h = hashlib.sha256()
    for path in config.get("rules_file") or []:
        paths = sorted(os.path.join(path, f) for f in os.listdir(path)) \
            if os.path.isdir(path) else [path]
        for p in paths:
            try:
                with open(p, "rb") as f:
                    h.update(f.read())
            except OSError:
                pass
    return RulesState(source="files", sha256=h.hexdigest())


@hookimpl
def syswarden_make_services(ctx: PluginContext) -> list[Service]:
    config = ctx.config
    services: list[Service] = []
    if _source is not None:
        from .rules_source import RulesWatcher
        services.append(RulesWatcher(_source, ctx,
                                     seconds(config["rules_source"]["poll_interval"])))
    interval = seconds(config["fleet"]["heartbeat_interval"])
    if interval > 0 and _uses_nats(config):
        from .heartbeat import Heartbeat
        rules = _source.state if _source is not None else _files_state(config)
        services.append(Heartbeat(ctx, rules, config["fleet"], interval))
    return services
