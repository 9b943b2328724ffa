"""The BPF program: the syscall table it covers and the pure function that renders it.

:data:`SYSCALLS` says, for every syscall the source can follow, what each of its six register
arguments is (an int, a user string, a sockaddr...) and its name in Falco's event table
(``evt.arg.<name>``, the same names as :mod:`syswarden.core.syscalls`).  The renderer turns that
table into one exit handler per syscall in ``program.c`` (kept beside this module), the decoder
(:mod:`.decode`) reads the records back with the same table.  The record itself (``struct rec``,
its kinds, the counter categories, the syscall numbers) is declared in :mod:`.record` and
rendered into the program with the rest; a syscall whose record would need more string slots
than it has is refused where it is declared.

:func:`render_program` is pure (no root, no kernel): ``syswarden --dump-ebpf`` prints it and
the tests check it.  It renders exit handlers only for the syscalls in ``event_types`` plus
those the state tables need (:data:`STATE_SYSCALLS`); ``None`` renders all of them.
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from importlib import resources
from typing import Any, Iterable

from syswarden.core.errors import Location, PluginError
from syswarden.core.rules.prefilter import OpenPrefilter
from syswarden.core.rules.sockfilter import SocketPrefilter

from . import compiled, loader, name_filter, open_filter, record, sock_filter, tracefs

# Argument kinds: how the kernel side reads an argument and the decoder turns it into a value.
FD = "fd"          # signed 32-bit (fds, dirfds, pids)
I32 = "i32"        # signed 32-bit
U32 = "u32"        # unsigned 32-bit (flags, modes, uids)
U64 = "u64"        # unsigned 64-bit (addresses, sizes)
STR = "str"        # a user string (a path, a name)
SOCK = "sock"      # a sockaddr, its length in the next argument
SOCKP = "sockp"    # a sockaddr filled by the kernel, its length behind the next argument
MSG = "msg"        # a msghdr: the sockaddr in msg_name
HOW = "how"        # openat2's struct open_how: flags, mode, resolve

Arg = tuple[str, str] | None  # (Falco name, kind) or None (not kept); a name starting with
                              # "_" is not a Falco argument but a KernelFacts attribute

#: Syscalls whose address argument, when it is none the decoder reads (``AF_UNSPEC``, a bad
#: pointer or length), is replaced by an IP socket's peer as the kernel has it after the call,
#: or a UNIX socket's family alone (so a connect's server end and fd type are its own: see
#: :data:`~syswarden.core.rules.sockfilter.OWN_FIELDS`) -> the register of the socket's fd.
PEER_WHEN_UNREAD: dict[str, int] = {"connect": 0}

#: Socket calls whose record describes their socket as the kernel has it after the call, so
#: that the fd table need not have seen the calls that made it (``socket``, ``bind``,
#: ``connect``...) -> the register of the socket's fd (None: the new fd, the return value, or
#: the fd in register 0 when the call failed: a failed accept's listening socket, a failed
#: dup's old fd).  Its family, type and protocol go in ``extra`` (:data:`.record.SOCK_INFO`,
#: 0: not a socket, or not read), decoded into ``KernelFacts.sock_family``, ``sock_type``,
#: ``sock_proto``.
SOCK_FD: dict[str, int | None] = {"connect": 0, "bind": 0, "listen": 0, "accept": None,
                                  "accept4": None, "dup": None, "dup2": None, "dup3": None}

#: Those whose record ends with the socket's local end (read from the kernel's socket, so
#: known even when the process is gone before its event is decoded; an IP socket's only),
#: decoded into ``KernelFacts.local``, and of :data:`PEER_END`, then with its remote end
#: (``KernelFacts.peer``: all zeros when it has none).
LOCAL_END = frozenset({"connect", "accept", "accept4", "listen", "dup", "dup2", "dup3"})
PEER_END = frozenset({"dup", "dup2", "dup3"})

#: Syscalls whose record ends with the path of the file they opened as the kernel has it
#: (``fd_realpath`` in ``program.c``: walked from the new fd's file in the kernel, not from the
#: path the caller wrote).  Decoded into ``KernelFacts.realpath``, the fd table's
#: ``fd.realpath``.
REALPATH = frozenset({"open", "openat", "openat2", "creat"})
#: Receives whose record ends with the first bytes they filled (Falco's ``data`` argument,
#: ``evt.buffer``; at most ``snaplen`` of them, see :data:`.record.SNAPLEN`) -> how they are
#: found: the buffer in register 1 (:data:`BUFFER`), or the first iovec of the msghdr in
#: register 1 (:data:`MSG`).  Decoded into ``args["data"]``.
RECEIVED: dict[str, str] = {"recvfrom": "buffer", "recvmsg": "msg"}
BUFFER = "buffer"


@dataclass(frozen=True)
class Syscall:
    name: str
    args: tuple[Arg, ...]     # by register position, up to six
    res: str = "res"          # the Falco name of the return value
    ring: str = "evt"         # evt or proc
    state: bool = False       # the state tables need it even when no rule does
    tp: str = ""              # the tracepoint's name when it differs (umount2 -> umount)

    @property
    def tracepoint(self) -> str:
        return self.tp or self.name

    @property
    def strings(self) -> list[tuple[int, str, str]]:
        """(register, Falco name, kind) of the arguments sent as bytes, in slot order."""
        return [(i, a[0], a[1]) for i, a in enumerate(self.args)
                if a is not None and a[1] in (STR, SOCK, SOCKP, MSG, HOW)]

    @property
    def slots(self) -> int:
        """The string slots its record fills: its strings, then the socket's local end, the
        file's realpath or the data received."""
        return len(self.strings) + (self.name in LOCAL_END) + (self.name in PEER_END) + \
            (self.name in REALPATH) + (self.name in RECEIVED)

    def __post_init__(self) -> None:
        where = Location(__file__)
        if len(self.args) > 6:
            raise PluginError(f"syscall {self.name!r} is declared with {len(self.args)} "
                              "arguments: a syscall has six registers", where)
        if self.slots > record.STRING_SLOTS:
            sent = [name for _reg, name, _kind in self.strings]
            if self.name in LOCAL_END:
                sent.append("the local end")
            if self.name in PEER_END:
                sent.append("the remote end")
            if self.name in REALPATH:
                sent.append("the realpath")
            if self.name in RECEIVED:
                sent.append("the data received")
            raise PluginError(f"syscall {self.name!r} sends {self.slots} strings "
                              f"({', '.join(sent)}), but a record has "
                              f"{record.STRING_SLOTS} string slots", where,
                              hint="send fewer of its arguments as bytes, or raise "
                                   "STRING_SLOTS in plugins/sources/ebpf/record.py")


