"""Falco's comparison operators, one declaration each in :data:`OPERATORS`, and the field
transformers.

An :class:`Operator` says everything the rule language needs to know about one operator: its
spellings, what stands on its right (a value, a list, nothing), the field types it takes, how
its constant is converted, the predicate it becomes, and optionally its form between two fields
(``val()``), its inline form in generated code, what it says about ``evt.type``, how it holds
on a multi-valued field and what a comparison says of the value to the kernel prefilters
(:class:`Says`).  The lexer's words, the parser, the compiler's checks, code generation, the
comparators of rule exceptions, the prefilters and ``docs/operators.md`` all read the registry:
adding an operator is one declaration here, and a test (``docs/plugins.md`` walks through it).

Each operator becomes a predicate ``value -> bool`` built once per check, its constant
prepared at load time (a frozenset for ``in``, a :class:`~.globs.Glob` for ``glob``, a compiled
regex for ``regex``, integer
masks for CIDR networks).  Semantics are Falco's: ``glob`` and ``regex`` match the whole value
(``fnmatch`` without ``FNM_PATHNAME``: ``*`` and ``?`` cross ``/``); ``pmatch`` is a prefix match
by path component (globs allowed, matched within a component);
ordering operators compare numbers, or strings as strings; ``in``/``intersects``/``=`` on an IP
field accept CIDR networks.  Multi-valued fields hold when any element does
(:func:`any_element`), ``!=`` when no element equals (:func:`no_element`).
"""

from __future__ import annotations

import base64
import binascii
import enum
import ipaddress
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from operator import ge, gt, le, lt
from typing import Any

from ..fields import FieldType
from .globs import Glob, glob_regex

Pred = Callable[[Any], bool]

# ---------------------------------------------------------------------------------------------
# Predicates on single values
# ---------------------------------------------------------------------------------------------

def _to_bytes(v: Any) -> bytes:
    if isinstance(v, bytes):
        return v
    return str(v).encode("utf-8", "surrogateescape")


