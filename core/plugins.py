"""The plugin manager: built-ins from an explicit list, third parties from entry points and config.

``make_plugin_manager(config)`` follows pluggy's eggsample host: add the hook specs, register the
built-in plugins from :data:`BUILTIN_PLUGINS`, then plugins of the ``syswarden`` entry-point group,
then module paths (or ``.py`` files) listed under ``plugins:`` in the config, and check that every
hook implementation matches a spec.  Plugins named in ``disabled_plugins`` stay registered (their
config sections and fields are still known, so a rule naming ``container.id`` loads with the
Docker enricher off) but their factory hooks are never called.

A built-in whose module cannot be imported is listed as not available with the reason.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import importlib.util
import logging
import os
import sys
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, Iterable

import pluggy

from . import hookspecs
from .config import Section
from .errors import PluginError
from .fields import FieldRegistry
from .protocols import adapt, as_list

log = logging.getLogger("syswarden.plugins")

ENTRY_POINT_GROUP = "syswarden"

#: (name, kind, module): the built-in plugins, registered in this order.  Enrichers run in
#: registration order (process state first, then containers).
BUILTIN_PLUGINS: tuple[tuple[str, str, str], ...] = (
    ("ebpf", "source", "syswarden.plugins.sources.ebpf"),
    ("replay", "source", "syswarden.plugins.sources.replay"),
    ("process", "enricher", "syswarden.plugins.enrichers.process"),
    ("container", "enricher", "syswarden.plugins.enrichers.containers"),
    ("rules", "filter", "syswarden.plugins.filters.rules"),
    ("stdout", "output", "syswarden.plugins.outputs.stdout"),
    ("file", "output", "syswarden.plugins.outputs.file"),
    ("syslog", "output", "syswarden.plugins.outputs.syslog"),
    ("program", "output", "syswarden.plugins.outputs.program"),
    ("webhook", "output", "syswarden.plugins.outputs.webhook"),
    ("nats", "output", "syswarden.plugins.outputs.nats"),
    ("fleet", "service", "syswarden.plugins.fleet"),
)

#: The built-in subcommands, plugins of their own above ``core/`` (``syswarden/commands/``):
#: core names their modules, never imports them.  They are registered, after the built-in
#: plugins, only to read the command line (``syswarden_commands``); the agent's plugin manager
#: and ``--list-plugins`` leave them out, as datasette lists its default plugins only on demand.
BUILTIN_COMMANDS: tuple[tuple[str, str, str], ...] = (
    ("capture", "command", "syswarden.commands.capture"),
    ("test-rules", "command", "syswarden.commands.ruletest"),
    ("event-generator", "command", "syswarden.commands.event_generator"),
    ("fleet-commands", "command", "syswarden.commands.fleet"),
)

#: (name, module): parts of ``core/`` that declare their config sections through the hooks,
#: as a plugin does (the webserver's ``webserver`` and ``metrics``).  Registered in every
#: plugin manager, first; they are the agent's own, so never disabled nor listed as plugins.
CORE_HOOKS: tuple[tuple[str, str], ...] = (
    ("core.webserver", "syswarden.core.webserver"),
)

_KIND_OF_HOOK = {
    "syswarden_make_sources": "source",
    "syswarden_make_enrichers": "enricher",
    "syswarden_make_filters": "filter",
    "syswarden_make_outputs": "output",
    "syswarden_make_services": "service",
}


@dataclass
class PluginRecord:
    """One plugin as ``--list-plugins`` shows it."""

    name: str
    origin: str                     # "built-in", "entry point (dist x.y)", "config path", "given"
    module: str
    kinds: list[str] = field(default_factory=list)
    available: bool = True
    reason: str = ""
    disabled: bool = False
    plugin: Any = None

    @property
    def status(self) -> str:
        if not self.available:
            return f"not available: {self.reason}"
        return "disabled" if self.disabled else "enabled"


class Plugins:
    """The plugin manager and what it knows, with calls limited to enabled plugins."""

    def __init__(self, pm: pluggy.PluginManager, records: list[PluginRecord]) -> None:
        self.pm = pm
        self.records = records

    def _enabled_call(self, hook: str, **kwargs: Any) -> list:
        disabled = [r.plugin for r in self.records if r.disabled and r.plugin is not None]
        caller = self.pm.subset_hook_caller(hook, remove_plugins=disabled)
        # pluggy calls the last registered first: reverse to get registration order
        results = list(reversed(caller(**kwargs)))
        out: list = []
        for result in results:
            out.extend(as_list(result))
        return out

    def make(self, kind: str, ctx: Any) -> list:
        """Call the ``syswarden_make_<kind>s`` factories of the enabled plugins: their objects,
        each an instance of the kind's base class (an object that does not subclass it is
        wrapped once by :func:`~syswarden.core.protocols.adapt`)."""
        return [adapt(kind, obj) for obj in self._enabled_call(f"syswarden_make_{kind}s", ctx=ctx)]

    def rules_files(self, config: dict[str, Any]) -> list[str] | None:
        """The rules an enabled plugin keeps (``syswarden_rules_files``), or None."""
        disabled = [r.plugin for r in self.records if r.disabled and r.plugin is not None]
        caller = self.pm.subset_hook_caller("syswarden_rules_files", remove_plugins=disabled)
        result = caller(config=config)       # firstresult: the first non-None answer
        return None if result is None else list(result)

    def schemas(self) -> dict[str, Section]:
        """Config sections of every registered plugin (enabled or not)."""
        merged: dict[str, Section] = {}
        for result in reversed(self.pm.hook.syswarden_config_schema()):
            for name, section in (result or {}).items():
                if name in merged:
                    raise PluginError(f"config section {name!r} is declared by two plugins")
                merged[name] = section
        return merged

    def validate_config(self, config: dict[str, Any]) -> list[str]:
        errors: list[str] = []
        for result in self._enabled_call("syswarden_validate_config", config=config):
            errors.append(str(result))
        return errors

    def fields(self) -> FieldRegistry:
        """Every field: the core's ``evt.*`` and each registered plugin's declarations."""
        registry = FieldRegistry(_core_fields())
        for result in reversed(self.pm.hook.syswarden_fields()):
            registry.add_all(result or ())
        return registry

    def commands(self) -> list[tuple[str, Any]]:
        """``(plugin name, Command or Flag)`` declared by every registered plugin (enabled or
        not), in registration order."""
        out: list[tuple[str, Any]] = []
        for impl in self.pm.hook.syswarden_commands.get_hookimpls():
            out.extend((impl.plugin_name, c) for c in as_list(impl.function()))
        return out

    def enabled(self, name: str) -> bool:
        return any(r.name == name and r.available and not r.disabled for r in self.records)


def _core_fields() -> Iterable:
    try:
        from . import evt_fields
    except ImportError:  # the rule engine's evt.* declarations are not there yet
        return ()
    return evt_fields.FIELDS


def _kinds(plugin: Any) -> list[str]:
    """What the plugin builds for the pipeline; ``command`` for one that only adds commands."""
    kinds = [kind for hook, kind in _KIND_OF_HOOK.items() if hasattr(plugin, hook)]
    if not kinds and hasattr(plugin, "syswarden_commands"):
        kinds = ["command"]
    return kinds


def _import_path(path: str) -> ModuleType:
    """A dotted module path, or a ``.py`` file path."""
    if path.endswith(".py") or os.sep in path:
        file = os.path.abspath(os.path.expanduser(path))
        if not os.path.isfile(file):
            raise PluginError(f"plugin file not found: {file}")
        modname = "syswarden_plugin_" + os.path.splitext(os.path.basename(file))[0]
        spec = importlib.util.spec_from_file_location(modname, file)
        if spec is None or spec.loader is None:
            raise PluginError(f"cannot load plugin file {file}")
        module = importlib.util.module_from_spec(spec)
        sys.modules[modname] = module
        spec.loader.exec_module(module)
        return module
    return importlib.import_module(path)


def _config_plugin_paths(entries: list) -> list[tuple[str | None, str]]:
    """``plugins:`` entries: a module path, or ``{name, module}``; Falco's plugin entries
    (``library_path``) are the config's to honour, not modules to import."""
    out: list[tuple[str | None, str]] = []
    for i, entry in enumerate(entries or []):
        if isinstance(entry, str):
            out.append((None, entry))
        elif isinstance(entry, dict) and entry.get("module"):
            out.append((entry.get("name"), str(entry["module"])))
        elif isinstance(entry, dict) and entry.get("library_path"):
            continue    # a Falco plugin: the config's (core.falco_keys.honour_falco_keys)
        else:
            raise PluginError(f"plugins[{i}] must be a module path or {{name, module}}, "
                              f"not {entry!r}")
    return out


