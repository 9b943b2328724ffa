"""docs/config.md, generated from the config schemas: every key, its type, default and meaning.

``python -m syswarden.core.config_doc > docs/config.md``; ``tests/core/test_config_doc.py``
fails when the file is out of date, so the reference never drifts from the code.
"""

from __future__ import annotations

import json
import sys

from . import yamlmarks
from .config import CORE_SCHEMA, FALCO_IGNORED, RELOADED_KEYS, Key, Section, value_range
from .plugins import make_plugin_manager

HEADER = f"""# Configuration reference

Generated from the code (`python -m syswarden.core.config_doc > docs/config.md`); do not edit.

The config is YAML.  Keys follow Falco's `falco.yaml` where the concept is the same, so the
`falco.yaml` of every Falco release from 0.37 to 0.44 loads as is and its keys mean what Falco
documents; the few Falco keys with no meaning here are accepted with one warning saying what
happens instead (the last table).  An unknown key is an error naming the file, the line and the
closest valid key; a wrong type names the expected one; a number out of the range shown below,
NaN or infinity names the range.  Plugins declare their own sections.

As in Falco: `config_files` are merged into the main file in order (a directory: its files,
sorted; a path that does not exist is skipped) with their `strategy` (`append`: a list is
extended, any other value replaced; `override`: every key replaced; `add-only`: only keys not
set yet), then `-o key.path=value` overrides apply (`-o config_files=...` first): any key of
the schema, a list index (`-o 'append_output[0].match.source=syscall'`, the index after the last
entry, or `[]`, appends one; `\\.` is a dot inside a key) and a YAML value
(`-o 'rules=[{{disable: {{tag: network}}}}]'`).  `${{NAME}}` in a file's values is the environment
variable (`$${{NAME}}` the text `${{NAME}}`; an unset one is left as written).  `rules_files` paths
that do not exist are an error naming where they were given.  `FALCO_HOSTNAME`, when set, is the
alerts' `hostname`.  A reload (SIGHUP, or a watched file that changed) applies
{", ".join(f"`{k}`" for k in RELOADED_KEYS)}; a change to another key is logged and takes effect
at the next start.

The file must be UTF-8 ({yamlmarks.MAX_FILE_BYTES >> 20} MiB at most).  A key given twice in
one mapping is an error naming both lines, as are nesting deeper than {yamlmarks.MAX_DEPTH}
levels, aliases that expand to more than {yamlmarks.MAX_ALIAS_NODES} nodes, a recursive alias and
an integer of more than 4300 digits (rules files are read the same way).
"""


def _type(key: Key) -> str:
    t = key.type
    if isinstance(t, Section):
        return "mapping"
    if isinstance(t, tuple):
        return " or ".join(x.__name__ for x in t)
    return {float: "number", int: "integer", bool: "boolean", str: "string"}.get(t, t.__name__)


def _default(key: Key) -> str:
    if key.default is None or key.default == "":
        return ""
    return f"`{json.dumps(key.default)}`"


def _rows(keys: dict[str, Key], prefix: str) -> list[str]:
    rows = []
    for name, key in keys.items():
        dotted = f"{prefix}{name}"
        item = key.items if isinstance(key.items, Section) else next(
            (t for t in key.items if isinstance(t, Section)), None) \
            if isinstance(key.items, tuple) else None
        if item is not None:
            rows.append(f"| `{dotted}` | list | {_default(key)} | {key.doc} |")
            rows.extend(_rows(item.keys, f"{dotted}[]."))
        elif isinstance(key.type, Section):
            section = key.type
            inner = section.values.keys if section.values is not None else section.keys
            label = f"{dotted}.<name>." if section.values is not None else f"{dotted}."
            rows.append(f"| `{dotted}` | mapping | | {key.doc or section.doc} |")
            rows.extend(_rows(inner, label))
        else:
            doc = key.doc + (f" (one of: {', '.join(key.choices)})" if key.choices else "") \
                + (f" ({value_range(key)})" if value_range(key) else "")
            rows.append(f"| `{dotted}` | {_type(key)} | {_default(key)} | {doc} |")
    return rows


def render() -> str:
    plugins = make_plugin_manager({})
    out = [HEADER, "## Global keys\n", "| key | type | default | meaning |", "|---|---|---|---|"]
    out += _rows(CORE_SCHEMA, "")
    owners = {}
    for record in plugins.records:
        if record.plugin is not None and hasattr(record.plugin, "syswarden_config_schema"):
            for name in (record.plugin.syswarden_config_schema() or {}):
                owners[name] = record.name
    for name, section in sorted(plugins.schemas().items()):
        owner = f"plugin `{owners[name]}`" if name in owners else "core"   # core.plugins.CORE_HOOKS
        out += ["", f"## `{name}` ({owner})\n"]
        if section.doc:
            out.append(section.doc[0].upper() + section.doc[1:] + ".\n")
        out += ["| key | type | default | meaning |", "|---|---|---|---|"]
        keys = section.values.keys if section.values is not None else section.keys
        out += _rows(keys, f"{name}.<name>." if section.values is not None else f"{name}.")
    out += ["", "## Falco keys accepted with a warning\n",
            "These keys of Falco's `falco.yaml` have no meaning in syswarden; none changes what is "
            "detected or what an alert holds.\n", "| key | what happens instead |", "|---|---|"]
    out += [f"| `{name}` | {what} |" for name, what in sorted(FALCO_IGNORED.items())]
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