def pmatch_pred(paths: list[str]) -> Pred:
    """``pmatch``: the value is one of ``paths`` or under one (by whole path components), or
    matches a glob among them.  Plain paths are looked up per ancestor of the value (a set
    lookup per ``/`` in it), so a list of any length costs the same per event."""
    exact: set[str] = set()
    globs: list[re.Pattern] = []
    for p in paths:
        if any(ch in p for ch in "*?["):
            globs.append(glob_regex(p.rstrip("/") or "/", False, prefix=True,
                                    pathname=True))
        else:
            exact.add(p.rstrip("/") or "/")
    root = "/" in exact

    def pred(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v in exact or (root and v.startswith("/")):
            return True
        i = v.find("/", 1)
        while i > 0:
            if v[:i] in exact:
                return True
            i = v.find("/", i + 1)
        return any(g.fullmatch(v) for g in globs)
    pred.paths = tuple(paths)   # type: ignore[attr-defined]  # read by its ``says``
    return pred


_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRS = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _ip_pred(consts: list[Any]) -> Pred:
    """Membership of an address in addresses and CIDR networks (``fd.sip in (10.0.0.0/8)``).

    Addresses compare as integers and networks with integer masks, both grouped by IP
    version, so the hot path does no ``ipaddress`` hashing and an IPv6 address is never tried
    against IPv4 networks; a value that is itself a network (an IPNET field read as a network)
    matches a network containing it.
    """
    raw = [c for c in consts if isinstance(c, _ADDRS)]
    nets = tuple(n for n in consts if isinstance(n, _NETS))
    addrs: dict[int, frozenset[int]] = {
        ver: frozenset(int(a) for a in raw if a.version == ver) for ver in (4, 6)}
    # networks grouped by prefix length: one set lookup per prefix length, not per network
    masks: dict[int, tuple[tuple[int, frozenset[int]], ...]] = {}
    for ver in (4, 6):
        by_mask: dict[int, set[int]] = {}
        for n in nets:
            if n.version == ver:
                by_mask.setdefault(int(n.netmask), set()).add(int(n.network_address))
        masks[ver] = tuple((mask, frozenset(bases)) for mask, bases in by_mask.items())

    def pred(v: Any) -> bool:
        if not isinstance(v, _ADDRS):
            v = _as_ip(v)
            if v is None:
                return False
            if isinstance(v, _NETS):
                return any(v.version == n.version and v.subnet_of(n) for n in nets) or \
                    any(a.version == v.version and a in v for a in raw)
        iv = v._ip              # ipaddress's integer and version, read without a call
        if iv in addrs[v._version]:
            return True
        for mask, bases in masks[v._version]:
            if iv & mask in bases:
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


def _num(v: Any) -> int | None:
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    try:
        return int(v, 0) if isinstance(v, str) else None
    except ValueError:
        return None


def any_element(pred: Pred) -> Pred:
    def any_of(values: Any) -> bool:
        for x in values:
            if x is not None and pred(x):
                return True
        return False
    return any_of


def no_element(pred: Pred) -> Pred:
    def none_of(values: Any) -> bool:
        for x in values:
            if x is not None and pred(x):
                return False
        return True
    return none_of


def any_pair_of(pred: Callable, lmany: bool, rmany: bool) -> Callable[[Any, Any], bool]:
    def any_pair(a: Any, b: Any) -> bool:
        la = a if lmany else (a,)
        lb = b if rmany else (b,)
        return any(pred(x, y) for x in la for y in lb if x is not None and y is not None)
    return any_pair


# ---------------------------------------------------------------------------------------------
# Constants: the text of a value converted for an operator and a field type
# ---------------------------------------------------------------------------------------------

class ConstError(ValueError):
    """A value an operator cannot take; the message is the whole reason (the compiler adds
    the column and the caret)."""


class NotANumber(ConstError):
    """A numeric field compared with a word (``evt.rawarg``, of no fixed type, keeps the text)."""


IP_TYPES = frozenset({FieldType.IPADDR, FieldType.IPNET})


def parse_int(text: str) -> int | None:
    """A number as Falco reads one: decimal (leading zeros allowed) or ``0x``/``0o``/``0b``.
    A float (``1.0``) is not one: Falco refuses it on every numeric field."""
    t = text.strip()
    try:
        return int(t, 0)
    except ValueError:
        pass
    try:
        return int(t)
    except ValueError:
        return None


def _number(text: str, ftype: FieldType, field: str) -> int:
    num = parse_int(text)
    if num is None:
        raise NotANumber(f"{field} is numeric ({ftype.value}); '{text}' is not a number")
    return num


def typed_const(text: str, ftype: FieldType, field: str) -> Any:
    """The value as the field's type: a number, a boolean, an IP address or network, bytes
    for a byte buffer, else the text.  ``field`` (as written) names it in the error."""
    if ftype.is_numeric:
        return _number(text, ftype, field)
    if ftype is FieldType.BOOL:
        low = text.lower()
        if low in ("true", "false"):
            return low == "true"
        raise ConstError(f"{field} is a boolean; '{text}' is not true or false")
    if ftype in IP_TYPES:
        try:
            if "/" in text:
                return ipaddress.ip_network(text, strict=False)
            return ipaddress.ip_address(text)
        except ValueError:
            raise ConstError(f"{field} is an IP field; '{text}' is not an IP address or "
                             "network") from None
    if ftype is FieldType.BYTEBUF:
        return text.encode("utf-8", "surrogateescape")
    return text


def number_or_text(text: str, ftype: FieldType, field: str) -> Any:
    """A number for a numeric field, else the text (a byte buffer's included)."""
    return _number(text, ftype, field) if ftype.is_numeric else text


def as_text(text: str, ftype: FieldType, field: str) -> str:
    return text


def lowered(text: str, ftype: FieldType, field: str) -> str:
    return text.lower()


def hex_bytes(op: str) -> Callable[[str, FieldType, str], bytes]:
    """Hexadecimal bytes (``CAFE``), for the byte operators."""
    def convert(text: str, ftype: FieldType, field: str) -> bytes:
        try:
            return bytes.fromhex(text)
        except ValueError:
            raise ConstError(f"'{op}' needs hexadecimal bytes, not '{text}'") from None
    return convert


def glob_const(icase: bool) -> Callable[[str, FieldType, str], Callable]:
    def convert(text: str, ftype: FieldType, field: str) -> Callable:
        try:
            return Glob(text, icase)
        except re.error as exc:
            raise ConstError(f"invalid glob '{text}': {exc}") from None
    return convert


def regex_const(text: str, ftype: FieldType, field: str) -> Callable:
    try:
        return re.compile(text, re.DOTALL).fullmatch
    except re.error as exc:
        raise ConstError(f"invalid regular expression '{text}': {exc}") from None


def collection(consts: list[Any], ftype: FieldType) -> Any:
    """A list operator's constant: a frozenset (a tuple of IP addresses and networks, or of
    values that cannot be hashed)."""
    if ftype in IP_TYPES:
        return tuple(consts)
    try:
        return frozenset(consts)
    except TypeError:
        return tuple(consts)


#: The fields ``samefile`` takes: a file's identity, ``major:minor:inode``.
IDENTITY_FIELDS = frozenset({"fd.devino"})


class FileIds(frozenset):
    """``samefile``'s constant: the identities (``major:minor:inode``, as ``fd.devino`` has
    them) of the files its paths name, taken with ``stat`` (links followed) when the rules
    load; ``ids`` the same as numbers, ``paths`` as written.  A path naming no file adds
    nothing."""

    paths: tuple[str, ...]
    ids: frozenset[tuple[int, int, int]]


def file_ids(paths: list[str], ftype: FieldType | None = None) -> FileIds:
    """The identities of the files ``paths`` name now (``os.stat``'s ``st_dev`` taken apart
    into major and minor: the kernel's own encoding of a device differs from ``stat``'s)."""
    ids = set()
    for p in paths:
        try:
            st = os.stat(p)
        except (OSError, ValueError):
            continue
        ids.add((os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
    out = FileIds(f"{a}:{b}:{c}" for a, b, c in ids)
    out.paths = tuple(paths)
    out.ids = frozenset(ids)
    return out


def _identity_item(text: str, ftype: FieldType, field: str) -> str:
    if field not in IDENTITY_FIELDS:
        raise ConstError(f"'samefile' compares the identity of a file: use it on "
                         f"{', '.join(sorted(IDENTITY_FIELDS))}, not {field} "
                         f"(fd.devino samefile (/etc/shadow))")
    return text


# ---------------------------------------------------------------------------------------------
# The declaration of an operator, and the registry
# ---------------------------------------------------------------------------------------------

class Kind(enum.Enum):
    """What stands on an operator's right."""

    VALUE = "a value"                  # proc.name = bash, fd.num < val(proc.pid)
    LIST = "a list"                    # proc.name in (bash, sh), proc.name in shell_binaries
    UNARY = "nothing"                  # fd.name exists


ANY_TYPE = frozenset(FieldType)
TEXT_TYPES = frozenset({FieldType.STRING, FieldType.CHARBUF, FieldType.BYTEBUF})
STRING_TYPES = frozenset(t for t in FieldType if t.is_string)
ORDERED_TYPES = ANY_TYPE - {FieldType.BOOL, FieldType.BYTEBUF} - IP_TYPES
BYTES_TYPES = frozenset({FieldType.BYTEBUF})


def type_kind(ftype: FieldType) -> str:
    """What a field compares as with another field (``val()``): a number, a string, a
    boolean, an address or bytes; Falco compares fields of one type only."""
    if ftype.is_numeric:
        return "number"
    if ftype.is_string:
        return "string"
    return ftype.value


def _always(*_: Any) -> bool:
    return True


def _any_element(pred: Pred, const: Any, ftype: FieldType) -> Pred:
    return any_element(pred)


@dataclass(frozen=True)
class Says:
    """What a comparison requires of the field's value, as the kernel prefilters read it (an
    operator's ``says``): the value is one of ``equals``; it starts with one of ``prefixes``;
    it contains one of ``substrings``; it is none of ``excludes``; it is a number, at least
    ``at_least``.  A part left None says nothing: a prefilter that finds nothing it can use
    lets every event through, so an operator that says less is never wrong, only less
    selective."""

    equals: frozenset[Any] | None = None
    prefixes: frozenset[str] | None = None
    substrings: frozenset[str] | None = None
    excludes: frozenset[Any] | None = None
    at_least: int | None = None


#: What an operator without ``says`` (or a comparison with another field) says: nothing.
NOTHING_SAID = Says()


@dataclass(frozen=True)
class Operator:
    """One operator of the condition language, everything the rule engine needs of it.

    Required:

    - ``name``: its spelling in conditions (an identifier, or punctuation);
    - ``kind``: what stands on its right (:class:`Kind`);
    - ``doc``: one line for ``docs/operators.md``;
    - ``pred``: ``(constant, field type) -> (value -> bool)``, the check on one value that is
      not None (a field that cannot be read makes every comparison false).

    Optional:

    - ``spellings``: other ways to write it (``==`` for ``=``);
    - ``types``: the field types it accepts; any other is a compile error, ``type_error``
      (formatted with ``op``, ``field`` and ``type``);
    - ``const``: ``(text, field type, field as written) -> constant``, one value's text
      converted, a :class:`ConstError` when it cannot be; a list operator converts each
      item, then ``gather`` makes the check's constant of them;
    - ``pair``: ``(lhs, rhs) -> bool`` for a comparison with another field (``val()``);
      None refuses ``val()``.  Both sides must be of one kind (:func:`type_kind`), as in
      Falco;
    - ``inline``: the check as a Python expression in generated code, ``{v}`` the value and
      ``{k}`` the constant, used when ``inline_if(field type, constant)``; otherwise the
      generated code calls the predicate.  ``"True"`` leaves only the test that the field
      has a value (``exists``);
    - ``many``: ``(pred, constant, field type) -> (values -> bool)`` on a multi-valued field
      (default: any value holds);
    - ``event_types``: on ``evt.type``, what the constant says of the event's type: ``"in"``
      (among the constants) or ``"not in"``; the rule is then indexed by those types;
    - ``cheap``: one equality or set lookup, tested before a rule's other checks;
    - ``modifiers``: it may be followed by a list modifier (:data:`MODIFIERS`):
      ``proc.name startswith anyof (a, b)``;
    - ``says``: ``constant -> Says``, what a comparison with this constant requires of the
      field's value (equal to, starting with, containing...), which the kernel prefilters
      read (:func:`says`); None: nothing they can use.

    Every operator but a unary one may be a comparator of a rule's exceptions; a list
    operator's exception values are written as a list.
    """

    name: str
    kind: Kind
    doc: str
    pred: Callable[[Any, FieldType], Pred]
    spellings: tuple[str, ...] = ()
    types: frozenset[FieldType] = ANY_TYPE
    type_error: str = "operator '{op}' cannot be used with {field} ({type})"
    const: Callable[[str, FieldType, str], Any] = typed_const
    gather: Callable[[list[Any], FieldType], Any] = collection
    pair: Callable[[Any, Any], bool] | None = None
    inline: str | None = None
    inline_if: Callable[[FieldType, Any], bool] = _always
    many: Callable[[Pred, Any, FieldType], Pred] = _any_element
    event_types: str | None = None
    cheap: bool = False
    modifiers: bool = False
    says: Callable[[Any], Says] | None = None

    @property
    def spelled(self) -> tuple[str, ...]:
        return (self.name, *self.spellings)

    @property
    def comparator(self) -> bool:
        """Whether a rule's exceptions may use it (``comps``)."""
        return self.kind is not Kind.UNARY


_WORD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_SYMBOL = re.compile(r"[^\sa-zA-Z0-9_(),\"'\[\]]+")


class Registry:
    """The operators, by name and by every spelling, in declaration order.

    ``words`` (identifier spellings) and ``symbols`` (punctuation, longest first, so ``<=``
    is read before ``<``) are what the lexer matches.
    """

    def __init__(self) -> None:
        self._ops: dict[str, Operator] = {}
        self._spelled: dict[str, Operator] = {}
        self.words: frozenset[str] = frozenset()
        self.symbols: tuple[str, ...] = ()

    def add(self, op: Operator) -> Operator:
        for s in op.spelled:
            if s in self._spelled:
                raise ValueError(f"operator '{s}' is declared twice")
            if not (_WORD.fullmatch(s) or _SYMBOL.fullmatch(s)):
                raise ValueError(f"operator '{s}': an identifier or punctuation, please")
        if op.event_types not in (None, "in", "not in"):
            raise ValueError(f"operator '{op.name}': event_types is 'in', 'not in' or None")
        self._ops[op.name] = op
        for s in op.spelled:
            self._spelled[s] = op
        self._derive()
        return op

    def remove(self, name: str) -> None:
        op = self._ops.pop(name)
        for s in op.spelled:
            del self._spelled[s]
        self._derive()

    def _derive(self) -> None:
        self.words = frozenset(s for s in self._spelled if _WORD.fullmatch(s))
        self.symbols = tuple(sorted((s for s in self._spelled if s not in self.words),
                                    key=len, reverse=True))

    def get(self, spelling: Any) -> Operator | None:
        """The operator spelled so (None for an unknown spelling or a non-string)."""
        return self._spelled.get(spelling) if isinstance(spelling, str) else None

    def __getitem__(self, spelling: str) -> Operator:
        return self._spelled[spelling]

    def __contains__(self, spelling: Any) -> bool:
        return self.get(spelling) is not None

    def __iter__(self) -> Iterator[Operator]:
        return iter(list(self._ops.values()))

    def __len__(self) -> int:
        return len(self._ops)


OPERATORS = Registry()


def takes_list(spelling: Any) -> bool:
    """Whether ``spelling`` is a list operator, or an operator with a list modifier
    (``startswith oneof``): its right side a list, in an exception too."""
    op = OPERATORS.get(spelling)
    if op is not None:
        return op.kind is Kind.LIST
    return split_modified(spelling) is not None


def says(spelling: Any, const: Any) -> Says:
    """What a check ``field <spelling> const`` requires of the field's value (:class:`Says`):
    what its operator declares; nothing for an operator that declares nothing, or a
    modified one (``startswith anyof``)."""
    op = OPERATORS.get(spelling)
    return op.says(const) if op is not None and op.says is not None else NOTHING_SAID


# ---------------------------------------------------------------------------------------------
# List modifiers (Falco 0.44): ``proc.name startswith anyof (a, b)``
# ---------------------------------------------------------------------------------------------

def _exactly_one(preds: tuple[Pred, ...]) -> Pred:
    def oneof(v: Any) -> bool:
        n = 0
        for p in preds:
            if p(v):
                n += 1
                if n > 1:
                    return False
        return n == 1
    return oneof


def _at_least_one(preds: tuple[Pred, ...]) -> Pred:
    return lambda v: any(p(v) for p in preds)


def _every(preds: tuple[Pred, ...]) -> Pred:
    return lambda v: bool(preds) and all(p(v) for p in preds)


#: How a modifier combines an operator's test against each item of the list: exactly one
#: item, at least one, every item (never true of an empty list).  Items are not deduplicated:
#: ``= oneof (a, a)`` is false of ``a``.
MODIFIERS: dict[str, Callable[[tuple[Pred, ...]], Pred]] = {
    "oneof": _exactly_one, "anyof": _at_least_one, "allof": _every}


def split_modified(spelling: Any) -> tuple[Operator, str] | None:
    """``"startswith oneof"`` -> (the operator, the modifier); None when it is not one."""
    if not isinstance(spelling, str):
        return None
    parts = spelling.split()
    if len(parts) != 2 or parts[1] not in MODIFIERS:
        return None
    op = OPERATORS.get(parts[0])
    return (op, parts[1]) if op is not None and op.modifiers else None


# ---------------------------------------------------------------------------------------------
# Falco's operators
# ---------------------------------------------------------------------------------------------

def _not_ip(ftype: FieldType, const: Any) -> bool:
    return ftype not in IP_TYPES


def _numeric(ftype: FieldType, const: Any) -> bool:
    return ftype.is_numeric


def _on_strings(ftype: FieldType, const: Any) -> bool:
    return ftype.is_string and isinstance(const, str)


def _hashed(ftype: FieldType, const: Any) -> bool:
    return isinstance(const, frozenset)


def _members(values: Any) -> frozenset[Any] | None:
    try:
        return frozenset(values)
    except TypeError:               # an unhashable constant: nothing said
        return None


def _says_equal(const: Any) -> Says:
    return Says(equals=_members((const,)))


def _says_member(const: Any) -> Says:
    return Says(equals=_members(const)) if isinstance(const, (frozenset, tuple)) else NOTHING_SAID


def _says_text(part: str) -> Callable[[Any], Says]:
    """A text operator's: the value starts with (``prefixes``) or contains (``substrings``)
    the constant."""
    def said(const: Any) -> Says:
        return Says(**{part: frozenset({const})}) if isinstance(const, str) else NOTHING_SAID
    return said


def _says_at_least(more: int) -> Callable[[Any], Says]:
    """``>=`` (``more`` 0) and ``>`` (1) on a number."""
    def said(const: Any) -> Says:
        ok = isinstance(const, int) and not isinstance(const, bool)
        return Says(at_least=const + more) if ok else NOTHING_SAID
    return said


def literal_head(pattern: str) -> str:
    """The part of a glob before its first wildcard (or escape)."""
    for i, ch in enumerate(pattern):
        if ch in "*?[\\":
            return pattern[:i]
    return pattern


def _says_glob(const: Any) -> Says:
    """A case-sensitive glob: the value starts with its literal head and contains its longest
    literal run after it."""
    if not isinstance(const, Glob) or const.icase:
        return NOTHING_SAID
    head, *rest = const.literal_runs
    rest = [r for r in rest if r]
    return Says(prefixes=frozenset({head}) if head else None,
                substrings=frozenset({max(rest, key=len)}) if rest else None)


def _says_pmatch(const: Any) -> Says:
    """``pmatch``: the value starts with one of its paths' literal heads."""
    paths = getattr(const, "paths", None)
    return NOTHING_SAID if paths is None else \
        Says(prefixes=frozenset(literal_head(p) for p in paths))


def _equal(const: Any, ftype: FieldType) -> Pred:
    if ftype in IP_TYPES:
        return _ip_pred([const])
    return lambda v: v == const


def _not_equal(const: Any, ftype: FieldType) -> Pred:
    if ftype in IP_TYPES:
        p = _ip_pred([const])
        return lambda v: not p(v)
    return lambda v: v != const


def _none_equal(pred: Pred, const: Any, ftype: FieldType) -> Pred:
    """``!=`` on a multi-valued field: no value equals (``fd.net != 127.0.0.0/8``: neither
    end is)."""
    return no_element(_equal(const, ftype))


def _member(const: Any, ftype: FieldType) -> Pred:
    if ftype in IP_TYPES:
        return _ip_pred(list(const))
    return lambda v: v in const


def _ordering(name: str, cmp: Callable[[Any, Any], bool], doc: str,
              says: Callable[[Any], Says] | None = None) -> Operator:
    """An ordering operator: numbers compared as numbers, strings as strings (Falco's
    ``strcmp``); between two fields, values that do not compare make it false."""
    def pred(const: Any, ftype: FieldType) -> Pred:
        if isinstance(const, str):    # a string field: Falco compares strings (strcmp)
            return lambda v: cmp(v if isinstance(v, str) else str(v), const)

        def num_cmp(v: Any) -> bool:
            n = _num(v)
            return n is not None and cmp(n, const)
        return num_cmp

    def pair(a: Any, b: Any) -> bool:
        try:
            return cmp(a, b)
        except TypeError:
            return False
    return Operator(name, Kind.VALUE, doc, pred, types=ORDERED_TYPES, const=number_or_text,
                    pair=pair, inline=f"{{v}} {name} {{k}}",
                    inline_if=_numeric, says=says)


def _contains(const: Any, ftype: FieldType) -> Pred:
    if isinstance(const, bytes):
        return lambda v: const in _to_bytes(v)
    return lambda v: const in v if isinstance(v, str) else const in str(v)


def _icontains(const: Any, ftype: FieldType) -> Pred:
    return lambda v: const in (v.decode("utf-8", "replace") if isinstance(v, bytes)
                               else str(v)).lower()


def _startswith(const: Any, ftype: FieldType) -> Pred:
    if isinstance(const, bytes):
        return lambda v: _to_bytes(v).startswith(const)
    return lambda v: str(v).startswith(const)


def _endswith(const: Any, ftype: FieldType) -> Pred:
    if isinstance(const, bytes):
        return lambda v: _to_bytes(v).endswith(const)
    return lambda v: str(v).endswith(const)


def _matches(const: Any, ftype: FieldType) -> Pred:
    match = const
    return lambda v: match(v if isinstance(v, str) else str(v)) is not None


def _globbed(const: Glob, ftype: FieldType) -> Pred:
    return const


def _glob_pair(icase: bool) -> Callable[[Any, Any], bool]:
    return lambda a, b: Glob(str(b), icase)(a)



def _non_empty(pred: Pred, const: Any, ftype: FieldType) -> Pred:
    return lambda values: len(values) > 0


for _op in (
    Operator("=", Kind.VALUE, "equal; on an IP field the constant may be a CIDR network that "
             "holds the address", _equal, spellings=("==",), pair=lambda a, b: a == b,
             inline="{v} == {k}", inline_if=_not_ip, event_types="in", cheap=True,
             modifiers=True, says=_says_equal),
    Operator("!=", Kind.VALUE, "not equal; a multi-valued field holds when none of its "
             "values equals", _not_equal, pair=lambda a, b: a != b, inline="{v} != {k}",
             inline_if=_not_ip, many=_none_equal, event_types="not in", modifiers=True,
             says=lambda const: Says(excludes=_members((const,)))),
    _ordering("<", lt, "less than: numbers as numbers, strings as strings"),
    _ordering("<=", le, "less than or equal"),
    _ordering(">", gt, "greater than", _says_at_least(1)),
    _ordering(">=", ge, "greater than or equal", _says_at_least(0)),
    Operator("contains", Kind.VALUE, "the value contains the constant (as bytes, on a byte buffer)",
             _contains, pair=lambda a, b: str(b) in str(a), inline="{k} in {v}",
             inline_if=_on_strings, types=TEXT_TYPES, modifiers=True,
             says=_says_text("substrings")),
    Operator("icontains", Kind.VALUE, "the value contains the constant, ignoring case",
             _icontains, const=lowered, pair=lambda a, b: str(b).lower() in str(a).lower(),
             inline="{k} in {v}.lower()", inline_if=_on_strings, types=STRING_TYPES,
             modifiers=True),
    Operator("bcontains", Kind.VALUE, "the value contains the bytes written in hexadecimal "
             "(`CAFE`)", lambda const, ftype: lambda v: const in _to_bytes(v),
             const=hex_bytes("bcontains"), pair=lambda a, b: _to_bytes(b) in _to_bytes(a),
             types=BYTES_TYPES, modifiers=True),
    Operator("startswith", Kind.VALUE, "the value starts with the constant", _startswith,
             pair=lambda a, b: str(a).startswith(str(b)), inline="{v}.startswith({k})",
             inline_if=_on_strings, types=TEXT_TYPES, modifiers=True,
             says=_says_text("prefixes")),
    Operator("bstartswith", Kind.VALUE, "the value starts with the bytes written in "
             "hexadecimal", lambda const, ftype: lambda v: _to_bytes(v).startswith(const),
             const=hex_bytes("bstartswith"),
             pair=lambda a, b: _to_bytes(a).startswith(_to_bytes(b)), types=BYTES_TYPES,
             modifiers=True),
    Operator("endswith", Kind.VALUE, "the value ends with the constant", _endswith,
             pair=lambda a, b: str(a).endswith(str(b)), inline="{v}.endswith({k})",
             inline_if=_on_strings, types=TEXT_TYPES, modifiers=True,
             says=_says_text("substrings")),         # ends with X: contains X
    Operator("glob", Kind.VALUE, "the whole value matches a shell glob, as `fnmatch` "
             "without `FNM_PATHNAME` (`*` and `?` match `/` too; `[...]` classes; a "
             "backslash escapes)", _globbed, const=glob_const(False),
             pair=_glob_pair(False), types=STRING_TYPES, modifiers=True, says=_says_glob),
    Operator("iglob", Kind.VALUE, "`glob`, ignoring case", _globbed, const=glob_const(True),
             pair=_glob_pair(True), types=STRING_TYPES, modifiers=True),
    Operator("regex", Kind.VALUE, "the whole value matches a regular expression (Python's "
             "syntax); not with `val()`", _matches, const=regex_const, types=STRING_TYPES,
             modifiers=True),
    Operator("in", Kind.LIST, "equal to an item of the list; on an IP field items may be "
             "CIDR networks", _member, inline="{v} in {k}", inline_if=_hashed,
             event_types="in", cheap=True, says=_says_member),
    Operator("intersects", Kind.LIST, "a value of a multi-valued field is in the list (as "
             "`in`)", _member, inline="{v} in {k}", inline_if=_hashed, event_types="in",
             cheap=True, says=_says_member),
    Operator("pmatch", Kind.LIST, "the path is an item of the list or below one, by whole "
             "components (items may be globs)", lambda const, ftype: const,
             types=STRING_TYPES, const=as_text,
             gather=lambda consts, ftype: pmatch_pred(consts),
             type_error="operator '{op}' needs a string field, {field} is {type}",
             says=_says_pmatch),
    Operator("samefile", Kind.LIST, "syswarden, beyond Falco: the file is one of those the "
             "list's paths name, by identity (`fd.devino samefile (/etc/shadow)`: a hard "
             "link, a bind mount or any path to it); the files are looked up (`stat`) when "
             "the rules load and again on every reload", _member, types=STRING_TYPES,
             const=_identity_item, gather=file_ids, inline="{v} in {k}", inline_if=_hashed,
             cheap=True),
    Operator("exists", Kind.UNARY, "the field has a value (a multi-valued one: at least one)",
             lambda const, ftype: _always, inline="True", many=_non_empty),
):
    OPERATORS.add(_op)
del _op


# ---------------------------------------------------------------------------------------------
# Transformers
# ---------------------------------------------------------------------------------------------

def _b64(v: Any) -> Any:
    raw = _to_bytes(v)
    try:
        data = base64.b64decode(raw + b"=" * (-len(raw) % 4), validate=False)
    except (binascii.Error, ValueError):
        return None
    return data.decode("utf-8", "replace")


def _basename(v: Any) -> Any:
    s = str(v)
    return s[s.rfind("/") + 1:]


@dataclass(frozen=True)
class Transform:
    """A transformer of one field: ``fn`` applied to each value; ``text_only``: it takes a
    string or a byte buffer only; ``result``: the type it gives (None: the field's own)."""

    fn: Callable[[Any], Any]
    text_only: bool
    result: FieldType | None = None


#: The transformers of one field, each declared once (the lexer's words, the compiler's type
#: checks and the readers come from here; those of several arguments are in :mod:`.calls`).
TRANSFORMS: dict[str, Transform] = {
    "tolower": Transform(lambda v: v.lower() if isinstance(v, str) else v, True),
    "toupper": Transform(lambda v: v.upper() if isinstance(v, str) else v, True),
    "b64": Transform(_b64, True, FieldType.STRING),
    "basename": Transform(_basename, True),
    "len": Transform(lambda v: len(v) if isinstance(v, (str, bytes, tuple, list))
                     else len(str(v)), False, FieldType.UINT64),
}


def apply_transform(read: Callable, many: bool, name: str) -> tuple[Callable, bool]:
    fn = TRANSFORMS[name].fn
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