def _s(name: str, *args: Arg, res: str = "res", ring: str = "evt", state: bool = False,
       tp: str = ""):
    return Syscall(name, tuple(args), res, ring, state, tp)


N = None
SYSCALLS: tuple[Syscall, ...] = (
    # files
    _s("open", ("name", STR), ("flags", U32), ("mode", U32), res="fd"),
    _s("openat", ("dirfd", FD), ("name", STR), ("flags", U32), ("mode", U32), res="fd"),
    _s("openat2", ("dirfd", FD), ("name", STR), ("how", HOW), res="fd"),
    _s("creat", ("name", STR), ("mode", U32), res="fd"),
    _s("close", ("fd", FD)),
    _s("dup", ("oldfd", FD), state=True),
    _s("dup2", ("oldfd", FD), ("newfd", FD), state=True),
    _s("dup3", ("oldfd", FD), ("newfd", FD), ("flags", U32), state=True),
    _s("chdir", ("path", STR), state=True),
    _s("fchdir", ("fd", FD), state=True),
    _s("rename", ("oldpath", STR), ("newpath", STR)),
    _s("renameat", ("olddirfd", FD), ("oldpath", STR), ("newdirfd", FD), ("newpath", STR)),
    _s("renameat2", ("olddirfd", FD), ("oldpath", STR), ("newdirfd", FD), ("newpath", STR),
       ("flags", U32)),
    _s("unlink", ("path", STR)),
    _s("unlinkat", ("dirfd", FD), ("name", STR), ("flags", U32)),
    _s("mkdir", ("path", STR), ("mode", U32)),
    _s("mkdirat", ("dirfd", FD), ("path", STR), ("mode", U32)),
    _s("rmdir", ("path", STR)),
    _s("link", ("oldpath", STR), ("newpath", STR)),
    _s("linkat", ("olddir", FD), ("oldpath", STR), ("newdir", FD), ("newpath", STR),
       ("flags", U32)),
    _s("symlink", ("target", STR), ("linkpath", STR)),
    _s("symlinkat", ("target", STR), ("linkdirfd", FD), ("linkpath", STR)),
    _s("chmod", ("filename", STR), ("mode", U32)),
    _s("fchmod", ("fd", FD), ("mode", U32)),
    _s("fchmodat", ("dirfd", FD), ("filename", STR), ("mode", U32)),
    _s("chown", ("path", STR), ("uid", U32), ("gid", U32)),
    _s("fchownat", ("dirfd", FD), ("pathname", STR), ("uid", U32), ("gid", U32), ("flags", U32)),
    _s("mount", ("dev", STR), ("dir", STR), ("type", STR), ("flags", U32)),
    _s("umount2", ("name", STR), ("flags", U32), tp="umount"),
    _s("chroot", ("path", STR)),
    _s("memfd_create", ("name", STR), ("flags", U32), res="fd", state=True),
    _s("userfaultfd", ("flags", U32)),
    # processes (clone & co: only their enter is attached, for the flags; the event itself is
    # sent by sched_process_fork, see FORK_SYSCALLS)
    _s("clone", ("flags", U64), ring="proc", state=True),
    _s("clone3", N, ("flags", U64), ring="proc", state=True),
    _s("fork", ring="proc", state=True),
    _s("vfork", ring="proc", state=True),
    _s("setns", ("fd", FD), ("nstype", U32)),
    _s("unshare", ("flags", U32)),
    _s("ptrace", ("request", U32), ("pid", FD), ("addr", U64), ("data", U64)),
    _s("setuid", ("uid", U32), state=True),
    _s("setgid", ("gid", U32), state=True),
    _s("setresuid", ("ruid", U32), ("euid", U32), ("suid", U32), state=True),
    _s("setresgid", ("rgid", U32), ("egid", U32), ("sgid", U32), state=True),
    _s("setsid", state=True),
    _s("capset", state=True),
    _s("setpgid", ("pid", FD), ("pgid", FD)),
    _s("prctl", ("option", I32), ("arg2_int", U64)),
    _s("kill", ("pid", FD), ("sig", U32)),
    # kernel modules, bpf
    _s("init_module", ("img", U64), ("length", U64), ("uargs", STR)),
    _s("finit_module", ("fd", FD), ("uargs", STR), ("flags", U32)),
    _s("delete_module", ("name", STR), ("flags", U32)),
    _s("bpf", ("cmd", I32), res="res_or_fd"),
    # network
    _s("socket", ("domain", U32), ("type", U32), ("proto", U32), res="fd"),
    _s("connect", ("fd", FD), ("addr", SOCK), N),
    _s("accept", ("_listen_fd", FD), ("tuple", SOCKP), N, res="fd"),
    _s("accept4", ("_listen_fd", FD), ("tuple", SOCKP), N, ("flags", U32), res="fd"),
    _s("bind", ("fd", FD), ("addr", SOCK), N),
    _s("listen", ("fd", FD), ("backlog", U32)),
    _s("sendto", ("fd", FD), N, ("size", U64), N, ("tuple", SOCK), N),
    _s("sendmsg", ("fd", FD), ("tuple", MSG), N),
    _s("recvfrom", ("fd", FD), N, ("size", U64), N, ("tuple", SOCKP), N),
    _s("recvmsg", ("fd", FD), ("tuple", MSG), N),
)

