"""Ring-buffer records -> :class:`~syswarden.core.event.Event` objects.

A record is ``struct rec`` (declared in :mod:`.record`, rendered into ``program.c``: timestamps,
ids, the six raw register arguments, the return value, string lengths, an fd's inode number)
followed by its strings back to back; its fields are read by their names.  One record is one
event, taken on the syscall's exit, with the enter arguments merged in:

* a syscall (``KIND_SYSCALL``): ``Event(type, res, args)`` with Falco's argument names
  (:mod:`syswarden.core.syscalls`); ints raw (flags as the kernel's bits), paths as text,
  sockaddrs as Falco prints them (``1.2.3.4:80``, a unix path);
* an exec (``KIND_EXEC``/``KIND_EXEC_FAIL``): an ``execve``/``execveat`` event; ``args`` has
  ``exe`` (argv[0]), ``args`` (argv[1:]), ``filename``, ``comm``; its
  :class:`~syswarden.core.event.ExecFacts` have the path the kernel resolved (``exepath``),
  the whole ``argv``, the ids, tty and login uid;
* a fork (``KIND_FORK``): a ``clone``/``clone3``/``fork``/``vfork`` event in the parent, ``res``
  the child's id; its :class:`~syswarden.core.event.ForkFacts` say whether the child is a
  thread;
* an exit (``KIND_EXIT``): a ``procexit`` event; its
  :class:`~syswarden.core.event.ExitFacts` have ``group_dead``.

What a record says beyond Falco's arguments (an fd's inode, a parsed sockaddr, the socket's
local end, accept's listening fd) goes to the event's
:class:`~syswarden.core.event.KernelFacts` (``Event.kernel``).

Timestamps are CLOCK_MONOTONIC in the kernel; the decoder adds the offset to the epoch taken at
start-up.
"""

from __future__ import annotations

import socket
import struct
import time
from typing import Any, Callable

from syswarden.core import ip_addresses
from syswarden.core.event import Event, ExecFacts, ExitFacts, ForkFacts, KernelFacts, declared
from syswarden.core.syscalls import O_F_CREATED

from . import program as P
from .record import (
    AT,
    EXE_FLAGS,
    EXEC_PART,
    FORK_PART,
    FORMAT,
    SLOT,
    SOCK_BITS,
    STRING_SLOTS,
    TAIL,
    TAIL_AT,
    Kind,
    machine_nr,
)

#: ``struct rec``, the fixed part of a record.
REC = struct.Struct(FORMAT)

KIND_SYSCALL = int(Kind.SYSCALL)
KIND_EXEC = int(Kind.EXEC)
KIND_FORK = int(Kind.FORK)
KIND_EXIT = int(Kind.EXIT)
KIND_EXEC_FAIL = int(Kind.EXEC_FAIL)
# Where the fields are in the tuple REC unpacks: the syscall decoders, generated, have them
# written in; the process records (exec, fork, exit) read them here.
_KIND, _EVT, _TS, _CGROUP, _RES, _TID, _PID, _CPU, _EXTRA = (AT[name] for name in (
    "kind", "evt", "ts", "cgroup", "res", "tid", "pid", "cpu", "extra"))
_REGS = slice(AT["a"], AT["a"] + 6)
_LENS = slice(AT["slen"], AT["slen"] + STRING_SLOTS)
_FILENAME, _PATH, _ARGV, _ENV = SLOT["filename"], SLOT["path"], SLOT["argv"], SLOT["env"]
_T_CAPE, _T_CAPP, _T_CAPI, _T_INO, _T_CTIME, _T_MTIME, _T_EUID, _T_EGID, _T_FLAGS, _T_COMM = (
    TAIL_AT[name] for name in ("cap_effective", "cap_permitted", "cap_inheritable", "exe_ino",
                               "exe_ctime", "exe_mtime", "euid", "egid", "flags", "comm"))
