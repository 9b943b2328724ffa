"""IP addresses read from the kernel's bytes: one shared object per address, its text made once.

The sources and the fd table see the same few addresses over and over (a web server's
127.0.0.1, its clients): :func:`from_packed` builds an address from its packed bytes once and
keeps it in a bounded cache, and :func:`parse_hex` does the same for ``/proc/net``'s text.  An
address is an :mod:`ipaddress` object (the rule operators, the outputs and the capture writer
take it as one; it compares and hashes as one) that keeps its text, so printing it (``fd.name``,
a sockaddr's ``1.2.3.4:80``) formats nothing.  An IPv4-mapped IPv6 address (``::ffff:1.2.3.4``)
is its IPv4 address, as Falco shows it.

The cache holds at most :data:`CACHE_SIZE` addresses and starts over when full: an attacker
cycling through addresses costs a rebuild per address, never memory.
"""

from __future__ import annotations

import ipaddress

#: addresses kept; past this many the cache starts over
CACHE_SIZE = 4096

_V4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"


class _KeepsText:
    """What the two address classes add to :mod:`ipaddress`'s: the text, made once."""

    __slots__ = ()
    _text: str
    family: str

    def __init__(self, address: bytes | int | str) -> None:
        super().__init__(address)  # type: ignore[call-arg]
        self._text = super().__str__()

    def __str__(self) -> str:
        return self._text

    def __format__(self, spec: str) -> str:
        return self._text if not spec else super().__format__(spec)

    def __repr__(self) -> str:     # as ipaddress's own: a value, wherever it is printed
        return f"IPv{self.family[-1]}Address({self._text!r})"


class IPv4(_KeepsText, ipaddress.IPv4Address):
    """An :class:`ipaddress.IPv4Address` that keeps its text."""

    __slots__ = ("_text",)
    family = "ipv4"


class IPv6(_KeepsText, ipaddress.IPv6Address):
    """An :class:`ipaddress.IPv6Address` that keeps its text."""

    __slots__ = ("_text",)
    family = "ipv6"


ANY4 = IPv4(0)
ANY6 = IPv6(0)

_cache: dict[bytes, IPv4 | IPv6] = {}


def _build(packed: bytes) -> IPv4 | IPv6:
    if len(packed) == 16:
        if packed[:12] == _V4_MAPPED_PREFIX:
            return IPv4(packed[12:])
        return IPv6(packed)
    return IPv4(packed)


def from_packed(packed: bytes) -> IPv4 | IPv6:
    """The address of 4 packed bytes (IPv4) or 16 (IPv6, an IPv4-mapped one is IPv4), in
    network order; another length is a ValueError."""
    addr = _cache.get(packed)
    if addr is None:
        if len(packed) not in (4, 16):
            raise ValueError(f"{len(packed)} bytes are no IP address")
        if len(_cache) >= CACHE_SIZE:
            _cache.clear()
        addr = _cache[packed] = _build(bytes(packed))
    return addr


def parse_hex(text: str) -> IPv4 | IPv6:
    """An address as ``/proc/net/{tcp,udp}{,6}`` print it: hex of the kernel's 32-bit words,
    each in host (little-endian) order.  A ValueError when it is not one."""
    raw = bytes.fromhex(text)
    if len(raw) not in (4, 16):
        raise ValueError(f"{text!r} is no /proc/net address")
    return from_packed(b"".join(raw[i:i + 4][::-1] for i in range(0, len(raw), 4)))