#: execve/execveat are handled by their own kernel code (argv read at enter).
EXEC_SYSCALLS = ("execve", "execveat")
#: Their event is sent from sched_process_fork (in the parent, res = the child's id).
FORK_SYSCALLS = ("clone", "clone3", "fork", "vfork")

BY_NAME: dict[str, Syscall] = {s.name: s for s in SYSCALLS}
#: The record's event id is the syscall's position in SYSCALLS (stable for a given version).
EVT_ID: dict[str, int] = {s.name: i for i, s in enumerate(SYSCALLS)}

#: Syscalls that create an fd: their record carries the new file's inode number, the fd
#: table's stamp for the entry.  (Closes are not followed: an entry whose number was closed and
#: reused by a call the source does not send is told stale by the stamp of its next use.)
FD_CREATORS = frozenset({"open", "openat", "openat2", "creat", "socket", "accept", "accept4",
                         "dup", "dup2", "dup3", "memfd_create"})
#: The opens: their stamp is decoded as Falco's ``ino`` argument (no extra dict per open).
OPEN_SYSCALLS = frozenset({"open", "openat", "openat2", "creat"})
#: Syscalls that use an existing fd -> its register: their record carries its inode number.
FD_USERS: dict[str, int] = {s.name: 0 for s in SYSCALLS if s.args and s.args[0] is not None
                            and s.args[0] == ("fd", FD) and s.name != "close"}

#: Opens that may create their file -> the register of their flags (None: openat2's flags are
#: in a user struct; the file table is asked whenever it succeeds).  The record's ``extra``
#: says whether the file was created (Falco's O_F_CREATED).
MAY_CREATE: dict[str, int | None] = {"open": 1, "openat": 2, "openat2": None}

#: Opens the rules' prefilter may keep in the kernel: (path register, flags register).
#: (openat2's flags are in a user struct, creat always writes: both always sent.)
PREFILTERED: dict[str, tuple[int, int]] = {"open": (0, 1), "openat": (1, 2)}

#: Credential calls: their record's ``ino`` carries the effective capability set after the call
#: (all ones: not read), which the process table follows (``thread.cap_effective``).
CRED_SYSCALLS = frozenset({"setuid", "setgid", "setresuid", "setresgid", "capset"})

#: Accepts: their peer comes from the new socket when the caller passed no address buffer.
ACCEPTS = ("accept", "accept4")

#: Syscalls the process and fd tables follow whatever the rules say.
STATE_SYSCALLS: frozenset[str] = frozenset(s.name for s in SYSCALLS if s.state)

#: Every event type the source can deliver.
SUPPORTED: frozenset[str] = frozenset(BY_NAME) | frozenset(EXEC_SYSCALLS) | {"procexit"}

