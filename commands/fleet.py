"""``syswarden rules push FILE...``, ``syswarden rules history`` and ``syswarden fleet status``:
the fleet plugin's commands (:mod:`syswarden.plugins.fleet`, docs/fleet.md).

They read the same config as the agent (``-c``): the ``nats`` connection, ``rules_source``
(bucket, key, history, replicas) and ``fleet`` (bucket, heartbeat interval).
"""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

from syswarden.core.errors import ConfigError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Command
from syswarden.plugins.outputs.nats.connection import NatsLink, seconds

EXIT_OK, EXIT_REFUSED = 0, 2


def _common() -> argparse.ArgumentParser:
    """``-c`` and ``-o`` after the action too (``syswarden rules push -c FILE ...``)."""
    p = argparse.ArgumentParser(add_help=False)
    p.add_argument("-c", dest="config", metavar="FILE", default=argparse.SUPPRESS)
    p.add_argument("-o", dest="overrides", metavar="KEY=VALUE", action="append",
                   default=argparse.SUPPRESS)
    return p


def _link(config: dict[str, Any], name: str) -> NatsLink:
    return NatsLink(config.get("nats") or {}, name)


def _call(link: NatsLink, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on the link (connected first); NATS that cannot be reached is a
    ConfigError naming the servers."""
    async def go() -> Any:
        if link.nc is None:
            await link.connect()
        return await fn(*args)
    try:
        return link.call_sync(go, timeout=30.0)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(f"NATS ({link.servers}): {type(exc).__name__}: {exc}",
                          hint="check nats.servers and the credentials") from None
    finally:
        link.stop()


class RulesCommand(Command):
    name = "rules"
    description = "Publish rules to the fleet's key-value bucket, or list its revisions."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        push = sub.add_parser("push", parents=[_common()], help="validate the files (as -V) and publish them "
                                           "as one revision; a broken file is refused")
        push.add_argument("files", nargs="+", metavar="FILE")
        sub.add_parser("history", parents=[_common()], help="the revisions kept in the bucket")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        section = config["rules_source"]
        if args.action == "push":
            return self.push(args.files, config, plugins, section)
        return self.history(config, section)

    def push(self, files: list[str], config: dict[str, Any], plugins: Any,
             section: dict[str, Any]) -> int:
        from syswarden.core.rules.validate import validate  # noqa: PLC0415
        from syswarden.plugins.fleet.rules_source import Bundle, open_bucket  # noqa: PLC0415

        if validate(files, plugins.fields(), False) != 0:
            print("syswarden rules push: refused: the rules above do not load; nothing was "
                  "published", file=sys.stderr)
            return EXIT_REFUSED
        bundle = Bundle.from_paths(files)
        link = _link(config, "rules-push")

        async def put() -> int:
            kv = await open_bucket(link, section, create=True)
            return await kv.put(section["key"], bundle.encode())
        revision = _call(link, put)
        print(f"pushed revision {revision} of {section['bucket']}/{section['key']}: "
              f"{len(files)} file(s), sha256 {bundle.sha256[:12]}")
        return EXIT_OK

    def history(self, config: dict[str, Any], section: dict[str, Any]) -> int:
        import nats.js.errors

        from syswarden.plugins.fleet.rules_source import Bundle, open_bucket  # noqa: PLC0415
        link = _link(config, "rules-history")

        async def read() -> list:
            kv = await open_bucket(link, section, create=False)
            try:
                return await kv.history(section["key"])
            except nats.js.errors.NoKeysError:
                return []
        entries = _call(link, read)
        if not entries:
            print(f"no revision in {section['bucket']}/{section['key']}")
            return EXIT_OK
        print(f"{'REVISION':>8}  {'PUSHED AT':<20}  {'BY':<24} {'SHA256':<12}  FILES")
        for entry in entries:
            try:
                b = Bundle.decode(entry.value or b"", entry.revision or 0)
            except ValueError as exc:
                print(f"{entry.revision:>8}  {exc}")
                continue
            latest = "  (latest)" if entry is entries[-1] else ""
            print(f"{b.revision:>8}  {b.pushed_at:<20}  {b.pushed_by:<24} {b.sha256[:12]}  "
                  f"{', '.join(n for n, _ in b.files)}{latest}")
        return EXIT_OK


class FleetCommand(Command):
    name = "fleet"
    description = "The fleet's nodes from their heartbeats."

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        sub = parser.add_subparsers(dest="action", required=True, metavar="ACTION")
        sub.add_parser("status", parents=[_common()], help="each node: last seen, rules revision, events/s, drops, "
                                      "outputs; flags silent, dropping, old-revision nodes")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        import json

        import nats.js.errors

        from syswarden.plugins.fleet.heartbeat import fleet_bucket, render_status  # noqa: PLC0415
        fleet, rules = config["fleet"], config["rules_source"]
        link = _link(config, "fleet-status")

        async def read() -> tuple[list[dict], int] | None:
            try:
                kv = await fleet_bucket(link, fleet, create=False)
            except nats.js.errors.BucketNotFoundError:
                return None
            try:
                keys = await kv.keys()
            except nats.js.errors.NoKeysError:
                keys = []
            nodes = []
            for key in keys:
                entry = await kv.get(key)
                if entry.value:
                    nodes.append(json.loads(entry.value))
            latest = 0
            try:
                rkv = await link.js.key_value(rules["bucket"])
                latest = (await rkv.get(rules["key"])).revision or 0
            except (nats.js.errors.BucketNotFoundError, nats.js.errors.KeyNotFoundError):
                pass
            return nodes, latest
        found = _call(link, read)
        if found is None:
            print(f"no heartbeat yet: the bucket {fleet['bucket']} does not exist")
            return EXIT_OK
        nodes, latest = found
        interval = seconds(fleet["heartbeat_interval"])
        print(render_status(nodes, time.time(), interval * float(fleet["silent_after"]),
                            latest))
        return EXIT_OK


@hookimpl
def syswarden_commands() -> list[Command]:
    return [RulesCommand(), FleetCommand()]
