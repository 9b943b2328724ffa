"""Compile condition trees into Python code, once, at load time.

Three steps, all before the first event:

1. **Resolve** (:meth:`Compiler.resolve`): macros are inlined (each macro resolved once and
   shared, so its value can be cached per event), list names inside ``(...)`` are expanded,
   every field is bound to its reader (:class:`~syswarden.core.fields.Bound`) and every constant
   converted to the field's type.  An unknown field or macro, a number compared to a word, an
   operator the type does not support: a :class:`RuleError` with the column and a caret.
2. **Fold by event type** (:func:`fold`): under a known ``evt.type`` every ``evt.type`` check is
   a constant, so a rule's condition shrinks to what can still vary; a rule that folds to false
   for a type is not indexed under it.  :func:`type_sets` is Falco's event-type inference:
   the set of types for which a condition *may* be true (``not evt.type = x`` is all but x;
   a condition that never restricts the type matches every type).
3. **Generate** (:func:`build_matcher`): one Python function per event type evaluating, in rule
   order, every rule indexed under that type.  Each field is read at most once per event
   (a local, filled on first use) and each macro shared by several rules is evaluated at most
   once; ``and``/``or`` short-circuit as Python's do.

Semantics (Falco's): a field that cannot be read (None) makes its comparison false, ``!=``
included; a multi-valued field (``proc.aname``, ``container.mount.dest``) compares true when any
element does; ``glob`` and ``regex`` match the whole value (``*`` stops at ``/``); ``pmatch`` is
a path-prefix match; ``in``/``intersects``/``=`` on an IP field accept CIDR networks.
On a multi-valued field ``!=`` holds when no element equals the value (``fd.net !=
"127.0.0.0/8"``: neither end of the connection is on loopback), like Falco's ``fd.ip``/``fd.net``.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..errors import Location, RuleError
from ..fields import ArgKind, Bound, FieldDef, FieldRegistry, FieldType
from ..syscalls import KNOWN_EVENT_TYPES
from . import ast
from .lexer import LIST_OPS, NUM_OPS, Lexer, located_error
from .parser import parse

_U = object()  # an unfilled per-event cache slot

#: a field named by this many checks of one generated function is read up front
EAGER_USES = 4
#: put a rule's set-membership tests on up-front fields before its other checks
REORDER = True

STRING_OPS = frozenset({"contains", "icontains", "startswith", "endswith", "glob", "iglob",
                        "regex", "bcontains", "bstartswith"})


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
    name: str
    node: ast.Node
    origin: Origin
    used: bool = False


# ---------------------------------------------------------------------------------------------
# Resolved nodes
# ---------------------------------------------------------------------------------------------

@dataclass(eq=False)
class BoundField:
    key: str                   # the field as written, transformers included
    read: Callable[[Any], Any]
    many: bool
    type: FieldType
    name: str                  # the declared field's name


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


# ---------------------------------------------------------------------------------------------
# Operators on single values
# ---------------------------------------------------------------------------------------------

def _glob_regex(pattern: str, icase: bool, prefix: bool = False) -> re.Pattern:
    """A shell glob as a regex: ``*`` and ``?`` do not cross ``/``; ``[...]`` classes."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            j = pattern.find("]", i + 2 if pattern[i + 1:i + 2] in ("!", "^") else i + 1)
            if j < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body[:1] in ("!", "^"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    tail = "(?:/.*)?" if prefix else ""
    return re.compile("".join(out) + tail, re.DOTALL | (re.IGNORECASE if icase else 0))


def _to_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8", "surrogateescape")


def _pmatch_pred(paths: list[str]) -> Callable[[Any], bool]:
    exact: set[str] = set()
    prefixes: list[str] = []
    globs: list[re.Pattern] = []
    for p in paths:
        if any(ch in p for ch in "*?["):
            globs.append(_glob_regex(p.rstrip("/") or "/", False, prefix=True))
        else:
            p = p.rstrip("/") or "/"
            exact.add(p)
            prefixes.append("/" if p == "/" else p + "/")
    prefixes_t = tuple(prefixes)

    def pred(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v in exact or v.startswith(prefixes_t):
            return True
        return any(g.fullmatch(v) for g in globs)
    return pred


_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRS = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _ip_int(v: Any) -> int:
    return v._ip if hasattr(v, "_ip") else int(v)


def _ip_pred(consts: list[Any]) -> Callable[[Any], bool]:
    """Membership of an address in addresses and CIDR networks (``fd.sip in (10.0.0.0/8)``).

    Addresses compare as (version, integer) and networks with integer masks, so the hot path
    does no ``ipaddress`` hashing; a value that is itself a network (an IPNET field read as a
    network) matches a network containing it.
    """
    addrs = frozenset((c.version, _ip_int(c)) for c in consts if isinstance(c, _ADDRS))
    nets = tuple((int(n.network_address), int(n.netmask), n.version, n)
                 for n in consts if isinstance(n, _NETS))
    raw = [c for c in consts if isinstance(c, _ADDRS)]

    def pred(v: Any) -> bool:
        if not isinstance(v, _ADDRS):
            v = _as_ip(v)
            if v is None:
                return False
            if isinstance(v, _NETS):
                return any(v.version == n.version and v.subnet_of(n) for *_, n in nets) or \
                    any(a.version == v.version and a in v for a in raw)
        ver = v.version
        iv = _ip_int(v)
        if (ver, iv) in addrs:
            return True
        for base, mask, nver, _ in nets:
            if ver == nver and iv & mask == base:
                return True
        return False
    return pred


def _as_ip(v: Any) -> Any:
    if isinstance(v, str):
        try:
            return ipaddress.ip_address(v)
        except ValueError:
            try:
                return ipaddress.ip_network(v, strict=False)
            except ValueError:
                return None
    return v


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def _single_pred(op: str, const: Any, ftype: FieldType) -> Callable[[Any], bool]:
    """The comparison ``value OP const`` as a function of a (non-None) value."""
    if ftype in (FieldType.IPADDR, FieldType.IPNET):
        if op in ("=", "=="):
            return _ip_pred([const])
        if op == "!=":
            p = _ip_pred([const])
            return lambda v: not p(v)
        if op in ("in", "intersects"):
            return _ip_pred(list(const))
    if op in ("=", "=="):
        return lambda v: v == const
    if op == "!=":
        return lambda v: v != const
    if op in NUM_OPS:
        cmp = _ORDER[op]
        if isinstance(const, str):    # a string field: Falco compares strings (strcmp)
            return lambda v: cmp(v if isinstance(v, str) else str(v), const)

        def num_cmp(v: Any) -> bool:
            n = _num(v)
            return n is not None and cmp(n, const)
        return num_cmp
    if op == "contains":
        if isinstance(const, bytes):
            return lambda v: const in _to_bytes(v)
        return lambda v: const in v if isinstance(v, str) else const in str(v)
    if op == "icontains":
        return lambda v: const in (v.decode("utf-8", "replace") if isinstance(v, bytes)
                                   else str(v)).lower()
    if op == "startswith":
        if isinstance(const, bytes):
            return lambda v: _to_bytes(v).startswith(const)
        return lambda v: str(v).startswith(const)
    if op == "endswith":
        if isinstance(const, bytes):
            return lambda v: _to_bytes(v).endswith(const)
        return lambda v: str(v).endswith(const)
    if op == "bcontains":
        return lambda v: const in _to_bytes(v)
    if op == "bstartswith":
        return lambda v: _to_bytes(v).startswith(const)
    if op in ("in", "intersects"):
        return lambda v: v in const
    if op == "pmatch":
        return const
    if op in ("glob", "iglob", "regex"):
        match = const
        return lambda v: match(v if isinstance(v, str) else str(v)) is not None
    if op == "exists":
        return lambda v: True
    raise ValueError(op)


def _num(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    try:
        return int(v, 0) if isinstance(v, str) else None
    except ValueError:
        return None


def _pair_pred(op: str, ftype: FieldType) -> Callable[[Any, Any], bool]:
    """``lhs OP rhs`` for two field values (val() on the right side)."""
    if op in ("=", "=="):
        return lambda a, b: a == b
    if op == "!=":
        return lambda a, b: a != b
    if op in NUM_OPS:
        fn = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
              ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}[op]

        def cmp(a: Any, b: Any) -> bool:
            try:
                return fn(a, b)
            except TypeError:
                return False
        return cmp
    if op == "contains":
        return lambda a, b: str(b) in str(a)
    if op == "icontains":
        return lambda a, b: str(b).lower() in str(a).lower()
    if op == "startswith":
        return lambda a, b: str(a).startswith(str(b))
    if op == "endswith":
        return lambda a, b: str(a).endswith(str(b))
    if op == "bcontains":
        return lambda a, b: _to_bytes(b) in _to_bytes(a)
    if op == "bstartswith":
        return lambda a, b: _to_bytes(a).startswith(_to_bytes(b))
    if op in ("glob", "iglob"):
        return lambda a, b: _glob_regex(str(b), op == "iglob").fullmatch(str(a)) is not None
    if op == "regex":
        def rx(a: Any, b: Any) -> bool:
            try:
                return re.fullmatch(str(b), str(a)) is not None
            except re.error:
                return False
        return rx
    raise ValueError(op)


# ---------------------------------------------------------------------------------------------
# Transformers
# ---------------------------------------------------------------------------------------------

def _b64(v: Any) -> Any:
    try:
        data = base64.b64decode(_to_bytes(v), validate=False)
    except (binascii.Error, ValueError):
        return None
    return data.decode("utf-8", "replace")


def _basename(v: Any) -> Any:
    s = str(v)
    return s[s.rfind("/") + 1:]


_TRANSFORMS: dict[str, Callable[[Any], Any]] = {
    "tolower": lambda v: v.lower() if isinstance(v, str) else v,
    "toupper": lambda v: v.upper() if isinstance(v, str) else v,
    "b64": _b64,
    "basename": _basename,
    "len": lambda v: len(v) if isinstance(v, (str, bytes, tuple, list)) else len(str(v)),
}


def _apply_transform(read: Callable, many: bool, name: str) -> tuple[Callable, bool]:
    fn = _TRANSFORMS[name]
    if name == "len":
        def read_len(e, r=read):
            v = r(e)
            return None if v is None else fn(v)
        return read_len, False
    if many:
        def read_many(e, r=read):
            vs = r(e)
            return None if vs is None else tuple(fn(x) for x in vs if x is not None)
        return read_many, True

    def read_one(e, r=read):
        v = r(e)
        return None if v is None else fn(v)
    return read_one, False


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
        self._resolving.append(ref.name)
        try:
            child = self.resolve(mdef.node, mdef.origin)
        finally:
            self._resolving.pop()
        mdef.used = True
        rm = RMacro(ref.name, child)
        self._macro_cache[ref.name] = rm
        return rm

    def bind_field(self, ref: ast.FieldRef, origin: Origin) -> BoundField:
        key = ref.text()
        got = self._bound.get(key)
        if got is not None:
            return got
        fdef, arg = self.lookup(ref, origin)
        try:
            bound = fdef.bind(arg)
        except (ValueError, TypeError, KeyError) as exc:
            raise origin.error(ref.pos, f"bad argument for field {fdef.name}: {exc}") from None
        if not isinstance(bound, Bound):
            bound = Bound(bound)
        read, many, ftype = bound.read, bound.many, fdef.type
        for t in reversed(ref.transformers):
            if t in ("b64",) and not (ftype.is_string or ftype is FieldType.BYTEBUF):
                raise origin.error(ref.pos, f"{t}() needs a string field, {fdef.name} is "
                                            f"{ftype.value}")
            if t in ("tolower", "toupper", "basename") and not ftype.is_string \
                    and ftype is not FieldType.BYTEBUF:
                raise origin.error(ref.pos, f"{t}() needs a string field, {fdef.name} is "
                                            f"{ftype.value}")
            read, many = _apply_transform(read, many, t)
            if t == "len":
                ftype = FieldType.UINT64
            elif t == "b64":
                ftype = FieldType.STRING
        bf = BoundField(key, read, many, ftype, fdef.name)
        self._bound[key] = bf
        return bf

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
        op = node.op
        ftype = bf.type
        if op == "==":
            op = "="
        # evt.dir: one exit event stands for both directions (see core/evt_fields.py)
        if bf.name == "evt.dir" and not ref.transformers and isinstance(node.value, ast.Literal):
            if node.value.value in ("<", ">"):
                return ast.Const(op == "=", node.pos)
        if op == "exists":
            return RCheck(bf, op, pred=lambda v: True)
        value = node.value
        if isinstance(value, ast.FieldValue):
            if op in LIST_OPS or op == "pmatch":
                raise origin.error(value.pos, f"val() cannot be used with '{op}'")
            rhs = self.bind_field(value.field, origin)
            self._check_op(op, ftype, ref, origin, node.pos)
            if ftype.is_numeric != rhs.type.is_numeric and op in NUM_OPS:
                raise origin.error(value.pos, f"cannot compare {bf.key} ({ftype.value}) with "
                                              f"{rhs.key} ({rhs.type.value})")
            return RCheck(bf, op, rhs=rhs, pred=_pair_pred(op, ftype))
        self._check_op(op, ftype, ref, origin, node.pos)
        if op in LIST_OPS:
            assert isinstance(value, ast.ListLit)
            items = self._expand(value, origin)
            if op == "pmatch":
                const = _pmatch_pred([v for v, _ in items])
                return RCheck(bf, op, const, pred=const)
            conv = [self._convert(v, ftype, op, p, origin, bf) for v, p in items]
            if ftype in (FieldType.IPADDR, FieldType.IPNET):
                const = tuple(conv)
            else:
                try:
                    const = frozenset(conv)
                except TypeError:
                    const = tuple(conv)
            rc = RCheck(bf, op, const, pred=_single_pred(op, const, ftype))
            if bf.name == "evt.type" and not ref.transformers:
                self._note_types(items, origin)
                rc.types = frozenset(conv)
            return rc
        assert isinstance(value, ast.Literal)
        const = self._convert(value.value, ftype, op, value.pos, origin, bf)
        rc = RCheck(bf, op, const, pred=_single_pred(op, const, ftype))
        if bf.name == "evt.type" and not ref.transformers and op in ("=", "!="):
            self._note_types([(value.value, value.pos)], origin)
            rc.types = frozenset([const])
            rc.negate_types = op == "!="
        return rc

    def _check_op(self, op: str, ftype: FieldType, ref: ast.FieldRef, origin: Origin,
                  pos: int) -> None:
        if op in STRING_OPS and (ftype.is_numeric or ftype is FieldType.BOOL or
                                 ftype in (FieldType.IPADDR, FieldType.IPNET)):
            if not (op in ("bcontains", "bstartswith") and ftype is FieldType.BYTEBUF):
                raise origin.error(pos, f"operator '{op}' cannot be used with {ref.text()} "
                                        f"({ftype.value})")
        if op in NUM_OPS and ftype in (FieldType.BOOL, FieldType.IPADDR, FieldType.IPNET):
            raise origin.error(pos, f"operator '{op}' cannot be used with {ref.text()} "
                                    f"({ftype.value})")
        if op == "pmatch" and not ftype.is_string:
            raise origin.error(pos, f"operator 'pmatch' needs a string field, {ref.text()} is "
                                    f"{ftype.value}")

    def _expand(self, value: ast.ListLit, origin: Origin) -> list[tuple[str, int]]:
        out: list[tuple[str, int]] = []
        for item in value.items:
            if not item.quoted and item.value in self.lists:
                self.used_lists.add(item.value)
                out.extend((_unquote(v), item.pos) for v in self.lists[item.value])
            else:
                out.append((item.value, item.pos))
        return out

    def _note_types(self, items: list[tuple[str, int]], origin: Origin) -> None:
        for name, pos in items:
            if name not in KNOWN_EVENT_TYPES:
                self.warnings.append(origin.error(pos, f"unknown event type '{name}'"))

    def _convert(self, text: str, ftype: FieldType, op: str, pos: int, origin: Origin,
                 bf: BoundField) -> Any:
        if op in ("bcontains", "bstartswith"):
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise origin.error(pos, f"'{op}' needs hexadecimal bytes, not '{text}'") \
                    from None
        if op in ("glob", "iglob"):
            return _glob_regex(text, op == "iglob").fullmatch
        if op == "regex":
            try:
                return re.compile(text, re.DOTALL).fullmatch
            except re.error as exc:
                raise origin.error(pos, f"invalid regular expression '{text}': {exc}") \
                    from None
        if ftype.is_numeric:
            num = _parse_int(text)
            if num is None:
                if bf.name == "evt.rawarg":
                    return text
                raise origin.error(pos, f"{bf.key} is numeric ({ftype.value}); '{text}' is "
                                        "not a number")
            return num
        if ftype is FieldType.BOOL:
            low = text.lower()
            if low in ("true", "false"):
                return low == "true"
            raise origin.error(pos, f"{bf.key} is a boolean; '{text}' is not true or false")
        if ftype in (FieldType.IPADDR, FieldType.IPNET):
            try:
                if "/" in text:
                    return ipaddress.ip_network(text, strict=False)
                return ipaddress.ip_address(text)
            except ValueError:
                raise origin.error(pos, f"{bf.key} is an IP field; '{text}' is not an IP "
                                        "address or network") from None
        if ftype is FieldType.BYTEBUF and op in ("contains", "startswith", "endswith", "=",
                                                 "!=", "in", "intersects"):
            return text.encode("utf-8", "surrogateescape")
        if op == "icontains":
            return text.lower()
        return text


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


def _parse_int(text: str) -> int | None:
    t = text.strip()
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return int(t)
    except ValueError:
        pass
    try:
        f = float(t)
    except ValueError:
        return None
    return int(f) if f.is_integer() else None


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
    seen = set() if seen is None else seen
    if isinstance(node, RCheck):
        if node.types is not None:
            out |= node.types
    elif isinstance(node, RMacro):
        if id(node) not in seen:
            seen.add(id(node))
            mentioned_types(node.child, out, seen)
    elif isinstance(node, ast.Not):
        mentioned_types(node.child, out, seen)
    elif isinstance(node, (ast.And, ast.Or)):
        for c in node.children:
            mentioned_types(c, out, seen)
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
        self.macro_var: dict[int, str] = {}
        self.fields_by_id: dict[int, BoundField] = {}

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

    def plan(self) -> list[str]:
        """The lines that start the function: eager reads and cache locals.

        A field named by :data:`EAGER_USES` checks or more is read once, up front (it is all
        but certain to be needed, and a plain local is the cheapest thing to test); one used
        twice or more is read on first use into a local; others are read where they are used.
        """
        init = []
        eager = []
        for fid, n in self.field_uses.items():
            if n >= EAGER_USES:
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
                    and id(c.field.read) in self.eager and c.op in ("=", "in", "intersects"):
                return 0
            return 1
        kids = sorted(node.children, key=cost)
        return ast.And(tuple(kids), node.pos)

    def expr(self, node: RNode) -> str:
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
        if c.op == "exists":
            if c.field.many:
                return f"({acc} is not None and len({v}) > 0)"
            return f"({acc} is not None)"
        if c.rhs is not None:
            acc2, w = self.access(c.rhs, "_t2")
            p = self.ns.name(c.pred, "_p")
            if c.field.many or c.rhs.many:
                if c.many_pred is None:
                    c.many_pred = _any_pair(c.pred, c.field.many, c.rhs.many)
                p = self.ns.name(c.many_pred, "_p")
            return f"({acc} is not None and {acc2} is not None and {p}({v}, {w}))"
        if c.field.many:
            if c.many_pred is None:
                if c.op == "!=":   # no element equals (fd.net != 127.0.0.0/8: neither end is)
                    c.many_pred = _none(_single_pred("=", c.const, c.field.type))
                else:
                    c.many_pred = _any(c.pred)
            p = self.ns.name(c.many_pred, "_p")
            return f"({acc} is not None and {p}({v}))"
        return f"({acc} is not None and {self.inline(c, v)})"

    def inline(self, c: RCheck, v: str) -> str:
        op, ftype = c.op, c.field.type
        special = ftype in (FieldType.IPADDR, FieldType.IPNET) or c.field.name == "evt.rawarg"
        if not special:
            k = self.ns.name(c.const, "_c") if c.const is not None else None
            if op == "=":
                return f"{v} == {k}"
            if op == "!=":
                return f"{v} != {k}"
            if op in ("in", "intersects") and isinstance(c.const, frozenset):
                return f"{v} in {k}"
            if op in NUM_OPS and ftype.is_numeric:
                return f"{v} {op} {k}"
            if ftype.is_string and isinstance(c.const, str):
                if op == "startswith":
                    return f"{v}.startswith({k})"
                if op == "endswith":
                    return f"{v}.endswith({k})"
                if op == "contains":
                    return f"{k} in {v}"
                if op == "icontains":
                    return f"{k} in {v}.lower()"
        p = self.ns.name(c.pred, "_p")
        return f"{p}({v})"


def _any(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def any_of(values: Any) -> bool:
        for x in values:
            if x is not None and pred(x):
                return True
        return False
    return any_of


def _none(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def none_of(values: Any) -> bool:
        for x in values:
            if x is not None and pred(x):
                return False
        return True
    return none_of


def _any_pair(pred: Callable, lmany: bool, rmany: bool) -> Callable[[Any, Any], bool]:
    def any_pair(a: Any, b: Any) -> bool:
        la = a if lmany else (a,)
        lb = b if rmany else (b,)
        return any(pred(x, y) for x in la for y in lb if x is not None and y is not None)
    return any_pair


def build_matcher(rules: list[tuple[int, RNode]], ns: Namespace, mode: str = "first",
                  name: str = "_match") -> tuple[Callable[[Any], Any], str]:
    """One function over ``rules`` (index, folded condition), in order.

    ``mode="first"`` returns the index of the first rule that matches, or -1; ``"all"``
    returns the list of matching indexes.  Returns the function and its source.
    """
    gen = _Gen(ns)
    for _, node in rules:
        gen.count(node)
    lines = [f"def {name}(e):"]
    lines += ["    " + line for line in gen.plan()]
    if mode == "all":
        lines.append("    hits = []")
    for idx, node in rules:
        cond = gen.expr(gen.cheap_first(node) if REORDER else node)
        lines.append(f"    if {cond}:")
        lines.append(f"        return {idx}" if mode == "first" else f"        hits.append({idx})")
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


def expand_lists(lists: dict[str, list[str]]) -> dict[str, list[str]]:
    """Lists with the names of other lists among their items replaced by those items."""
    out: dict[str, list[str]] = {}

    def expand(name: str, seen: tuple[str, ...]) -> list[str]:
        if name in out:
            return out[name]
        items: list[str] = []
        for item in lists[name]:
            if item in lists and item not in seen:
                items.extend(expand(item, seen + (item,)))
            else:
                items.append(item)
        out[name] = items
        return items

    for name in lists:
        expand(name, (name,))
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
    return compile_node(node)