DEFAULTS: dict[str, Any] = {
    "evt_ring_pages": 2048,     # 8 MiB
    "proc_ring_pages": 1024,    # 4 MiB
    "path_max": 1024,
    "snaplen": record.SNAPLEN,
    "argv_max": 4096,
    "max_args": 64,
    "pending_max": 65536,
    "wakeup_every": 256,
    "raw_fallback": False,
    "poll_ms": 10,
    "args_from": "auto",
    "attach": "auto",
    "program_cache": "/var/cache/syswarden/ebpf",
}


def _pow2(n: int, lo: int, hi: int) -> int:
    n = max(lo, min(hi, int(n)))
    p = 1
    while p < n:
        p <<= 1
    return p


def ring_bytes(pages: int) -> int:
    """The size in bytes of a ring of ``pages`` pages, as rendered (a power of two)."""
    return _pow2(pages, 1, 1 << 16) * 4096


def needed_syscalls(event_types: Iterable[str] | None) -> list[str]:
    """The syscalls to follow, in table order: what the rules need plus what state needs."""
    if event_types is None:
        wanted = set(BY_NAME)
    else:
        wanted = (set(event_types) & set(BY_NAME)) | STATE_SYSCALLS
    return [s.name for s in SYSCALLS if s.name in wanted]


