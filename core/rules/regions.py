"""Where a ``connect`` goes, as the loaded rules care: the *regions* of IPv4 destinations.

Falco's rules on ``connect`` are mostly about connections leaving the machine or its private
network: its ``outbound`` macro wants ``fd.ip != "0.0.0.0" and fd.net != "127.0.0.0/8" and not
fd.snet in (rfc_1918_addresses)``.  A web server's client, a sidecar, a pod talking to another
pod connects to loopback or private addresses, thousands of times a second, and no such rule can
match those connects.  :func:`connect_regions` derives, from the rules' conditions folded for
``connect``, the regions of the destination (the server end, as a connect's record gives it)
some rule can match; a source that reads an IPv4 destination where the call happens keeps the
connects to the other regions in the kernel.

The regions split IPv4: :data:`LOOPBACK` (127.0.0.0/8), :data:`PRIVATE` (RFC 1918: 10.0.0.0/8,
172.16.0.0/12, 192.168.0.0/16), :data:`UNSPECIFIED` (0.0.0.0) and :data:`PUBLIC` (the rest).
Any other destination (IPv6, an address the source cannot read) has no region: always sent.

The derivation over-approximates, so it is sound by construction: it follows ``and``, ``or``,
``not`` and macros, each check abstracted as the regions for which it *may* hold and those for
which it *may* fail (under a ``not``); a check it does not understand may do either in every
region.  What it understands, on an IPv4 connect with a destination (every such event's server
end has a value, so a comparison is never false for want of one):

* the server end (``fd.sip``, ``fd.snet``; for a connect the remote end too, ``fd.rip``,
  ``fd.rnet``) compared by ``=`` or ``in`` with addresses and networks: it may hold in the
  regions they meet, and fail in those they do not cover whole; ``!=`` the other way round;
* either end (``fd.ip``, ``fd.net``: the client's too, which the region does not tell):
  ``=`` and ``in`` may hold anywhere, and fail where the constants do not cover the region
  whole (then the server end is outside them); ``!=`` (neither end equals) the other way round.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from . import ast
from .resolved import RCheck, RMacro, RNode

LOOPBACK = "loopback"
PRIVATE = "private"
UNSPECIFIED = "unspecified"
PUBLIC = "public"
REGIONS = frozenset({LOOPBACK, PRIVATE, UNSPECIFIED, PUBLIC})

#: The networks of each region but :data:`PUBLIC` (every other IPv4 address); disjoint.
REGION_NETS: dict[str, tuple[ipaddress.IPv4Network, ...]] = {
    LOOPBACK: (ipaddress.IPv4Network("127.0.0.0/8"),),
    PRIVATE: tuple(ipaddress.IPv4Network(n) for n in
                   ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16")),
    UNSPECIFIED: (ipaddress.IPv4Network("0.0.0.0/32"),),
}
_EVERYWHERE = ipaddress.IPv4Network("0.0.0.0/0")

#: A connect's server end (and, the caller being its client, its remote end).
SERVER_FIELDS = frozenset({"fd.sip", "fd.snet", "fd.rip", "fd.rnet"})
#: Fields of either end: a value per end, ``=`` when one equals, ``!=`` when none does.
EITHER_FIELDS = frozenset({"fd.ip", "fd.net"})

# Abstract value: the regions a condition may hold in (None: any).
Regions = frozenset[str] | None


def region_of(address: Any) -> str | None:
    """The region of an address (an ``ipaddress`` IPv4 address); None for any other."""
    if not isinstance(address, ipaddress.IPv4Address):
        return None
    for name, nets in REGION_NETS.items():
        if any(address in n for n in nets):
            return name
    return PUBLIC


def connect_regions(conditions: list[RNode]) -> Regions:
    """The regions of an IPv4 destination for which one of ``conditions`` (folded for
    ``connect``) may hold; None: any."""
    out: frozenset[str] = frozenset()
    memo: dict[tuple[int, bool], Regions] = {}
    for node in conditions:
        got = _abstract(node, True, memo)
        if got is None:
            return None
        out |= got
    return None if out == REGIONS else out


def _abstract(node: RNode, holds: bool, memo: dict[tuple[int, bool], Regions]) -> Regions:
    """The regions in which ``node`` may hold (``holds``) or may fail (not ``holds``)."""
    if isinstance(node, RCheck):
        return _check(node, holds)
    if isinstance(node, RMacro):
        key = (id(node), holds)
        if key not in memo:
            memo[key] = _abstract(node.child, holds, memo)
        return memo[key]
    if isinstance(node, ast.Const):
        return None if bool(node.value) == holds else frozenset()
    if isinstance(node, ast.Not):
        return _abstract(node.child, not holds, memo)
    if isinstance(node, (ast.And, ast.Or)):
        # may hold: an "or" in any part's regions, an "and" in every part's; may fail the
        # other way round
        parts = [_abstract(c, holds, memo) for c in node.children]
        if isinstance(node, ast.Or) == holds:
            return None if None in parts else frozenset().union(*parts)
        known = [x for x in parts if x is not None]
        return frozenset.intersection(*known) if known else None
    return None


def _check(c: RCheck, holds: bool) -> Regions:
    f = c.field
    if c.rhs is not None or f.key != f.name or f.name not in SERVER_FIELDS | EITHER_FIELDS:
        return None
    if c.op in ("=", "==", "in"):
        positive = True
    elif c.op == "!=":
        positive = False
    else:
        return None
    nets = _networks(c.const if c.op == "in" else (c.const,))
    if nets is None:
        return None
    meets = frozenset(r for r in REGIONS if _meets(r, nets))
    outside = frozenset(r for r in REGIONS if not _covers(nets, r))
    either = f.name in EITHER_FIELDS
    # "=" or "in" holding: the server end in them (or, for either end, the client's: anywhere)
    if positive == holds:
        return None if either else meets
    # none equal (for either end: the server's neither): some address of the region outside
    return outside


def _networks(consts: Any) -> list[ipaddress.IPv4Network] | None:
    """The IPv4 networks of a check's constants (an address as a /32; IPv6 ones, which no IPv4
    address equals, left out); None when one is neither."""
    out = []
    for k in consts:
        if isinstance(k, ipaddress.IPv4Address):
            out.append(ipaddress.IPv4Network(int(k)))
        elif isinstance(k, ipaddress.IPv4Network):
            out.append(k)
        elif not isinstance(k, (ipaddress.IPv6Address, ipaddress.IPv6Network)):
            return None
    return out


def _meets(region: str, nets: list[ipaddress.IPv4Network]) -> bool:
    """Whether some address of ``region`` is in one of ``nets``."""
    if region == PUBLIC:
        # a network inside no other region's is public; one holding another region's network
        # and larger than it holds public addresses too (no union of the region networks is a
        # larger network)
        return any(not any(n.subnet_of(r) for rn in REGION_NETS.values() for r in rn)
                   for n in nets)
    return any(n.overlaps(r) for r in REGION_NETS[region] for n in nets)


def _covers(nets: list[ipaddress.IPv4Network], region: str) -> bool:
    """Whether every address of ``region`` is in one of ``nets`` (said only when sure)."""
    if region == PUBLIC:
        return any(n == _EVERYWHERE for n in nets)
    return all(any(r.subnet_of(n) for n in nets) for r in REGION_NETS[region])
