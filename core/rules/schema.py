"""``syswarden --rule-schema``: the JSON Schema of a rules file, generated from the keys the
loader accepts (:mod:`.loader`'s ``RULE_KEYS``, ``MACRO_KEYS``, ``LIST_KEYS``, the override
tables and the priorities), so the two cannot drift apart.

:data:`KEY_TYPES` gives each key's value schema; :func:`rule_schema` fails when the loader
accepts a key it has no type for (``tests/core/rules/test_rule_schema.py`` runs it), so a key
added to the loader is a key added here.  A key the loader does not know is a warning there,
not an error: the schema accepts it too, as Falco's does.
"""

from __future__ import annotations

from typing import Any

from ..alert import Priority
from ..config_schema import JSON_SCHEMA_DRAFT, _any_case
from .loader import LIST_KEYS, MACRO_KEYS, OVERRIDE_APPEND, OVERRIDE_REPLACE, RULE_KEYS

#: what :meth:`Priority.parse` reads, in any case: the names, and ``info``
_PRIORITIES = [p.name for p in Priority] + ["info"]
_STRING = {"type": "string"}
_BOOL = {"type": "boolean"}
_SCALAR = {"type": ["string", "number", "boolean"]}
_FIELDS = {"anyOf": [_STRING, {"type": "array", "items": _STRING}]}

#: The value schema of every key the loader reads, per item kind.
KEY_TYPES: dict[str, dict[str, dict[str, Any]]] = {
    "rule": {
        "rule": _STRING, "desc": _STRING, "condition": _STRING, "output": _STRING,
        "priority": {"type": "string",
                     "pattern": r"^\s*(" + "|".join(_any_case(p) for p in _PRIORITIES)
                                + r")\s*$"},
        "tags": {"type": "array", "items": {"type": ["string", "number"]}},
        "enabled": _BOOL, "source": _STRING,
        "exceptions": {"type": "array", "items": {
            "type": "object", "required": ["name"],
            "properties": {"name": _STRING, "fields": _FIELDS, "comps": _FIELDS,
                           "values": {"type": "array"}}}},
        "warn_evttypes": _BOOL, "skip-if-unknown-filter": _BOOL, "append": _BOOL,
        "capture": _BOOL, "capture_duration": {"type": "integer", "minimum": 0},
    },
    "macro": {"macro": _STRING, "condition": _STRING, "append": _BOOL},
    "list": {"list": _STRING, "items": {"type": ["array", "null"], "items": _SCALAR},
             "append": _BOOL},
}

_PLUGIN = {"type": "object", "required": ["name", "version"],
           "properties": {"name": _STRING, "version": _STRING}}


def rule_schema() -> dict[str, Any]:
    """The JSON Schema of a rules file: a list of rules, macros, lists and requirements."""
    kinds = {"rule": RULE_KEYS, "macro": MACRO_KEYS, "list": LIST_KEYS}
    item: dict[str, Any] = {"type": "object", "allOf": []}
    for kind, accepted in kinds.items():
        types = dict(KEY_TYPES[kind])
        missing = sorted(set(accepted) - set(types) - {"override"})
        if missing:
            raise ValueError(f"the loader accepts {kind} key(s) {', '.join(missing)} that "
                             "the rule schema has no type for (core/rules/schema.py)")
        keys = set(OVERRIDE_APPEND[kind]) | set(OVERRIDE_REPLACE[kind])
        types["override"] = {"type": "object", "additionalProperties": False, "properties": {
            k: {"enum": [h for h, table in (("append", OVERRIDE_APPEND),
                                            ("replace", OVERRIDE_REPLACE))
                         if k in table[kind]]} for k in sorted(keys)}}
        item["allOf"].append({"if": {"required": [kind]},
                              "then": {"properties": {k: types[k] for k in sorted(accepted)}}})
    item["allOf"].append({"if": {"required": ["required_engine_version"]}, "then": {
        "properties": {"required_engine_version": {"type": ["string", "integer"]}}}})
    item["allOf"].append({"if": {"required": ["required_plugin_versions"]}, "then": {
        "properties": {"required_plugin_versions": {"type": "array", "items": {
            **_PLUGIN, "properties": {**_PLUGIN["properties"],
                                      "alternatives": {"type": "array", "items": _PLUGIN}}}}}}})
    return {"$schema": JSON_SCHEMA_DRAFT, "title": "syswarden rules file",
            "description": "A rules file in Falco's syntax (docs/rules.md).",
            "type": ["array", "null"], "items": item}
