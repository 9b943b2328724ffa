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
import re
from dataclasses import astuple, dataclass, field
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
    items: Any = None  # type of list items, when type is list (a Section: mappings of its keys)
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
    check: Callable[[dict], str | None] | None = None  # what is wrong with the whole mapping

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

#: ``engine.kind`` values: which event source each stands for here
ENGINE_KINDS = ("modern_ebpf", "ebpf", "kmod", "replay", "gvisor", "nodriver")
#: ``config_files`` merge strategies, as Falco names them
CONFIG_STRATEGIES = ("append", "override", "add-only")


def _rule_selection_problem(entry: dict) -> str | None:
    ops = [op for op in ("enable", "disable") if op in entry]
    if len(ops) != 1:
        return "each entry is {enable: {rule: NAME}} or {disable: {tag: TAG}}"
    what = entry[ops[0]] or {}
    if not what.get("rule") and not what.get("tag"):
        return f"{ops[0]} needs a rule (wildcards allowed) or a tag"
    return None


def _extra_field_problem(value: Any) -> str | None:
    if isinstance(value, dict) and (len(value) != 1 or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items())):
        return "each extra field is a field name, or one {name: format} pair"
    return None


def _plugin_entry_problem(entry: dict) -> str | None:
    if not entry.get("module") and not entry.get("library_path"):
        return "a plugin entry needs module (a syswarden plugin) or library_path (Falco's)"
    if entry.get("library_path") and not entry.get("name"):
        return "a Falco plugin entry needs its name"
    return None


_SELECT = Section({"rule": Key(str, None, "rule name; * and ? are wildcards"),
                   "tag": Key(str, None, "every rule with this tag")})

