"""The ``syswarden`` command: Falco's flags where the concept is the same.

Exit codes (also in docs/cli.md):

- 0: success (the agent stopped on a signal, ``-M`` or the end of a replay; a check passed)
- 1: a check failed (``-V`` found an invalid rules file, ``test-rules`` a failing case) or the
  agent crashed while running
- 2: the input is wrong: command line, config file, rules at start-up, plugins
- 3: the machine cannot run the agent as configured (no root, bcc missing, capture unreadable)
- 4: a replay (``-e FILE``) ran, but the capture was damaged: malformed lines were skipped or its
  end could not be read; the alerts are those of the lines that could be read
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Any, Sequence

from .config import load_config, peek_plugin_keys
from .errors import SourceError, SyswardenError
from .log import setup_logging

log = logging.getLogger("syswarden.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_DAMAGED = 0, 1, 2, 3, 4
SUBCOMMANDS = ("capture", "test-rules", "event-generator")


def _version() -> str:
    from syswarden import __version__
    return __version__


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syswarden",
        description="Runtime security agent: kernel events judged by Falco-compatible rules. "
                    f"Subcommands: {', '.join(SUBCOMMANDS)} (syswarden SUBCOMMAND -h).")
    p.add_argument("-c", dest="config", metavar="FILE", help="config file (default: built-in)")
    p.add_argument("-o", dest="overrides", metavar="KEY=VALUE", action="append", default=[],
                   help="override a config key, e.g. -o json_output=true (repeatable)")
    p.add_argument("-r", dest="rules", metavar="FILE|DIR", action="append",
                   help="rules file or directory (repeatable; replaces rules_file)")
    p.add_argument("-M", dest="max_seconds", metavar="SECONDS", type=float,
                   help="stop after SECONDS")
    p.add_argument("-e", dest="replay", metavar="FILE",
                   help="replay a capture file instead of the live source")
    p.add_argument("-V", "--validate", dest="validate", metavar="FILE", action="append",
                   help="validate rules files (repeatable) and exit")
    p.add_argument("-L", dest="list_rules", action="store_true",
                   help="list the loaded rules with their descriptions and exit")
    p.add_argument("--list-fields", action="store_true", help="list every field and exit")
    p.add_argument("--list-plugins", action="store_true", help="list every plugin and exit")
    p.add_argument("--dump-ebpf", action="store_true",
                   help="print the eBPF program the loaded rules need and exit")
    p.add_argument("--dry-run", action="store_true",
                   help="load config, plugins and rules, start nothing")
    p.add_argument("--version", action="version", version=f"syswarden {_version()}")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        if argv and argv[0] in SUBCOMMANDS:
            return _subcommand(argv[0], argv[1:])
        return _main(build_parser().parse_args(argv))
    except SourceError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except SyswardenError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def load(args: argparse.Namespace) -> tuple[dict[str, Any], Any]:
    """Config and plugins, in the order they depend on each other."""
    from .plugins import make_plugin_manager

    early = peek_plugin_keys(args.config, args.overrides)
    plugins = make_plugin_manager(early)
    config = load_config(args.config, args.overrides, plugins.schemas())
    if getattr(args, "rules", None):
        config["rules_file"] = list(args.rules)
    errors = plugins.validate_config(config)
    if errors:
        from .errors import ConfigError
        raise ConfigError("; ".join(errors), hint=f"in {config['_config_file']}")
    return config, plugins


def _main(args: argparse.Namespace) -> int:
    config, plugins = load(args)
    setup_logging(config["log_level"], config["log_stderr"], config["log_syslog"])
    if args.list_plugins:
        return _list_plugins(plugins)
    if args.list_fields:
        return _list_fields(plugins)
    if args.validate:
        from .rules.validate import validate
        return validate(args.validate, plugins.fields(), bool(config["json_output"]))

    from .agent import Agent
    agent = Agent(config, plugins, config_path=args.config, overrides=tuple(args.overrides),
                  rules_files=args.rules, replay_file=args.replay, max_seconds=args.max_seconds)
    if args.list_rules:
        agent.build(["filters"])
        return _list_rules(agent)
    if args.dump_ebpf:
        agent.build(["filters"])
        return _dump_ebpf(agent, config)
    agent.build()
    if args.dry_run:
        log.info("dry run: config, %d plugins and rules loaded; %s", len(plugins.records),
                 _summary(agent))
        print(f"syswarden: dry run ok: {_summary(agent)}")
        return EXIT_OK
    import trio
    code = trio.run(agent.run)
    if args.replay and code == EXIT_OK:
        from .capture import replay_damage
        damage = replay_damage(agent.metrics)
        if damage:
            print(f"syswarden: {args.replay}: damaged capture: {damage}", file=sys.stderr)
            return EXIT_DAMAGED
    return code


def _summary(agent: Any) -> str:
    types = agent.event_types()
    return (f"sources={','.join(s.name for s in agent.sources)} "
            f"enrichers={','.join(e.name for e in agent.enrichers)} "
            f"filters={','.join(f.name for f in agent.filters)} "
            f"outputs={','.join(o.name for o in agent.outputs)} "
            f"event_types={'all' if types is None else len(types)}")


def _list_plugins(plugins: Any) -> int:
    rows = [(r.name, ",".join(r.kinds), r.origin, r.status, r.module) for r in plugins.records]
    widths = [max(len(row[i]) for row in rows + [("NAME", "KIND", "ORIGIN", "STATUS", "")])
              for i in range(4)]
    print(f"{'NAME':<{widths[0]}}  {'KIND':<{widths[1]}}  {'ORIGIN':<{widths[2]}}  STATUS")
    for row in rows:
        print(f"{row[0]:<{widths[0]}}  {row[1]:<{widths[1]}}  {row[2]:<{widths[2]}}  {row[3]}"
              f"  ({row[4]})")
    return EXIT_OK


def _list_fields(plugins: Any) -> int:
    registry = plugins.fields()
    by_provider: dict[str, list] = {}
    for d in registry:
        by_provider.setdefault(d.provider, []).append(d)
    for provider in sorted(by_provider):
        print(f"Fields provided by {provider}:")
        print("-" * 40)
        for d in by_provider[provider]:
            name = d.name + (d.arg_hint or ("" if d.arg.value == "none" else f"[{d.arg.value}]"))
            print(f"{name:<32} {d.type.value:<8} {d.desc}")
        print()
    print(f"{len(registry)} fields")
    return EXIT_OK


def _list_rules(agent: Any) -> int:
    for f in agent.filters:
        describe = getattr(f, "describe", None)
        for name, desc in (describe() if describe else []):
            print(f"{name}\n    {' '.join(str(desc or '').split())}\n")
    return EXIT_OK


def _dump_ebpf(agent: Any, config: dict[str, Any]) -> int:
    from syswarden.plugins.sources.ebpf.source import resolved_config
    from syswarden.plugins.sources.ebpf.program import render_program
    ebpf = resolved_config(dict(config.get("ebpf") or {}))     # what would run here
    prefilter = agent.open_prefilter() if ebpf.get("open_prefilter", True) else None
    sock = agent.socket_prefilter() if ebpf.get("socket_prefilter", True) else None
    print(render_program(agent.event_types(), ebpf, open_prefilter=prefilter,
                         socket_prefilter=sock))
    return EXIT_OK


def _subcommand(name: str, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"syswarden {name}")
    p.add_argument("-c", dest="config", metavar="FILE")
    p.add_argument("-o", dest="overrides", metavar="KEY=VALUE", action="append", default=[])
    p.add_argument("-r", dest="rules", metavar="FILE|DIR", action="append")
    if name == "capture":
        p.add_argument("-w", dest="write", metavar="FILE", required=True,
                       help="write the capture here (JSON lines)")
        p.add_argument("-M", dest="max_seconds", type=float, help="stop after SECONDS")
        p.add_argument("--all-events", action="store_true",
                       help="record every supported syscall, not only those the rules need")
    elif name == "test-rules":
        p.add_argument("files", nargs="+", metavar="TEST.yaml")
    elif name == "event-generator":
        p.add_argument("actions", nargs="*", metavar="ACTION")
        p.add_argument("--list", action="store_true", help="list the actions and exit")
        p.add_argument("--container", metavar="NAME", help="run the actions in a container")
    args = p.parse_args(argv)
    config, plugins = load(args)
    setup_logging(config["log_level"], config["log_stderr"], config["log_syslog"])
    if name == "test-rules":
        from .ruletest import main as run_tests
        return run_tests(args.files, config)
    if name == "capture":
        from .capture.command import capture_main
        return capture_main(args, config, plugins)
    from .event_generator import main as generate
    return generate(args, config)


if __name__ == "__main__":
    sys.exit(main())
