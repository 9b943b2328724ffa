"""The ``syswarden`` command: Falco's flags where the concept is the same.

Every flag of Falco 0.44's ``falco`` is taken (docs/falco.md says what each does here); what
the print-and-exit ones print is in :mod:`.info`, the schemas in :mod:`.config_schema` and
:mod:`.rules.schema`, ``-L``'s JSON in :mod:`.rules.describe`.

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
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import info
from .config import load_config, peek_plugin_keys
from .errors import ConfigError, Location, PluginError, SourceError, SyswardenError
from .log import setup_logging
from .protocols import Command, Flag
from .rules.loader import SOURCES

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
                    "(syswarden SUBCOMMAND -h).  Falco's flags mean what they mean to Falco "
                    "(docs/falco.md).")
    p.add_argument("-c", dest="config", metavar="FILE", help="config file (default: built-in)")
    p.add_argument("-o", "--option", dest="overrides", metavar="KEY=VALUE", action="append",
                   default=[], help="override a config key, e.g. -o json_output=true "
                                    "(repeatable)")
    p.add_argument("-r", dest="rules", metavar="FILE|DIR", action="append",
                   help="rules file or directory (repeatable; replaces rules_file)")
    p.add_argument("-M", dest="max_seconds", metavar="SECONDS", type=float,
                   help="stop after SECONDS")
    p.add_argument("-e", dest="replay", metavar="FILE",
                   help="replay a capture file instead of the live source")
    p.add_argument("-P", "--pidfile", dest="pidfile", metavar="PIDFILE",
                   help="write the agent's pid to PIDFILE (removed when the agent stops)")
    p.add_argument("-U", "--unbuffered", dest="unbuffered", action="store_true",
                   help="turn off output buffering (buffered_outputs=false)")
    p.add_argument("-p", "--print", dest="print_additional", metavar="FORMAT",
                   help="deprecated in Falco: append FORMAT to every rule's output "
                        "(append_output); -pc/-pk do nothing, as in Falco")
    p.add_argument("--disable-source", dest="disable_sources", metavar="SOURCE",
                   action="append", default=[], help="turn off an event source (repeatable)")
    p.add_argument("--enable-source", dest="enable_sources", metavar="SOURCE",
                   action="append", default=[], help="enable only these event sources "
                                                     "(repeatable)")
    p.add_argument("-v", dest="verbose", action="store_true",
                   help="verbose: event counts when the agent stops; with --list, each "
                   "field's type in Falco's words and its argument")
    p.add_argument("-V", "--validate", dest="validate", metavar="FILE", action="append",
                   help="validate rules files (repeatable) and exit")
    p.add_argument("-L", dest="list_rules", action="store_true",
                   help="list the loaded rules with their descriptions and exit (JSON with "
                        "json_output)")
    p.add_argument("-l", dest="describe_rule", metavar="RULE",
                   help="describe the rule RULE and exit (JSON with json_output)")
    p.add_argument("--list", dest="list_source", metavar="SOURCE", nargs="?", const="",
                   help="list every field (of SOURCE: syscall) and exit")
    p.add_argument("--list-fields", action="store_true", help="list every field and exit")
    p.add_argument("-N", dest="names_only", action="store_true",
                   help="with --list: field names only")
    p.add_argument("--format", dest="format", choices=info.FORMATS,
                   help="with --list and --list-events: text, markdown or json")
    p.add_argument("--markdown", action="store_true", help="deprecated: --format markdown")
    p.add_argument("--list-events", action="store_true",
                   help="list the syscall events syswarden follows and exit")
    p.add_argument("-i", dest="ignored_events", action="store_true",
                   help="list the syscalls Falco's rules may name that are never followed")
    p.add_argument("--list-plugins", action="store_true", help="list every plugin and exit")
    p.add_argument("--plugin-info", metavar="NAME", help="describe the plugin NAME and exit")
    p.add_argument("--support", action="store_true",
                   help="print support information (version, system, config, rules files) "
                        "as JSON and exit")
    p.add_argument("--config-schema", action="store_true",
                   help="print the config file's JSON Schema and exit")
    p.add_argument("--rule-schema", action="store_true",
                   help="print the rules file's JSON Schema and exit")
    p.add_argument("--page-size", action="store_true", help="print the page size and exit")
    try:
        for _, flag in commands.flags:      # listed with the other flags that run and exit
            p.add_argument(flag.flag, dest=flag.dest, action="store_true", help=flag.help)
        p.add_argument("--dry-run", action="store_true",
                       help="load config, plugins and rules, start nothing")
        p.add_argument("--version", action="store_true",
                       help="print the version and exit (JSON with json_output)")
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
        return _main(build_parser(commands).parse_args(argv), commands, argv)
    except SourceError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_ENVIRONMENT
    except SyswardenError as exc:
        print(f"syswarden: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:         # `syswarden --list | head`: the reader has gone
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
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
        raise ConfigError("; ".join(errors), hint=f"in {config['_config_file']}")
    return config, plugins


def _main(args: argparse.Namespace, commands: Commands, argv: list[str]) -> int:
    if args.config_schema or args.rule_schema:      # no config needed, as in Falco
        return _print_schema(args)
    if args.page_size:
        info.page_size(sys.stdout)
        return EXIT_OK
    fmt = _format(args)
    if args.unbuffered:
        args.overrides.append("buffered_outputs=false")
    args.overrides.extend(_print_additional(args.print_additional))
    config, plugins = load(args)
    setup_logging(config["log_level"], config["log_stderr"], config["log_syslog"])
    _select_sources(args)
    if args.print_additional:
        log.warning("The -p/--print option is deprecated and will be removed. Use -o "
                    "append_output=... instead.")
    if args.version:
        return _print_version(bool(config["json_output"]))
    if args.list_plugins:
        return _list_plugins(plugins)
    if args.plugin_info is not None:
        info.plugin_info(plugins, args.plugin_info, sys.stdout)
        return EXIT_OK
    if args.list_fields or args.list_source is not None:
        info.list_fields(plugins.fields(), sys.stdout, source=args.list_source or "",
                         names_only=args.names_only, fmt=fmt, verbose=args.verbose)
        return EXIT_OK
    if args.list_events:
        info.list_events(sys.stdout, fmt)
        return EXIT_OK
    if args.ignored_events:
        info.ignored_events(sys.stdout)
        return EXIT_OK
    if args.validate:
        from .rules.loader import provided_plugins
        from .rules.validate import validate
        describe = True if args.list_rules else args.describe_rule or False
        return validate(args.validate, plugins.fields(), bool(config["json_output"]),
                        describe=describe, plugins=provided_plugins(config))

    from .agent import Agent
    agent = Agent(config, plugins, config_path=args.config, overrides=tuple(args.overrides),
                  rules_files=args.rules, replay_file=args.replay, max_seconds=args.max_seconds)
    if args.list_rules or args.describe_rule is not None:
        agent.build(["filters"])
        return _describe_rules(agent, args.describe_rule, bool(config["json_output"]))
    if args.support:
        agent.build(["filters"])
        files = [path for f in agent.filters for path in f.rules_files()]
        json.dump(info.support(config, argv, files), sys.stdout)
        print()
        return EXIT_OK
    for _, flag in commands.flags:
        if getattr(args, flag.dest):
            return flag.run(args, agent)
    agent.build(preload=not args.dry_run)
    if args.dry_run:
        log.info("dry run: config, %d plugins and rules loaded; %s", len(plugins.records),
                 _summary(agent))
        print(f"syswarden: dry run ok: {_summary(agent)}")
        return EXIT_OK
    import trio
    started = time.monotonic()
    with _pidfile(args.pidfile):
        code = trio.run(agent.run)
    if args.verbose:        # Falco's lines at the end of a run
        elapsed = max(time.monotonic() - started, 1e-9)
        events = agent.metrics.get("events.in")
        print(f"Elapsed time: {elapsed:.3f}, Captured Events: {events}, "
              f"{events / elapsed:.2f} eps", file=sys.stderr)
    if args.replay and code == EXIT_OK:
        from .capture import replay_damage
        damage = replay_damage(agent.metrics)
        if damage:
            print(f"syswarden: {args.replay}: damaged capture: {damage}", file=sys.stderr)
            return EXIT_DAMAGED
    return code


def _print_schema(args: argparse.Namespace) -> int:
    """``--config-schema`` (the core's and every installed plugin's keys), ``--rule-schema``."""
    if args.config_schema:
        from .config_schema import config_schema, dumps
        from .plugins import make_plugin_manager
        plugins = make_plugin_manager(peek_plugin_keys(args.config, args.overrides))
        sys.stdout.write(dumps(config_schema(plugins.schemas())))
    if args.rule_schema:
        from .config_schema import dumps
        from .rules.schema import rule_schema
        sys.stdout.write(dumps(rule_schema()))
    return EXIT_OK


def _format(args: argparse.Namespace) -> str:
    """``--format`` or the deprecated ``--markdown`` (not both, as in Falco)."""
    if args.markdown and args.format:
        raise ConfigError("Cannot specify both --markdown and --format options together",
                          Location("--markdown"))
    if args.markdown:
        print("WARNING: --markdown is deprecated, use --format markdown instead.",
              file=sys.stderr)
        return "markdown"
    return args.format or "text"


def _select_sources(args: argparse.Namespace) -> None:
    """``--enable-source`` / ``--disable-source``, checked as Falco checks them (ignored when
    replaying a capture, as when Falco reads a trace file)."""
    if args.replay:
        return
    if args.enable_sources and args.disable_sources:
        raise ConfigError("You can not mix --enable-source and --disable-source",
                          Location("--enable-source"))
    for source in args.enable_sources:
        info.check_source(source, "--enable-source")
    for source in args.disable_sources:
        info.check_source(source, "--disable-source")
    if set(args.disable_sources) >= set(SOURCES):
        raise ConfigError("Must enable at least one event source", Location("--disable-source"),
                          hint=f"syswarden's event sources: {', '.join(SOURCES)}")


def _print_additional(fmt: str | None) -> list[str]:
    """Falco's deprecated ``-p``: ``c``/``container``/``k``/``kubernetes`` do nothing (the
    container fields are suggested output), another format is appended to every rule's output
    as an ``append_output`` entry: an override, so that every reload applies it again."""
    if not fmt or fmt in ("c", "container", "k", "kubernetes"):
        return []
    # a YAML double-quoted string (JSON's), so that the format is never read as YAML
    return [f"append_output[].extra_output={json.dumps(fmt, ensure_ascii=False)}"]


def _print_version(json_output: bool) -> int:
    if json_output:
        print(json.dumps(info.engine_info()))
    else:
        print(f"syswarden {_version()}")
    return EXIT_OK


@contextlib.contextmanager
def _pidfile(path: str | None) -> Iterator[None]:
    """``-P PIDFILE``: the pid written through :func:`~syswarden.core.safe_files.open_file`
    (root must not write through a link or a FIFO another user planted), mode 0644; removed
    when the agent stops, if it still holds our pid."""
    if not path:
        yield
        return
    from .safe_files import open_file
    pid = str(os.getpid())
    try:
        fd = open_file(path, 0o644, truncate=True)
    except FileNotFoundError:
        raise ConfigError(f"Could not write pid to pidfile {path}: no such directory",
                          Location("-P")) from None
    with os.fdopen(fd, "w") as fh:
        fh.write(pid + "\n")
    try:
        yield
    finally:
        with contextlib.suppress(OSError):
            with open(path) as fh:
                ours = fh.read().strip() == pid
            if ours:
                os.unlink(path)


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


def _describe_rules(agent: Any, rule: str | None, json_output: bool) -> int:
    """``-L`` (every rule) and ``-l RULE``: Falco's two columns, or its JSON."""
    if json_output:
        docs = [d for d in (f.describe_json(rule) for f in agent.filters) if d is not None]
        print(json.dumps(docs[0] if len(docs) == 1 else {"filters": docs}))
        return EXIT_OK
    rows = [row for f in agent.filters for row in f.describe()]
    if rule is not None:
        rows = [row for row in rows if row[0] == rule]
        if not rows:
            raise ConfigError(f'Rule "{rule}" is not loaded', Location("-l"),
                              hint="syswarden -L lists the loaded rules")
    info.describe_text(rows, sys.stdout)
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
