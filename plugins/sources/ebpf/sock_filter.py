"""The rules' socket prefilter (:mod:`syswarden.core.rules.sockfilter`) rendered as C.

:func:`render` gives ``sock_class(fd)``, the class bit of the family of this process's socket
``fd`` (:data:`CLASS_BITS`; every bit when ``fd`` is not a socket or the family cannot be read),
and ``family_class(family)`` for a family number.  The exit handler of a filtered syscall
(:func:`handler_lines`) tests it against the mask of the classes some rule can match: none in
common keeps the event in the kernel (counted), else it is sent.

The family is read from the kernel's socket: the fd's ``struct file`` (an inode of type
``S_IFSOCK``, else not a socket), its ``private_data`` (the ``struct socket``), its ``sk``, and
``sk_common``'s ``skc_family``, at offsets from BTF as :func:`put_sock_end` reads them.
"""

from __future__ import annotations

from syswarden.core.rules.sockfilter import IP, OTHER, UNIX, SocketPrefilter

CLASS_BITS = {UNIX: 1, IP: 2, OTHER: 4}
ALL_BITS = sum(CLASS_BITS.values())

#: The filtered syscalls -> the C expression of their event's class bits: ``socket``'s from its
#: domain argument, an accept's from the new socket (or the listening one when it failed), the
#: others' from their fd argument.
CLASS_OF = {
    "socket": "family_class((u32)p.a[0])",
    "accept": "sock_class(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    "accept4": "sock_class(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])",
    **{n: "sock_class((s64)(int)p.a[0])" for n in (
        "connect", "bind", "listen", "sendto", "sendmsg", "recvfrom", "recvmsg")},
}


def mask(pf: SocketPrefilter | None, syscall: str) -> int | None:
    """The class bits ``syscall``'s events are sent for; None: not filtered."""
    if pf is None or syscall not in CLASS_OF:
        return None
    classes = pf.classes(syscall)
    return None if classes is None else sum(CLASS_BITS[c] for c in classes)


def handler_lines(pf: SocketPrefilter | None, syscall: str) -> list[str]:
    """The lines an exit handler runs first (its arguments in ``p``): none when unfiltered."""
    m = mask(pf, syscall)
    if m is None:
        return []
    return [f"    if (!({CLASS_OF[syscall]} & {m})) {{",
            "        count(CAT_SOCK_FILTERED, 0);",
            "        return 0;",
            "    }"]


def render(pf: SocketPrefilter | None) -> str:
    """``#define SOCK_FILTER`` and, with a prefilter, ``family_class`` and ``sock_class``."""
    if pf is None:
        return "#define SOCK_FILTER 0\n"
    return "\n".join([
        "#define SOCK_FILTER 1",
        "",
        "// The class bit of a socket family (rendered from sock_filter.py).",
        "static __always_inline u32 family_class(u32 family)",
        "{",
        "    if (family == 1)                     // AF_UNIX",
        f"        return {CLASS_BITS[UNIX]};",
        "    if (family == 2 || family == 10)     // AF_INET, AF_INET6",
        f"        return {CLASS_BITS[IP]};",
        f"    return {CLASS_BITS[OTHER]};",
        "}",
        "",
        "// The class bit of the family of this process's socket `fd`; every bit when `fd` is",
        "// not a socket, or its family cannot be read here.",
        "static __always_inline u32 sock_class(s64 fd)",
        "{",
        "#if defined(OFF_FILE_INODE) && defined(OFF_INODE_MODE) && defined(OFF_FILE_PRIVATE) && \\",
        "    defined(OFF_SOCKET_SK) && defined(OFF_SKC_FAMILY)",
        "    void *file = fd_file(fd);",
        "    if (!file)",
        f"        return {ALL_BITS};",
        "    void *inode = read_ptr_at(file, OFF_FILE_INODE);",
        "    u16 mode = 0;",
        "    if (!inode || bpf_probe_read_kernel(&mode, sizeof(mode), inode + OFF_INODE_MODE))",
        f"        return {ALL_BITS};",
        "    if ((mode & 0170000) != 0140000)     // not S_IFSOCK: private_data is no socket",
        f"        return {ALL_BITS};",
        "    void *sock = read_ptr_at(file, OFF_FILE_PRIVATE);",
        "    void *sk = sock ? read_ptr_at(sock, OFF_SOCKET_SK) : 0;",
        "    u16 family = 0;",
        "    if (!sk || bpf_probe_read_kernel(&family, sizeof(family), sk + OFF_SKC_FAMILY))",
        f"        return {ALL_BITS};",
        "    return family_class(family);",
        "#else",
        f"    return {ALL_BITS};",
        "#endif",
        "}",
        "",
    ])
