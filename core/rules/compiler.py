"""Compile conditions once, at load time: resolve, fold by event type, generate code.

1. **Resolve** (:class:`Compiler`): macros are inlined (each resolved once and shared, so its
   value can be cached per event), list names inside ``(...)`` are expanded, every field is
   bound to its reader (:class:`~syswarden.core.fields.Bound`) and every constant converted to
   the field's type.  An unknown field or macro, a number compared to a word, an operator the
   type does not support: a :class:`RuleError` with the column and a caret.
2. **Fold by event type** (:mod:`.typesets`): every ``evt.type`` check decided per type.
3. **Generate** (:mod:`.codegen`): one Python function per event type.

Semantics are Falco's (:mod:`.operators`): a field that cannot be read (None) makes its
comparison false, ``!=`` included.  :func:`compile_condition` does all three for one condition.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import Location, RuleError
from ..fields import ArgKind, Bound, FieldDef, FieldRegistry, FieldType
from ..syscalls import KNOWN_EVENT_TYPES
from . import ast, calls
from .codegen import Namespace, compile_node
from .lexer import TRANSFORMERS, Lexer
from .limits import (MAX_CONDITION_NODES, MAX_LIST_ITEMS, MAX_MACRO_DEPTH, MAX_TOTAL_LIST_ITEMS,
                     MAX_TOTAL_NODES, over)
from .lists import flatten_lists
from .operators import (MODIFIERS, OPERATORS, ConstError, Kind, NotANumber, Operator,
                        TRANSFORMS, apply_transform, type_kind)
from .parser import parse, parse_operand
from .resolved import BoundField, MacroDef, Origin, RCheck, RMacro, RNode, inlined_size

__all__ = ["Compiler", "MacroDef", "Namespace", "Origin", "compile_condition", "expand_lists"]

_SMALLER = "a macro used several times is copied where each use is: use fewer, smaller ones"


# ---------------------------------------------------------------------------------------------
# Resolution
# ---------------------------------------------------------------------------------------------

class Compiler:
    """Resolves conditions against the field registry, the lists and the macros.

    ``lists`` maps a list name to its (already expanded) items; ``macros`` a macro name to its
    :class:`MacroDef`.  ``warnings`` collects located :class:`RuleError` warnings (unknown event
    types).
    """

    def __init__(self, fields: FieldRegistry, lists: dict[str, list[str]] | None = None,
                 macros: dict[str, MacroDef] | None = None) -> None:
        self.fields = fields
        self.lists = lists or {}
        self.macros = macros or {}
        self.warnings: list[RuleError] = []
        self._macro_cache: dict[str, RMacro] = {}
        self._resolving: list[str] = []
        self._bound: dict[str, BoundField] = {}
        self.used_lists: set[str] = set()
        self._list_consts: dict[tuple, tuple[list[tuple[str, int]], Any, Callable]] = {}
        self._list_items = 0
        self._sizes: dict[int, int] = {}      # inlined size of each resolved macro, by id
        self._nodes = 0                       # inlined size of every rule checked so far

    # -- entry points -------------------------------------------------------------------------

    def resolve_text(self, text: str, origin: Origin) -> RNode:
        return self.resolve(parse(text, origin.location), origin)

    def resolve(self, node: ast.Node, origin: Origin) -> RNode:
        if isinstance(node, ast.And):
            return ast.And(tuple(self.resolve(c, origin) for c in node.children), node.pos)
        if isinstance(node, ast.Or):
            return ast.Or(tuple(self.resolve(c, origin) for c in node.children), node.pos)
        if isinstance(node, ast.Not):
            return ast.Not(self.resolve(node.child, origin), node.pos)
        if isinstance(node, ast.Const):
            return node
        if isinstance(node, ast.MacroRef):
            return self._macro(node, origin)
        if isinstance(node, ast.Check):
            return self._check(node, origin)
        raise TypeError(node)  # pragma: no cover

    def _macro(self, ref: ast.MacroRef, origin: Origin) -> RNode:
        if self._resolving:
            self._check_visible(ref, origin)
        cached = self._macro_cache.get(ref.name)
        if cached is not None:
            return cached
        mdef = self.macros.get(ref.name)
        if mdef is None:
            if ref.name in self.lists:
                raise origin.error(ref.pos, f"'{ref.name}' is a list, not a macro; use it "
                                            f"after an operator: field in ({ref.name})")
            raise origin.error(ref.pos, f"undefined macro '{ref.name}'")
        if ref.name in self._resolving:
            chain = " -> ".join(self._resolving[self._resolving.index(ref.name):] + [ref.name])
            raise origin.error(ref.pos, f"macro '{ref.name}' refers to itself ({chain})")
        if len(self._resolving) >= MAX_MACRO_DEPTH:
            chain = " -> ".join(self._resolving[-3:] + [ref.name])
            raise origin.error(ref.pos, f"macros nested more than {MAX_MACRO_DEPTH} deep "
                                        f"(... {chain})")
        self._resolving.append(ref.name)
        try:
            child = self.resolve(mdef.node, mdef.origin)
        finally:
            self._resolving.pop()
        mdef.used = True
        rm = RMacro(ref.name, child)
        size = inlined_size(rm, self._sizes)
        if size > MAX_CONDITION_NODES:
            raise RuleError(over(f"macro '{ref.name}' expands (the macros it uses inlined) "
                                 "to", size, MAX_CONDITION_NODES, "nodes"),
                            mdef.origin.location, hint=_SMALLER)
        self._macro_cache[ref.name] = rm
        return rm

    def _check_visible(self, ref: ast.MacroRef, origin: Origin) -> None:
        """A macro uses only the macros defined before it (Falco's visibility order): one
        defined later is an undefined macro there."""
        user = self.macros[self._resolving[-1]]
        used = self.macros.get(ref.name)
        if used is None or user.visibility is None or used.index is None or \
                ref.name == user.name:
            return
        if used.index >= user.visibility:
            raise origin.error(ref.pos, f"undefined macro '{ref.name}': macro '{user.name}' "
                                        "can use only the macros defined before it")

    def check_size(self, node: RNode, what: str, location: Location | None) -> None:
        """Refuse a rule's resolved condition that, macros inlined, has over
        :data:`~.limits.MAX_CONDITION_NODES` nodes, or brings every rule's together over
        :data:`~.limits.MAX_TOTAL_NODES`."""
        size = inlined_size(node, self._sizes)
        if size > MAX_CONDITION_NODES:
            raise RuleError(over(f"the condition of {what} expands (its macros inlined) to",
                                 size, MAX_CONDITION_NODES, "nodes"), location, hint=_SMALLER)
        if self._nodes + size > MAX_TOTAL_NODES:
            raise RuleError(over(f"the conditions of the rules up to {what} expand (their "
                                 "macros inlined) to", self._nodes + size, MAX_TOTAL_NODES,
                                 "nodes in all"), location, hint=_SMALLER)
        self._nodes += size

    def bind_field(self, ref: ast.FieldRef, origin: Origin) -> BoundField:
        key = ref.text()
        got = self._bound.get(key)
        if got is not None:
            return got
        if ref.call is not None:
            read, many, reads = self._bind_call(ref, origin)
            ftype, name = calls.RESULT_TYPE, ref.call.text()
        else:
            fdef, arg = self.lookup(ref, origin)
            try:
                bound = fdef.bind(arg)
            except (ValueError, TypeError, KeyError) as exc:
                raise origin.error(ref.pos, f"bad argument for field {fdef.name}: "
                                            f"{exc}") from None
            if not isinstance(bound, Bound):
                bound = Bound(bound)
            read, many, ftype, name = bound.read, bound.many, fdef.type, fdef.name
            reads = (fdef,)
            if ref.transformers and name == "evt.rawarg":
                raise origin.error(ref.pos, "evt.rawarg, of no fixed type, takes no "
                                            "transformer")
        for t in reversed(ref.transformers):
            transform = TRANSFORMS[t]
            if transform.text_only and not (ftype.is_string or ftype is FieldType.BYTEBUF):
                raise origin.error(ref.pos, f"{t}() needs a string field, {name} is "
                                            f"{ftype.value}")
            read, many = apply_transform(read, many, t)
            ftype = transform.result or ftype
        bf = BoundField(key, read, many, ftype, name, reads)
        self._bound[key] = bf
        return bf

    def _bind_call(self, ref: ast.FieldRef, origin: Origin
                   ) -> tuple[Callable, bool, tuple[FieldDef, ...]]:
        """``join(...)``, ``concat(...)``, ``getopt(...)``: its arguments bound, its reader,
        and the declared fields it reads."""
        assert ref.call is not None
        build, keyed = calls.CALLS[ref.call.name]
        if ref.arg is not None and not keyed:
            raise origin.error(ref.pos, f"{ref.call.name}() takes no argument in brackets")
        args = [self._call_arg(a, origin) for a in ref.call.args]
        reads = tuple(dict.fromkeys(
            d for f in ref.plain_fields() for d in self.bind_field(f, origin).reads))
        try:
            return (*build(args, ref.arg), reads)
        except calls.CallError as exc:
            raise origin.error(ref.pos, str(exc)) from None

    def _call_arg(self, a: ast.FieldRef | ast.Literal | ast.ArgList, origin: Origin
                  ) -> calls.Arg:
        if isinstance(a, ast.Literal):
            value = a.value
            return calls.Arg(lambda e: value, False, True)
        if isinstance(a, ast.FieldRef):
            bf = self.bind_field(a, origin)
            return calls.Arg(bf.read, bf.many, bf.type.is_string)
        items = [self._call_arg(x, origin) for x in a.items]

        def read_list(e: Any) -> tuple | None:
            out: list[Any] = []
            for item in items:
                v = item.read(e)
                if v is None:
                    return None
                if item.many:
                    out.extend(v)
                else:
                    out.append(v)
            return tuple(out)
        return calls.Arg(read_list, True, all(x.text for x in items))

    def lookup(self, ref: ast.FieldRef, origin: Origin) -> tuple[FieldDef, Any]:
        """The declared field and its argument: ``evt.arg.flags`` is ``evt.arg`` + ``flags``."""
        name, arg = ref.name, ref.arg
        fdef = self.fields.get(name)
        if fdef is None:
            parts = name.split(".")
            for cut in range(len(parts) - 1, 1, -1):
                prefix = ".".join(parts[:cut])
                cand = self.fields.get(prefix)
                if cand is not None and cand.arg in (ArgKind.KEY, ArgKind.KEY_OPTIONAL,
                                                     ArgKind.INDEX_OR_KEY) and arg is None:
                    fdef, arg = cand, ".".join(parts[cut:])
                    break
        if fdef is None:
            raise origin.error(ref.pos, f"unknown field '{name}'")
        kind = fdef.arg
        if arg is None:
            if kind in (ArgKind.INDEX, ArgKind.KEY):
                raise origin.error(ref.pos, f"field {fdef.name} needs an argument "
                                            f"({fdef.name}{fdef.arg_hint or '[...]'})")
            return fdef, None
        if kind is ArgKind.NONE:
            raise origin.error(ref.pos, f"field {fdef.name} takes no argument")
        if kind in (ArgKind.INDEX, ArgKind.INDEX_OPTIONAL):
            try:
                return fdef, int(arg)
            except ValueError:
                raise origin.error(ref.pos, f"field {fdef.name} needs a number in brackets, "
                                            f"not '{arg}'") from None
        if kind is ArgKind.INDEX_OR_KEY and arg.isdigit():
            return fdef, int(arg)
        return fdef, arg

    # -- checks -------------------------------------------------------------------------------

    def _check(self, node: ast.Check, origin: Origin) -> RNode:
        ref = node.field
        bf = self.bind_field(ref, origin)
        operator = OPERATORS[node.op]
        op = operator.name
        ftype = bf.type
        # evt.dir: one exit event stands for both directions (see core/evt_fields.py)
        if bf.name == "evt.dir" and not ref.transformers and isinstance(node.value, ast.Literal):
            if node.value.value in ("<", ">"):
                return ast.Const(op == "=", node.pos)
        value = node.value
        if operator.kind is Kind.UNARY:
            self._check_type(operator, ftype, ref, origin, node.pos)
            return RCheck(bf, op, pred=operator.pred(None, ftype))
        if isinstance(value, ast.FieldValue):
            if operator.pair is None:
                raise origin.error(value.pos, f"val() cannot be used with '{op}'")
            rhs = self.bind_field(value.field, origin)
            self._check_type(operator, ftype, ref, origin, node.pos)
            if FieldType.IPNET in (ftype, rhs.type):
                net = bf.key if ftype is FieldType.IPNET else rhs.key
                raise origin.error(value.pos, f"val() cannot be used with a network field "
                                              f"({net})")
            if type_kind(ftype) != type_kind(rhs.type):
                raise origin.error(value.pos, f"cannot compare {bf.key} ({ftype.value}) with "
                                              f"{rhs.key} ({rhs.type.value})")
            return RCheck(bf, op, rhs=rhs, pred=operator.pair)
        self._check_type(operator, ftype, ref, origin, node.pos)
        if node.mod is not None:
            assert isinstance(value, ast.ListLit)
            items = self._expand(value, origin, dedup=False)
            consts = tuple(self._convert(v, operator, p, origin, bf) for v, p in items)
            pred = MODIFIERS[node.mod](tuple(operator.pred(c, ftype) for c in consts))
            return RCheck(bf, f"{op} {node.mod}", consts, pred=pred)
        if operator.kind is Kind.LIST:
            assert isinstance(value, ast.ListLit)
            items, const, pred = self._list_const(value, operator, bf, origin)
            rc = RCheck(bf, op, const, pred=pred)
        else:
            assert isinstance(value, ast.Literal)
            value = self._substitute(value, origin)
            items = [(value.value, value.pos)]
            const = self._convert(value.value, operator, value.pos, origin, bf)
            rc = RCheck(bf, op, const, pred=operator.pred(const, ftype))
        if bf.name == "evt.type" and not ref.transformers and operator.event_types:
            self._note_types(items, origin)
            rc.types = frozenset(const) if operator.kind is Kind.LIST else frozenset([const])
            rc.negate_types = operator.event_types == "not in"
        return rc

    def _substitute(self, value: ast.Literal, origin: Origin) -> ast.Literal:
        """A bare value naming a list, where one value stands: Falco substitutes list names
        as text wherever they appear, so a list of one item is that item; any other is an
        error (Falco's condition would not parse)."""
        if value.quoted or value.value not in self.lists:
            return value
        items = self.lists[value.value]
        self.used_lists.add(value.value)
        if len(items) != 1:
            raise origin.error(value.pos, f"'{value.value}' is a list of {len(items)} items: "
                                          "a list stands after a list operator (in, "
                                          "intersects, pmatch)")
        return ast.Literal(_unquote(items[0]), value.pos, True)

    def _value_warnings(self, text: str, operator: Operator, pos: int, origin: Origin) -> None:
        """libsinsp's warnings on a constant: a regex that a simpler operator would do, a
        field name or a transformer call written as a value (``val()`` forgotten)."""
        if operator.name == "regex" and _plain_regex(text):
            self.warnings.append(origin.error(pos, f"regex check with '{text}' may be "
                                                   "optimized with simpler operators such as "
                                                   "'=', 'contains', 'startswith', 'endswith'"))
        bare = "".join(text.split())
        if "." in bare and bare[:1].isalpha():
            try:
                ref, end = parse_operand(bare)
                if end == len(bare) and ref.call is None and not ref.transformers:
                    self.lookup(ref, Origin(bare))
                    self.warnings.append(origin.error(
                        pos, f"'{text}' may be a valid field misused as a const string value"))
            except RuleError:
                pass
        for t in TRANSFORMERS:
            if bare.startswith(t + "(") and bare.endswith(")"):
                self.warnings.append(origin.error(
                    pos, f"'{text}' may be a valid field transformer misused as a const "
                         "string value"))

    def _check_type(self, operator: Operator, ftype: FieldType, ref: ast.FieldRef,
                    origin: Origin, pos: int) -> None:
        if ftype not in operator.types:
            raise origin.error(pos, operator.type_error.format(
                op=operator.name, field=ref.text(), type=ftype.value))

    def _expand(self, value: ast.ListLit, origin: Origin, dedup: bool = True
                ) -> list[tuple[str, int]]:
        """The items of ``(...)``, lists substituted, each once (with the position of its
        first mention) unless not ``dedup`` (a modifier counts items); over
        :data:`~.limits.MAX_LIST_ITEMS` is an error at the item."""
        out: dict[str, int] = {}
        every: list[tuple[str, int]] = []
        size = 0
        for item in value.items:
            if not item.quoted and item.value in self.lists:
                self.used_lists.add(item.value)
                items = self.lists[item.value]
                size += len(items)
                if size > MAX_LIST_ITEMS:
                    raise origin.error(item.pos, over(f"this list, with '{item.value}' "
                                                      "substituted, has", size,
                                                      MAX_LIST_ITEMS, "items"))
                for v in items:
                    out.setdefault(_unquote(v), item.pos)
                    every.append((_unquote(v), item.pos))
            else:
                size += 1
                out.setdefault(item.value, item.pos)
                every.append((item.value, item.pos))
        return list(out.items()) if dedup else every

    def _list_const(self, value: ast.ListLit, operator: Operator, bf: BoundField,
                    origin: Origin) -> tuple[list[tuple[str, int]], Any, Callable[[Any], bool]]:
        """(items, converted constant, predicate) of ``field op (...)``: built once per list
        text, operator and field type, shared by every check that writes the same list (a big
        list named by many rules is converted once).  ``evt.type`` lists are not shared: their
        items' positions locate the warnings about unknown event types."""
        key = (operator.name, bf.type, bf.name,
               tuple((i.value, i.quoted) for i in value.items))
        got = None if bf.name == "evt.type" else self._list_consts.get(key)
        if got is not None:
            return got
        items = self._expand(value, origin)
        self._list_items += len(items)
        if self._list_items > MAX_TOTAL_LIST_ITEMS:
            raise origin.error(value.pos, over("the lists of the conditions so far have",
                                               self._list_items, MAX_TOTAL_LIST_ITEMS,
                                               "items in all"))
        const = operator.gather([self._convert(v, operator, p, origin, bf) for v, p in items],
                                bf.type)
        got = (items, const, operator.pred(const, bf.type))
        self._list_consts[key] = got
        return got

    def _note_types(self, items: list[tuple[str, int]], origin: Origin) -> None:
        for name, pos in items:
            if name not in KNOWN_EVENT_TYPES:
                self.warnings.append(origin.error(pos, f"unknown event type '{name}'"))

    def _convert(self, text: str, operator: Operator, pos: int, origin: Origin,
                 bf: BoundField) -> Any:
        """One value's text as ``operator``'s constant for the field (a located error when
        it cannot be one); ``evt.rawarg``, of no fixed type, keeps a word as text."""
        self._value_warnings(text, operator, pos, origin)
        if "\x00" in text and bf.type is not FieldType.BYTEBUF:
            raise origin.error(pos, f"a NUL byte cannot be in a value compared with {bf.key} "
                                    "(only a byte buffer holds one)")
        try:
            return operator.const(text, bf.type, bf.key)
        except NotANumber as exc:
            if bf.name == "evt.rawarg":
                return text
            raise origin.error(pos, str(exc)) from None
        except ConstError as exc:
            raise origin.error(pos, str(exc)) from None


_REGEX_SPECIAL = set(".+*?^$()[]{}|\\")


def _plain_regex(v: str) -> bool:
    """A regex whose only special characters are the anchors and a leading or trailing
    ``.*``/``.+``/``.?``: it could be ``=``, ``contains``, ``startswith`` or ``endswith``
    (libsinsp's heuristic)."""
    n, i = len(v), 0
    while i < n:
        c = v[i]
        if (i == 0 and c == "^") or (i == n - 1 and c == "$"):
            i += 1
            continue
        if ((i == 0 and n > 1) or i == n - 2) and c == "." and v[i + 1:i + 2] in ("+", "*", "?"):
            i += 2
            continue
        if c in _REGEX_SPECIAL:
            return False
        i += 1
    return True


def _unquote(item: str) -> str:
    """A list item as the condition would read it: ``'"a b"'`` is the value ``a b``.

    Falco substitutes list items into the condition text, so quotes inside an item quote.
    """
    if len(item) >= 2 and item[0] == item[-1] and item[0] in "\"'":
        lx = Lexer(item)
        try:
            value = lx._quoted()
        except RuleError:
            return item
        if lx.pos == len(item):
            return value
    return item


def expand_lists(lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """Lists with the names of other lists among their items replaced by those items.

    Raises the first :class:`RuleError` of a list refused by :func:`.lists.flatten_lists`.
    """
    out, errors = flatten_lists(lists)
    if errors:
        raise errors[0]
    return out


def compile_condition(text: str, fields: FieldRegistry, lists: dict[str, list[str]] | None = None,
                      macros: dict[str, str] | None = None) -> Callable[[Any], bool]:
    """Compile one condition (with optional list and macro texts) to ``evt -> bool``.

    Raises :class:`RuleError` on any syntax or type error.
    """
    mdefs: dict[str, MacroDef] = {}
    for name, mtext in (macros or {}).items():
        origin = Origin(mtext, Location(item=f"macro '{name}'"))
        mdefs[name] = MacroDef(name, parse(mtext, origin.location), origin)
    comp = Compiler(fields, expand_lists({k: list(v) for k, v in (lists or {}).items()}), mdefs)
    origin = Origin(text)
    try:
        node = comp.resolve(parse(text), origin)
    except RecursionError:
        raise RuleError("condition too deeply nested") from None
    comp.check_size(node, "the condition", None)
    return compile_node(node)
