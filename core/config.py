"""Configuration: a YAML file, Falco's ``falco.yaml`` keys where the concept is the same.

The config is a plain nested dict.  Its shape is declared by :class:`Section` schemas: the core
declares the global keys here (``CORE_SCHEMA``); each plugin declares its own sections through
the ``syswarden_config_schema`` hook.  :func:`load_config` reads the default file shipped with
the package or the user's ``-c FILE``, applies ``-o key.path=value`` overrides (typed like YAML
scalars), fills defaults and validates: an unknown key is an error naming the file, the line and
the closest valid key; a wrong type names the expected type.

Keys of Falco's ``falco.yaml`` that syswarden has no use for are accepted with one warning.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Callable, Iterable

import yaml

from . import yamlmarks
from .errors import ConfigError, Location

log = logging.getLogger("syswarden.config")

DEFAULT_CONFIG = "default_config.yaml"


@dataclass
class Key:
    """One config key: accepted types, default, a one-line doc, optional choices.

    ``type`` is a Python type or a tuple of them (``(str, list)`` for Falco's ``rules_file``),
    or a nested :class:`Section`.  ``float`` accepts ints, never NaN or infinity; ``choices``
    compares lower-cased; ``min`` and ``max`` bound a number (both ends allowed); ``check``
    returns what is wrong with a value of the right type (e.g. an address it cannot parse).
    """

    type: Any
    default: Any = None
    doc: str = ""
    choices: tuple | None = None
    items: Any = None  # type of list items, when type is list
    min: float | None = None  # smallest value a number may take
    max: float | None = None  # largest value a number may take
    check: Callable[[Any], str | None] | None = None  # what is wrong with a value, or None


@dataclass
class Section:
    """A mapping of keys.  ``open=True`` accepts any key (headers, labels).

    ``values=Section(...)``: a mapping of names chosen by the user, each value a mapping of that
    section's keys (validated with their lines, defaults filled in), e.g. ``webhook_outputs``.
    """

    keys: dict[str, Key] = field(default_factory=dict)
    doc: str = ""
    open: bool = False
    values: "Section | None" = None

    def defaults(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, key in self.keys.items():
            if isinstance(key.type, Section):
                out[name] = key.type.defaults()
            else:
                out[name] = _copy(key.default)
        return out


def _copy(value: Any) -> Any:
    if isinstance(value, (list, dict)):
        return yaml.safe_load(yaml.safe_dump(value))
    return value


#: Most alerts (or events) one in-memory queue may hold: bounds the agent's memory.
MAX_QUEUE = 10_000_000
#: Longest delay, timeout or interval in seconds a key may give (a day).
MAX_SECONDS = 86_400.0

LOG_LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational",
              "info", "debug")

CORE_SCHEMA: dict[str, Key] = {
    "rules_file": Key((str, list), [], "rules files or directories, loaded in order", items=str),
    "json_output": Key(bool, False, "write alerts as Falco's JSON instead of text"),
    "json_include_output_property": Key(bool, True, "include 'output' in JSON alerts"),
    "json_include_tags_property": Key(bool, True, "include 'tags' in JSON alerts"),
    "priority": Key(str, "debug", "minimum priority of the rules loaded", choices=PRIORITIES),
    "rule_matching": Key(str, "first", "first: one alert per event; all: every matching rule",
                         choices=("first", "all")),
    "buffered_outputs": Key(bool, False, "let outputs buffer writes instead of flushing each"),
    "time_format_iso_8601": Key(bool, False, "ISO 8601 times in text alerts"),
    "outputs": Key(Section({
        "rate": Key(float, 0.0, "alerts per second per output (token bucket); 0: unlimited",
                    min=0),
        "max_burst": Key(int, 1000, "token bucket size", min=1, max=MAX_QUEUE),
    }), doc="Falco's output rate limit"),
    "log_level": Key(str, "info", "level of the agent's own log", choices=LOG_LEVELS),
    "log_stderr": Key(bool, True, "write the agent's log to stderr"),
    "log_syslog": Key(bool, False, "also write the agent's log to the local syslog"),
    "watch_config_files": Key(bool, True, "accepted for falco.yaml compatibility; use SIGHUP"),
    "plugins": Key(list, [], "third-party plugins: module paths (or Falco plugin entries)"),
    "disabled_plugins": Key(list, [], "names of plugins not to load", items=str),
    "pipeline": Key(Section({
        "batch_size": Key(int, 256, "events per batch between stages", min=1, max=65536),
        "channel_batches": Key(int, 64, "batches buffered between two stages", min=1,
                               max=65536),
        "output_queue": Key(int, 10000, "alerts buffered per output", min=1, max=MAX_QUEUE),
        "shutdown_grace": Key(float, 5.0, "seconds outputs get to flush on stop", min=0,
                              max=3600),
        "stats_interval": Key(float, 60.0, "seconds between counter reports in the log; 0: off",
                              min=0, max=MAX_SECONDS),
    }), doc="the agent's stages and queues"),
}

#: falco.yaml keys with no meaning here: accepted, one warning each.
FALCO_IGNORED = {
    "load_plugins", "grpc", "grpc_output", "engine", "libs_logger",
    "base_syscalls", "falco_libs", "syscall_buf_size_preset", "modern_bpf", "config_files",
    "append_output", "static_fields", "rules", "output_timeout", "syscall_event_timeouts",
    "file_output_json", "log_json", "container_engines", "capture", "json_include_message_property",
    "json_include_output_fields_property", "falco_libs", "rule_matching_mode", "outputs_queue",
    "plugins_hostinfo", "k8s_api", "k8s_api_cert", "k8s_node_name", "metadata_download",
    "syscall_drop_failed_exit", "watch_config_files_interval",
}


def default_config_path() -> str:
    return str(resources.files("syswarden.core").joinpath(DEFAULT_CONFIG))


def default_rules_path() -> str:
    return str(resources.files("syswarden.rules").joinpath("default_rules.yaml"))


def parse_override(text: str) -> tuple[list[str], Any]:
    """``a.b=value`` -> (["a", "b"], value typed like a YAML scalar)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key.path=value", Location("-o"))
    key, _, raw = text.partition("=")
    path = [p for p in key.strip().split(".") if p]
    if not path:
        raise ConfigError(f"override {text!r} has no key", Location("-o"))
    try:
        value = yamlmarks.load(raw, "-o", ConfigError)[0] if raw.strip() else ""
    except ConfigError:
        value = raw
    return path, value


def peek_plugin_keys(path: str | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """``plugins`` and ``disabled_plugins`` before the full load: they decide which plugins'
    schemas the full validation needs.  Errors are left to :func:`load_config`."""
    out: dict[str, Any] = {"plugins": [], "disabled_plugins": []}
    try:
        data = yamlmarks.load_file(path or default_config_path(), ConfigError)[0]
    except ConfigError:
        data = None
    if isinstance(data, dict):
        for key in out:
            if isinstance(data.get(key), list):
                out[key] = data[key]
    for override in overrides:
        try:
            keys, value = parse_override(override)
        except ConfigError:
            continue
        if len(keys) == 1 and keys[0] in out and isinstance(value, list):
            out[keys[0]] = value
    return out


def load_config(path: str | None = None, overrides: Iterable[str] = (),
                schemas: dict[str, Section] | None = None) -> dict[str, Any]:
    """Read, merge, validate.  Raises :class:`ConfigError` naming file and line."""
    schema = Section(dict(CORE_SCHEMA))
    for name, section in (schemas or {}).items():
        schema.keys[name] = Key(section, doc=section.doc)
    file = path or default_config_path()
    data, marks = yamlmarks.load_file(file, ConfigError, "config file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping of keys", marks.loc(()))
    _validate(data, schema, (), marks)
    for override in overrides:
        keys, value = parse_override(override)
        _apply_override(data, schema, keys, value, override)
    merged = _fill_values(_merge(schema.defaults(), data), schema)
    merged["rules_file"] = _as_list(merged.get("rules_file"))
    merged["_config_file"] = os.path.abspath(file)
    return merged


def _as_list(value: Any) -> list:
    if value is None:
        return []
    return [value] if isinstance(value, str) else list(value)


def _fill_values(data: dict, schema: Section) -> dict:
    """Fill the defaults of each entry of ``values`` sections (their names are the user's)."""
    for name, key in schema.keys.items():
        if isinstance(key.type, Section) and isinstance(data.get(name), dict):
            section = key.type
            if section.values is not None:
                data[name] = {entry: _fill_values(_merge(section.values.defaults(), value),
                                                  section.values)
                              for entry, value in data[name].items() if isinstance(value, dict)}
            else:
                _fill_values(data[name], section)
    return data


def _merge(base: dict, over: dict) -> dict:
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            base[key] = _merge(base[key], value)
        else:
            base[key] = value
    return base


def _type_name(t: Any) -> str:
    if isinstance(t, Section):
        return "a mapping"
    if isinstance(t, tuple):
        return " or ".join(_type_name(x) for x in t)
    return {bool: "a boolean (true/false)", int: "an integer", float: "a number",
            str: "a string", list: "a list", dict: "a mapping"}.get(t, t.__name__)


def _type_ok(value: Any, t: Any) -> bool:
    if isinstance(t, tuple):
        return any(_type_ok(value, x) for x in t)
    if isinstance(t, Section):
        return isinstance(value, dict)
    if t is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if t is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if t is str:
        return isinstance(value, str)
    return isinstance(value, t)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _number_problem(value: float, key: Key) -> str | None:
    """What a number must be when ``value`` is not that, else None."""
    if isinstance(value, float) and not math.isfinite(value):
        return "a finite number"
    if (key.min is not None and value < key.min) or (key.max is not None and value > key.max):
        return value_range(key)
    return None


def value_range(key: Key) -> str:
    """``between 1 and 65536``, ``at least 0``, ``at most 5`` or ``""``: a Key's bounds."""
    low, high = _num(key.min), _num(key.max)
    if low is not None and high is not None:
        return f"between {low} and {high}"
    if low is not None:
        return f"at least {low}"
    return f"at most {high}" if high is not None else ""


def _num(x: float | None) -> str | None:
    if x is None:
        return None
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _show(value: Any) -> str:
    """``repr(value)``, clipped: the value may be a 4000-digit number or a whole file."""
    text = repr(value) if not isinstance(value, int) or abs(value) < 10 ** 30 else \
        f"a {len(str(abs(value)))}-digit integer"
    return text if len(text) <= 60 else text[:57] + "..."


def _suggest(name: str, choices: Iterable[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else None


def _validate(data: dict, schema: Section, path: tuple, marks: yamlmarks.Marks) -> None:
    for name, value in data.items():
        dotted = ".".join(map(str, path + (name,)))
        if schema.values is not None:
            if not isinstance(value, dict):
                raise ConfigError(f"{dotted} must be a mapping of "
                                  f"{', '.join(schema.values.keys) or 'keys'}, "
                                  f"not {_show(value)}",
                                  marks.loc(path + (name,), dotted))
            _validate(value, schema.values, path + (name,), marks)
            continue
        key = schema.keys.get(name)
        if key is None:
            if schema.open:
                continue
            if not path and name in FALCO_IGNORED:
                log.warning("%s: falco.yaml key %r has no meaning in syswarden; ignored",
                            marks.loc(path + (name, "__key__")), name)
                continue
            raise ConfigError(f"unknown config key {dotted!r}",
                              marks.loc(path + (name, "__key__"), dotted),
                              hint=_suggest(str(name), schema.keys))
        _check_value(value, key, path + (name,), dotted, marks)


def _check_value(value: Any, key: Key, path: tuple, dotted: str, marks: yamlmarks.Marks) -> None:
    if value is None and key.default is None and not isinstance(key.type, Section):
        return
    if not _type_ok(value, key.type):
        raise ConfigError(f"{dotted} must be {_type_name(key.type)}, not {_show(value)}",
                          marks.loc(path, dotted))
    if isinstance(key.type, Section):
        _validate(value, key.type, path, marks)
    if key.choices and str(value).lower() not in key.choices:
        raise ConfigError(f"{dotted} must be one of {', '.join(key.choices)}, not {_show(value)}",
                          marks.loc(path, dotted), hint=_suggest(str(value).lower(), key.choices))
    if _is_number(value):
        problem = _number_problem(value, key)
        if problem:
            raise ConfigError(f"{dotted} must be {problem}, not {_show(value)}",
                              marks.loc(path, dotted))
    problem = key.check(value) if key.check is not None and value is not None else None
    if problem:
        raise ConfigError(f"{dotted}: {problem}", marks.loc(path, dotted))
    if key.items is not None and isinstance(value, list):
        for i, item in enumerate(value):
            if not _type_ok(item, key.items):
                raise ConfigError(f"{dotted}[{i}] must be {_type_name(key.items)}, "
                                  f"not {_show(item)}",
                                  marks.loc(path + (i,), dotted))


def _apply_override(data: dict, schema: Section, keys: list[str], value: Any, text: str) -> None:
    section: Section | None = schema
    target = data
    for i, name in enumerate(keys):
        dotted = ".".join(keys[: i + 1])
        key = section.keys.get(name) if section is not None else None
        if key is None and section is not None and not section.open:
            raise ConfigError(f"unknown config key {dotted!r}", Location("-o", item=text),
                              hint=_suggest(name, section.keys))
        last = i == len(keys) - 1
        if last:
            if key is not None:
                empty = yamlmarks.Marks()
                empty.file = "-o"
                _check_value(value, key, (), dotted, empty)
            target[name] = value
        else:
            nxt = target.get(name)
            if not isinstance(nxt, dict):
                nxt = target[name] = {}
            target = nxt
            section = key.type if key is not None and isinstance(key.type, Section) else None
