"""Generate one Python function per event type from the resolved, folded rule conditions.

The function evaluates, in rule order, every rule indexed under its type and returns the first
match (or every match).  Each field is read at most once per event: up front when many checks
name it, else into a local on first use; a macro shared by several rules is evaluated at most
once; ``and``/``or`` short-circuit as Python's do.  Readers, constants and predicates are the
function's globals, bound at load time: the hot path does no lookups.

With many rules (:data:`.narrow.NARROW_MIN`), the function narrows them first: value indexes
give the mask of the rules still possible, a binary tree of mask tests leads to those, and a
part several rules share is evaluated once, dropping them all when it fails (:mod:`.narrow`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import RuleError
from . import ast
from .narrow import Narrowing, Shapes, narrowing
from .operators import OPERATORS, any_element, any_pair_of
from .resolved import BoundField, RCheck, RMacro, RNode, inlined_size, iter_checks

_U = object()  # an unfilled per-event cache slot

#: a field the first test of this many rules reads is read up front, once per event
EAGER_USES = 2
#: put a rule's set-membership tests on up-front fields before its other checks
REORDER = True
#: rules per leaf of a narrowed function's tree of mask tests
LEAF = 4
#: a part this many rules share is tested before the tree, others by their first rule
UPFRONT = 8


# ---------------------------------------------------------------------------------------------
# Code generation
# ---------------------------------------------------------------------------------------------

class Namespace:
    """The globals of generated code: readers, constants and helpers, by generated name."""

    def __init__(self) -> None:
        self.globals: dict[str, Any] = {"_U": _U}
        self._names: dict[int, str] = {}
        self._keep: list[Any] = []

    def name(self, obj: Any, prefix: str) -> str:
        key = id(obj)
        got = self._names.get(key)
        if got is None:
            got = f"{prefix}{len(self._names)}"
            self._names[key] = got
            self.globals[got] = obj
            self._keep.append(obj)   # ids stay unique while we hold the objects
        return got


class _Gen:
    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.field_uses: dict[int, int] = {}
        self.macro_uses: dict[int, int] = {}
        self.field_var: dict[int, str] = {}
        self.eager: dict[int, str] = {}
        self.first_uses: dict[int, int] = {}
        self.macro_var: dict[int, str] = {}
        self.fields_by_id: dict[int, BoundField] = {}
        self.forced: set[int] = set()
        self.shapes: Shapes | None = None     # a narrowed function's parts, by shape
        self.shape_var: dict[int, str] = {}   # shape -> its per-event cache local

    def count(self, node: RNode) -> None:
        # fields are cached by reader: two names read by one function share one local
        if isinstance(node, RCheck):
            for bf in (node.field, node.rhs):
                if bf is not None:
                    key = id(bf.read)
                    self.field_uses[key] = self.field_uses.get(key, 0) + 1
                    self.fields_by_id[key] = bf
        elif isinstance(node, RMacro):
            n = self.macro_uses.get(id(node), 0)
            self.macro_uses[id(node)] = n + 1
            if n == 0:
                self.count(node.child)
        elif isinstance(node, ast.Not):
            self.count(node.child)
        elif isinstance(node, (ast.And, ast.Or)):
            for c in node.children:
                self.count(c)

    def count_first(self, node: RNode) -> None:
        """Count the fields a rule's first test reads: those every event of the type needs."""
        while isinstance(node, (ast.And, RMacro, ast.Not)) or (
                isinstance(node, ast.Or) and len(node.children) == 1):
            node = node.child if isinstance(node, (RMacro, ast.Not)) else node.children[0]
        fields: set[int] = set()
        _fields_of(node, fields)
        for fid in fields:
            self.first_uses[fid] = self.first_uses.get(fid, 0) + 1

    def plan(self) -> list[str]:
        """The lines that start the function: eager reads and cache locals.

        A field the first test of :data:`EAGER_USES` rules or more reads is read once, up front
        (every event of the type needs it, and a plain local is the cheapest thing to test);
        one used twice or more is read on first use into a local; others where they are used.
        """
        init = []
        eager = []
        for fid, n in self.field_uses.items():
            # narrowed, only the indexed fields: most rules are dropped before they read
            eager_use = self.shapes is None and self.first_uses.get(fid, 0) >= EAGER_USES
            if eager_use or fid in self.forced:
                var = f"_e{len(self.eager)}"
                self.eager[fid] = var
                r = self.ns.name(self.fields_by_id[fid].read, "_r")
                eager.append(f"{var} = {r}(e)")
            elif n > 1:
                var = f"_f{len(self.field_var)}"
                self.field_var[fid] = var
                init.append(var)
        minit = []
        for mid, n in self.macro_uses.items():
            if n > 1:
                var = f"_m{len(self.macro_var)}"
                self.macro_var[mid] = var
                minit.append(var)
        minit += self.shape_var.values()
        lines = eager
        if init:
            lines.append(" = ".join(init) + " = _U")
        if minit:
            lines.append(" = ".join(minit) + " = None")
        return lines

    def access(self, bf: BoundField, tmp: str) -> tuple[str, str]:
        """(expression reading the field, variable holding it afterwards)."""
        var = self.eager.get(id(bf.read))
        if var is not None:
            return var, var
        r = self.ns.name(bf.read, "_r")
        var = self.field_var.get(id(bf.read))
        if var is None:
            return f"({tmp} := {r}(e))", tmp
        return f"({var} if {var} is not _U else ({var} := {r}(e)))", var

    def cheap_first(self, node: RNode) -> RNode:
        """A rule's top-level ``and`` with its cheapest, most selective checks first.

        A membership or equality test on a field read up front is a local and a set lookup;
        it goes before macros and other checks.  Conditions are pure, so the order of the
        operands of ``and`` does not change the result, only how soon a miss is known.
        """
        if not isinstance(node, ast.And):
            return node

        def cost(c: RNode) -> int:
            if isinstance(c, RCheck) and c.rhs is None and not c.field.many \
                    and id(c.field.read) in self.eager and _cheap(c.op):
                return 0
            return 1
        kids = sorted(node.children, key=cost)
        return ast.And(tuple(kids), node.pos)

    def expr(self, node: RNode) -> str:
        """``node`` as a Python expression; a part shared by the rules (one shape of
        :data:`shape_var`) evaluated at most once per event."""
        shape = self.shapes.known(node) if self.shapes is not None else None
        var = self.shape_var.get(shape) if shape is not None else None
        if var is None:
            return self.bare(node)
        while isinstance(node, RMacro):    # a macro has its body's shape: one cache is enough
            node = node.child
        return f"({var} if {var} is not None else ({var} := {self.bare(node)}))"

    def bare(self, node: RNode) -> str:
        if isinstance(node, ast.Const):
            return "True" if node.value else "False"
        if isinstance(node, ast.Not):
            return f"(not {self.expr(node.child)})"
        if isinstance(node, ast.And):
            return "(" + " and ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, ast.Or):
            return "(" + " or ".join(self.expr(c) for c in node.children) + ")"
        if isinstance(node, RMacro):
            inner = self.expr(node.child)
            var = self.macro_var.get(id(node))
            if var is None:
                return inner
            return f"({var} if {var} is not None else ({var} := {inner}))"
        if isinstance(node, RCheck):
            return self.check(node)
        raise TypeError(node)  # pragma: no cover

    def check(self, c: RCheck) -> str:
        acc, v = self.access(c.field, "_t")
        if c.rhs is not None:
            acc2, w = self.access(c.rhs, "_t2")
            p = self.ns.name(c.pred, "_p")
            if c.field.many or c.rhs.many:
                if c.many_pred is None:
                    c.many_pred = any_pair_of(c.pred, c.field.many, c.rhs.many)
                p = self.ns.name(c.many_pred, "_p")
            return f"({acc} is not None and {acc2} is not None and {p}({v}, {w}))"
        if c.field.many:
            if c.many_pred is None:
                op = OPERATORS.get(c.op)     # None: an operator with a list modifier
                c.many_pred = any_element(c.pred) if op is None else \
                    op.many(c.pred, c.const, c.field.type)
            p = self.ns.name(c.many_pred, "_p")
            return f"({acc} is not None and {p}({v}))"
        test = self.inline(c, v)
        if test == "True":
            return f"({acc} is not None)"
        return f"({acc} is not None and {test})"

    def inline(self, c: RCheck, v: str) -> str:
        """The test of one (non-None) value: the operator's inline form where it applies,
        else a call of the check's predicate.  ``evt.rawarg`` has values of no fixed type:
        always the predicate."""
        op = OPERATORS.get(c.op)
        form = op.inline if op is not None else None
        if form is not None and c.field.name != "evt.rawarg" \
                and op.inline_if(c.field.type, c.const):
            k = self.ns.name(c.const, "_c") if "{k}" in form else ""
            return form.format(v=v, k=k)
        p = self.ns.name(c.pred, "_p")
        return f"{p}({v})"