CORE_SCHEMA: dict[str, Key] = {
    "rules_files": Key((str, list), None, "rules files or directories, loaded in order (a "
                       "directory: its *.yaml/*.yml files, sorted); empty: the packaged rules",
                       items=str),
    "rules_file": Key((str, list), None, "Falco's older, singular name of rules_files",
                      items=str),
    "rules": Key(list, [], "enable or disable loaded rules by name (wildcards) or tag, in order",
                 items=Section({"enable": Key(_SELECT, doc="enable the rules selected"),
                                "disable": Key(_SELECT, doc="disable the rules selected")},
                               check=_rule_selection_problem)),
    "config_files": Key(list, [], "more config files or directories (their files sorted), "
                        "merged into this one", items=(str, Section({
                            "path": Key(str, None, "a file or a directory"),
                            "strategy": Key(str, "append", "append: lists are extended, other "
                                            "keys replaced; override: every key replaced; "
                                            "add-only: only keys not set yet",
                                            choices=CONFIG_STRATEGIES)}))),
    "watch_config_files": Key(bool, True, "reload (as SIGHUP does) when the config file, a "
                              "config_files file or a rules file changes"),
    "json_output": Key(bool, False, "write alerts as Falco's JSON instead of text"),
    "json_include_output_property": Key(bool, True, "include 'output' in JSON alerts"),
    "json_include_message_property": Key(bool, False, "include 'message' (the output without "
                                         "time and priority) in JSON alerts"),
    "json_include_output_fields_property": Key(bool, True,
                                               "include 'output_fields' in JSON alerts"),
    "json_include_tags_property": Key(bool, True, "include 'tags' in JSON alerts"),
    "priority": Key(str, "debug", "minimum priority of the rules loaded", choices=PRIORITIES),
    "rule_matching": Key(str, "first", "first: one alert per event; all: every matching rule",
                         choices=("first", "all")),
    "buffered_outputs": Key(bool, False, "let outputs buffer writes instead of flushing each"),
    "time_format_iso_8601": Key(bool, False, "ISO 8601 (UTC) times in text alerts and in the "
                                "JSON alert's output"),
    "buffer_format_base64": Key(bool, False, "data buffers in base64 in outputs"),
    "outputs": Key(Section({
        "rate": Key(float, 0.0, "alerts per second per output (token bucket); 0: unlimited",
                    min=0),
        "max_burst": Key(int, 1000, "token bucket size", min=1, max=MAX_QUEUE),
    }), doc="Falco's output rate limit"),
    "outputs_queue": Key(Section({
        "capacity": Key(int, 0, "alerts queued per output at most (then dropped and counted); "
                        "0: pipeline.output_queue", min=0, max=MAX_QUEUE),
    }), doc="Falco's output queue"),
    "output_timeout": Key(int, 2000, "milliseconds an output may block on one write before "
                          "it is reported", min=1, max=int(MAX_SECONDS * 1000)),
    "append_output": Key(list, [], "text and fields added to the alerts of the rules matched",
                         items=Section({
                             "match": Key(Section({
                                 "source": Key(str, None, "rules of this source"),
                                 "tags": Key(list, None, "rules having all these tags",
                                             items=str),
                                 "rule": Key(str, None, "the rule of this name"),
                             }), doc="which rules (all when omitted)"),
                             "extra_output": Key(str, None, "format appended to the output"),
                             "extra_fields": Key(list, None, "output_fields added: a field "
                                                 "name, or {name: format}",
                                                 items=(str, dict), check=lambda v: next(
                                                     (p for p in map(_extra_field_problem, v)
                                                      if p), None)),
                             "suggested_output": Key(bool, False, "append the container "
                                                     "plugin's suggested fields"),
                         })),
    "static_fields": Key(Section(open=True), doc="Falco's static fields, name: value: with "
                         "suggested_output, appended to the output (static_NAME=value) and to "
                         "output_fields (static.NAME); rule conditions cannot read them here",
                         check=lambda v: next((f"static_fields.{k} must be a string, not "
                                               f"{_show(x)}" for k, x in v.items()
                                               if not isinstance(x, (str, int, float))), None)),
    "base_syscalls": Key(Section({
        "custom_set": Key(list, [], "syscalls followed besides the rules' ('!name' removes "
                          "one)", items=str),
        "repair": Key(bool, False, "also follow the syscalls that keep the process and fd "
                      "state right"),
        "all": Key(bool, False, "follow every syscall the source supports"),
    }), doc="Falco's base_syscalls: the syscalls followed besides the rules'"),
    "engine": Key(Section({
        "kind": Key(str, "modern_ebpf", "modern_ebpf, ebpf, kmod: the eBPF source; replay: "
                    "the replay source reading engine.replay.capture_file",
                    choices=ENGINE_KINDS),
        "replay": Key(Section({"capture_file": Key(str, "", "capture replayed when kind is "
                                                   "replay")}, open=True),
                      doc="Falco's replay engine: a syswarden capture (syswarden capture -w)"),
        "kmod": Key(Section(open=True), doc="driver tuning: no meaning here"),
        "ebpf": Key(Section(open=True), doc="driver tuning: no meaning here"),
        "modern_ebpf": Key(Section(open=True), doc="driver tuning: no meaning here"),
        "gvisor": Key(Section(open=True), doc="gVisor: not supported"),
    }), doc="Falco's driver selection"),
    "log_level": Key(str, "info", "level of the agent's own log", choices=LOG_LEVELS),
    "log_stderr": Key(bool, True, "write the agent's log to stderr"),
    "log_syslog": Key(bool, False, "also write the agent's log to the local syslog"),
    "load_plugins": Key(list, None, "the names of the Falco plugin entries to load; unset: "
                        "every entry", items=str),
    "plugins": Key(list, [], "third-party plugins: module paths or {name, module}; Falco "
                   "plugin entries {name, library_path, init_config} (container: the "
                   "container enrichment)",
                   items=(str, Section({
                       "name": Key(str, None, "the plugin's name (load_plugins names it)"),
                       "module": Key(str, None, "a syswarden plugin: module path or .py file"),
                       "library_path": Key(str, None, "a Falco plugin: container is the "
                                           "container enrichment; any other is refused once "
                                           "a loaded rule needs it"),
                       "init_config": Key((dict, str), None, "Falco's container plugin: "
                                          "engines.docker (enabled, sockets) is used"),
                       "open_params": Key(str, None, "a Falco source plugin's: no meaning here"),
                   }, check=_plugin_entry_problem))),
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

#: The keys a reload (SIGHUP, watch_config_files) applies: the rules, what shapes their alerts,
#: the syscalls followed, the files read.  A change to another key is logged as taking effect at
#: the next start.
RELOADED_KEYS = ("rules_files", "rules_file", "rules", "append_output", "static_fields",
                 "buffer_format_base64", "priority", "rule_matching", "base_syscalls",
                 "config_files", "watch_config_files")

#: Falco's keys syswarden does not honour, each with what happens instead: accepted, and that
#: one warning is logged.  None of them changes what is detected or what an alert holds.
FALCO_IGNORED: dict[str, str] = {
    "grpc": "no gRPC server is started; use http_output or webhook_outputs",
    "grpc_output": "no gRPC output; use http_output or webhook_outputs",
    "libs_logger": "there are no Falco libs; the agent's own log follows log_level",
    "falco_libs": "the process table's size is process.max_entries; captured strings and "
                  "buffers are cut at ebpf.path_max",
    "syscall_buf_size_preset": "ring sizes are the ebpf section's",
    "syscall_drop_failed_exit": "failed syscalls are kept as the ebpf section says",
    "modern_bpf": "ring sizes are the ebpf section's",
    "container_engines": "containers are enriched by the docker section",
    "capture": "no capture files are written on alerts; use syswarden capture",
    "plugins_hostinfo": "plugins get no host info",
    "syscall_event_timeouts": "a source that stops is reported by the agent as a crash",
    "watch_config_files_interval": "config files are checked every second",
    "file_output_json": "use json_output in file_output",
    "log_json": "the log is text",
    "rule_matching_mode": "use rule_matching",
    "k8s_api": "Kubernetes fields come from the container runtime's labels",
    "k8s_api_cert": "Kubernetes fields come from the container runtime's labels",
    "k8s_node_name": "Kubernetes fields come from the container runtime's labels",
    "metadata_download": "Kubernetes fields come from the container runtime's labels",
}


def default_config_path() -> str:
    return str(resources.files("syswarden.core").joinpath(DEFAULT_CONFIG))


def default_rules_path() -> str:
    return str(resources.files("syswarden.rules").joinpath("default_rules.yaml"))


#: ``key[]`` in an override: the entry after the last (Falco's append)
APPEND = -1


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``a.b[0].c=value`` -> (["a", "b", 0, "c"], value typed like YAML), as Falco's ``-o``:
    ``\\.``, ``\\[``, ``\\]`` and ``\\\\`` are a key's own characters
    (``-o 'x.kubernetes\\.io/role=master'``), ``key[]`` appends an entry, and a value may be a
    YAML list or mapping (``-o 'rules=[{disable: {tag: net}}]'``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key.path=value", Location("-o", item=text),
                          hint="e.g. -o json_output=true or -o 'append_output[0].match.source="
                               "syscall'")
    key, _, raw = text.partition("=")        # the first =, as Falco splits
    path = _override_path(key.strip(), text)
    try:
        value = yamlmarks.load(raw, "-o", ConfigError)[0] if raw.strip() else ""
    except ConfigError:
        value = raw
    return path, value


def _override_path(key: str, text: str) -> list[str | int]:
    path: list[str | int] = []
    name, i, closed = "", 0, True      # closed: the last part ended with ]

    def bad(why: str) -> ConfigError:
        return ConfigError(f"override {text!r}: {why}", Location("-o", item=text),
                           hint="keys are name.name[index]; \\. is a dot inside a name")
    while i < len(key):
        c = key[i]
        if c == "\\":
            if i + 1 >= len(key) or key[i + 1] not in ".[]\\":
                raise bad(f"{key[i:i + 2]!r} is not an escape (\\. \\[ \\] \\\\)")
            name += key[i + 1]
            i += 2
        elif c == ".":
            if not name and not (path and closed):
                raise bad("an empty key")
            if name:
                path.append(name)
            name, closed = "", False
            i += 1
        elif c == "[":
            end = key.find("]", i)
            inside = key[i + 1:end] if end > 0 else "x"
            if not (name or path) or (inside and not inside.isdigit()):
                raise bad(f"{key[i:end + 1] or key[i:]!r} is not a key or key[index]")
            if name:
                path.append(name)
            path.append(int(inside) if inside else APPEND)
            name, closed, i = "", True, end + 1
        elif c == "]":
            raise bad("a ] without its [")
        else:
            if closed and path:
                raise bad(f"{key[i:]!r} follows an index without a dot")
            name += c
            closed = False
            i += 1
    if name:
        path.append(name)
    elif not closed or not path:
        raise bad("an empty key")
    if not isinstance(path[0], str):
        raise bad("an index before any key")
    return path


def peek_plugin_keys(path: str | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """``plugins`` and ``disabled_plugins`` before the full load (the config files merged and
    the overrides applied): they decide which plugins' schemas the full validation needs.
    Errors are left to :func:`load_config`."""
    out: dict[str, Any] = {"plugins": [], "disabled_plugins": []}
    try:
        data = _read_merged(path or default_config_path(), overrides)[0]
    except ConfigError:
        return out
    for key in out:
        if isinstance(data.get(key), list):
            out[key] = data[key]
    return out


class _Origins(yamlmarks.Marks):
    """Where each value of a config merged from several files and ``-o`` came from: a path
    under an override names that ``-o``; a top-level key points into the file it came from
    (a list appended to: each entry into its own file)."""

    def __init__(self, main: yamlmarks.Marks) -> None:
        super().__init__()
        self.file = main.file
        self.main = main
        #: top-level key -> [(first list index, the file's marks)], in merge order
        self.by_key: dict[Any, list[tuple[int, yamlmarks.Marks]]] = {}
        self.overrides: list[tuple[tuple, str]] = []

    def merged(self, key: Any, marks: yamlmarks.Marks, appended_at: int | None = None) -> None:
        """``key`` now comes from ``marks``' file: all of it, or its entries from
        ``appended_at`` on."""
        if appended_at is None:
            self.by_key[key] = [(0, marks)]
        else:
            self.by_key.setdefault(key, [(0, self.main)]).append((appended_at, marks))

    def loc(self, path: tuple, item: str | None = None) -> Location:
        for prefix, text in reversed(self.overrides):
            if tuple(path[:len(prefix)]) == prefix:
                return Location("-o", item=text)
        segments = self.by_key.get(path[0]) if path else None
        if not segments:
            return self.main.loc(path, item)
        if len(path) > 1 and isinstance(path[1], int):
            start, marks = next((s, m) for s, m in reversed(segments) if s <= path[1])
            return marks.loc((path[0], path[1] - start, *path[2:]), item)
        return segments[-1][1].loc(path, item)


def full_schema(schemas: dict[str, Section] | None = None) -> Section:
    """The core's keys and the plugins' sections, as one Section."""
    schema = Section(dict(CORE_SCHEMA))
    for name, section in (schemas or {}).items():
        schema.keys[name] = Key(section, doc=section.doc)
    return schema


def load_config(path: str | None = None, overrides: Iterable[str] = (),
                schemas: dict[str, Section] | None = None) -> dict[str, Any]:
    """Read, merge, validate.  Raises :class:`ConfigError` naming file and line."""
    schema = full_schema(schemas)
    file = path or default_config_path()
    data, origins, included, folders = _read_merged(file, overrides)
    _validate(data, schema, (), origins)
    rules = _rules_files(data, origins)
    merged = _fill_values(_merge(schema.defaults(), data), schema)
    merged["rules_files"] = merged["rules_file"] = [p for p, _ in rules]
    merged["_rules_locations"] = {p: where for p, where in rules}
    merged["_config_file"] = os.path.abspath(file)
    merged["_config_files"] = [os.path.abspath(file)] + included
    merged["_config_folders"] = folders
    honour_falco_keys(merged, origins)
    return merged


def _read_merged(file: str, overrides: Iterable[str]
                 ) -> tuple[dict, _Origins, list[str], list[str]]:
    """The config as Falco assembles it, not validated yet: the file, its ``-o
    config_files=...`` overrides, the ``config_files`` merged in (each with its strategy), then
    the other overrides.  Returns the data, where each value came from, the files merged and
    the directories read."""
    data, marks = _read_mapping(file)
    origins = _Origins(marks)
    parsed = [(*parse_override(text), text) for text in overrides]
    for keys, value, text in parsed:
        if keys[0] == "config_files":
            _set(data, keys, value, text, origins)
    _check_value(data.get("config_files", []), CORE_SCHEMA["config_files"], ("config_files",),
                 "config_files", origins)
    included, folders = _merge_config_files(data, file, origins)
    for keys, value, text in parsed:
        if keys[0] != "config_files":
            _set(data, keys, value, text, origins)
    return data, origins, included, folders


def _read_mapping(file: str) -> tuple[dict, yamlmarks.Marks]:
    data, marks = yamlmarks.load_file(file, ConfigError, "config file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping of keys", marks.loc(()))
    return expand_env(data), marks


_ENV = re.compile(r"\$(\$?)\{([^}]*)\}")


def expand_env(value: Any) -> Any:
    """Falco's environment variables in a config file's string values: ``${NAME}`` is the
    variable's value, ``$${NAME}`` the text ``${NAME}``.  A variable that is not set is left as
    written (Falco erases it), so that a plugin needing it reports it by name."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _ENV.sub(lambda m: "${" + m.group(2) + "}" if m.group(1)
                        else os.environ.get(m.group(2), m.group(0)), value)
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    return value


def _set(data: dict, keys: list, value: Any, text: str, origins: _Origins) -> None:
    """Falco's ``-o``: set the value at ``keys``, creating mappings (and appending to a list
    at its length) on the way."""
    target: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(str(k) for k in keys[:i + 1])
        if isinstance(key, int):
            if not isinstance(target, list):
                raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is not a list",
                                  Location("-o", item=text))
            if key == APPEND:
                key = keys[i] = len(target)
            if key > len(target):
                raise ConfigError(f"override {text!r}: index {key} is past the end of a list "
                                  f"of {len(target)}", Location("-o", item=text),
                                  hint=f"the next entry is [{len(target)}]")
            if key == len(target):
                target.append({} if not last else None)
        elif not isinstance(target, dict):
            raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is not a mapping",
                              Location("-o", item=text))
        if last:
            target[key] = value
        else:
            nxt = keys[i + 1]
            child = target[key] if isinstance(key, int) or key in target else None
            if isinstance(child, list) and not isinstance(nxt, int):
                raise ConfigError(f"override {text!r}: {where} is a list, not a mapping",
                                  Location("-o", item=text), hint=f"{where}[0].{nxt}=...")
            if isinstance(child, dict) and isinstance(nxt, int):
                raise ConfigError(f"override {text!r}: {where} is a mapping, not a list",
                                  Location("-o", item=text))
            if not isinstance(child, (dict, list)):
                child = [] if isinstance(nxt, int) else {}
                target[key] = child
            target = child
    origins.overrides.append((tuple(keys), text))


def _merge_config_files(data: dict, main: str, origins: _Origins
                        ) -> tuple[list[str], list[str]]:
    """Merge the ``config_files`` entries into ``data`` in order (a directory: its files,
    sorted; a path that does not exist is skipped, as Falco does).  Returns the files merged
    and the directories read (both watched)."""
    files: list[str] = []
    folders: list[str] = []
    for i, entry in enumerate(data.get("config_files") or []):
        where = origins.loc(("config_files", i), f"config_files[{i}]")
        entry_path = entry if isinstance(entry, str) else entry.get("path")
        if not entry_path:
            raise ConfigError("config_files entry has no path", where)
        strategy = "append" if isinstance(entry, str) else entry.get("strategy", "append")
        entry_path = os.path.expanduser(entry_path)      # as Falco: from the working dir
        if os.path.abspath(entry_path) == os.path.abspath(main):
            raise ConfigError("config_files includes the main config file itself", where)
        if os.path.isdir(entry_path):
            folders.append(os.path.abspath(entry_path))
            names = sorted(os.path.join(entry_path, n) for n in os.listdir(entry_path))
            batch = [n for n in names if os.path.isfile(n)]
        elif os.path.isfile(entry_path):
            batch = [entry_path]
        else:
            log.debug("%s: %s does not exist; skipped", where, entry_path)
            continue
        for name in batch:
            _include(data, name, strategy, origins)
            files.append(os.path.abspath(name))
    return files, folders


def _include(data: dict, file: str, strategy: str, origins: _Origins) -> None:
    more, marks = _read_mapping(file)
    for key, value in more.items():
        if key == "config_files":
            raise ConfigError("config_files may not be set in an included config file",
                              marks.loc((key, "__key__"), key))
        if strategy == "add-only" and key in data:
            continue
        if strategy == "append" and isinstance(value, list) and isinstance(data.get(key), list):
            origins.merged(key, marks, appended_at=len(data[key]))
            data[key] = data[key] + value
        else:
            origins.merged(key, marks)
            data[key] = value


def _rules_files(data: dict, origins: _Origins) -> list[tuple[str, list]]:
    """``rules_files`` (or Falco's older ``rules_file``): ``[(path, [file, line, col])]``."""
    if "rules_files" in data and "rules_file" in data:
        set_by = {p[0] for p, _ in origins.overrides}
        if set_by & {"rules_files", "rules_file"} and not {"rules_files", "rules_file"} <= set_by:
            data.pop("rules_file" if "rules_files" in set_by else "rules_files")
        else:
            raise ConfigError("both rules_files and rules_file are set",
                              origins.loc(("rules_file", "__key__"), "rules_file"),
                              hint="keep rules_files: rules_file is Falco's older name")
    key = "rules_files" if "rules_files" in data else "rules_file"
    value = data.get(key)
    out = []
    for i, path in enumerate(_as_list(value)):
        where = origins.loc((key, i) if isinstance(value, list) else (key,), key)
        out.append((path, [where.file, where.line, where.col]))
    return out


def rules_paths(config: dict[str, Any]) -> list[str]:
    """The rules files to load: ``rules_files`` with each directory replaced by its
    ``*.yaml``/``*.yml`` files in name order, as Falco reads them; the packaged rules when
    empty.  A path that does not exist is a :class:`ConfigError` located where it was given."""
    given = list(_given_rules(config)) or [default_rules_path()]
    located = config.get("_rules_locations") or {}
    for path in given:
        if not os.path.exists(path):
            file, line, col = located.get(path) or ("-r", None, None)
            raise ConfigError(f"rules path {path!r} does not exist",
                              Location(file, line, col, "rules_files"),
                              hint="create it, or remove it from rules_files")
    _refuse_needed_falco_plugins(config.get("_falco_plugins") or [], given)
    return given


#: The event source of Falco's source plugins (a rule of that source needs the plugin)
FALCO_PLUGIN_SOURCES = {"k8saudit": "k8s_audit", "k8saudit-eks": "k8s_audit",
                        "k8saudit-gke": "k8s_audit", "k8saudit-aks": "k8s_audit",
                        "cloudtrail": "aws_cloudtrail", "okta": "okta", "github": "github",
                        "gcpaudit": "gcp_auditlog", "dummy": "dummy"}


def _refuse_needed_falco_plugins(plugins: list[dict[str, Any]], paths: list[str]) -> None:
    """A Falco plugin syswarden cannot load is an error once a loaded rules file needs it (its
    ``required_plugin_versions`` names it, or a rule has its source); else one warning."""
    if not plugins:
        return
    from .rules.loader import expand_paths
    wanted = {p["name"]: p for p in plugins}
    for file in expand_paths(paths):
        try:
            doc, marks = yamlmarks.load_file(file, ConfigError)
        except ConfigError:
            continue                # the rules loader reports it
        for i, item in enumerate(doc if isinstance(doc, list) else []):
            if not isinstance(item, dict):
                continue
            needs = [r.get("name") for r in item.get("required_plugin_versions") or []
                     if isinstance(r, dict)]
            if "rule" in item:
                needs = [n for n, src in FALCO_PLUGIN_SOURCES.items()
                         if item.get("source") == src]
            for name in needs:
                if name in wanted:
                    entry = wanted[name]
                    raise ConfigError(
                        f"plugin {name!r} ({entry['library_path']}, {entry['where']}) is a "
                        f"Falco shared-library plugin syswarden cannot load, and this rules "
                        f"file needs it", marks.loc((i,), f"rule {item['rule']!r}"
                                                    if "rule" in item else name),
                        hint="remove the rules that need it, or the plugin from load_plugins")
    for entry in plugins:
        log.warning("%s: plugin %r: Falco shared-library plugins are not supported; not "
                    "loaded (no loaded rule needs it)", entry["where"], entry["name"])


def _given_rules(config: dict[str, Any]) -> list[str]:
    """The rules paths: :func:`load_config` sets ``rules_files`` and ``rules_file`` alike; one
    set later (``-r`` sets ``rules_file``) wins."""
    files, file = _as_list(config.get("rules_files")), _as_list(config.get("rules_file"))
    return file if file != files and file else files


def watched_state(config: dict[str, Any], rules: list[str] | None = None) -> tuple:
    """What ``watch_config_files`` compares from one look to the next: the config file, the
    ``config_files`` and their directories' listings, the rules files (``rules``: the ``-r``
    ones) and their directories' listings, each file by its size, mtime and inode."""
    from .rules.loader import expand_paths
    paths = [config.get("_config_file") or "", *(config.get("_config_files") or ()),
             *(config.get("_config_folders") or ())]
    given = list(rules or _given_rules(config))
    paths += given + expand_paths([p for p in given if os.path.isdir(p)])
    state = []
    for path in dict.fromkeys(paths):
        try:
            st = os.stat(path)
        except OSError:
            state.append((path, None))
            continue
        listing = tuple(sorted(os.listdir(path))) if os.path.isdir(path) else ()
        state.append((path, st.st_size, st.st_mtime_ns, st.st_ino, listing))
    return tuple(state)


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
        dotted = _dotted(path + (name,))
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
                log.warning("%s: falco.yaml key %r has no meaning in syswarden; ignored: %s",
                            marks.loc(path + (name, "__key__")), name, FALCO_IGNORED[name])
                continue
            raise ConfigError(f"unknown config key {dotted!r}",
                              marks.loc(path + (name, "__key__"), dotted),
                              hint=_suggest(str(name), schema.keys))
        _check_value(value, key, path + (name,), dotted, marks)
    problem = schema.check(data) if schema.check is not None else None
    if problem:
        dotted = _dotted(path)
        raise ConfigError(f"{dotted}: {problem}" if dotted else problem, marks.loc(path, dotted))


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
                                  marks.loc(path + (i,), f"{dotted}[{i}]"))
            section = _section_of(key.items)
            if section is not None and isinstance(item, dict):
                _validate(item, section, path + (i,), marks)


def _dotted(path: tuple) -> str:
    """``("append_output", 0, "match")`` -> ``append_output[0].match``."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_of(t: Any) -> Section | None:
    if isinstance(t, Section):
        return t
    if isinstance(t, tuple):
        return next((x for x in t if isinstance(x, Section)), None)
    return None


# -- Falco's keys made concrete ----------------------------------------------------------------

#: Falco plugins whose job syswarden does itself, with the config section doing it
FALCO_PLUGINS_BUILT_IN = {"container": "container"}


def honour_falco_keys(config: dict[str, Any], marks: yamlmarks.Marks) -> None:
    """Turn the Falco keys that select something into the settings the agent reads:
    ``engine.kind`` (``_replay_file``), ``base_syscalls`` (checked), the Falco ``plugins``
    entries ``load_plugins`` selects (``container``: the container enrichment;
    ``_falco_plugins``: the others, refused once a loaded rule needs one)."""
    engine = config["engine"]
    kind = str(engine["kind"]).lower()
    config["_replay_file"] = None
    if kind == "replay":
        capture = (engine.get("replay") or {}).get("capture_file") or ""
        if not capture:
            raise ConfigError("engine.kind is replay but engine.replay.capture_file is empty",
                              marks.loc(("engine", "kind"), "engine.kind"),
                              hint="set engine.replay.capture_file to a syswarden capture")
        config["_replay_file"] = capture
    elif kind in ("gvisor", "nodriver"):
        log.warning("%s: engine.kind %s is not supported; syscalls are followed with the eBPF "
                    "source instead", marks.loc(("engine", "kind")), kind)
    base = config["base_syscalls"]
    from .syscalls import KNOWN_EVENT_TYPES
    for i, name in enumerate(base["custom_set"]):
        if name.lstrip("!") not in KNOWN_EVENT_TYPES:
            raise ConfigError(f"base_syscalls.custom_set[{i}]: unknown syscall {name!r}",
                              marks.loc(("base_syscalls", "custom_set", i),
                                        "base_syscalls.custom_set"),
                              hint=_suggest(name.lstrip("!"), KNOWN_EVENT_TYPES))
    config["_falco_plugins"] = _falco_plugins(config, marks)
    config["_append_output_where"] = [
        list(astuple(marks.loc(("append_output", i), f"append_output[{i}]")))
        for i in range(len(config.get("append_output") or ()))]


def _falco_plugins(config: dict[str, Any], marks: yamlmarks.Marks) -> list[dict[str, Any]]:
    entries = [(i, e) for i, e in enumerate(config.get("plugins") or [])
               if isinstance(e, dict) and e.get("library_path")]
    selected = config.get("load_plugins")
    if selected is None:
        chosen = entries
    else:
        by_name = {e["name"]: (i, e) for i, e in entries}
        chosen = []
        for j, name in enumerate(selected):
            if name not in by_name:
                raise ConfigError(f"load_plugins: cannot load plugin {name!r}: plugin config "
                                  "not found for given name",
                                  marks.loc(("load_plugins", j), "load_plugins"),
                                  hint=_suggest(name, by_name) or "add it to plugins")
            chosen.append(by_name[name])
    others = []
    for i, entry in chosen:
        where = marks.loc(("plugins", i), f"plugins[{i}]")
        section = FALCO_PLUGINS_BUILT_IN.get(entry["name"])
        if section == "container":
            _container_plugin(config, entry, where)
        else:
            others.append({"name": entry["name"], "library_path": entry["library_path"],
                           "where": str(where)})
    return others


def _container_plugin(config: dict[str, Any], entry: dict[str, Any], where: Location) -> None:
    """Falco's container plugin: syswarden's container enrichment.  Its
    ``init_config.engines`` has the shape of the ``container.engines`` section (docker, podman,
    containerd, cri with ``enabled`` and ``sockets``), so each engine's settings are taken from
    it; its other keys that the section declares (``label_max_len``, ``with_size``, ``hooks``)
    are taken as they are (the section's plugin checks them: ``syswarden_validate_config``);
    the rest have no meaning here and are named in one warning."""
    container = config.get("container")
    if container is None:
        return
    init = entry.get("init_config") if isinstance(entry.get("init_config"), dict) else {}
    engines = init.get("engines") if isinstance(init.get("engines"), dict) else {}
    ours = container.get("engines") or {}
    container["enabled"] = True
    taken = set(init) & set(container) - {"engines", "enabled"}
    for key in taken:
        container[key] = init[key]
    ignored = sorted(set(init) - {"engines"} - taken)
    for name, settings in engines.items():
        if name not in ours or not isinstance(settings, dict):
            ignored.append(f"engines.{name}")
            continue
        for key, value in settings.items():
            if key == "enabled" and isinstance(value, bool):
                ours[name]["enabled"] = value
            elif key == "sockets" and isinstance(value, list) and "sockets" in ours[name]:
                ours[name]["sockets"] = [str(v) for v in value]
            else:
                ignored.append(f"engines.{name}.{key}")
    if ignored:
        log.warning("%s: container plugin: %s have no meaning in syswarden; ignored", where,
                    ", ".join(ignored))
