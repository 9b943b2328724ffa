"""Configuration: a YAML file, Falco's ``falco.yaml`` keys where the concept is the same.

The config is a plain nested dict.  Its shape is declared by :class:`Section` schemas: the core
declares the global keys here (``CORE_SCHEMA``); each plugin declares its own sections through
the ``syswarden_config_schema`` hook.  :func:`load_config` reads the default file shipped with
the package or the user's ``-c FILE``, applies ``-o key.path=value`` overrides (typed like YAML
scalars), fills defaults and validates: an unknown key is an error naming the file, the line and
the closest valid key; a wrong type names the expected type.

Keys of Falco's ``falco.yaml`` that syswarden has no use for are accepted with one warning.
How the config is assembled from several files and ``-o`` as Falco does is
:mod:`~syswarden.core.falco_config_files`; what Falco's keys mean once validated,
:mod:`~syswarden.core.falco_keys`; declaring and checking keys, :mod:`~syswarden.core.config_keys`.
"""

from __future__ import annotations

import os
from importlib import resources
from typing import Any, Iterable

from .config_keys import (MAX_QUEUE, MAX_SECONDS, Key, Section, fill_values, merge, show,
                          validate, value_range)
from .errors import ConfigError
from .falco_config_files import CONFIG_FILES_KEY, parse_override, read_merged
from .falco_keys import FALCO_IGNORED, honour_falco_keys, rules_files_given, rules_paths, \
    set_plugin_keys, watched_state, with_target_bounds

__all__ = ["CORE_SCHEMA", "FALCO_IGNORED", "MAX_QUEUE", "MAX_SECONDS", "PRIORITIES",
           "RELOADED_KEYS", "ConfigError", "Key", "Section", "default_config_path",
           "default_rules_path", "full_schema", "load_config", "parse_override",
           "peek_plugin_keys", "rules_paths", "value_range", "watched_state"]

DEFAULT_CONFIG = "default_config.yaml"

LOG_LEVELS = ("emergency", "alert", "critical", "error", "warning", "notice", "info", "debug")
PRIORITIES = ("emergency", "alert", "critical", "error", "warning", "notice", "informational",
              "info", "debug")

#: ``engine.kind`` values: which event source each stands for here
ENGINE_KINDS = ("modern_ebpf", "ebpf", "kmod", "replay", "gvisor", "nodriver")


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

#: What the falco_libs purging keys do here (accepted; one warning when set)
PURGING = ("accepted, one warning: an exited process leaves the table exit_grace seconds after "
           "its exit (process section); a live one is not purged for being quiet")

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
    "config_files": CONFIG_FILES_KEY,
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
                                                     "plugin's suggested fields (and drop "
                                                     "%container.info, as Falco 0.41+)"),
                         })),
    "static_fields": Key(Section(open=True), doc="Falco's static fields, name: value: with "
                         "suggested_output, appended to the output (static_NAME=value) and to "
                         "output_fields (static.NAME); rule conditions cannot read them here",
                         check=lambda v: next((f"static_fields.{k} must be a string, not "
                                               f"{show(x)}" for k, x in v.items()
                                               if not isinstance(x, (str, int, float))), None)),
    "base_syscalls": Key(Section({
        "custom_set": Key(list, [], "syscalls followed besides the rules' ('!name' removes "
                          "one)", items=str),
        "repair": Key(bool, False, "Falco's repair: also follow what the state needs given "
                      "the rules' and custom_set's syscalls (clone, fork, execve, setuid..., "
                      "procexit always; close with fd syscalls; socket, getsockopt with network "
                      "ones; bind with accept/listen); syswarden's own state syscalls are "
                      "followed in any case"),
        "all": Key(bool, False, "follow every syscall the source supports"),
    }), doc="Falco's base_syscalls: the syscalls followed besides the rules'"),
    "falco_libs": Key(Section({
        "thread_table_size": Key(int, None, "the process table's bound: sets "
                                 "process.max_entries (bounded as it is): past it exited "
                                 "processes go first, then the oldest, each eviction counted "
                                 "(drops.process.evicted, Falco's n_drops_full_threadtable) and "
                                 "the first logged", min=0),
        "thread_table_auto_purging_interval_s": Key(int, None, PURGING, min=0),
        "thread_table_auto_purging_thread_timeout_s": Key(int, None, PURGING, min=0),
        "snaplen": Key(int, None, "bytes kept of each I/O buffer (evt.buffer, evt.arg.data): "
                       "sets ebpf.snaplen (bounded as it is) when the eBPF source keeps "
                       "buffers; else one warning", min=0),
    }), doc="Falco's libs tuning"),
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


def default_config_path() -> str:
    return str(resources.files("syswarden.core").joinpath(DEFAULT_CONFIG))


def default_rules_path() -> str:
    return str(resources.files("syswarden.rules").joinpath("default_rules.yaml"))


def peek_plugin_keys(path: str | None, overrides: Iterable[str] = ()) -> dict[str, Any]:
    """``plugins`` and ``disabled_plugins`` before the full load (the config files merged and
    the overrides applied): they decide which plugins' schemas the full validation needs.
    Errors are left to :func:`load_config`."""
    out: dict[str, Any] = {"plugins": [], "disabled_plugins": []}
    try:
        data = read_merged(path or default_config_path(), overrides)[0]
    except ConfigError:
        return out
    for key in out:
        if isinstance(data.get(key), list):
            out[key] = data[key]
    return out


def full_schema(schemas: dict[str, Section] | None = None) -> Section:
    """The core's keys and the plugins' sections, as one Section (the Falco keys that set a
    plugin's key bounded as it is)."""
    schema = Section(dict(CORE_SCHEMA))
    for name, section in (schemas or {}).items():
        schema.keys[name] = Key(section, doc=section.doc)
    return with_target_bounds(schema)


def load_config(path: str | None = None, overrides: Iterable[str] = (),
                schemas: dict[str, Section] | None = None) -> dict[str, Any]:
    """Read, merge, validate.  Raises :class:`ConfigError` naming file and line."""
    schema = full_schema(schemas)
    file = path or default_config_path()
    data, origins, included, folders = read_merged(file, overrides)
    validate(data, schema, (), origins, ignored=FALCO_IGNORED)
    rules = rules_files_given(data, origins)
    merged = fill_values(merge(schema.defaults(), data), schema)
    merged["rules_files"] = merged["rules_file"] = [p for p, _ in rules]
    merged["_rules_locations"] = {p: where for p, where in rules}
    merged["_config_file"] = os.path.abspath(file)
    merged["_config_files"] = [os.path.abspath(file)] + included
    merged["_config_folders"] = folders
    honour_falco_keys(merged, origins)
    set_plugin_keys(merged, schema, origins)
    return merged
