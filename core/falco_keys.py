"""What Falco's keys mean here, once the config is validated: ``rules_files`` (and the older
``rules_file``) resolved to the files to load, what ``watch_config_files`` watches,
``engine.kind``, ``base_syscalls``, and Falco's ``plugins``/``load_plugins`` entries (``container``
turns on the container enrichment; another plugin is refused once a loaded rule needs it); and
the Falco keys syswarden accepts without acting on them (:data:`FALCO_IGNORED`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import astuple, replace
from typing import Any

from . import yamlmarks
from .config_keys import Section, suggest
from .errors import ConfigError, Location
from .falco_config_files import Origins

log = logging.getLogger("syswarden.config")


#: Falco's keys syswarden does not honour, each with what happens instead: accepted, and that
#: one warning is logged.  None of them changes what is detected or what an alert holds.
FALCO_IGNORED: dict[str, str] = {
    "grpc": "no gRPC server is started; use http_output or webhook_outputs",
    "grpc_output": "no gRPC output; use http_output or webhook_outputs",
    "libs_logger": "there are no Falco libs; the agent's own log follows log_level",
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


def rules_files_given(data: dict, origins: Origins) -> list[tuple[str, list]]:
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
    from .config import default_rules_path
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


#: ``falco_libs`` keys accepted without effect, each with what happens instead (one warning)
FALCO_LIBS_IGNORED = {
    "thread_table_auto_purging_interval_s": "an exited process leaves the table exit_grace "
                                            "seconds after its exit; a live one is not purged "
                                            "for being quiet",
    "thread_table_auto_purging_thread_timeout_s": "an exited process leaves the table "
                                                  "exit_grace seconds after its exit; a live one "
                                                  "is not purged for being quiet",
}

#: Falco keys that set a plugin's key: (the Falco key's section, name) -> ((the plugin's
#: section, key), what happens when no loaded plugin declares that key).  When the Falco key is
#: set it wins, bounded as the plugin's key is (a value out of them is refused at the Falco
#: key's line); without the plugin's key, one warning says what happens instead.
FALCO_KEY_TARGETS: dict[tuple[str, str], tuple[tuple[str, str], str]] = {
    ("falco_libs", "thread_table_size"): (("process", "max_entries"),
                                          "no process table is kept"),
    ("falco_libs", "snaplen"): (("ebpf", "snaplen"), "no event source keeps I/O buffers"),
}

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
                              hint=suggest(name.lstrip("!"), KNOWN_EVENT_TYPES))
    libs = config.get("falco_libs") or {}
    for key, instead in FALCO_LIBS_IGNORED.items():
        if libs.get(key) is not None:
            log.warning("%s: falco_libs.%s has no meaning in syswarden; ignored: %s",
                        marks.loc(("falco_libs", key, "__key__")), key, instead)
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
                                  hint=suggest(name, by_name) or "add it to plugins")
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


def selected_syscalls(rules: set[str] | None, base: dict[str, Any]) -> set[str] | None:
    """The syscalls followed, as Falco selects them from the rules' (``rules``; None: every
    one) and ``base_syscalls``: ``all`` follows every syscall; ``custom_set``'s names are
    added and its ``!name`` removed; ``repair`` adds what the state needs given the rest
    (:func:`~syswarden.core.syscalls.repair_state_syscalls`): given the rules' alone when
    ``custom_set`` adds nothing, and after the removals when there is a ``custom_set``, as
    Falco does (so a removed syscall the state needs comes back).  The source adds the
    syscalls syswarden's own process and fd tables follow in any case."""
    from .syscalls import repair_state_syscalls
    if base.get("all") or rules is None:
        return None
    custom = [str(name) for name in base.get("custom_set") or ()]
    removed = {name[1:] for name in custom if name.startswith("!")}
    added = {name for name in custom if not name.startswith("!")}
    selected = set(rules) | added
    if base.get("repair") and not added:
        selected = repair_state_syscalls(selected)
    selected -= removed
    if base.get("repair") and custom:
        selected = repair_state_syscalls(selected)
    return selected


def _declared(schema: Section, section: str, key: str) -> Any:
    owner = schema.keys.get(section)
    return owner.type.keys.get(key) if owner is not None and isinstance(owner.type,
                                                                        Section) else None


def with_target_bounds(schema: Section) -> Section:
    """``schema`` (the full one) with each Falco key of :data:`FALCO_KEY_TARGETS` bounded as
    the plugin key it sets, when a loaded plugin declares it: the loader and the JSON Schema
    then refuse what the plugin's key would."""
    keys = dict(schema.keys)
    for (section, name), ((target, key), _) in FALCO_KEY_TARGETS.items():
        declared, holder = _declared(schema, target, key), keys.get(section)
        if declared is None or holder is None:
            continue
        inner = holder.type
        bounded = replace(inner.keys[name], min=declared.min, max=declared.max)
        keys[section] = replace(holder, type=replace(inner, keys={**inner.keys, name: bounded}))
    return replace(schema, keys=keys)


def set_plugin_keys(config: dict[str, Any], schema: Section, marks: yamlmarks.Marks) -> None:
    """Apply :data:`FALCO_KEY_TARGETS` to a validated ``config`` (``schema``: the full one,
    :func:`with_target_bounds`): each Falco key set is copied to the plugin key it sets, or
    one warning says what happens instead when no loaded plugin declares that key."""
    for (section, name), ((target, key), missing) in FALCO_KEY_TARGETS.items():
        value = (config.get(section) or {}).get(name)
        if value is None:
            continue
        if _declared(schema, target, key) is None or not isinstance(config.get(target), dict):
            log.warning("%s: %s.%s has no meaning in syswarden; ignored: %s",
                        marks.loc((section, name, "__key__")), section, name, missing)
            continue
        config[target][key] = value
