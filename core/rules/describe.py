"""``-L`` and ``-l RULE`` with ``json_output``: Falco's JSON description of the loaded rules.

The shape is Falco's ``describe_rule``: ``rules`` (each with ``info``: name, condition, priority,
output, description, enabled, source, capture, capture_duration, tags; and ``details``: the
condition with its exceptions as compiled, the output, the event types it matches, its
exceptions' names), ``macros`` (``info``: name, condition; ``details``: used) and ``lists``
(``info``: name, items).  With a rule name, only ``rules``, that one; a name no loaded rule has
is Falco's ``Rule "X" is not loaded``.
"""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError, Location
from ..fields import FieldRegistry
from ..syscalls import EVENTS
from .engine import CompiledRule, load_rules
from .loader import RuleDef


def describe(files: list[str], fields: FieldRegistry, rule: str | None = None
             ) -> dict[str, Any]:
    """Falco's JSON description of the rules in ``files`` (or of the rule named ``rule``)."""
    result, compiled, _ = load_rules(files, fields)
    if result.errors:
        raise result.errors[0]
    defs = {d.name: d for d in result.rules}
    if rule is not None:
        found = [c for c in compiled if c.name == rule]
        if not found:
            raise ConfigError(f'Rule "{rule}" is not loaded', Location("-l"),
                              hint="syswarden -L lists the loaded rules")
        return {"rules": [_rule(found[0], defs[rule])]}
    return {
        "rules": [_rule(c, defs[c.name]) for c in compiled],
        "macros": [{"info": {"name": m.name, "condition": m.origin.text},
                    "details": {"used": m.used}} for m in result.macros.values()],
        "lists": [{"info": {"name": ld.name, "items": list(ld.items)}}
                  for ld in result.lists.values()],
    }


def _rule(c: CompiledRule, d: RuleDef) -> dict[str, Any]:
    types = sorted(set(EVENTS) - c.types.names if c.types.complement else c.types.names)
    return {
        "info": {"name": c.name, "condition": d.condition, "priority": c.priority.label,
                 "output": d.output, "description": d.desc, "enabled": d.enabled,
                 "source": d.source, "capture": False, "capture_duration": 0,
                 "tags": list(d.tags)},
        "details": {"condition_compiled": c.condition, "output_compiled": c.output,
                    "events": types, "exception_names": [e.name for e in d.exceptions]},
    }