def _cheap(spelling: str) -> bool:
    op = OPERATORS.get(spelling)
    return op is not None and op.cheap


def _fields_of(node: RNode, out: set[int]) -> None:
    """The readers (by id) the checks of ``node`` call."""
    for check in iter_checks(node):
        out.add(id(check.field.read))
        if check.rhs is not None:
            out.add(id(check.rhs.read))


def _narrowed(gen: _Gen, nar: Narrowing, nodes: list[RNode], tests: list[tuple[int, str]],
              hit: str) -> list[str]:
    """The body of a narrowed function: the mask ``m`` of the rules still possible, from
    the value indexes, then a binary tree of mask tests down to the rules (in order), so
    that a rule left out costs nothing and one left in a few tests.  A rule still possible
    first evaluates the parts it shares with others (each once per event); one that fails
    drops every rule that needs it."""
    lines = []
    m = f"{nar.everyone:#x}"
    for ix in nar.indexes:
        var, _ = gen.access(ix.field, "_t")
        table = gen.ns.name(ix.masks, "_x")
        lines.append(f"m = {m} & {table}.get({var}, {ix.other:#x})")
        m = "m"
    if m != "m":
        lines.append(f"m = {m}")
    for ax in nar.any_indexes:
        looks = []
        for bf, table in zip(ax.fields, ax.tables, strict=True):
            var, _ = gen.access(bf, "_t")
            looks.append(f"{gen.ns.name(table, '_x')}.get({var}, 0)")
        lines.append(f"m &= {' | '.join(looks)} | {ax.keep:#x}")
    parts: list[list[tuple[str, int]]] = [[] for _ in tests]   # per rule: (part, drop)
    # a rule's parts are written again before it: at most its own size more (the code stays
    # within twice the budget the rules were counted against, plus the up-front tests)
    memo: dict[int, int] = {}
    room = [inlined_size(node, memo) for node in nodes]
    for test in nar.tests:
        part = gen.expr(test.node)
        keep = nar.everyone & ~test.mask
        if test.mask.bit_count() >= UPFRONT:
            lines.append(f"if m & {test.mask:#x} and not {part}:")
            lines.append(f"    m &= {keep:#x}")
            continue
        size = inlined_size(test.node, memo)
        for j in range(len(tests)):
            if test.mask >> j & 1 and room[j] >= size:
                room[j] -= size
                parts[j].append((part, keep))

    # rules no index or part can drop: always tried, and a subtree holding one untested
    droppable = 0
    for ix in nar.indexes:
        allowed_by_all = ix.other
        for mask in ix.masks.values():
            allowed_by_all &= mask
        droppable |= nar.everyone & ~allowed_by_all
    for test in nar.tests:
        droppable |= test.mask
    for ax in nar.any_indexes:
        droppable |= nar.everyone & ~ax.keep
    fixed = nar.everyone & ~droppable

    def tree(lo: int, hi: int, indent: str) -> None:
        if hi - lo <= LEAF:
            for j in range(lo, hi):
                idx, cond = tests[j]
                if fixed >> j & 1:
                    lines.append(f"{indent}if {cond}:")
                    lines.append(f"{indent}    " + hit.format(idx))
                    continue
                if not parts[j]:
                    lines.append(f"{indent}if m & {1 << j:#x} and {cond}:")
                    lines.append(f"{indent}    " + hit.format(idx))
                    continue
                # the parts it shares first: one that fails drops every rule sharing it
                lines.append(f"{indent}if m & {1 << j:#x}:")
                word = "if"
                for part, keep in parts[j]:
                    lines.append(f"{indent}    {word} not {part}:")
                    lines.append(f"{indent}        m &= {keep:#x}")
                    word = "elif"
                lines.append(f"{indent}    elif {cond}:")
                lines.append(f"{indent}        " + hit.format(idx))
            return
        mid = (lo + hi) // 2
        for a, b in ((lo, mid), (mid, hi)):
            span = (1 << b) - (1 << a)
            if span & fixed:           # never all dropped: no test
                tree(a, b, indent)
                continue
            lines.append(f"{indent}if m & {span:#x}:")
            tree(a, b, indent + "    ")
    tree(0, len(tests), "")
    return ["    " + line for line in lines]


