"""docs/falco.md, "Coming from Falco": every key of Falco 0.44's ``falco.yaml`` and every flag of
``falco``, with what syswarden does with it.

``python -m syswarden.core.falco_doc > docs/falco.md``.  What a key does is read from the code
that validates the config (the same schemas as ``--config-schema``): a key the schema declares
shows its own description, a key the config accepts with a warning says so, any other is
refused; so the page changes when the config does, and ``tests/core/test_falco_doc.py`` fails
while it is stale.  The same test checks that :data:`FALCO_KEYS` is every key of Falco 0.44.1's
``falco.yaml`` and :data:`FLAGS` every flag of its ``falco --help``, and that syswarden's command
line takes each flag.
"""

from __future__ import annotations

import sys
from typing import Any

from .config import CORE_SCHEMA, FALCO_IGNORED, Key, Section

#: Every key of Falco 0.44.1's falco.yaml (mappings walked to their leaves; ``rules`` and
#: ``static_fields`` are documented there, commented out), in the file's order.
FALCO_KEYS: tuple[str, ...] = (
    "config_files", "watch_config_files", "rules_files", "rules",
    "engine", "engine.kind", "engine.kmod", "engine.kmod.buf_size_preset",
    "engine.kmod.drop_failed_exit", "engine.modern_ebpf", "engine.modern_ebpf.cpus_for_each_buffer",
    "engine.modern_ebpf.buf_size_preset", "engine.modern_ebpf.drop_failed_exit",
    "engine.modern_ebpf.disable_iterators", "engine.replay", "engine.replay.capture_file",
    "capture", "capture.enabled", "capture.path_prefix", "capture.mode",
    "capture.default_duration",
    "load_plugins", "plugins", "plugins_hostinfo",
    "time_format_iso_8601", "buffer_format_base64", "priority", "json_output",
    "json_include_output_property", "json_include_message_property",
    "json_include_output_fields_property", "json_include_tags_property", "buffered_outputs",
    "rule_matching", "outputs_queue", "outputs_queue.capacity", "append_output",
    "static_fields",
    "stdout_output", "stdout_output.enabled",
    "syslog_output", "syslog_output.enabled",
    "file_output", "file_output.enabled", "file_output.keep_alive", "file_output.filename",
    "http_output", "http_output.enabled", "http_output.url", "http_output.user_agent",
    "http_output.insecure", "http_output.ca_cert", "http_output.ca_bundle",
    "http_output.ca_path", "http_output.mtls", "http_output.client_cert",
    "http_output.client_key", "http_output.echo", "http_output.compress_uploads",
    "http_output.keep_alive", "http_output.max_consecutive_timeouts",
    "program_output", "program_output.enabled", "program_output.keep_alive",
    "program_output.program",
    "webserver", "webserver.enabled", "webserver.threadiness", "webserver.listen_port",
    "webserver.listen_address", "webserver.k8s_healthz_endpoint",
    "webserver.prometheus_metrics_enabled", "webserver.ssl_enabled",
    "webserver.ssl_certificate",
    "log_stderr", "log_syslog", "log_level", "libs_logger", "libs_logger.enabled",
    "libs_logger.severity", "output_timeout",
    "syscall_event_timeouts", "syscall_event_timeouts.max_consecutives",
    "syscall_event_drops", "syscall_event_drops.threshold", "syscall_event_drops.actions",
    "syscall_event_drops.rate", "syscall_event_drops.max_burst",
    "syscall_event_drops.simulate_drops",
    "metrics", "metrics.enabled", "metrics.interval", "metrics.output_rule",
    "metrics.output_file", "metrics.rules_counters_enabled",
    "metrics.resource_utilization_enabled", "metrics.state_counters_enabled",
    "metrics.kernel_event_counters_enabled", "metrics.kernel_event_counters_per_cpu_enabled",
    "metrics.libbpf_stats_enabled", "metrics.plugins_metrics_enabled",
    "metrics.kernel_iter_event_counters_enabled", "metrics.jemalloc_stats_enabled",
    "metrics.convert_memory_to_mb", "metrics.include_empty_values",
    "base_syscalls", "base_syscalls.custom_set", "base_syscalls.repair", "base_syscalls.all",
    "falco_libs", "falco_libs.thread_table_size",
    "falco_libs.thread_table_auto_purging_interval_s",
    "falco_libs.thread_table_auto_purging_thread_timeout_s", "falco_libs.snaplen",
)