def make_plugin_manager(config: dict[str, Any] | None = None,
                        builtins: Iterable[tuple[str, str, str]] = BUILTIN_PLUGINS,
                        given: Iterable[tuple[str, Any]] = ()) -> Plugins:
    """Build the plugin manager for ``config`` (``plugins``, ``disabled_plugins``).

    ``given``: ``(name, plugin)`` pairs registered last, as they are (``syswarden.testing``
    gives the plugins of a test this way); one already registered (an installed entry point)
    is left as it is."""
    config = config or {}
    disabled = set(config.get("disabled_plugins") or ())
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    for name, modpath in CORE_HOOKS:
        pm.register(importlib.import_module(modpath), name=name)
    records: list[PluginRecord] = []

    def register(plugin: Any, name: str, origin: str, module: str) -> None:
        if pm.has_plugin(name):
            raise PluginError(f"two plugins are named {name!r} ({module} and "
                              f"{next(r.module for r in records if r.name == name)})")
        pm.register(plugin, name=name)
        records.append(PluginRecord(name, origin, module, _kinds(plugin),
                                    disabled=name in disabled, plugin=plugin))

    for name, kind, modpath in builtins:
        try:
            module = importlib.import_module(modpath)
        except ImportError as exc:
            records.append(PluginRecord(name, "built-in", modpath, [kind], available=False,
                                        reason=str(exc), disabled=name in disabled))
            continue
        if not _kinds(module):
            records.append(PluginRecord(name, "built-in", modpath, [kind], available=False,
                                        reason="not implemented yet", disabled=name in disabled))
            continue
        register(module, name, "built-in", modpath)

    for ep in importlib.metadata.entry_points(group=ENTRY_POINT_GROUP):
        dist = f"{ep.dist.name} {ep.dist.version}" if ep.dist else "?"
        try:
            plugin = ep.load()
        except Exception as exc:  # a broken third-party plugin must not take the agent down
            raise PluginError(f"entry point {ep.name} ({ep.value}, from {dist}) failed to "
                              f"load: {exc}") from None
        register(plugin, ep.name, f"entry point ({dist})", ep.value)

    for name, path in _config_plugin_paths(config.get("plugins") or []):
        try:
            module = _import_path(path)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {path!r} from the config failed to load: {exc}",
                              hint="plugins: entries are module paths or .py files") from None
        if not name:
            is_file = path.endswith(".py") or os.sep in path
            name = getattr(module, "PLUGIN_NAME", None) or (
                os.path.splitext(os.path.basename(path))[0] if is_file
                else path.rsplit(".", 1)[-1])
        register(module, name, "config path", path)

    for name, plugin in given:
        if not pm.is_registered(plugin):
            register(plugin, name, "given", name)

    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None
    unknown = disabled - {r.name for r in records}
    for name in sorted(unknown):
        log.warning("disabled_plugins: no plugin is named %r", name)
    return Plugins(pm, records)


def collect_fields(config: dict[str, Any] | None = None) -> FieldRegistry:
    """The field registry of the built-in (and configured) plugins, for tools and tests."""
    return make_plugin_manager(config).fields()