_EXE_CREDS, _EXE_FILE, _EXE_UPPER, _EXE_WRITABLE, _EXE_RESOURCES, _EXE_GROUPS = (
    EXE_FLAGS[name] for name in ("CREDS", "FILE", "UPPER_LAYER", "WRITABLE", "RESOURCES",
                                 "GROUPS"))
_T_VPGID, _T_VSID = TAIL_AT["vpgid"], TAIL_AT["vsid"]
#: What an exec record carries in a[] beside its arguments (record.EXEC_PARTS).
_VPID, _TTY, _LOGINUID = (EXEC_PART[name] for name in ("vpid", "tty", "loginuid"))
#: What a fork record carries in a[] (record.FORK_PARTS).
_FORK_FLAGS, _FORK_UID, _FORK_GID = (FORK_PART[name] for name in ("flags", "uid", "gid"))
_T_RESOURCES = tuple(TAIL_AT[name] for name in ("vm_size", "vm_rss", "vm_swap", "pf_major",
                                                 "pf_minor", "fdlimit"))
_NO_CAPS = 0xFFFFFFFFFFFFFFFF

#: This machine's numbers of the syscalls exec and fork records carry (in ``evt``).
_NR = machine_nr()
_NR_NAME = {nr: name for name, nr in _NR.items()
            if name in P.EXEC_SYSCALLS or name in P.FORK_SYSCALLS}
CLONE_THREAD = 0x10000
#: What a syscall record's hidden arguments ("_" names in program.SYSCALLS) may be.
_FACTS = frozenset(a.name for a in declared(KernelFacts))

_I32 = struct.Struct("<i")
#: What a socket call's ``extra`` packs (record.SOCK_INFO).
_SOCK = SOCK_BITS


def _to_i32(v: int) -> int:
    v &= 0xFFFFFFFF
    return v - (1 << 32) if v & 0x80000000 else v


def _to_u32(v: int) -> int:
    return v & 0xFFFFFFFF


def _text(b: bytes) -> str:
    return b.decode("utf-8", "surrogateescape")


def parse_sockaddr(b: bytes) -> tuple[str, Any, int] | None:
    """(family, address, port) of a raw sockaddr: ("ipv4"/"ipv6", the address (see
    :mod:`~syswarden.core.ip_addresses`), port), ("unix", path, 0), or None when it is none of
    these."""
    if len(b) < 2:
        return None
    fam = b[0] | b[1] << 8
    if fam == socket.AF_INET and len(b) >= 8:
        return ("ipv4", ip_addresses.from_packed(b[4:8]), b[2] << 8 | b[3])
    if fam == socket.AF_INET6 and len(b) >= 24:
        addr = ip_addresses.from_packed(b[8:24])
        return (addr.family, addr, b[2] << 8 | b[3])
    if fam == socket.AF_UNIX:
        path = b[2:]
        if path[:1] == b"\0":
            return ("unix", "@" + _text(path[1:].split(b"\0", 1)[0]), 0)
        return ("unix", _text(path.split(b"\0", 1)[0]), 0)
    return None


def sockaddr_text(sa: tuple[str, Any, int] | None) -> str | None:
    """A sockaddr as Falco prints it: ``1.2.3.4:80``, ``[::1]:80`` is printed ``::1:80``."""
    if sa is None:
        return None
    fam, addr, port = sa
    if fam == "unix":
        return addr
    return f"{addr}:{port}"


def _strings(blob: bytes) -> list[str]:
    """NUL-separated strings (argv, the environment) as a list."""
    out = [_text(a) for a in blob.split(b"\0")] if blob else []
    if out and out[-1] == "" and blob.endswith(b"\0"):
        out.pop()
    return out


def _how(raw: bytes, args: dict[str, Any]) -> None:
    if len(raw) >= 24:
        flags, mode, resolve = struct.unpack_from("<QQQ", raw)
        args["flags"] = flags & 0xFFFFFFFF
        args["mode"] = mode & 0xFFFFFFFF
        args["resolve"] = resolve


