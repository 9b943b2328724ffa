"""Falco's event-type inference, and folding a condition for one event type.

:func:`type_sets` gives the set of event types for which a condition *may* be true
(``not evt.type = x`` is all but x; a condition that never restricts the type matches every
type, which Falco warns about).  :func:`fold` decides every ``evt.type`` check for a known
type, so a rule's condition shrinks to what can still vary and a rule that folds to false is
not indexed under that type.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import ast
from .resolved import RCheck, RMacro, RNode, iter_checks

# ---------------------------------------------------------------------------------------------
# Event-type inference and folding
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class TypeSet:
    """A set of event types, or all types but some (``complement``)."""

    names: frozenset[str] = frozenset()
    complement: bool = False

    def union(self, o: TypeSet) -> TypeSet:
        if not self.complement and not o.complement:
            return TypeSet(self.names | o.names)
        if self.complement and o.complement:
            return TypeSet(self.names & o.names, True)
        pos, neg = (self, o) if not self.complement else (o, self)
        return TypeSet(neg.names - pos.names, True)

    def intersect(self, o: TypeSet) -> TypeSet:
        if not self.complement and not o.complement:
            return TypeSet(self.names & o.names)
        if self.complement and o.complement:
            return TypeSet(self.names | o.names, True)
        pos, neg = (self, o) if not self.complement else (o, self)
        return TypeSet(pos.names - neg.names)

    def invert(self) -> TypeSet:
        return TypeSet(self.names, not self.complement)

    def __contains__(self, name: str) -> bool:
        return (name in self.names) != self.complement

    @property
    def is_all(self) -> bool:
        return self.complement and not self.names


ALL = TypeSet(frozenset(), True)
NONE = TypeSet()


def type_sets(node: RNode, memo: dict | None = None) -> tuple[TypeSet, TypeSet]:
    """(types for which ``node`` may be true, types for which it may be false)."""
    if memo is None:
        memo = {}
    if isinstance(node, RCheck):
        if node.types is None:
            return ALL, ALL
        s = TypeSet(node.types)
        if node.negate_types:
            return s.invert(), s
        return s, s.invert()
    if isinstance(node, RMacro):
        got = memo.get(id(node))
        if got is None:
            got = memo[id(node)] = type_sets(node.child, memo)
        return got
    if isinstance(node, ast.Const):
        return (ALL, NONE) if node.value else (NONE, ALL)
    if isinstance(node, ast.Not):
        t, f = type_sets(node.child, memo)
        return f, t
    if isinstance(node, ast.And):
        t, f = ALL, NONE
        for c in node.children:
            ct, cf = type_sets(c, memo)
            t, f = t.intersect(ct), f.union(cf)
        return t, f
    if isinstance(node, ast.Or):
        t, f = NONE, ALL
        for c in node.children:
            ct, cf = type_sets(c, memo)
            t, f = t.union(ct), f.intersect(cf)
        return t, f
    raise TypeError(node)  # pragma: no cover


def mentioned_types(node: RNode, out: set[str] | None = None, seen: set[int] | None = None
                    ) -> set[str]:
    """Every event type an ``evt.type`` check of ``node`` names.

    The index needs one function per such type: ``evt.type = openat or proc.name = cat``
    matches every type, yet folds differently for ``openat`` than for the others.
    """
    out = set() if out is None else out
    for check in iter_checks(node, seen):
        if check.types is not None:
            out |= check.types
    return out


def fold(node: RNode, evt_type: str | None, memo: dict) -> RNode:
    """``node`` with every ``evt.type`` check decided for ``evt_type``, simplified.

    ``evt_type`` None stands for "a type no rule names": every ``evt.type = x`` is then false.
    """
    if isinstance(node, RCheck):
        if node.types is None:
            return node
        hit = evt_type is not None and evt_type in node.types
        return ast.Const(hit != node.negate_types)
    if isinstance(node, RMacro):
        key = id(node)
        got = memo.get(key)
        if got is None:
            child = fold(node.child, evt_type, memo)
            got = child if isinstance(child, ast.Const) else RMacro(node.name, child)
            memo[key] = got
        return got
    if isinstance(node, ast.Const):
        return node
    if isinstance(node, ast.Not):
        c = fold(node.child, evt_type, memo)
        if isinstance(c, ast.Const):
            return ast.Const(not c.value)
        return ast.Not(c, node.pos)
    if isinstance(node, (ast.And, ast.Or)):
        is_and = isinstance(node, ast.And)
        kids = []
        for c in node.children:
            fc = fold(c, evt_type, memo)
            if isinstance(fc, ast.Const):
                if fc.value != is_and:   # false in an and, true in an or: decided
                    return ast.Const(fc.value)
                continue                  # neutral element: drop
            kids.append(fc)
        if not kids:
            return ast.Const(is_and)
        if len(kids) == 1:
            return kids[0]
        return type(node)(tuple(kids), node.pos)
    raise TypeError(node)  # pragma: no cover
