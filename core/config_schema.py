"""``syswarden --config-schema``: the config's JSON Schema, generated from the definitions that
validate it (:class:`~syswarden.core.config.Section` and :class:`~syswarden.core.config.Key`:
the core's ``CORE_SCHEMA`` and the plugins' sections), so the two cannot drift apart.

Each key's type, choices (matched without regard to case, as :func:`load_config` compares
them), bounds, list item type and default become the schema's; a ``Section`` becomes an object
whose other keys are refused (``open``: accepted; ``values``: a mapping of names the user
chooses).  Falco's keys that the config accepts with a warning are accepted with any value.
What a key's ``check`` refuses (an address that does not parse, a mode that is not octal) a
schema cannot say: such a value passes the schema and is refused at load with its reason.
``tests/core/test_config_schema.py`` checks that the schema accepts exactly what the loader
accepts.
"""

from __future__ import annotations

import json
from typing import Any

from .config import FALCO_IGNORED, Key, Section, full_schema

JSON_SCHEMA_DRAFT = "http://json-schema.org/draft-07/schema#"

_JSON_TYPES = {bool: "boolean", int: "integer", float: "number", str: "string", list: "array",
               dict: "object"}


def config_schema(schemas: dict[str, Section] | None = None) -> dict[str, Any]:
    """The JSON Schema of a config file with the core keys and the plugins' ``schemas``."""
    schema = _section(full_schema(schemas))
    for name in sorted(FALCO_IGNORED):
        schema["properties"].setdefault(name, {
            "description": "a falco.yaml key syswarden accepts with a warning"})
    return {"$schema": JSON_SCHEMA_DRAFT, "title": "syswarden configuration",
            "description": "The config file syswarden -c FILE reads (docs/config.md).",
            **schema, "type": ["object", "null"]}


def _section(section: Section) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "object"}
    if section.doc:
        out["description"] = section.doc
    if section.values is not None:
        out["additionalProperties"] = _section(section.values)
        return out
    out["properties"] = {name: _key(key) for name, key in section.keys.items()}
    out["additionalProperties"] = section.open
    return out


def _key(key: Key) -> dict[str, Any]:
    if isinstance(key.type, Section):
        out = _section(key.type)
        if key.doc and "description" not in out:
            out["description"] = key.doc
        return out
    out = _types(key.type)
    if key.default is None:                  # load_config lets such a key be left empty
        out["type"] = [*_as_list(out["type"]), "null"]
    if key.doc:
        out["description"] = key.doc
    if key.default is not None:
        out["default"] = key.default
    if key.choices:
        out["pattern"] = "^(" + "|".join(_any_case(str(c)) for c in key.choices) + ")$"
    if key.min is not None:
        out["minimum"] = key.min
    if key.max is not None:
        out["maximum"] = key.max
    if key.items is not None:
        out["items"] = _types(key.items)
    return out


def _types(t: Any) -> dict[str, Any]:
    """A type, a tuple of them, or a :class:`Section` (a mapping of its keys)."""
    if isinstance(t, Section):
        return _section(t)
    if isinstance(t, tuple):
        if any(isinstance(x, Section) for x in t):
            return {"anyOf": [_types(x) for x in t]}
        return {"type": [_JSON_TYPES[x] for x in t]}
    return {"type": _JSON_TYPES[t]}          # a float is finite: JSON has no NaN nor infinity


def _as_list(t: str | list[str]) -> list[str]:
    return list(t) if isinstance(t, list) else [t]


def _any_case(word: str) -> str:
    """``info`` -> ``[Ii][Nn][Ff][Oo]``: case-blind in every regex dialect (ECMA has no flag)."""
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else _escape(c) for c in word)


def _escape(c: str) -> str:
    return "\\" + c if c in r"\^$.|?*+()[]{}/-" else c


def dumps(schema: dict[str, Any]) -> str:
    """The schema as ``--config-schema`` prints it (Falco's: indented by two)."""
    return json.dumps(schema, indent=2) + "\n"
