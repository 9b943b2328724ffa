"""The rules' socket prefilter (:mod:`syswarden.core.rules.sockfilter`) rendered as C.

:func:`render` gives ``sock_class(fd)``, the class bit of this process's socket ``fd`` by its
family and type (:data:`CLASS_BITS`; every bit when ``fd`` is not a socket or its family cannot
be read), and ``socket_class(family, type)`` for a family and type number.  The exit handler of a filtered syscall
(:func:`handler_lines`) tests it against the mask of the classes some rule can match: none in
common keeps the event in the kernel (counted), else it is sent.  A ``connect`` on an IP socket
whose class teaches the fd table nothing is also kept when ``dest_region`` says its IPv4
destination is in a region no rule can match (:mod:`syswarden.core.rules.regions`).

The family and type are ``sock_info(fd)``'s (``program.c``, what the record of a socket call
carries in ``extra``, :data:`.record.SOCK_INFO`): the fd's ``struct file`` (an inode of type
``S_IFSOCK``, else not a socket), its ``private_data`` (the ``struct socket``, its ``type``), its
``sk``, and ``sk_common``'s ``skc_family``, at offsets from BTF.  Nothing is filtered on a kernel
where the socket cannot be read whole (``SOCK_FACTS``: its family, type, protocol and ends),
since the fd table takes from the records what it would otherwise learn from the calls kept.
"""

from __future__ import annotations

from syswarden.core.rules.procnames import HOST
from syswarden.core.rules.regions import PUBLIC, REGION_NETS, REGIONS
from syswarden.core.rules.sockfilter import (NOT_TCP, OTHER, TCP, TCP_TYPES, UNIX,
                                             SocketPrefilter)

from . import name_filter

CLASS_BITS = {UNIX: 1, TCP: 2, OTHER: 4, NOT_TCP: 8}
ALL_BITS = sum(CLASS_BITS.values())
IP_BITS = CLASS_BITS[TCP] | CLASS_BITS[NOT_TCP]