def _exit_handler(sc: Syscall, prefilter: bool = False, kfunc: str | None = None,
                  socket_prefilter: SocketPrefilter | None = None,
                  names: dict[frozenset[str], int] | None = None) -> str:
    """``do_exit_<name>``, and its entry point: the tracepoint program ``sw_exit_<name>``, or
    with ``kfunc`` an fexit program on that function.  ``prefilter``: the open prefilter is
    rendered; ``socket_prefilter``: the rules' (see :mod:`.sock_filter`); ``names``: the bits
    of the name sets they test (:mod:`.name_filter`)."""
    lines = [
        f"static __always_inline int do_exit_{sc.name}(struct sys_exit_ctx *ctx)",
        "{",
        "    u64 id = bpf_get_current_pid_tgid();",
        "    if (is_agent(id))",
        "        return 0;",
        "    struct pend p;",
        "    if (!syscall_args((u32)id, ctx->nr, &p))",
        "        return 0;",
        f"    struct rec *r = new_rec(id, KIND_SYSCALL, {EVT_ID[sc.name]}, ctx->ret);",
        "    if (!r)",
        "        return 0;",
        "    __builtin_memcpy(r->a, p.a, sizeof(r->a));",
        "    u32 pos = REC_HDR;",
    ]
    if prefilter and sc.name in PREFILTERED:
        # the path as written first; the realpath walked when the open is sent or a term on
        # fd.realpath may judge it
        path, flags = PREFILTERED[sc.name]
        lines[8:8] = [
            f"    int wanted = open_wanted(ctx->ret, p.a[{flags}], (const void *)p.a[{path}]);",
            f"    u32 rplen = ctx->ret >= 0 && (wanted || realpath_needed(ctx->ret, "
            f"p.a[{flags}])) ? fd_realpath(ctx->ret) : 0;",
            f"    if (!wanted && !realpath_wanted(ctx->ret, p.a[{flags}], rplen)) {{",
            "        count(CAT_FILTERED, 0);",
            "        return 0;",
            "    }",
        ]
    elif sc.name in REALPATH:
        lines[8:8] = ["    u32 rplen = ctx->ret >= 0 ? fd_realpath(ctx->ret) : 0;"]
    lines[8:8] = sock_filter.handler_lines(socket_prefilter, sc.name, names)
    if sc.name in MAY_CREATE:
        reg = MAY_CREATE[sc.name]
        test = "1" if reg is None else f"(p.a[{reg}] & O_CREAT)"
        lines.append(f"    if ({test})\n        r->extra = open_created(ctx->ret);")
    if sc.name in OPEN_SYSCALLS:
        # the new file's inode number (the fd table's stamp) and, in a[5] (free in every
        # open), its device: one walk of the fd table for both
        lines += ["    {",
                  "        void *inode = ctx->ret >= 0 ? fd_inode(ctx->ret) : 0;",
                  "        r->ino = inode_ino(inode);",
                  "        r->a[5] = inode_dev(inode);",
                  "    }"]
    elif sc.name in FD_CREATORS:
        # a failed dup still names its old fd, which the fd table looks up
        used = "(s64)(int)p.a[0]" if sc.name.startswith("dup") else "-1"
        lines.append(f"    r->ino = fd_ino(ctx->ret >= 0 ? ctx->ret : {used});")
    elif sc.name in FD_USERS:
        lines.append(f"    r->ino = fd_ino((s64)(int)p.a[{FD_USERS[sc.name]}]);")
    elif sc.name in CRED_SYSCALLS:
        lines.append("    r->ino = current_cap_effective();")
    for slot, (reg, _name, kind) in enumerate(sc.strings):
        ptr = f"(const void *)p.a[{reg}]"
        if kind == STR:
            lines.append(f"    pos = put_str(r, pos, {slot}, {ptr});")
        elif kind == SOCK and sc.name in PEER_WHEN_UNREAD:
            lines += [f"    if (sockaddr_known(p.a[{reg}], (u32)p.a[{reg + 1}]))",
                      f"        pos = put_bytes(r, pos, {slot}, {ptr}, (u32)p.a[{reg + 1}]);",
                      "    else",
                      f"        pos = put_unread_peer(r, pos, {slot}, "
                      f"(s64)(int)p.a[{PEER_WHEN_UNREAD[sc.name]}]);"]
        elif kind == SOCK:
            lines.append(f"    pos = put_bytes(r, pos, {slot}, {ptr}, (u32)p.a[{reg + 1}]);")
        elif kind == SOCKP:
            lines += [
                "    {",
                "        int alen = 0;",
                f"        if (p.a[{reg + 1}])",
                f"            bpf_probe_read_user(&alen, sizeof(alen), (void *)p.a[{reg + 1}]);",
                "        if (alen > 0)",
                f"            pos = put_bytes(r, pos, {slot}, {ptr}, (u32)alen);",
            ]
            if sc.name in ACCEPTS:   # no address asked for: the peer from the new socket
                lines += ["        else if (ctx->ret >= 0)",
                          f"            pos = put_sock_end(r, pos, {slot}, ctx->ret, 1);"]
            lines += [
                "    }",
            ]
        elif kind == MSG:
            lines += [
                "    {",
                "        struct { u64 name; int namelen; } mh = {};",
                f"        if (bpf_probe_read_user(&mh, sizeof(mh), {ptr}) == 0 && mh.name"
                " && mh.namelen > 0)",
                f"            pos = put_bytes(r, pos, {slot}, (const void *)mh.name,"
                " (u32)mh.namelen);",
                "    }",
            ]
        elif kind == HOW:
            lines.append(f"    pos = put_bytes(r, pos, {slot}, {ptr}, 24);")
    if sc.name in REALPATH:
        lines.append(f"    pos = put_realpath(r, pos, {sc.slots - 1}, rplen);")
    if sc.name in SOCK_FD:
        reg = SOCK_FD[sc.name]
        fd = f"(s64)(int)p.a[{reg}]" if reg is not None else \
            "(ctx->ret >= 0 ? ctx->ret : (s64)(int)p.a[0])"
        # read once where the socket prefilter read it for the class
        read = sock_filter.INFO_VAR if sc.name in sock_filter.INFO_OF and \
            sock_filter.mask(socket_prefilter, sc.name) is not None else "sock_info(sfd)"
        lines += ["    {", f"        s64 sfd = {fd};", f"        r->extra = {read};"]
        if sc.name in LOCAL_END:
            slot = sc.slots - 1 - (sc.name in PEER_END)
            lines.append(f"        pos = put_sock_ends(r, pos, {slot}, sfd, r->extra, "
                         f"{int(sc.name in PEER_END)});")
        lines.append("    }")
    if sc.name in RECEIVED:      # after the strings (no receive has a local end)
        put = "put_received" if RECEIVED[sc.name] == BUFFER else "put_received_msg"
        lines.append(f"    pos = {put}(r, pos, {sc.slots - 1}, (const void *)p.a[1], "
                     "ctx->ret);")
    cat = "CAT_PROC" if sc.ring == "proc" else "CAT_EVT"
    lines += [f"    return send(r, pos, {cat});", "}", ""]
    if kfunc is None:
        lines += [f"int sw_exit_{sc.name}(struct sys_exit_ctx *ctx)",
                  "{",
                  f"    return do_exit_{sc.name}(ctx);",
                  "}", ""]
    else:   # the arguments are read from the registers (TASK_REGS), only the result is taken
        lines += [f"KRETFUNC_PROBE({kfunc}, void *regs, long ret)",
                  "{",
                  "    struct sys_exit_ctx c = {.ret = ret};",
                  f"    return do_exit_{sc.name}(&c);",
                  "}", ""]
    return "\n".join(lines)


#: The syscalls that may have no tracepoint of their own (a kernel built without module
#: support): they are followed through raw tracepoint programs on ``sys_enter``/``sys_exit``
#: instead, when needed and when no kernel function of theirs can take an fexit program, by
#: their x86_64 numbers (``NR_*``, :data:`.record.C_NR`).  Each names the file that exists
#: exactly when the kernel is built with the syscall (``/proc/modules``: ``CONFIG_MODULES``).
#: Without it, the kernel's entry for the syscall is ``sys_ni_syscall``, which returns
#: ``-ENOSYS`` at once: such a syscall is followed at its enter alone (:func:`not_built`).
RAW_SYSCALLS: dict[str, str] = {"init_module": "/proc/modules",
                                "delete_module": "/proc/modules",
                                "finit_module": "/proc/modules"}
