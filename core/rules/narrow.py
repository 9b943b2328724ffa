"""Narrowing: which of an event type's rules can still match, decided once per event.

Rules of one event type share their shapes: many need the same macro (``open_write``,
``container``), or a value of one field among a few (``proc.name in (shell_binaries)``,
``not proc.pname in (...)``, ``container.id != host``).  Evaluated rule by rule, each rule
pays again for what the others already found out, and the cost grows with the rules.

A :class:`Narrowing` is derived from the rules' folded conditions: what each rule *requires*,
that is a check, macro or ``or`` that must hold for its condition to be true, followed through
``and``, ``not``, ``not (... or ...)`` and macros.  Then, per event:

- a **value index** per field whose value several rules need (``=``, ``in``, ``!=`` on a
  scalar, their negations, and an ``or`` of them on one field): one read, one dict lookup,
  the mask of the rules that value allows; and one per set of fields that several rules
  need one value of (``fd.filename in (...) or fd.directory in (...)``);
- a **shared part** (a macro, a check, an ``or``, written the same way by several rules:
  :class:`Shapes`) is evaluated once, by the first rule still possible that needs it; when
  it fails, every rule that needs it is dropped.

What is left, a bit mask in rule order, picks the rules to evaluate; each is still evaluated
whole, so narrowing only decides how soon a rule is known to be false, never whether it
matches: a rule it drops could not have matched.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from . import ast
from .operators import OPERATORS
from .resolved import BoundField, RCheck, RMacro, RNode, iter_checks

#: an event type's function narrows when it has this many rules or more: below, trying the
#: rules in turn costs as little per event (Falco's three files have at most 40 rules of one
#: type, and gain nothing measurable), and compiling the narrowed function costs more
NARROW_MIN = 48
#: a field is indexed, a part shared, when this many rules need it
SHARED_MIN = 2

_SCALARS = (str, int)     # bool is an int; no float (NaN equals nothing, not even itself)


@dataclass(eq=False)
class ValueIndex:
    """The rules' requirements on one field's value: ``masks[value]`` the rules a value
    allows (``None``: the field has no value), ``other`` those any other value allows."""

    field: BoundField
    masks: dict[Any, int]
    other: int
    rules: int                       # how many rules require something of this field


@dataclass(eq=False)
class AnyIndex:
    """Rules each needing one of several fields' values inside a set (``fd.filename in (...)
    or fd.name in (...)``): ``tables[i][value]`` the rules whose need on ``fields[i]`` that
    value meets (``None``: no value); a rule is kept when one of its fields' values meets
    its need; ``keep``: the rules that need nothing of these fields."""

    fields: list[BoundField]
    tables: list[dict[Any, int]]
    keep: int


@dataclass(eq=False)
class Test:
    """A part of the conditions (a macro, a check, an ``or``) that the rules of ``mask``
    require to be true, each written the same way (``shape``)."""

    node: RNode
    shape: int
    mask: int


@dataclass(eq=False)
class Narrowing:
    everyone: int                    # every rule's bit
    indexes: list[ValueIndex] = field(default_factory=list)
    any_indexes: list[AnyIndex] = field(default_factory=list)
    tests: list[Test] = field(default_factory=list)
    shapes: Shapes = field(default_factory=lambda: Shapes())


@dataclass(frozen=True)
class _Need:
    """A rule's need on a field's value ``v``: ``v in values`` (``inside``) or not, and
    what a missing value (``None``) gives."""

    values: frozenset
    inside: bool
    at_none: bool


def narrowing(conditions: list[RNode]) -> Narrowing | None:
    """The narrowing of ``conditions`` (one per rule, in order: bit ``j`` is rule ``j``), or
    None when there are too few rules for it to pay (:data:`NARROW_MIN`), or nothing
    shared to narrow on."""
    if len(conditions) < NARROW_MIN:
        return None
    everyone = (1 << len(conditions)) - 1
    needs: dict[int, tuple[BoundField, dict[int, _Need]]] = {}   # by reader id
    parts: dict[int, tuple[RNode, int]] = {}     # by shape: a node, the rules needing it
    memo: dict[tuple[int, bool], dict[int, _Need]] = {}
    # by the fields of an "or": per rule, per field, the need one of them must meet
    anys: dict[tuple[int, ...], dict[int, dict[int, tuple[BoundField, _Need]]]] = {}
    out = Narrowing(everyone)
    for j, node in enumerate(conditions):
        for reader, need in _needs(node, True, memo).items():
            bf = _field_of(node, reader)
            needs.setdefault(reader, (bf, {}))[1][j] = need
        for part in _required(node, True, set()):
            shape = out.shapes.of(part)
            first, mask = parts.get(shape, (part, 0))
            parts[shape] = (first, mask | 1 << j)
            alts = _alternatives(part, memo) if isinstance(part, ast.Or) else None
            if alts is not None:
                anys.setdefault(tuple(sorted(alts)), {}).setdefault(j, alts)
    for bf, by_rule in needs.values():
        # only needs of a value inside a set drop rules for most values (a field read for
        # "not in" needs alone would drop rules only on the values listed)
        if sum(need.inside for need in by_rule.values()) >= SHARED_MIN:
            out.indexes.append(_index(bf, by_rule, everyone))
    for key, by_rule in anys.items():
        if len(by_rule) >= SHARED_MIN:
            out.any_indexes.append(_any_index(key, by_rule, everyone))
    indexed = {id(ix.field.read) for ix in out.indexes}
    for shape, (part, mask) in parts.items():
        if mask.bit_count() >= SHARED_MIN and not _indexed(part, indexed):
            out.tests.append(Test(part, shape, mask))
    if not out.indexes and not out.any_indexes and not out.tests:
        return None
    out.indexes.sort(key=lambda ix: -ix.rules)
    out.tests.sort(key=lambda t: -t.mask.bit_count())
    return out


def _required(node: RNode, want: bool, seen: set[tuple[int, bool]]) -> Iterator[RNode]:
    """The parts of ``node`` that must be true for ``node`` to be ``want``: macros, checks
    and ``or`` nodes, followed through ``and``, ``not``, ``not (... or ...)`` and macros (a
    part required false, an exception or a ``not known_x``, seldom drops a rule: left
    out)."""
    if isinstance(node, RMacro):
        if (id(node), want) in seen:
            return
        seen.add((id(node), want))
        if want:
            yield node
        yield from _required(node.child, want, seen)
    elif isinstance(node, ast.Not):
        yield from _required(node.child, not want, seen)
    elif isinstance(node, ast.And if want else ast.Or):
        for c in node.children:
            yield from _required(c, want, seen)
    elif want and isinstance(node, (RCheck, ast.Or)):
        yield node


def _needs(node: RNode, want: bool, memo: dict[tuple[int, bool], dict[int, _Need]]
           ) -> dict[int, _Need]:
    """What ``node`` being ``want`` needs of fields' values, by reader id: at most one need
    per field, each one that must hold (a rule's other needs on a field stay in its
    condition).  Through ``and`` (the first need inside a set wins), ``not`` and macros; an
    ``or`` needs a value inside the union of its branches' sets when each branch needs a
    value of that field inside a set (``proc.name = sudo or proc.name = sudoedit``)."""
    if isinstance(node, RCheck):
        need = _need(node, want)
        return {} if need is None else {id(node.field.read): need}
    if isinstance(node, RMacro):
        key = (id(node), want)
        got = memo.get(key)
        if got is None:
            got = memo[key] = _needs(node.child, want, memo)
        return got
    if isinstance(node, ast.Not):
        return _needs(node.child, not want, memo)
    if not isinstance(node, (ast.And, ast.Or)):
        return {}
    kids = [_needs(c, want, memo) for c in node.children]
    if isinstance(node, ast.And if want else ast.Or):     # every child must be ``want``
        out: dict[int, _Need] = {}
        for k in kids:
            for reader, need in k.items():
                if reader not in out or (need.inside and not out[reader].inside):
                    out[reader] = need
        return out
    out = {}                                              # one child at least
    for reader, need in kids[0].items():
        alts = [k.get(reader) for k in kids]
        if all(a is not None and a.inside for a in alts):
            out[reader] = _Need(frozenset().union(*(a.values for a in alts)), True,
                                any(a.at_none for a in alts))
    return out


def _alternatives(node: ast.Or, memo: dict[tuple[int, bool], dict[int, _Need]]
                  ) -> dict[int, tuple[BoundField, _Need]] | None:
    """For an ``or`` each branch of which needs a value of some field inside a set, on two
    fields or more: per field (by reader id), the union of its branches' sets.  None when a
    branch needs no such value, or when they are all on one field (:func:`_needs` has it)."""
    out: dict[int, tuple[BoundField, _Need]] = {}
    for child in node.children:
        inside = [(r, n) for r, n in _needs(child, True, memo).items() if n.inside]
        if not inside:
            return None
        reader, need = min(inside, key=lambda rn: len(rn[1].values))
        got = out.get(reader)
        if got is not None:
            need = _Need(got[1].values | need.values, True, got[1].at_none or need.at_none)
        out[reader] = (got[0] if got is not None else _field_of(child, reader), need)
    return out if len(out) > 1 else None


def _any_index(key: tuple[int, ...], by_rule: dict[int, dict[int, tuple[BoundField, _Need]]],
               everyone: int) -> AnyIndex:
    tables: list[dict[Any, int]] = [{} for _ in key]
    fields: list[BoundField] = [None] * len(key)   # type: ignore[list-item]
    group = 0
    for j, alts in by_rule.items():
        bit = 1 << j
        group |= bit
        for i, reader in enumerate(key):
            bf, need = alts[reader]
            fields[i] = bf
            for x in need.values:
                tables[i][x] = tables[i].get(x, 0) | bit
            if need.at_none:
                tables[i][None] = tables[i].get(None, 0) | bit
    return AnyIndex(fields, tables, everyone & ~group)


def _field_of(node: RNode, reader: int) -> BoundField:
    """The bound field of ``node`` whose reader has id ``reader``."""
    return next(c.field for c in iter_checks(node) if id(c.field.read) == reader)


def _need(check: RCheck, want: bool) -> _Need | None:
    """The need on its field's value of ``check`` being ``want``, when a dict lookup decides
    it exactly as the generated test does; else None."""
    op = OPERATORS.get(check.op)
    if op is None or check.rhs is not None or check.field.many \
            or check.field.name == "evt.rawarg" or check.types is not None \
            or not op.inline_if(check.field.type, check.const):
        return None
    if op.inline == "{v} in {k}" and isinstance(check.const, frozenset):
        values, equal = check.const, True
    elif op.inline in ("{v} == {k}", "{v} != {k}"):
        values, equal = frozenset((check.const,)), op.inline == "{v} == {k}"
    else:
        return None
    if not all(isinstance(x, _SCALARS) and not isinstance(x, float) for x in values):
        return None
    # true: ``v is not None and v in values`` (or ``not in`` for !=); false: its negation
    return _Need(values, equal == want, not want)


def _index(bf: BoundField, by_rule: dict[int, _Need], everyone: int) -> ValueIndex:
    inside_any = 0                  # rules that need the value inside their set
    at_none = 0                     # rules a missing value allows
    allows: dict[Any, int] = {}     # value -> rules whose need that value flips
    for j, need in by_rule.items():
        bit = 1 << j
        if need.inside:
            inside_any |= bit
        if need.at_none:
            at_none |= bit
        for x in need.values:
            allows[x] = allows.get(x, 0) | bit
    constrained = 0
    for j in by_rule:
        constrained |= 1 << j
    free = everyone & ~constrained
    outside = constrained & ~inside_any     # rules any unlisted value allows
    # a listed value allows the rules that need it inside, and the "not inside" rules it
    # is not listed for: outside ^ (the "not inside" rules listing it)
    masks = {x: free | (outside & ~flips) | (inside_any & flips) for x, flips in allows.items()}
    masks[None] = free | at_none
    return ValueIndex(bf, masks, free | outside, len(by_rule))


def _indexed(node: RNode, indexed: set[int]) -> bool:
    """Whether ``node`` is one check on an indexed field (the index already decides it)."""
    while isinstance(node, RMacro):
        node = node.child
    return isinstance(node, RCheck) and id(node.field.read) in indexed \
        and _need(node, True) is not None


class Shapes:
    """Conditions' parts by shape: two parts written the same way (the same checks of the
    same fields with equal constants, in the same ``and``/``or``/``not``, macros looked
    through) have the same number, so that they are evaluated once per event."""

    def __init__(self) -> None:
        self._ids: dict[Any, int] = {}
        self._memo: dict[int, int] = {}      # id(node) -> shape
        self._keep: list[RNode] = []         # ids stay unique while we hold the nodes

    def known(self, node: RNode) -> int | None:
        return self._memo.get(id(node))

    def of(self, node: RNode) -> int:
        got = self._memo.get(id(node))
        if got is not None:
            return got
        if isinstance(node, RCheck):
            key: Any = ("check", id(node.field.read), node.op, _constant(node.const),
                        None if node.rhs is None else id(node.rhs.read), node.types,
                        node.negate_types)
        elif isinstance(node, RMacro):       # a macro is its body
            got = self._memo[id(node)] = self.of(node.child)
            self._keep.append(node)
            return got
        elif isinstance(node, ast.Not):
            key = ("not", self.of(node.child))
        elif isinstance(node, (ast.And, ast.Or)):
            key = (type(node).__name__, tuple(self.of(c) for c in node.children))
        else:
            key = ("const", repr(node))
        got = self._ids.setdefault(key, len(self._ids))
        self._memo[id(node)] = got
        self._keep.append(node)
        return got


def _constant(const: Any) -> Any:
    """A check's constant as a key: itself when it hashes (text, numbers, sets of them),
    else its identity (a compiled pattern is only ever equal to itself)."""
    try:
        hash(const)
    except TypeError:
        return ("id", id(const))
    return (type(const).__name__, const)