#: Every flag of Falco 0.44.1's ``falco --help`` (userspace/falco/app/options.cpp), as its help
#: spells it, with what syswarden does with it (docs/cli.md has the details).
FLAGS: tuple[tuple[str, str], ...] = (
    ("-h, --help", "same: the flags, and syswarden's subcommands"),
    ("-c <path>", ("same; without it the config shipped in the package, not "
                   "/etc/falco/falco.yaml")),
    ("--config-schema", ("same: the config's JSON Schema, generated from the definitions that "
                         "validate it")),
    ("--rule-schema", ("same: a rules file's JSON Schema, generated from the keys the rules "
                       "loader reads")),
    ("--disable-source <event_source>", ("same checks; `syscall` is the only source, so "
                                         "disabling it is Falco's `Must enable at least one "
                                         "event source`")),
    ("--dry-run", "same"),
    ("--enable-source <event_source>", "same; `syscall` is the only source"),
    ("-i", "the syscalls Falco's rules may name that syswarden never follows"),
    ("-L", ("same: two columns; with `json_output`, Falco 0.44's JSON (`required_*`, `rules`, "
            "`macros`, `lists`, each with Falco's `info` and `details`: [cli.md](cli.md))")),
    ("-l <rule>", "same, text or JSON; a rule not loaded is Falco's message, exit 2"),
    ("--list [<source>]", "same: every field is the `syscall` source's"),
    ("--list-events", ("the syscall events syswarden follows, with Falco's parameter names "
                       "(no parameter types)")),
    ("--list-plugins", ("syswarden's plugins (sources, enrichers, filters, outputs), built-in "
                        "or installed")),
    ("-M <num_seconds>", "same"),
    ("--markdown", "same (deprecated in Falco): `--format markdown`"),
    ("--format <format>", ("same values (`text`, `markdown`, `json`) for `--list` and "
                           "`--list-events`; syswarden's own shapes")),
    ("-N", "same"),
    ("-o, --option <opt>=<val>", "same"),
    ("--plugin-info <plugin_name>", ("a syswarden plugin's description and config sections; "
                                     "`container` is the container enrichment")),
    ("-p, --print <output_format>", ("same (deprecated in Falco): an `append_output` entry, "
                                     "applied again on every reload as `-o` is; `-pc`/`-pk` "
                                     "do nothing")),
    ("-P, --pidfile <pid_file>", ("same, written as root writes every file (no links, no "
                                  "FIFOs); removed when the agent stops")),
    ("-r <rules_file>", "same"),
    ("--support", ("same keys: `version`, `engine_info`, `system_info`, `cmdline`, `config`, "
                   "`rules_files`")),
    ("-U, --unbuffered", "same: `buffered_outputs=false`"),
    ("-V, --validate <rules_file>", ("same report and JSON, with `-L`/`-l` the description "
                                     "after it; exit 1 when a file is invalid")),
    ("-v", ("same end-of-run counts (`Elapsed time`, `Captured Events`, eps); with `--list`, "
            "each field's `(Type: ...)` as Falco prints it, and its argument")),
    ("--version", "syswarden's version; JSON with `json_output`"),
    ("--page-size", "same"),
)

HEADER = """# Coming from Falco

Generated from the code (`python -m syswarden.core.falco_doc > docs/falco.md`); do not edit.

syswarden reads Falco's config file, rules files and command line.  This page lists every key of
Falco 0.44's `falco.yaml` and every flag of `falco --help` with what syswarden does with it.  A
key's entry is the description of the key in the schema that validates the config
([config.md](config.md), `syswarden --config-schema`); a Falco key syswarden accepts without
acting on it logs one warning when the config loads; any other key is refused with its file and
line (exit 2).

Rules files: what a rules file needs that syswarden does not have (a plugin other than
`container`, an event source other than `syscall`: Falco's k8saudit, cloudtrail, okta... rules)
stops the start and makes `-V` report the file invalid, as it stops Falco
([rules.md](rules.md)).

Exit codes: Falco exits 1 on every failure; syswarden exits 1 when a check fails (`-V`) or the
agent crashes, 2 on bad input (command line, config, rules), 3 when the machine cannot run the
agent, 4 when a replayed capture was damaged ([cli.md](cli.md)).
"""


def _top_schema() -> Section:
    from .plugins import make_plugin_manager
    top = Section(dict(CORE_SCHEMA))
    for name, section in make_plugin_manager().schemas().items():
        top.keys[name] = Key(section, doc=section.doc)
    return top


def status(path: str, top: Section) -> str:
    """What syswarden does with the Falco key ``path`` (dotted): the description of the key
    in the schema, the warning of a key accepted without effect, or the refusal."""
    names = path.split(".")
    if names[0] not in top.keys and names[0] in FALCO_IGNORED:
        if len(names) > 1:
            return f"as `{names[0]}`"
        why = FALCO_IGNORED[names[0]] if isinstance(FALCO_IGNORED, dict) else ""
        return "accepted, one warning" + (f": {why}" if why else "")
    section: Section = top
    doc = ""
    for name in names:
        if section.values is not None:
            section = section.values
            continue
        key = section.keys.get(name)
        if key is None and section.open:
            return "accepted" + (f" ({doc})" if doc else "")
        if key is None:
            return "**refused**: unknown key (exit 2)"
        doc = key.doc
        if isinstance(key.type, Section):
            section = key.type
            doc = doc or section.doc
    return "read" + (f": {doc}" if doc else "")


def render() -> str:
    top = _top_schema()
    out = [HEADER, "## Config keys (Falco 0.44 `falco.yaml`)\n", "| key | syswarden |",
           "|---|---|"]
    out += [f"| `{path}` | {_cell(status(path, top))} |" for path in FALCO_KEYS]
    older = sorted(set(FALCO_IGNORED) - {p.split('.')[0] for p in FALCO_KEYS})
    if older:
        out += ["", "Keys of older Falco releases, accepted with one warning: "
                + ", ".join(f"`{k}`" for k in older) + "."]
    out += ["", "## Flags (Falco 0.44 `falco --help`)\n", "| flag | syswarden |", "|---|---|"]
    out += [f"| `{flag}` | {_cell(text)} |" for flag, text in FLAGS]
    return "\n".join(out) + "\n"


def _cell(text: Any) -> str:
    return " ".join(str(text).split()).replace("|", "\\|")


if __name__ == "__main__":
    sys.stdout.write(render())
