"""What Falco's print-and-exit flags print, for ``syswarden``: ``--list [SOURCE]`` (and ``-N``,
``--format``), ``--list-events``, ``-i``, ``-l RULE``/``-L`` as text, ``--support``,
``--plugin-info NAME``, ``--page-size``.

Each function writes to ``out`` and returns nothing; a name or source that does not exist is a
:class:`~syswarden.core.errors.ConfigError` (the command line's bad input, exit 2), with
Falco's words where Falco has some.
"""

from __future__ import annotations

import json
import os
import platform
import textwrap
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, TextIO

import yaml

from .errors import ConfigError, Location
from .rules.loader import BUILTIN_PLUGINS, SOURCES, expand_paths
from .syscalls import ENTER_ARGS, EVENTS, EXIT_ARGS, KNOWN_EVENT_TYPES

if TYPE_CHECKING:
    from .fields import FieldRegistry
    from .plugins import Plugins

#: ``--format`` / ``--markdown``: how ``--list`` and ``--list-events`` print (Falco's values)
FORMATS = ("text", "markdown", "json")

#: a field of each Falco plugin syswarden stands in for: the plugin providing it stands for it
#: (``--plugin-info container`` describes the container enrichment)
FALCO_PLUGIN_FIELDS = {"container": "container.id"}


def _version() -> str:
    from syswarden import __version__
    return __version__


def check_source(source: str, flag: str) -> None:
    """``--list SOURCE``, ``--enable-source``: a source syswarden has, or bad input."""
    if source not in SOURCES:
        raise ConfigError(f"unknown event source {source!r}", Location(flag),
                          hint=f"syswarden's event sources: {', '.join(SOURCES)}")


# -- fields and events -------------------------------------------------------------------------

def _field_name(d: Any) -> str:
    return d.name + (d.arg_hint or ("" if d.arg.value == "none" else f"[{d.arg.value}]"))


#: what Falco's ``-v --list`` says of an argument, by its form
_FALCO_ARGUMENTS = {"index": "INDEX, required", "index?": "INDEX, optional",
                    "key": "KEY, required", "key?": "KEY, optional",
                    "index|key": "INDEX|KEY, required"}


def falco_type(d: Any) -> str:
    """A field's type in Falco's words (``CHARBUF``, ``UINT64``, ``IPADDR``...)."""
    return "CHARBUF" if d.type.value == "string" else d.type.value.upper()


def _verbose_desc(d: Any) -> str:
    """Falco's ``-v --list`` description: ``(Type: CHARBUF) `` before it, and here also the
    argument the field takes (what Falco's JSON listing says of it)."""
    arg = _FALCO_ARGUMENTS.get(d.arg.value)
    return f"(Type: {falco_type(d)}) " + (f"(Argument: {arg}) " if arg else "") + d.desc


def list_fields(registry: FieldRegistry, out: TextIO, *, source: str = "",
                names_only: bool = False, fmt: str = "text", verbose: bool = False) -> None:
    """``--list [SOURCE]``: every field (all are the syscall source's), by its provider.
    ``verbose`` (``-v``), text only as in Falco: each description says the field's type in
    Falco's words and the argument it takes."""
    if source:
        check_source(source, "--list")
    if names_only:
        out.writelines(f"{d.name}\n" for d in registry)
        return
    by_provider: dict[str, list] = {}
    for d in registry:
        by_provider.setdefault(d.provider, []).append(d)
    if fmt == "json":
        json.dump([{"name": provider, "event_sources": list(SOURCES), "fields": [
            {"name": _field_name(d), "type": d.type.value, "desc": d.desc} for d in defs]}
            for provider, defs in sorted(by_provider.items())], out)
        out.write("\n")
        return
    for provider in sorted(by_provider):
        if fmt == "markdown":
            out.write(f"## Field Class: {provider}\n\nEvent Sources: {', '.join(SOURCES)}\n\n"
                      "Name | Type | Description\n:----|:-----|:-----------\n")
            out.writelines(f"`{_field_name(d)}` | {d.type.value} | {d.desc}\n"
                           for d in by_provider[provider])
            out.write("\n")
            continue
        out.write(f"Fields provided by {provider}:\n" + "-" * 40 + "\n")
        out.writelines(f"{_field_name(d):<32} {d.type.value:<8} "
                       f"{_verbose_desc(d) if verbose else d.desc}\n"
                       for d in by_provider[provider])
        out.write("\n")
    out.write(f"{len(registry)} fields\n")


def list_events(out: TextIO, fmt: str = "text") -> None:
    """``--list-events``: the syscall events syswarden follows, each direction with Falco's
    parameter names (syswarden judges one event per syscall, on its exit, with the enter
    parameters merged in: docs/ebpf.md)."""
    rows = [(d, name, list(args)) for name in sorted(EVENTS)
            for d, args in ((">", ENTER_ARGS.get(name, ())), ("<", EXIT_ARGS[name]))]
    if fmt == "json":
        json.dump({"syscall_events": [{"dir": d, "name": n, "params": p} for d, n, p in rows]},
                  out)
        out.write("\n")
        return
    out.write(f"The events below are the syscall events syswarden {_version()} follows\n"
              "## Syscall events\n\n")
    if fmt == "markdown":
        out.write("Dir | Name | Params \n:----|:-----|:-----\n")
        out.writelines(f"`{d}` | `{n}` | {', '.join(f'**{a}**' for a in p)}\n"
                       for d, n, p in rows)
    else:
        out.writelines(f"{d} {n}({', '.join(p)})\n" for d, n, p in rows)
    out.write("\n")