#: The result of a syscall the kernel is built without (``-ENOSYS``).
ENOSYS = 38


def not_built(names: Iterable[str]) -> list[str]:
    """Of ``names`` (syscalls without a tracepoint here), those this kernel is built without
    (:data:`RAW_SYSCALLS`): their result is ``-ENOSYS``, known at their enter.  The source
    puts them in the config (``cfg["not_built"]``), which the program is rendered from."""
    return [n for n in names if n in RAW_SYSCALLS and not os.path.exists(RAW_SYSCALLS[n])]


def _stubs(raw: list[str], cfg: dict[str, Any]) -> list[str]:
    return [n for n in raw if n in (cfg.get("not_built") or ())]


def _raw_handlers(names: list[str], stubs: list[str]) -> str:
    """Raw tracepoint programs on ``sys_enter``/``sys_exit`` (the ``raw_syscalls`` events) for
    syscalls without their own tracepoint or kernel function.  They run for every syscall of
    every process, so they are raw tracepoint programs (called with the registers and the
    number or result, no event record built for them) that return at once unless the number is
    one of ``names``: that is all an unfollowed syscall pays.  They are rendered only when such
    a syscall is needed.

    A syscall of ``stubs`` (one the kernel is built without: ``-ENOSYS``) is sent from the
    enter program alone, its result known: no exit program then runs for every syscall, and
    the enter reads the number from its arguments, with no helper call, before returning.  For
    the others the enter stores the arguments (with the arguments read from the registers it is
    rendered but not attached) and the exit sends the record."""
    if not names:
        return ""
    regs = ("di", "si", "dx", "r10", "r8", "r9")

    def any_of(group: list[str]) -> str:
        return " || ".join(f"nr == NR_{n.upper()}" for n in group)

    built = [n for n in names if n not in stubs]
    lines = ["int sw_raw_enter(struct bpf_raw_tracepoint_args *ctx)", "{",
             "    long nr = (long)ctx->args[1];",
             f"    if (!({any_of(names)}))", "        return 0;",
             "    struct sw_regs *regs = (struct sw_regs *)ctx->args[0];",
             "    struct sys_enter_ctx c = {};", "    c.nr = nr;"]
    lines += [f"    bpf_probe_read_kernel(&c.a[{i}], 8, &regs->{r});" for i, r in enumerate(regs)]
    if stubs:
        lines += [f"    if ({any_of(stubs)}) {{",
                  "        // the kernel's stub (sys_ni_syscall) returns at once: its exit here",
                  "#if !TASK_REGS", "        do_enter(&c, 6);", "#endif",
                  "        struct sys_exit_ctx e = {};", "        e.nr = nr;",
                  f"        e.ret = -{ENOSYS};"]
        for n in stubs:
            lines += [f"        if (nr == NR_{n.upper()})", f"            return do_exit_{n}(&e);"]
        lines += ["        return 0;", "    }"]
    lines += ["    return do_enter(&c, 6);", "}", ""]
    if not built:
        return "\n".join(lines)
    lines += ["int sw_raw_exit(struct bpf_raw_tracepoint_args *ctx)", "{",
              "    struct sw_regs *regs = (struct sw_regs *)ctx->args[0];",
              "    long nr = -1;",
              "    bpf_probe_read_kernel(&nr, sizeof(nr), &regs->orig_ax);",
              f"    if (!({any_of(built)}))", "        return 0;",
              "    struct sys_exit_ctx c = {};", "    c.nr = nr;",
              "    c.ret = (long)ctx->args[1];"]
    for n in built:
        lines += [f"    if (nr == NR_{n.upper()})", f"        return do_exit_{n}(&c);"]
    lines += ["    return 0;", "}", ""]
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------
# How syscalls are hooked: exit tracepoints, or fexit programs on the kernel's syscall functions
# ---------------------------------------------------------------------------------------------

#: ``ebpf.attach`` values: ``auto`` is resolved by the source (fexit when the kernel runs it).
ATTACH_MODES = ("auto", "fentry", "tracepoint")
#: The hook category of a raw tracepoint program (``raw_tp:sys_exit``), the loader's.
RAW_TP = loader.RAW_TP
FENTRY, TRACEPOINT = "fentry", "tracepoint"


def _kfunc_names(sc: Syscall) -> tuple[str, ...]:
    """The kernel functions an fexit program may follow ``sc`` through, best first: the
    syscall's own entry (``__x64_sys_X``), or, for a syscall without arguments whose entry is
    an alias BTF does not name, its body (``__do_sys_X``).  On x86_64 both take the registers,
    so the result is always the program's second argument."""
    own = f"__x64_sys_{sc.tracepoint}"
    return (own, f"__do_sys_{sc.tracepoint}") if not sc.args else (own,)


