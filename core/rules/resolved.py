"""Resolved conditions: what the compiler binds a syntax tree to, before code generation.

A :class:`RCheck` is one comparison with its field bound to a reader and its constant
converted; an :class:`RMacro` is a macro's resolved body, one object shared by every rule
that names the macro (so generated code can evaluate it once per event).  :class:`Origin`
remembers the text a node came from and where that text sits in its file, for located errors.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import Location, RuleError
from ..fields import FieldDef, FieldType
from . import ast
from .lexer import located_error

# ---------------------------------------------------------------------------------------------
# Where a piece of condition text came from, for located errors
# ---------------------------------------------------------------------------------------------

@dataclass
class Origin:
    """The text of a rule's or macro's condition and where it sits in its file."""

    text: str
    location: Location | None = None

    def error(self, pos: int, message: str) -> RuleError:
        return located_error(self.text, pos, message, self.location)


@dataclass
class MacroDef:
    """A macro as loaded.  ``index`` is when it was first defined and ``visibility`` when it
    was last defined, appended to or overridden (a count of the items read so far, as in
    Falco's loader): it may use the macros whose ``index`` is below its ``visibility``.  None
    for both: every macro is visible (a condition compiled on its own)."""

    name: str
    node: ast.Node
    origin: Origin
    used: bool = False
    index: int | None = None
    visibility: int | None = None


# ---------------------------------------------------------------------------------------------
# Resolved nodes
# ---------------------------------------------------------------------------------------------

@dataclass(eq=False)
class BoundField:
    key: str                   # the field as written, transformers included
    read: Callable[[Any], Any]
    many: bool
    type: FieldType
    name: str                  # the declared field's name (a call's text: join(...))
    reads: tuple[FieldDef, ...] = ()  # the declared fields it reads (a call's arguments' too)


@dataclass(eq=False)
class RCheck:
    field: BoundField
    op: str
    const: Any = None          # converted constant (a frozenset for list operators)
    rhs: BoundField | None = None
    pred: Callable[[Any], bool] | None = None    # single-value predicate (helpers)
    types: frozenset[str] | None = None          # evt.type check: the names
    negate_types: bool = False                   # evt.type != x
    many_pred: Callable[[Any], bool] | None = None   # over all values of a multi-valued field


@dataclass(eq=False)
class RMacro:
    name: str
    child: Any


RNode = Any  # RCheck | RMacro | ast.And | ast.Or | ast.Not | ast.Const


def iter_checks(node: RNode, seen: set[int] | None = None) -> Iterator[RCheck]:
    """Every check of a resolved condition; a macro met again (``id`` in ``seen``, shared
    across calls when given) is not walked twice."""
    seen = set() if seen is None else seen
    if isinstance(node, RCheck):
        yield node
    elif isinstance(node, RMacro):
        if id(node) not in seen:
            seen.add(id(node))
            yield from iter_checks(node.child, seen)
    elif isinstance(node, ast.Not):
        yield from iter_checks(node.child, seen)
    elif isinstance(node, (ast.And, ast.Or)):
        for c in node.children:
            yield from iter_checks(c, seen)


def inlined_size(node: RNode, memo: dict[int, int]) -> int:
    """Nodes of a resolved condition with every macro inlined where it is used, as the
    generated code has them; a macro's size is computed once (``memo``, by ``id``)."""
    if isinstance(node, RMacro):
        got = memo.get(id(node))
        if got is None:
            got = memo[id(node)] = inlined_size(node.child, memo)
        return got
    if isinstance(node, ast.Not):
        return 1 + inlined_size(node.child, memo)
    if isinstance(node, (ast.And, ast.Or)):
        return 1 + sum(inlined_size(c, memo) for c in node.children)
    return 1