def build_matcher(rules: list[tuple[int, RNode]], ns: Namespace, mode: str = "first",
                  name: str = "_match", narrow: bool = True
                  ) -> tuple[Callable[[Any], Any], str]:
    """One function over ``rules`` (index, folded condition), in order.

    ``mode="first"`` returns the index of the first rule that matches, or -1; ``"all"``
    returns the list of matching indexes.  ``narrow``: narrow the rules first
    (:mod:`.narrow`) when there are enough of them.  Returns the function and its source.
    """
    gen = _Gen(ns)
    for _, node in rules:
        gen.count(node)
        gen.count_first(node)
    nar = narrowing([node for _, node in rules]) if narrow else None
    if nar is not None:
        gen.shapes = nar.shapes
        for test in nar.tests:        # evaluated once: up front, then by the rules
            gen.shape_var[test.shape] = f"_s{len(gen.shape_var)}"
        looked_up = [ix.field for ix in nar.indexes] + \
            [bf for ax in nar.any_indexes for bf in ax.fields]
        for bf in looked_up:          # read up front, for the lookups
            gen.forced.add(id(bf.read))
            gen.fields_by_id.setdefault(id(bf.read), bf)
            gen.field_uses.setdefault(id(bf.read), 1)
    lines = [f"def {name}(e):"]
    lines += ["    " + line for line in gen.plan()]
    if mode == "all":
        lines.append("    hits = []")
    tests = [(idx, gen.expr(gen.cheap_first(node) if REORDER else node)) for idx, node in rules]
    hit = "return {}" if mode == "first" else "hits.append({})"
    if nar is None:
        for idx, cond in tests:
            lines.append(f"    if {cond}:")
            lines.append("        " + hit.format(idx))
    else:
        lines += _narrowed(gen, nar, [node for _, node in rules], tests, hit)
    lines.append("    return -1" if mode == "first" else "    return hits")
    src = "\n".join(lines) + "\n"
    try:
        code = compile(src, f"<rules:{name}>", "exec")
    except (SyntaxError, RecursionError, MemoryError) as exc:
        raise RuleError(f"a condition is too deeply nested to compile ({exc.__class__.__name__})"
                        ) from None
    local: dict[str, Any] = {}
    exec(code, ns.globals, local)
    return local[name], src


def compile_node(node: RNode, ns: Namespace | None = None) -> Callable[[Any], bool]:
    """One condition as a predicate ``evt -> bool`` (no event-type folding)."""
    ns = ns or Namespace()
    fn, _ = build_matcher([(0, node)], ns, "first", "_cond")
    return lambda e: fn(e) == 0