#: Every kernel function name the fexit mode may use (looked up in the kernel's BTF).
KFUNC_CANDIDATES: tuple[str, ...] = tuple(
    [name for sc in SYSCALLS for name in _kfunc_names(sc)]
    + [f"__x64_sys_{n}" for n in EXEC_SYSCALLS])


def fentry_mode(cfg: dict[str, Any]) -> bool:
    """Whether syscalls are followed by fexit programs (``attach`` resolved to ``fentry``)."""
    return cfg.get("attach") == FENTRY


def kfunc_of(sc: Syscall, cfg: dict[str, Any]) -> str | None:
    """The function ``sc`` is followed through in the fexit mode; None when it is followed by
    its exit tracepoint (the tracepoint mode, or a kernel without such a function:
    ``cfg["kfuncs"]`` lists those it has)."""
    if not fentry_mode(cfg):
        return None
    have = cfg.get("kfuncs") or {}
    return next((name for name in _kfunc_names(sc) if name in have), None)


def _exec_kfuncs(cfg: dict[str, Any]) -> str:
    """execve/execveat in the fexit mode: argv stored at entry, a failure sent at exit."""
    if not fentry_mode(cfg):
        return ""
    out = []
    for name in EXEC_SYSCALLS:
        func = f"__x64_sys_{name}"
        if func in (cfg.get("kfuncs") or {}):
            out += [f"KFUNC_PROBE({func}, void *regs)", "{",
                    f"    return stash_exec_regs(NR_{name.upper()});", "}", "",
                    f"KRETFUNC_PROBE({func}, void *regs, long ret)", "{",
                    "    return do_exit_exec(ret);", "}", ""]
    return "\n".join(out)


def template() -> str:
    return resources.files(__package__).joinpath("program.c").read_text()


def render_program(event_types: Iterable[str] | None, config: dict[str, Any] | None = None,
                   open_prefilter: OpenPrefilter | None = None,
                   socket_prefilter: SocketPrefilter | None = None) -> str:
    """The C source of the BPF program for these event types and this ``ebpf`` config section.

    The agent's own pid is not in the text (the loader writes it in the compiled instructions
    in place of :data:`.compiled.AGENT_PID_MARK`: the text, and so the compiled program, is the
    same from one start to the next).
    ``open_prefilter`` (the rules', see :mod:`.open_filter`) keeps in the kernel
    the opens no rule can match; None sends them all.  ``socket_prefilter`` (the rules', see
    :mod:`.sock_filter`) keeps the socket syscalls on families no rule can match.
    """
    config = config or {}
    if isinstance(config.get("ebpf"), dict):   # the whole config was given
        config = config["ebpf"]
    cfg = {**DEFAULTS, **config}
    names = needed_syscalls(event_types)
    on = open_prefilter is not None
    bits = name_bits(open_prefilter, socket_prefilter)
    handlers = "\n".join(_exit_handler(BY_NAME[n], on, kfunc_of(BY_NAME[n], cfg),
                                       socket_prefilter, bits)
                         for n in names if n not in FORK_SYSCALLS)
    handlers += "\n" + _exec_kfuncs(cfg)
    raw = raw_syscalls(event_types, cfg)
    handlers += "\n" + _raw_handlers(raw, _stubs(raw, cfg))
    tp_offsets = cfg.get("tp")
    if tp_offsets is None:                    # not read from a kernel: the default layouts
        tp_offsets = tracefs.DEFAULT
    subst = {
        "RECORD": record.render_c(),
        "AGENT_PID_MARK": hex(compiled.AGENT_PID_MARK),
        "PATH_MAX": str(_pow2(cfg["path_max"], 64, 4096)),
        "SNAPLEN": str(max(0, min(record.SNAPLEN_MAX, int(cfg["snaplen"])))),
        "ARGV_MAX": str(_pow2(cfg["argv_max"], 256, 4096)),
        "MAX_ARGS": str(max(1, min(256, int(cfg["max_args"])))),
        "PROC_PAGES": str(_pow2(cfg["proc_ring_pages"], 1, 1 << 16)),
        "EVT_PAGES": str(_pow2(cfg["evt_ring_pages"], 1, 1 << 16)),
        "PENDING_SLOTS": str(_pow2(cfg["pending_max"], 64, 1 << 20)),
        "WAKEUP_EVERY": str(max(1, int(cfg["wakeup_every"]))),
        "TASK_REGS": "1" if task_regs(cfg) else "0",
        "TP_OFFSETS": "\n".join(f"#define {k} {int(v)}" for k, v in sorted(tp_offsets.items())),
        "ATTACH": "fexit programs on the syscalls' kernel functions" if fentry_mode(cfg)
                  else "tracepoints",
        "NAME_FILTER": name_filter.render(),
        "OPEN_FILTER": open_filter.render(open_prefilter, bits),
        "SOCK_FILTER": sock_filter.render(socket_prefilter),
        "EXIT_HANDLERS": handlers,
        "BTF_OFFSETS": "\n".join(f"#define {k} {int(v)}"
                                 for k, v in sorted((cfg.get("btf") or {}).items())),
    }
    text = template()
    for key, value in subst.items():
        text = text.replace(f"@{key}@", value)
    return text