#: The filtered syscalls -> the C expression of their event's class bits: ``socket``'s from its
#: domain and type arguments, an accept's from the new socket (or the listening one when it
#: failed), the others' from their fd argument.
CLASS_OF = {
    "socket": "socket_class((u32)p.a[0], (u32)p.a[1] & 0xf)",
    "accept": "sock_class(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    "accept4": "sock_class(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    **{n: "sock_class((s64)(int)p.a[0])" for n in (
        "connect", "bind", "listen", "sendto", "sendmsg", "recvfrom", "recvmsg")},
}
#: The filtered syscalls whose record carries their socket's ``sock_info()`` anyway (those of
#: ``program.SOCK_FD``, of the same fd): it is read once, into ``sock_info_v``, which the
#: record takes, and their class is taken from it.
INFO_OF = {
    "accept": "sock_info(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    "accept4": "sock_info(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    **{n: "sock_info((s64)(int)p.a[0])" for n in ("connect", "bind", "listen")},
}
#: What a handler that read ``sock_info_v`` names it by.
INFO_VAR = "sock_info_v"


def _bits(classes: frozenset[str]) -> int:
    return sum(CLASS_BITS[c] for c in classes)


#: A bit per region of an IPv4 destination (:mod:`syswarden.core.rules.regions`).
REGION_BITS = {r: 1 << i for i, r in enumerate(sorted(REGIONS))}


def _region_bits(regions: frozenset[str]) -> int:
    return sum(REGION_BITS[r] for r in regions)


def _dest_region_c() -> list[str]:
    """``dest_region(addr, len)``: the region bit of the IPv4 destination a connect names (the
    sockaddr at user ``addr``, ``len`` bytes), tested against :data:`REGION_NETS`; 0 when it is
    no AF_INET address the decoder reads (as ``sockaddr_known`` says)."""
    lines = [
        "// The region bit of a connect's IPv4 destination (rendered from core/rules/regions.py);",
        "// 0 when the sockaddr at user `addr` (`len` bytes) is no AF_INET address the decoder",
        "// reads.",
        "static __always_inline u32 dest_region(u64 addr, u32 len)",
        "{",
        "    u64 v = 0;     // sin_family, sin_port, sin_addr: as the decoder reads them",
        "    if (!addr || len < 8 || len > 128 || bpf_probe_read_user(&v, sizeof(v), "
        "(void *)addr))",
        "        return 0;",
        "    if ((v & 0xffff) != AF_INET)",
        "        return 0;",
        "    u32 ip = __builtin_bswap32((u32)(v >> 32));      // host order",
    ]
    for region, nets in REGION_NETS.items():
        tests = " || ".join(f"(ip & 0x{int(n.netmask):08x}) == 0x{int(n.network_address):08x}"
                            for n in nets)
        lines += [f"    if ({tests})", f"        return {REGION_BITS[region]};   // {region}"]
    return lines + [f"    return {REGION_BITS[PUBLIC]};   // {PUBLIC}", "}", ""]


def _region_lines(pf: SocketPrefilter, syscall: str) -> list[str]:
    """For ``connect``: keep a call on an IP socket whose class teaches the fd table nothing,
    to an IPv4 destination of a region no rule can match where the process runs (a place not
    known: the regions of both)."""
    if syscall != "connect" or not pf.connect_regions:
        return []
    every = _region_bits(REGIONS)
    masks = {p: _region_bits(r) if r is not None else every
             for p in name_filter.PLACE_BITS for r in (pf.regions_for(p == HOST),)}
    wanted = " | ".join(f"(place & {name_filter.PLACE_BITS[p]} ? {m} : 0)"
                        for p, m in sorted(masks.items()))
    return [f"    if (sock_bits != {ALL_BITS} && (sock_bits & {IP_BITS}) && "
            f"!(sock_bits & {_bits(pf.connect_taught)})) {{",
            "        u32 region = dest_region(p.a[1], (u32)p.a[2]);",
            "        if (region) {",
            "            u32 place = place_bits();",
            f"            if (!(region & ({wanted}))) {{",
            "                count(CAT_SOCK_FILTERED, 0);",
            "                return 0;",
            "            }",
            "        }",
            "    }"]


def mask(pf: SocketPrefilter | None, syscall: str) -> int | None:
    """The class bits ``syscall``'s events are sent for whatever the process's name; None:
    not filtered."""
    if pf is None or syscall not in CLASS_OF:
        return None
    classes = dict(pf.wanted).get(syscall)
    return None if classes is None else _bits(classes)


#: The C expression saying a call names a destination or returned a source
#: (:data:`~.sockfilter.ADDRESSED`): sendto's dest_addr, sendmsg's msghdr.msg_name (its first
#: field); recvfrom's *addrlen, recvmsg's msghdr.msg_namelen (at offset 8) above 0 on return.
ADDRESS_OF = {
    "sendto": "p.a[4] != 0",
    "sendmsg": "user_ptr_at(p.a[1]) != 0",
    "recvfrom": "p.a[4] != 0 && user_u32_at(p.a[5]) != 0",
    "recvmsg": "user_ptr_at(p.a[1]) != 0 && user_u32_at(p.a[1] + 8) != 0",
}


def handler_lines(pf: SocketPrefilter | None, syscall: str,
                  names: dict[frozenset[str], int] | None = None) -> list[str]:
    """The lines an exit handler runs first (its arguments in ``p``): none when unfiltered.
    A call naming a destination, or a receive that returned an address, on a TCP socket is sent
    whatever the mask (it teaches the fd table).  A class wanted only for some processes is
    sent when the process's name has the bit of one of their name sets (``names``: the bit of
    each, see :mod:`.name_filter`; a set without one is not tested) and it runs where they
    do."""
    m = mask(pf, syscall)
    if m is None:
        return []
    names = names or {}
    if syscall in INFO_OF:
        lines = [f"    u32 {INFO_VAR} = {INFO_OF[syscall]};",
                 f"    u32 sock_bits = {INFO_VAR} ? socket_class({INFO_VAR} & 0xff, "
                 f"({INFO_VAR} >> 8) & 0xff) : {ALL_BITS};"]
    else:
        lines = [f"    u32 sock_bits = {CLASS_OF[syscall]};"]
    lines += _region_lines(pf, syscall)
    # sent whatever the rules: not a socket (or its family not read: every bit), and what the
    # fd table learns from
    must = [f"sock_bits == {ALL_BITS}"]
    if syscall in ADDRESS_OF:
        must.append(f"((sock_bits & {CLASS_BITS[TCP]}) && {ADDRESS_OF[syscall]})")
    test = f"!({' || '.join(must)}) && !(sock_bits & {m})"
    terms = ["(" + " && ".join([f"(sock_bits & {_bits(more)})",
                                *name_filter.who_c(ns, places, names)]) + ")"
             for (ns, places), more in pf.named_of(syscall) if more]
    if not terms:
        return lines + [f"    if ({test}) {{",
                        "        count(CAT_SOCK_FILTERED, 0);",
                        "        return 0;",
                        "    }"]
    return lines + [f"    if ({test}) {{",
                    "        u64 nbits = name_bits();",
                    "        u32 place = place_bits();",
                    "        if (!(" + "\n              || ".join(terms) + ")) {",
                    "            count(CAT_SOCK_FILTERED, 0);",
                    "            return 0;",
                    "        }",
                    "    }"]


def render(pf: SocketPrefilter | None) -> str:
    """``#define SOCK_FILTER`` and, with a prefilter, ``socket_class`` and ``sock_class``."""
    if pf is None:
        return "#define SOCK_FILTER 0\n"
    tcp_types = " || ".join(f"type == {t}" for t in TCP_TYPES)
    return "\n".join([
        "#define SOCK_FILTER 1",
        "",
        "// The class bit of a socket family and type (rendered from sock_filter.py); both IP",
        "// bits when an IP socket's type is not known (0xffff).",
        "static __always_inline u32 socket_class(u32 family, u32 type)",
        "{",
        "    if (family == AF_UNIX)",
        f"        return {CLASS_BITS[UNIX]};",
        "    if (family != AF_INET && family != AF_INET6)",
        f"        return {CLASS_BITS[OTHER]};",
        "    if (type == 0xffff)",
        f"        return {IP_BITS};",
        f"    if ({tcp_types})        // SOCK_STREAM, SOCK_SEQPACKET: fd.l4proto = tcp",
        f"        return {CLASS_BITS[TCP]};",
        f"    return {CLASS_BITS[NOT_TCP]};",
        "}",
        "",
        *_dest_region_c(),
        "// The pointer at user address `addr` (0 when it cannot be read).",
        "static __always_inline u64 user_ptr_at(u64 addr)",
        "{",
        "    u64 v = 0;",
        "    if (addr)",
        "        bpf_probe_read_user(&v, sizeof(v), (void *)addr);",
        "    return v;",
        "}",
        "",
        "// The u32 at user address `addr` (0 when it cannot be read).",
        "static __always_inline u32 user_u32_at(u64 addr)",
        "{",
        "    u32 v = 0;",
        "    if (addr)",
        "        bpf_probe_read_user(&v, sizeof(v), (void *)addr);",
        "    return v;",
        "}",
        "",
        "// The class bit of this process's socket `fd`; every bit when `fd` is not a socket, or",
        "// its socket cannot be read whole here (SOCK_FACTS: the fd table then needs the calls",
        "// the rules' derivation leaves in the kernel).",
        "static __always_inline u32 sock_class(s64 fd)",
        "{",
        "#if SOCK_FACTS",
        "    u32 info = sock_info(fd);",
        "    if (!info)",
        f"        return {ALL_BITS};",
        "    return socket_class(info & 0xff, (info >> 8) & 0xff);",
        "#else",
        f"    return {ALL_BITS};",
        "#endif",
        "}",
        "",
    ])
