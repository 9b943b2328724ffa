"""docs/config.md, generated from the config schemas: every key, its type, default and meaning.

``python -m syswarden.core.config_doc > docs/config.md``; ``tests/core/test_config_doc.py``
fails when the file is out of date, so the reference never drifts from the code.
"""

from __future__ import annotations

import json
import sys

from . import yamlmarks
from .config import CORE_SCHEMA, Key, Section, value_range
from .plugins import make_plugin_manager

HEADER = f"""# Configuration reference

Generated from the code (`python -m syswarden.core.config_doc > docs/config.md`); do not edit.

The config is YAML.  Keys follow Falco's `falco.yaml` where the concept is the same, so a Falco
config loads as is; Falco keys with no meaning here (`grpc`, `engine`, `libs_logger`, ...) are
accepted with one warning.  An unknown key is an error naming the file, the line and the closest
valid key; a wrong type names the expected one; a number out of the range shown below, NaN or
infinity names the range.  `-o key.path=value` overrides any key (the value typed like a YAML
scalar).  Plugins declare their own sections.

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
        if isinstance(key.type, Section):
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
    return "\n".join(out) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