def ignored_events(out: TextIO) -> None:
    """``-i``: the syscalls Falco's rules may name that syswarden never follows."""
    out.write("Ignored syscall(s):\n")
    out.writelines(f"- {name}\n" for name in sorted(KNOWN_EVENT_TYPES - set(EVENTS)))
    out.write("\n")


# -- rules -------------------------------------------------------------------------------------

def describe_text(rows: Iterable[tuple[str, str]], out: TextIO) -> None:
    """``-L`` / ``-l RULE`` as Falco prints them: two columns, the description wrapped."""
    out.write(f"{'Rule':<50} Description\n{'----':<50} -----------\n")
    for name, desc in rows:
        lines = textwrap.wrap(" ".join(str(desc or "").split()), 110 - 51) or [""]
        out.write(f"{name:<50} " + ("\n" + " " * 51).join(lines) + "\n\n")


# -- support -----------------------------------------------------------------------------------

def support(config: dict[str, Any], argv: list[str], rules_paths: list[str]) -> dict[str, Any]:
    """``--support``: Falco's JSON (version, system info, the command line, the loaded config,
    every rules file with its content), to attach to a bug report."""
    uname = os.uname()
    files = []
    for path in expand_paths(rules_paths):
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                content = fh.read()
        except OSError as exc:
            content = f"<cannot read: {exc.strerror}>"
        files.append({"name": path, "variants": [{"content": content}]})
    return {
        "version": _version(),
        "engine_info": engine_info(),
        "system_info": {"sysname": uname.sysname, "nodename": uname.nodename,
                        "release": uname.release, "version": uname.version,
                        "machine": uname.machine},
        "cmdline": " ".join(["syswarden", *argv]),
        "config": yaml.safe_dump({k: v for k, v in config.items() if not k.startswith("_")},
                                 sort_keys=False),      # Falco's: the config as YAML text
        "rules_files": files,
    }


def engine_info() -> dict[str, str]:
    """What ``--version`` with ``json_output`` and ``--support`` say about this build."""
    from .rules.loader import ENGINE_VERSION
    return {"syswarden_version": _version(),
            "engine_version": ".".join(map(str, ENGINE_VERSION)),
            "python_version": platform.python_version()}


# -- plugins -----------------------------------------------------------------------------------

def plugin_info(plugins: Plugins, name: str, out: TextIO) -> None:
    """``--plugin-info NAME``: a plugin's name, description, version, capabilities and config
    schema.  ``container`` (Falco's container plugin) names the container enrichment."""
    from .config_schema import config_schema
    wanted = name
    if name in BUILTIN_PLUGINS:
        field = plugins.fields().get(FALCO_PLUGIN_FIELDS[name])
        wanted = field.provider if field is not None else name
    record = next((r for r in plugins.records if r.name == wanted or r.module == name), None)
    if record is None:
        raise ConfigError(f"can't find plugin and print its info: {name}",
                          Location("--plugin-info"), hint="syswarden --list-plugins lists them")
    doc = (record.plugin.__doc__ or "").strip() if record.plugin is not None else ""
    caps = {"source": "  - Event Sourcing (source='syscall')", "enricher": "  - Event Parsing",
            "filter": "  - Rule Matching", "output": "  - Alert Output",
            "command": "  - Command Line"}
    provides = {d.provider for d in plugins.fields()}
    out.write(f"Name: {record.name}\n"
              f"Description: {doc.splitlines()[0] if doc else ''}\n"
              f"Contact: {record.origin} ({record.module})\n"
              f"Version: {_version() if record.origin == 'built-in' else record.origin}\n"
              "Capabilities: \n")
    out.writelines(caps[k] + "\n" for k in record.kinds if k in caps)
    if record.name in provides:
        out.write("  - Field Extraction\n")
    out.write(f"Status: {record.status}\n\n")
    sections = {}
    for impl in plugins.pm.hook.syswarden_config_schema.get_hookimpls():
        if impl.plugin_name == record.name:
            sections.update(impl.function() or {})
    if sections:
        schema = config_schema(sections)
        out.write("Init config schema type: JSON\n")
        json.dump({k: schema["properties"][k] for k in sections}, out, indent=2)
        out.write("\n\n")
    else:
        out.write("Init config schema type: Not available, plugin has no config section\n\n")


def page_size(out: TextIO) -> None:
    """``--page-size``: Falco's line (its info log line, here on stdout)."""
    out.write(f"Your system page size is: {os.sysconf('SC_PAGE_SIZE')} bytes\n")