def name_bits(open_prefilter: OpenPrefilter | None,
              socket_prefilter: SocketPrefilter | None) -> dict[frozenset[str], int]:
    """The bit of each process name set the prefilters test (the kernel's ``rule_names`` holds
    each name's bits, :func:`.name_filter.name_table`)."""
    return name_filter.bits_of(
        (t.names for t in (open_prefilter.terms if open_prefilter else ())),
        (names for _t, terms in (socket_prefilter.named if socket_prefilter else ())
         for (names, _places), _classes in terms))


def task_regs(cfg: dict[str, Any]) -> bool:
    """Whether exit handlers read the arguments from the saved registers (``args_from``:
    ``regs``; ``auto`` is resolved before rendering, see :func:`resolve_args_from`; always with
    fexit programs) rather than from an enter tracepoint's stash."""
    return cfg.get("args_from") == "regs" or fentry_mode(cfg)


def resolve_args_from(value: str) -> str:
    """``auto`` made concrete for this machine: ``regs`` where it may work, else ``enter``."""
    if value == "auto":
        return "regs" if registers_usable() else "enter"
    return value


def registers_usable() -> bool:
    """Whether this machine may offer what reading the registers needs: x86_64 (the layout of
    ``struct sw_regs``) and the kernel's BTF (``bpf_task_pt_regs`` takes a BTF pointer).  The
    kernel's verifier has the last word: the source falls back when the program is refused."""
    return platform.machine() == "x86_64" and os.path.exists("/sys/kernel/btf/vmlinux")


def raw_syscalls(event_types: Iterable[str] | None, cfg: dict[str, Any]) -> list[str]:
    """The needed syscalls the config says have no tracepoint here (``cfg["no_tracepoint"]``,
    filled by the source from tracefs) and that raw_syscalls can follow."""
    if not cfg.get("raw_fallback", True):   # the agent's config always says (default: off)
        return []
    missing = set(cfg.get("no_tracepoint") or ())
    return [n for n in needed_syscalls(event_types) if n in missing and n in RAW_SYSCALLS
            and kfunc_of(BY_NAME[n], cfg) is None]


def tracepoints(event_types: Iterable[str] | None,
                cfg: dict[str, Any] | None = None) -> list[tuple[str, str]]:
    """(hook, BPF function) pairs to attach for these event types; a hook is a tracepoint
    (``category:name``) or, in the fexit mode, ``fentry:<function>``/``fexit:<function>``.
    With the arguments read from the registers, a syscall costs one hook (its exit) and a fork
    none of its own (sched_process_fork reads the parent's registers); otherwise the enter
    tracepoints store the arguments."""
    regs = task_regs(cfg or {})
    out: list[tuple[str, str]] = [
        ("sched:sched_process_fork", "sw_sched_fork"),
        ("sched:sched_process_exec", "sw_sched_exec"),
        ("sched:sched_process_exit", "sw_sched_exit"),
        ("syscalls:sys_enter_execve", "sw_enter_execve"),
        ("syscalls:sys_exit_execve", "sw_exit_exec"),
        ("syscalls:sys_enter_execveat", "sw_enter_execveat"),
        ("syscalls:sys_exit_execveat", "sw_exit_exec"),
    ]
    for name in EXEC_SYSCALLS if fentry_mode(cfg or {}) else ():
        func = f"__x64_sys_{name}"
        if func in ((cfg or {}).get("kfuncs") or {}):
            i = out.index((f"syscalls:sys_enter_{name}", f"sw_enter_{name}"))
            out[i:i + 2] = [(f"fentry:{func}", f"kfunc__{func}"),
                            (f"fexit:{func}", f"kretfunc__{func}")]
    raw = raw_syscalls(event_types, cfg) if cfg else []
    for n in needed_syscalls(event_types):
        sc = BY_NAME[n]
        if n in raw:        # no tracepoint of its own here: the raw tracepoints below
            continue
        if not regs:
            enter = {"clone3": "sw_enter_clone3"}.get(n, f"sw_enter{len(sc.args)}")
            out.append((f"syscalls:sys_enter_{sc.tracepoint}", enter))
        if n in FORK_SYSCALLS:
            continue
        kfunc = kfunc_of(sc, cfg or {})
        if kfunc is not None:
            out.append((f"fexit:{kfunc}", f"kretfunc__{kfunc}"))
        else:
            out.append((f"syscalls:sys_exit_{sc.tracepoint}", f"sw_exit_{n}"))
    stubs = _stubs(raw, cfg or {})
    if stubs or (raw and not regs):
        out.append((f"{RAW_TP}:sys_enter", "sw_raw_enter"))
    if len(stubs) < len(raw):
        out.append((f"{RAW_TP}:sys_exit", "sw_raw_exit"))
    return out
