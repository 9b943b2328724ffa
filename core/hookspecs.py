"""The hook specifications: what a syswarden plugin can provide.

A plugin is a module (or an object) with functions marked ``@hookimpl``.  Hooks are factories
and declarations, called once at start-up (and on a reload): the objects they return are then
called directly by the agent, never through ``pm.hook`` per event.

Every hook is documented here; ``tests/core/test_hookspecs.py`` fails when one is not.

A minimal output plugin::

    from syswarden.core.hookspecs import hookimpl
    from syswarden.core.protocols import Output

    class Printer(Output):
        name = "printer"
        async def run(self, alerts, *, task_status):
            task_status.started()
            async with alerts:
                async for alert in alerts:
                    print(alert.rule)

    @hookimpl
    def syswarden_make_outputs(ctx):
        return [Printer()]
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Iterable

import pluggy

if TYPE_CHECKING:
    from .config import Section
    from .fields import FieldDef
    from .protocols import (Command, Enricher, Filter, Flag, Output, PluginContext, Service,
                            Source)

PROJECT = "syswarden"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


# ---------------------------------------------------------------------------------------------
# Declarations: read at start-up, before anything runs
# ---------------------------------------------------------------------------------------------


@hookspec
def syswarden_config_schema() -> "dict[str, Section] | None":
    """Declare the config sections this plugin owns, with their keys, types and defaults.

    Called once when the config is loaded, before any factory.  The config loader uses the
    schemas to fill defaults, reject unknown keys (with a suggestion) and wrong types, with the
    file and line of the mistake.

    :return: a mapping of top-level config key (e.g. ``"docker"``, ``"file_output"``) to its
        :class:`~syswarden.core.config.Section`, or None when the plugin has no config.
    """


@hookspec
def syswarden_validate_config(config: dict[str, Any]) -> "list[str] | None":
    """Check a plugin's config beyond what its schema says (values that depend on each other).

    Called once after schema validation, with the whole config (defaults filled in).

    :param config: the validated config.
    :return: a list of error messages (each naming the key), or None when all is well.
    """


@hookspec
def syswarden_fields() -> "Iterable[FieldDef] | None":
    """Declare the fields this plugin provides (``proc.name``, ``container.id`` ...).

    Called once at start-up for every registered plugin, enabled or not, so that a rule naming a
    field of a disabled plugin still loads (the field then reads as unknown).  Each field is
    declared by exactly one plugin.

    :return: the plugin's :class:`~syswarden.core.fields.FieldDef` objects.
    """


@hookspec(firstresult=True)
def syswarden_rules_files(config: dict[str, Any]) -> "list[str] | None":
    """Say where the rules come from when a plugin keeps them (the fleet's key-value bucket).

    Called before the filters are built (start-up) and on every reload (SIGHUP, or a reload a
    :class:`~syswarden.core.protocols.Service` asks for), unless ``-r`` names the rules.  The
    first non-None result replaces ``rules_file``: the local files or directories the rules
    filter then loads, as it loads ``rules_file``.  Raise a ``ConfigError`` when there are no
    rules to give (exit code 2 at start-up; on a reload the running rules stay).

    :param config: the validated config (on a reload, the re-read one).
    :return: rule files or directories, or None to leave ``rules_file`` as it is.
    """


# ---------------------------------------------------------------------------------------------
# The command line: read before it is parsed
# ---------------------------------------------------------------------------------------------


@hookspec
def syswarden_commands() -> "Iterable[Command | Flag] | None":
    """Add commands to the ``syswarden`` command line (datasette's ``register_commands``).

    Called once when ``syswarden`` starts, before the command line is parsed, for every
    installed plugin: the built-ins and the plugins of the ``syswarden`` entry-point group,
    enabled or not.  A plugin named only in the config (``plugins:``) adds no command: the
    config file is read after the command line.  The built-in commands (``capture``,
    ``test-rules``, ``event-generator``) and the eBPF source's ``--dump-ebpf`` come this way.

    A :class:`~syswarden.core.protocols.Command` is a subcommand, ``syswarden NAME ARGS``: it gets
    ``-c``, ``-o`` and ``-r`` and adds its own arguments; it runs with the config and the
    plugins loaded.  A :class:`~syswarden.core.protocols.Flag` is a flag of the main command that
    runs instead of the agent, like ``--list-fields``: it is given the agent the command line
    describes, not built yet.  A name declared twice is a :class:`PluginError` (exit code 2).

    :return: the plugin's :class:`~syswarden.core.protocols.Command` and
        :class:`~syswarden.core.protocols.Flag` objects, or None.
    """


# ---------------------------------------------------------------------------------------------
# Factories: called once at start-up; the agent calls the returned objects directly
# ---------------------------------------------------------------------------------------------


@hookspec
def syswarden_make_filters(ctx: "PluginContext") -> "Filter | Iterable[Filter] | None":
    """Build the filters (the rule engine) that judge events.

    Called first among the factories: the event types the filters need are then put in
    ``ctx.event_types`` for the sources.  Errors in the rules raise ``RuleError``.

    :param ctx: config, metrics and the field registry.
    :return: filter objects (see :class:`~syswarden.core.protocols.Filter`), or None.
    """


@hookspec
def syswarden_make_sources(ctx: "PluginContext") -> "Source | Iterable[Source] | None":
    """Build the event sources (live eBPF, replay of a capture...).

    Called after the filters, with ``ctx.event_types`` set.  When ``ctx.replay_file`` is set
    (``-e FILE``) only a source that replays returns an object; live sources return None.

    :param ctx: config, metrics, the field registry and the event types the rules need.
    :return: source objects (see :class:`~syswarden.core.protocols.Source`), or None.
    """


@hookspec
def syswarden_make_enrichers(ctx: "PluginContext") -> "Enricher | Iterable[Enricher] | None":
    """Build the enrichers that attach process, fd, user and container state to events.

    Called once at start-up, after the sources.  Enrichers run in the order the plugins were
    registered (built-ins first: process, docker).

    :param ctx: config, metrics and the field registry.
    :return: enricher objects (see :class:`~syswarden.core.protocols.Enricher`), or None.
    """


@hookspec
def syswarden_make_services(ctx: "PluginContext") -> "Service | Iterable[Service] | None":
    """Build background services that run beside the pipeline (the fleet's heartbeat, the
    rules watcher).

    Called once at start-up, after the outputs.  Each service's ``run`` is started with the
    enrichers' services, before the sources, and cancelled once the pipeline has drained.

    :param ctx: config, metrics, the field registry and ``ctx.reload`` (the SIGHUP reload).
    :return: service objects (see :class:`~syswarden.core.protocols.Service`), or None.
    """


@hookspec
def syswarden_make_outputs(ctx: "PluginContext") -> "Output | Iterable[Output] | None":
    """Build the outputs alerts are delivered to.

    Called once at start-up; an output whose config section says ``enabled: false`` returns
    None.  Each returned output gets its own bounded queue.

    :param ctx: config, metrics and the field registry.
    :return: output objects (see :class:`~syswarden.core.protocols.Output`), or None.
    """
