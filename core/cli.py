"""The ``syswarden`` command: Falco's flags where the concept is the same.

The main command runs the agent (or replays, validates, lists).  The subcommands, and the flags
that belong to one plugin, come from the plugins' ``syswarden_commands`` hook
(:class:`~syswarden.core.protocols.Command`, :class:`~syswarden.core.protocols.Flag`): the
built-in subcommands (``capture``, ``test-rules``, ``event-generator``) live above ``core/`` in
``syswarden/commands/``, and ``--dump-ebpf`` in the eBPF source; ``core/`` imports none of them.

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
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from .config import load_config, peek_plugin_keys
from .errors import PluginError, SourceError, SyswardenError
from .log import setup_logging
from .protocols import Command, Flag

if TYPE_CHECKING:
    from .plugins import Plugins

log = logging.getLogger("syswarden.cli")

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_ENVIRONMENT, EXIT_DAMAGED = 0, 1, 2, 3, 4


@dataclass
class Commands:
    """The subcommands and flags the installed plugins add, in registration order."""

    subcommands: dict[str, Command]
    flags: list[tuple[str, Flag]]           # (plugin, flag)

    @classmethod
    def of(cls, plugins: Plugins) -> Commands:
        """The commands of ``plugins``; PluginError for a name declared twice or an object
        that is neither a :class:`Command` nor a :class:`Flag`."""
        subcommands: dict[str, Command] = {}
        owners: dict[str, str] = {}
        flags: list[tuple[str, Flag]] = []
        for plugin, command in plugins.commands():
            if isinstance(command, Flag):
                if not command.flag.startswith("--"):
                    raise PluginError(f"plugin {plugin!r}: the flag {command.flag!r} must "
                                      "start with --")
                flags.append((plugin, command))
            elif isinstance(command, Command):
                name = command.name
                if not name or name.startswith("-"):
                    raise PluginError(f"plugin {plugin!r}: a command needs a name that does "
                                      f"not start with - (not {name!r})")
                if name in subcommands:
                    raise PluginError(f"the command {name!r} is declared by two plugins "
                                      f"({owners[name]} and {plugin})")
                subcommands[name], owners[name] = command, plugin
            else:
                raise PluginError(f"plugin {plugin!r}: syswarden_commands returned {command!r},"
                                  " not a Command or a Flag")
        return cls(subcommands, flags)


def installed_commands() -> Commands:
    """The commands of the installed plugins (the built-in plugins and commands, the entry
    points): the command line is parsed before the config, which may name other plugins."""
    from .plugins import BUILTIN_COMMANDS, BUILTIN_PLUGINS, make_plugin_manager
    return Commands.of(make_plugin_manager(builtins=BUILTIN_PLUGINS + BUILTIN_COMMANDS))


def _version() -> str:
    from syswarden import __version__
    return __version__


def build_parser(commands: Commands) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="syswarden",
        description="Runtime security agent: kernel events judged by Falco-compatible rules. "
                    f"Subcommands: {', '.join(commands.subcommands)} "
                    "(syswarden SUBCOMMAND -h).")
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
    try:
        for _, flag in commands.flags:      # listed with the other flags that run and exit
            p.add_argument(flag.flag, dest=flag.dest, action="store_true", help=flag.help)
        p.add_argument("--dry-run", action="store_true",
                       help="load config, plugins and rules, start nothing")
        p.add_argument("--version", action="version", version=f"syswarden {_version()}")
    except argparse.ArgumentError as exc:   # a plugin's flag that is already taken
        [plugin, *_] = [name for name, flag in reversed(commands.flags)
                        if flag.flag == exc.argument_name]
        raise PluginError(f"plugin {plugin!r}: the flag {exc.argument_name} is already "
                          "taken") from None
    return p


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        commands = installed_commands()
        if argv and argv[0] in commands.subcommands:
            return _subcommand(commands.subcommands[argv[0]], argv[1:])
        return _main(build_parser(commands).parse_args(argv), commands)
    except SourceError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except SyswardenError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK


def load(args: argparse.Namespace) -> tuple[dict[str, Any], Plugins]:
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


def _main(args: argparse.Namespace, commands: Commands) -> int:
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
    for _, flag in commands.flags:
        if getattr(args, flag.dest):
            return flag.run(args, agent)
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
        for name, desc in f.describe():
            print(f"{name}\n    {' '.join(str(desc or '').split())}\n")
    return EXIT_OK


def _subcommand(command: Command, argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog=f"syswarden {command.name}",
                                description=command.description)
    p.add_argument("-c", dest="config", metavar="FILE")
    p.add_argument("-o", dest="overrides", metavar="KEY=VALUE", action="append", default=[])
    p.add_argument("-r", dest="rules", metavar="FILE|DIR", action="append")
    command.add_arguments(p)
    args = p.parse_args(argv)
    config, plugins = load(args)
    setup_logging(config["log_level"], config["log_stderr"], config["log_syslog"])
    return command.run(args, config, plugins)


if __name__ == "__main__":
    sys.exit(main())
