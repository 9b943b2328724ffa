"""``-L`` and ``-l RULE`` with ``json_output``: Falco's JSON description of the loaded rules.

The shape is Falco 0.44's ``describe_rule``:

- ``required_engine_version`` (the highest the files require, ``0.0.0`` when none does) and
  ``required_plugin_versions`` (each requirement: ``name``, ``version``, ``alternatives``);
- ``rules``: ``info`` (name, condition, priority, output, description, enabled, source,
  capture, capture_duration, tags) and ``details``: the macros and lists its condition names
  (as written), the operators and fields of its condition with macros expanded and exceptions
  in (``condition_operators``, ``condition_fields``), ``extra_output_formatted_fields`` (when
  ``append_output`` gives it a ``{name: format}``), the fields its output prints
  (``output_fields``, extra fields first), its exceptions' fields, names and operators, the
  event types it matches, the condition (with its exceptions) and the output as compiled, and
  the plugins it uses (``container`` when it reads a field of the container enrichment);
- ``macros``: ``info`` (name, condition), ``details`` (used, the macros and lists it names, its
  operators and fields expanded, its event types, its condition, ``plugins``: always empty);
- ``lists``: ``info`` (name, its own items), ``details`` (used, the lists it names, its items
  with those lists expanded, ``plugins``: always empty).

With a rule name, only ``rules``, that one; a name no loaded rule has is Falco's
``Rule "X" is not loaded``.  Falco's arrays come from unordered sets: here they are sorted.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError, Location, RuleError
from ..fields import FieldRegistry
from ..syscalls import EVENTS
from . import ast
from .compiler import Compiler
from .engine import CompiledRule, load_rules
from .loader import BUILTIN_PLUGINS, Exception_, RuleDef, exception_field, rule_condition
from .output import OutputOptions, format_fields
from .parser import parse
from .resolved import MacroDef
from .typesets import TypeSet, type_sets

#: the field each Falco plugin syswarden stands in for provides: a rule reading a field of that
#: field's provider uses the plugin
PLUGIN_FIELDS = {"container": "container.id"}


def describe(files: list[str], fields: FieldRegistry, rule: str | None = None,
             output: OutputOptions | None = None, plugins: Iterable[str] = BUILTIN_PLUGINS
             ) -> dict[str, Any]:
    """Falco's JSON description of the rules in ``files`` (or of the rule named ``rule``),
    their outputs shaped by ``output`` (the config's ``append_output``) as the agent's are."""
    plugins = set(plugins)
    result, compiled, _ = load_rules(files, fields, output, plugins)
    if result.errors:
        raise result.errors[0]
    used_macros = {name for name, m in result.macros.items() if m.used}
    lists, _ = result.expanded_lists()
    comp = Compiler(fields, lists, result.macros)
    ctx = _Context(fields, comp, result.macros, set(result.lists), output or OutputOptions(),
                   _plugin_providers(fields, plugins))
    defs = {d.name: d for d in result.rules}
    if rule is not None:
        found = [c for c in compiled if c.name == rule]
        if not found:
            raise ConfigError(f'Rule "{rule}" is not loaded', Location("-l"),
                              hint="syswarden -L lists the loaded rules")
        return {"rules": [_rule(found[0], defs[rule], ctx)]}
    referenced = _lists_named(result.rules, result.macros.values(), result.lists, ctx)
    return {
        "required_engine_version": ".".join(map(str, result.required_engine_version)),
        "required_plugin_versions": [
            {"name": req[0]["name"], "version": req[0]["version"],
             "alternatives": [{"name": a["name"], "version": a["version"]} for a in req[1:]]}
            for req in result.required_plugin_versions],
        "rules": [_rule(c, defs[c.name], ctx) for c in compiled],
        "macros": [_macro(m, m.name in used_macros, ctx) for m in result.macros.values()],
        "lists": [{"info": {"name": ld.name,
                            "items": [i for i in ld.items if i not in result.lists]},
                   "details": {"used": ld.name in referenced,
                               "lists": sorted({i for i in ld.items if i in result.lists}),
                               "items_compiled": list(lists.get(ld.name, ld.items)),
                               "plugins": []}}
                  for ld in result.lists.values()],
    }


@dataclass
class _Context:
    fields: FieldRegistry
    comp: Compiler
    macros: dict[str, MacroDef]
    lists: set[str]
    output: OutputOptions
    #: field provider -> the Falco plugin it stands for
    providers: dict[str, str]


@dataclass
class _Found:
    """What a condition names: Falco's ``filter_details``."""

    fields: set[str] = field(default_factory=set)
    operators: set[str] = field(default_factory=set)
    macros: set[str] = field(default_factory=set)
    lists: set[str] = field(default_factory=set)


def _plugin_providers(fields: FieldRegistry, plugins: set[str]) -> dict[str, str]:
    out = {}
    for plugin, name in PLUGIN_FIELDS.items():
        if plugin in plugins and name in fields:
            out[fields.get(name).provider] = plugin
    return out


def _walk(node: ast.Node, ctx: _Context, found: _Found, expand: bool,
          seen: tuple[str, ...] = ()) -> _Found:
    """Collect the fields, operators, macros and lists ``node`` names; ``expand``: walk into
    the macros too (Falco's compiled condition), else only what is written."""
    if isinstance(node, (ast.And, ast.Or)):
        for child in node.children:
            _walk(child, ctx, found, expand, seen)
    elif isinstance(node, ast.Not):
        _walk(node.child, ctx, found, expand, seen)
    elif isinstance(node, ast.MacroRef):
        mdef = ctx.macros.get(node.name)
        if mdef is not None:
            found.macros.add(node.name)
            if expand and node.name not in seen:
                _walk(mdef.node, ctx, found, expand, seen + (node.name,))
    elif isinstance(node, ast.Check):
        found.fields.update(f.text() for f in node.field.plain_fields())
        found.operators.add(f"{node.op} {node.mod}" if node.mod else node.op)
        value = node.value
        if isinstance(value, ast.FieldValue):
            found.fields.update(f.text() for f in value.field.plain_fields())
        elif isinstance(value, ast.ListLit):
            found.lists.update(i.value for i in value.items
                               if not i.quoted and i.value in ctx.lists)
    return found


def _parsed(text: str) -> ast.Node | None:
    try:
        return parse(text)
    except RuleError:
        return None


def _condition(text: str, ctx: _Context, expand: bool) -> _Found:
    node = _parsed(text)
    return _walk(node, ctx, _Found(), expand) if node is not None else _Found()


def _events(types: TypeSet) -> list[str]:
    return sorted(set(EVENTS) - types.names if types.complement else types.names)


def _rule(c: CompiledRule, d: RuleDef, ctx: _Context) -> dict[str, Any]:
    written = _condition(d.condition, ctx, expand=False)
    full = _condition(c.condition, ctx, expand=True)
    shaped = ctx.output.rule_format(d.output, d.name, d.source, d.tags, ctx.fields)
    extra_fields = {name: fmt for name, fmt in shaped.extra if fmt is not None}
    try:
        printed = format_fields(shaped.output, ctx.fields, ctx.comp)
    except RuleError:
        printed = []
    out_fields = list(dict.fromkeys([name for name, _ in shaped.extra] + printed))
    details: dict[str, Any] = {
        "macros": sorted(written.macros), "lists": sorted(written.lists),
        "condition_operators": sorted(full.operators),
        "condition_fields": sorted(full.fields)}
    if extra_fields:
        details["extra_output_formatted_fields"] = extra_fields
    ex_fields, ex_ops = _exception_parts(d.exceptions)
    details |= {
        "output_fields": out_fields, "exception_fields": ex_fields,
        "exception_names": list(dict.fromkeys(e.name for e in d.exceptions)),
        "exception_operators": ex_ops, "events": _events(c.types),
        "condition_compiled": c.condition, "output_compiled": shaped.output,
        "plugins": _plugins_used(full.fields | set(out_fields), ctx)}
    return {
        "info": {"name": c.name, "condition": d.condition, "priority": c.priority.label,
                 "output": d.output, "description": d.desc, "enabled": d.enabled,
                 "source": d.source, "capture": False, "capture_duration": 0,
                 "tags": list(d.tags)},
        "details": details,
    }


def _exception_parts(exceptions: list[Exception_]) -> tuple[list[str], list[str]]:
    """The fields and the operators of a rule's exceptions (a single field compares with
    ``in`` by default, a list of fields with ``=``, as in Falco)."""
    fields: set[str] = set()
    ops: set[str] = set()
    for e in exceptions:
        names = [e.fields] if isinstance(e.fields, str) else list(e.fields)
        default = "in" if isinstance(e.fields, str) else "="
        comps = e.comps if isinstance(e.comps, list) else [e.comps or default] * len(names)
        for name in names:
            ref = exception_field(str(name))
            if ref is not None:
                fields.update(f.text() for f in ref.plain_fields())
        ops.update(str(c) for c in comps)
    return sorted(fields), sorted(ops)


def _plugins_used(names: Iterable[str], ctx: _Context) -> list[str]:
    used = set()
    for name in names:
        fdef = ctx.fields.get(name.split("[", 1)[0])
        if fdef is not None and fdef.provider in ctx.providers:
            used.add(ctx.providers[fdef.provider])
    return sorted(used)


def _macro(m: MacroDef, used: bool, ctx: _Context) -> dict[str, Any]:
    written = _walk(m.node, ctx, _Found(), expand=False)
    full = _walk(m.node, ctx, _Found(), expand=True, seen=(m.name,))
    try:
        events = _events(type_sets(ctx.comp.resolve(m.node, m.origin))[0])
    except (RuleError, RecursionError):
        events = []
    return {"info": {"name": m.name, "condition": m.origin.text},
            "details": {"used": used, "macros": sorted(written.macros),
                        "lists": sorted(written.lists),
                        "condition_operators": sorted(full.operators),
                        "condition_fields": sorted(full.fields), "events": events,
                        "condition_compiled": m.origin.text, "plugins": []}}


def _lists_named(rules: list[RuleDef], macros: Iterable[MacroDef], lists: dict[str, Any],
                 ctx: _Context) -> set[str]:
    """The lists a rule (its exceptions too), a macro or another list names: Falco's
    ``used``."""
    named: set[str] = set()
    for d in rules:
        named |= _condition(rule_condition(d, {n: None for n in lists}), ctx, False).lists
    for m in macros:
        named |= _walk(m.node, ctx, _Found(), expand=False).lists
    for ld in lists.values():
        named.update(i for i in ld.items if i in lists)
    return named
