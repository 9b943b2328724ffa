"""Falco's comparison operators and field transformers, on single values.

Each operator becomes a predicate ``value -> bool`` built once per check, its constant
prepared at load time (a frozenset for ``in``, a compiled regex for ``glob``/``regex``, integer
masks for CIDR networks).  Semantics are Falco's: ``glob`` and ``regex`` match the whole value
(``*`` and ``?`` stop at ``/``); ``pmatch`` is a prefix match by path component (globs allowed);
ordering operators compare numbers, or strings as strings; ``in``/``intersects``/``=`` on an IP
field accept CIDR networks.  Multi-valued fields hold when any element does
(:func:`any_element`), ``!=`` when no element equals (:func:`no_element`).
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import re
from collections.abc import Callable
from typing import Any

from ..fields import FieldType
from .lexer import NUM_OPS

# ---------------------------------------------------------------------------------------------
# Operators on single values
# ---------------------------------------------------------------------------------------------

def glob_regex(pattern: str, icase: bool, prefix: bool = False) -> re.Pattern:
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


def pmatch_pred(paths: list[str]) -> Callable[[Any], bool]:
    """``pmatch``: the value is one of ``paths`` or under one (by whole path components), or
    matches a glob among them.  Plain paths are looked up per ancestor of the value (a set
    lookup per ``/`` in it), so a list of any length costs the same per event."""
    exact: set[str] = set()
    globs: list[re.Pattern] = []
    for p in paths:
        if any(ch in p for ch in "*?["):
            globs.append(glob_regex(p.rstrip("/") or "/", False, prefix=True))
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
    pred.paths = tuple(paths)   # type: ignore[attr-defined]  # read by the open prefilter
    return pred


_NETS = (ipaddress.IPv4Network, ipaddress.IPv6Network)
_ADDRS = (ipaddress.IPv4Address, ipaddress.IPv6Address)


def _ip_pred(consts: list[Any]) -> Callable[[Any], bool]:
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


_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


def single_pred(op: str, const: Any, ftype: FieldType) -> Callable[[Any], bool]:
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


def pair_pred(op: str, ftype: FieldType) -> Callable[[Any, Any], bool]:
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
        return lambda a, b: glob_regex(str(b), op == "iglob").fullmatch(str(a)) is not None
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


def apply_transform(read: Callable, many: bool, name: str) -> tuple[Callable, bool]:
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


def any_element(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
    def any_of(values: Any) -> bool:
        for x in values:
            if x is not None and pred(x):
                return True
        return False
    return any_of


def no_element(pred: Callable[[Any], bool]) -> Callable[[Any], bool]:
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