def _syscall_decoder(sc: P.Syscall) -> Callable[[tuple, Any, int, int], Event]:
    """Generate the decoder of one syscall's records: a straight-line function (no loop over
    an argument table per event).  ``h`` is the unpacked header tuple, read at the positions
    of the fields' names (:data:`.record.AT`)."""

    def f(name: str, i: int = 0) -> str:       # a field of the record, an array's element i
        return f"h[{AT[name] + i}]"

    conv = {P.FD: "((({a} & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000)",
            P.I32: "((({a} & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000)",
            P.U32: "({a} & 0xFFFFFFFF)", P.U64: "{a}"}
    items = [f"{sc.res!r}: {f('res')}"]
    hidden = []
    for i, a in enumerate(sc.args):
        if a is None or a[1] not in conv:
            continue
        expr = conv[a[1]].format(a=f("a", i))
        if a[0].startswith("_"):
            if a[0][1:] not in _FACTS:
                raise ValueError(f"{sc.name}: {a[0]} is no attribute of KernelFacts")
            hidden.append((a[0][1:], expr))
        else:
            items.append(f"{a[0]!r}: {expr}")
    lines = [f"def _decode_{sc.name}(h, data, off, base):",
             f"    args = {{{', '.join(items)}}}"]
    strings = sc.strings
    if strings:
        lines.append(f"    pos = base + {REC.size}")
    sock = False
    for slot, (_reg, name, kind) in enumerate(strings):    # as many as slots: see Syscall
        lines.append(f"    n = {f('slen', slot)}")
        if kind == P.STR:
            lines.append(f"    args[{name!r}] = data[pos:pos + n].decode('utf-8', "
                         "'surrogateescape') if n else None")
        elif kind == P.HOW:
            lines.append("    _how(data[pos:pos + n], args)")
        else:
            sock = True
            lines.append("    sa = parse_sockaddr(data[pos:pos + n]) if n else None")
            lines.append(f"    args[{name!r}] = sockaddr_text(sa)")
        lines.append("    pos += n")
    if sc.name in P.LOCAL_END:         # the socket's local end follows the strings
        slot = sc.slots - 1 - (sc.name in P.PEER_END)
        if not strings:
            lines.append(f"    pos = base + {REC.size}")
        lines.append(f"    n = {f('slen', slot)}")
        lines.append("    local = parse_sockaddr(data[pos:pos + n]) if n else None")
        if sc.name in P.PEER_END:      # then its remote end
            lines.append("    pos += n")
            lines.append(f"    n = {f('slen', slot + 1)}")
            lines.append("    peer = parse_sockaddr(data[pos:pos + n]) if n else None")
    if sc.name in P.SOCK_FD:           # its socket's family, type, protocol (0: not read)
        lines.append(f"    info = {f('extra')}")
    if sc.name in P.REALPATH:          # the opened file's path as the kernel has it
        if not strings:
            lines.append(f"    pos = base + {REC.size}")
        lines.append(f"    n = {f('slen', sc.slots - 1)}")
        lines.append("    realpath = data[pos:pos + n].decode('utf-8', 'surrogateescape') "
                     "if n else None")
    if sc.name in P.RECEIVED:          # the first bytes received follow the strings
        lines.append(f"    n = {f('slen', sc.slots - 1)}")
        lines.append("    args['data'] = bytes(data[pos:pos + n])")
    if sc.name in P.MAY_CREATE:        # the kernel found the file created by this open
        lines.append(f"    if {f('extra')}:\n"
                     "        args['flags'] = args.get('flags', 0) | O_F_CREATED")
    lines.append(f"    ev = Event({sc.name!r}, {f('ts')} + off, {f('tid')}, {f('pid')}, "
                 f"{f('res')}, args)")
    lines.append(f"    ev.cgroup_id = {f('cgroup')}")
    lines.append(f"    ev.cpu = {f('cpu')}")
    facts = [f"{k}={e}" for k, e in hidden]
    if sock:
        facts.append("sockaddr=sa")
    if sc.name in P.LOCAL_END:
        facts.append("local=local")
    if sc.name in P.PEER_END:
        facts.append("peer=peer")
    if sc.name in P.SOCK_FD:
        facts += [f"sock_{k}=({_SOCK[b].shift and f'info >> {_SOCK[b].shift}' or 'info'}) "
                  f"& {_SOCK[b].mask:#x} if info else None"
                  for k, b in (("family", "family"), ("type", "type"), ("proto", "protocol"))]
    stamp = sc.name not in P.OPEN_SYSCALLS and (sc.name in P.FD_CREATORS
                                                or sc.name in P.FD_USERS)
    if facts:                           # the fd's inode (0: none) is its stamp
        lines.append(f"    ev.kernel = KernelFacts({f('ino') + ', ' if stamp else ''}"
                     f"{', '.join(facts)})")
    elif stamp:
        lines.append(f"    if {f('ino')}:\n        ev.kernel = KernelFacts({f('ino')})")
    if sc.name in P.CRED_SYSCALLS:      # the capabilities after the call
        lines.append(f"    if {f('ino')} != {_NO_CAPS}:\n"
                     f"        ev.kernel = KernelFacts(cap_effective={f('ino')})")
    if sc.name in P.REALPATH:
        lines.append("    if realpath is not None:\n"
                     "        ev.kernel = KernelFacts(realpath=realpath)")
    if sc.name in P.OPEN_SYSCALLS:      # the file's inode: Falco's `ino` parameter of an open
        lines.append(f"    if {f('ino')}:\n        args['ino'] = {f('ino')}")
        # and its device (register 5, free in every open): Falco's `dev`, old_encode_dev-like
        lines.append(f"    if {f('a', 5)}:\n        args['dev'] = {f('a', 5)}")
    lines.append("    return ev")
    scope = {"Event": Event, "KernelFacts": KernelFacts, "parse_sockaddr": parse_sockaddr,
             "sockaddr_text": sockaddr_text, "_how": _how, "O_F_CREATED": O_F_CREATED}
    exec("\n".join(lines), scope)  # noqa: S102 - generated from the static table above
    return scope[f"_decode_{sc.name}"]


class Decoder:
    """Turns records into events.  One per source; not thread-safe (one reader task)."""

    def __init__(self) -> None:
        self.epoch_offset = time.time_ns() - time.monotonic_ns()
        self._syscalls = [_syscall_decoder(sc) for sc in P.SYSCALLS]
        self.errors = 0

    def decode(self, data: Any, base: int = 0) -> Event | None:
        """One record (at ``base`` in ``data``: bytes or a mapped ring) -> one event; None for
        a record that cannot be read (counted in ``errors``)."""
        try:
            h = REC.unpack_from(data, base)
        except struct.error:
            self.errors += 1
            return None
        kind = h[_KIND]
        if kind == KIND_SYSCALL:
            try:
                return self._syscalls[h[_EVT]](h, data, self.epoch_offset, base)
            except IndexError:
                self.errors += 1
                return None
        ts = h[_TS] + self.epoch_offset
        tid = h[_TID]
        pid = h[_PID]
        res = h[_RES]
        evt = h[_EVT]
        extra = h[_EXTRA]
        if kind in (KIND_EXEC, KIND_EXEC_FAIL):
            ev = self._exec(data, base, ts, tid, pid, res, h[_REGS], evt, h[_LENS], extra, kind)
        elif kind == KIND_FORK:
            regs = h[_REGS]
            name = _NR_NAME.get(evt, "clone")
            flags = _FORK_FLAGS.get(regs)        # 0 when not known (evt 0xffff)
            # the comm slot: a fork record sends no other string
            comm = _text(data[base + REC.size:base + REC.size + 16].split(b"\0", 1)[0])
            ev = Event(name, ts, tid, pid, res, {"res": res, "flags": flags & 0xFFFFFFFFFFFF,
                                                 "comm": comm, "uid": _FORK_UID.get(regs),
                                                 "gid": _FORK_GID.get(regs)})
            ev.kernel = ForkFacts(child_tid=extra, is_thread=bool(flags & CLONE_THREAD))
        elif kind == KIND_EXIT:
            ev = Event("procexit", ts, tid, pid, 0, {"status": 0})
            ev.kernel = ExitFacts(group_dead=bool(extra))
        else:
            self.errors += 1
            return None
        ev.cgroup_id = h[_CGROUP]
        ev.cpu = h[_CPU]
        return ev

    def _exec(self, data: Any, base: int, ts: int, tid: int, pid: int, res: int, regs: tuple,
              nr: int, lens: tuple, old_pid: int, kind: int) -> Event:
        pos = base + REC.size
        t = TAIL.unpack_from(data, pos)
        pos += TAIL.size
        comm = t[_T_COMM]
        parts = []
        for n in lens:
            parts.append(data[pos:pos + n])
            pos += n
        kfile, path = parts[_FILENAME], parts[_PATH]
        argv = _strings(parts[_ARGV])
        name = _NR_NAME.get(nr, "execve")
        if name not in P.EXEC_SYSCALLS:
            name = "execve"
        filename = _text(path) if path else None
        args: dict[str, Any] = {
            "res": res,
            "exe": argv[0] if argv else (filename or ""),
            "args": argv[1:],
            "tid": tid,
            "pid": pid,
            "comm": _text(comm.split(b"\0", 1)[0]) if comm else "",
        }
        if name == "execveat":
            args["dirfd"] = _to_i32(regs[0])
            args["pathname"] = filename
            args["flags"] = _to_u32(regs[4])
        else:
            args["filename"] = filename
        ev = Event(name, ts, tid, pid, res, args)
        loginuid = _LOGINUID.get(regs)
        flags = t[_T_FLAGS]
        creds = flags & _EXE_CREDS
        exe = flags & _EXE_FILE
        ev.kernel = ExecFacts(
            tty=_TTY.get(regs) if kind == KIND_EXEC else None,
            loginuid=loginuid if kind == KIND_EXEC and loginuid != 0xFFFFFFFE else None,
            vpid=_VPID.get(regs) or None if kind == KIND_EXEC else None,
            exepath=_text(kfile) if kfile else None,
            argv=argv,
            old_pid=old_pid if kind == KIND_EXEC else 0,
            # the effective ids (Falco's user.uid), the real ones when the cred was not read
            uid=t[_T_EUID],
            gid=t[_T_EGID],
            env=_strings(parts[_ENV]),
            env_read=kind == KIND_EXEC,
            cap_effective=t[_T_CAPE] if creds else None,
            cap_permitted=t[_T_CAPP] if creds else None,
            cap_inheritable=t[_T_CAPI] if creds else None,
            exe_inode=t[_T_INO] if exe else 0,
            exe_ctime=t[_T_CTIME] if exe else 0,
            exe_mtime=t[_T_MTIME] if exe else 0,
            exe_upper_layer=bool(flags & _EXE_UPPER),
            exe_writable=bool(flags & _EXE_WRITABLE),
        )
        if flags & _EXE_RESOURCES:
            k = ev.kernel
            k.vm_size, k.vm_rss, k.vm_swap, k.pf_major, k.pf_minor, fdlimit = (
                t[i] for i in _T_RESOURCES)
            k.fdlimit = -1 if fdlimit >= 1 << 63 else fdlimit        # RLIM_INFINITY
        if flags & _EXE_GROUPS:
            ev.kernel.vpgid, ev.kernel.sid = t[_T_VPGID], t[_T_VSID]
        return ev
