"""The fd table: what each event's file descriptor is (``fd.*``), kept per process.

* Opens (``open``, ``openat``, ``openat2``, ``creat``): the path is resolved against the dirfd
  (or the cwd) and normalised; ``fd.num`` is the return value; an ``O_DIRECTORY`` open is a
  ``directory``.  A failed open still gets an fd (number -1) carrying the name, as in Falco.
* Sockets: ``socket`` gives the family and protocol; ``connect`` the remote end (the process is
  the client), ``accept`` the client's end and, from the listening socket's ``bind``, the local
  one (the process is the server); ``sendto``/``sendmsg``/``recvfrom``/``recvmsg`` with an
  address update the tuple.  ``fd.name`` is Falco's ``cip:cport->sip:sport``.  The local end of
  a connected or accepted socket comes with the live event (read from the kernel's socket);
  otherwise from ``/proc/PID/net`` while a process of this machine lives (never for a replayed
  process: a replay reads nothing of the local ``/proc``).  The live source's ``connect``,
  ``accept``, ``bind``, ``listen`` and ``dup*`` also say the socket's family, type and protocol
  (and ``listen`` its local end, ``dup*`` both ends): a socket the table did not see made (or
  took for another family, a ``/proc`` "socket:[ino]" taken for UNIX) is made from them as
  ``socket`` would have made it (:func:`sock_kind`), and its ``fd.sockfamily``/``fd.l4proto``
  are the kernel's (``listen``'s for its event alone: the table keeps what it had).
* ``dup*`` copy an entry; ``close`` removes it when a rule makes the source follow closes.
  Otherwise an entry is stamped with its file's inode number, which the live source reads in
  the kernel for every call that creates or uses an fd: a use with another inode finds the
  entry stale (its number closed and taken by a call not sent) and drops it; files are also
  checked against ``/proc/PID/fd`` when possible (a live process of this machine).
* ``chdir``/``fchdir`` move the process's cwd.
* Path arguments of the path-only syscalls (``unlink``, ``mkdir``, ``rename``...) are made
  absolute in place (Falco resolves ``PT_FSPATH`` arguments the same way).
"""

from __future__ import annotations

import os
import posixpath
import socket
from dataclasses import replace
from typing import Any, Callable

from syswarden.core import ip_addresses
from syswarden.core.event import FD_KINDS, Event, FdInfo, KernelFacts, Process
from syswarden.core.syscalls import O_TMPFILE_OWN as O_TMPFILE
from syswarden.core.syscalls import O_CREAT, O_TRUNC, OPEN_FLAGS, SOCKET_TYPE_PROTOCOLS

from .table import readlink_or_none

#: What /proc/PID/fd/N's link ends with when its file was unlinked.
DELETED = " (deleted)"

AT_FDCWD = -100
O_DIRECTORY = dict(OPEN_FLAGS)["O_DIRECTORY"]

_SOCK_TYPES = SOCKET_TYPE_PROTOCOLS
_FAMILIES = {socket.AF_INET: "ipv4", socket.AF_INET6: "ipv6", socket.AF_UNIX: "unix",
             16: "netlink"}
#: A socket entry's fd.sockfamily by its type (an entry /proc taught has only its type): the
#: fd kinds core/event.py declares with a family of their own (ip, unix).
_SOCK_FAMILY = {k.name: k.family for k in FD_KINDS if k.family in ("ip", "unix")}


#: The facts of an event that carries none (never written to).
_NO_FACTS = KernelFacts()


def _facts(ev: Event) -> KernelFacts:
    """What the kernel said of the event beside its arguments (nothing: all defaults)."""
    k = ev.kernel
    return k if k is not None else _NO_FACTS


def _own_facts(ev: Event) -> KernelFacts:
    """The event's facts, to add to (made when it has none)."""
    k = ev.kernel
    if k is None:
        k = ev.kernel = KernelFacts()
    return k


def _stamp(ev: Event) -> int:
    """The inode number the kernel read for the event's fd (see ``lookup``), 0 if none."""
    k = ev.kernel
    return k.ino if k is not None else 0


def normalise(path: str) -> str:
    """An absolute path with ``.``, ``..`` and repeated slashes removed."""
    if not path or ("/." not in path and "//" not in path and path[-1] != "/"):
        return path
    if path == "/":
        return path
    out = posixpath.normpath(path)
    if out.startswith("//"):
        out = "/" + out.lstrip("/")
    return out


class FdTable:
    """Per-event fd resolution over the processes' ``fds`` dicts (see the module docstring)."""

    def __init__(self, count: Callable[[str, int], None] | None = None,
                 proc_root: str = "/proc") -> None:
        self.proc_root = proc_root
        self._count = count or (lambda name, n=1: None)
        h: dict[str, Callable[[Event, Process], None]] = {}
        for t in ("open", "openat", "openat2", "creat"):
            h[t] = self._open
        h["memfd_create"] = self._memfd
        h["socket"] = self._socket
        h["connect"] = self._connect
        h["accept"] = h["accept4"] = self._accept
        h["bind"] = self._bind
        h["listen"] = self._listen
        for t in ("sendto", "sendmsg", "recvfrom", "recvmsg"):
            h[t] = self._datagram
        h["close"] = self._close
        h["dup"] = h["dup2"] = h["dup3"] = self._dup
        h["chdir"] = self._chdir
        h["fchdir"] = self._fchdir
        for t in ("fchmod", "setns", "finit_module"):
            h[t] = self._use_fd
        for t in PATH_ARGS:
            h[t] = self._paths
        self.handlers = h

    # -- helpers -------------------------------------------------------------------------------

    def _link(self, p: Process, name: str) -> str | None:
        """``/proc/PID/<name>``'s target for a process known from this machine while it lives;
        None for a replayed one (a replay reads nothing of the local /proc)."""
        return readlink_or_none(f"{self.proc_root}/{p.pid}/{name}") if p.live else None

    def dir_of(self, p: Process, dirfd: int | None) -> str:
        """The directory a relative path is relative to."""
        if dirfd is None or dirfd == AT_FDCWD:
            return p.cwd or self._link(p, f"cwd") or "/"
        f = p.fds.get(dirfd)
        if f is not None and f.name.startswith("/"):
            return f.name
        got = self._link(p, f"fd/{dirfd}")
        return got if got and got.startswith("/") else (p.cwd or "/")

    def resolve(self, p: Process, dirfd: int | None, path: str | None) -> str | None:
        if path is None:
            return None
        if path.startswith("/"):
            return normalise(path)
        if path == "":
            return None
        return normalise(posixpath.join(self.dir_of(p, dirfd), path))

    def _live(self, p: Process, num: int, ino: int | None) -> FdInfo | None:
        """The table's entry for ``num``, unless it is stamped with an inode other than
        ``ino`` (the kernel's for this use): then it is stale, dropped and counted."""
        f = p.fds.get(num)
        if f is not None and ino and f.ino and f.ino != ino:
            del p.fds[num]
            self._count("fds.stale", 1)
            return None
        return f

    def lookup(self, p: Process, num: int, ino: int | None = None) -> FdInfo | None:
        """The fd as the table knows it.  ``ino`` is the inode number the kernel read for this
        use of the fd: an entry stamped with another one is stale (its number was closed and
        reused by a call the source did not send) and is dropped.  Files are also checked
        against /proc/PID/fd when possible."""
        f = self._live(p, num, ino)
        if f is not None and (f.type not in ("file", "directory") or (ino and f.ino == ino)):
            return f
        link = self._link(p, f"fd/{num}")
        if link is None:
            return f
        if link.startswith("/"):
            if f is not None and f.name == link:
                return f
            try:
                is_dir = os.path.isdir(f"{self.proc_root}/{p.pid}/fd/{num}")
            except OSError:
                is_dir = False
            # /proc's link is the kernel's path of the file itself (d_path, from the
            # process's namespace): the realpath the open's walk would have given
            f = FdInfo(num, "directory" if is_dir else "file", link,
                       realpath=None if link.endswith(DELETED) else link)
        elif link.startswith("socket:"):
            return f if f is not None else FdInfo(num, "unix", link)
        elif link.startswith("pipe:"):
            f = FdInfo(num, "pipe", link)
        elif link.startswith("anon_inode:"):
            kind = link[11:].strip("[]")
            f = FdInfo(num, {"eventfd": "event", "eventpoll": "eventpoll", "inotify": "inotify",
                             "signalfd": "signalfd", "timerfd": "timerfd", "bpf-map": "bpf",
                             "bpf-prog": "bpf", "userfaultfd": "userfaultfd",
                             "[io_uring]": "io_uring"}.get(kind, kind), link)
        else:
            f = FdInfo(num, "file", link)
        if ino:
            f.ino = ino
        p.fds[num] = f
        return f

    # -- handlers ------------------------------------------------------------------------------

    def enrich(self, ev: Event, p: Process) -> None:
        h = self.handlers.get(ev.type)
        if h is not None:
            h(ev, p)
        elif "fd" in ev.args and ev.fd is None:
            fd = ev.args.get("fd")
            if isinstance(fd, int) and fd >= 0:
                ev.fd = self.lookup(p, fd, _stamp(ev))

    def _open(self, ev: Event, p: Process) -> None:
        a = ev.args
        raw = a.get("name")
        if raw is not None and raw[:1] == "/":         # absolute: the common case
            name = normalise(raw)
        else:
            name = self.resolve(p, a.get("dirfd"), raw)
        if ev.type == "creat":
            flags = O_CREAT | 0o1 | O_TRUNC
        else:
            flags = a.get("flags") or 0
        if name is not None and name != raw:
            _own_facts(ev).nameraw = raw
            a["name"] = name  # Falco prints the resolved path for fd-creating opens
        res = ev.res
        if flags & O_DIRECTORY and (flags & O_TMPFILE) != O_TMPFILE:
            f = FdInfo(res if res >= 0 else -1, "directory", name or "")
        else:
            f = FdInfo(res if res >= 0 else -1, "file", name or "")
        f.open_flags = flags
        f.ino = a.get("ino") or f.ino           # the live source's stamp (Falco's ino argument)
        f.dev = a.get("dev") or f.dev           # the kernel's s_dev (Falco's dev argument)
        f.realpath = _facts(ev).realpath        # the file's path, from the kernel's file
        if res >= 0:
            p.fds[res] = f
        ev.fd = f

    def _memfd(self, ev: Event, p: Process) -> None:
        f = FdInfo(ev.res if ev.res >= 0 else -1, "memfd", f"memfd:{ev.args.get('name') or ''}")
        if (ev.args.get("flags") or 0) & 1:  # MFD_CLOEXEC
            f.open_flags = 0o2000000
        f.ino = _stamp(ev) or f.ino
        if ev.res >= 0:
            p.fds[ev.res] = f
        ev.fd = f

    def _socket(self, ev: Event, p: Process) -> None:
        a = ev.args
        kind, sockfamily, l4proto = sock_kind(a.get("domain") or 0, a.get("type") or 0,
                                              a.get("proto") or 0)
        f = FdInfo(ev.res if ev.res >= 0 else -1, kind, "")
        f.sockfamily, f.l4proto = sockfamily, l4proto
        if (a.get("type") or 0) & 0o2000000:
            f.open_flags = 0o2000000
        f.ino = _stamp(ev) or f.ino
        if ev.res >= 0:
            p.fds[ev.res] = f
        ev.fd = f

    def _sock_fd(self, p: Process, num: Any, sa: tuple | None, ino: int | None,
                 facts: KernelFacts = _NO_FACTS) -> FdInfo:
        """The socket ``num`` as the table knows it, made when it does not (or knows it as
        another family than the kernel's); its family, type and protocol are the kernel's
        where the event carries them (``facts``), else guessed from the address ``sa``."""
        f = self._live(p, num, ino) if isinstance(num, int) else None
        kernel = _kernel_kind(facts)
        if f is None or f.type not in _SOCK_FAMILY or (
                kernel is not None and _SOCK_FAMILY[f.type] != kernel[1]):
            kind = kernel[0] if kernel is not None else sa[0] if sa is not None else "ipv4"
            f = FdInfo(num if isinstance(num, int) else -1, kind, "")
            f.sockfamily = "unix" if kind == "unix" else "ip"
            f.l4proto = None if kind == "unix" else "tcp"
            f.ino = ino or 0
            if isinstance(num, int) and num >= 0:
                p.fds[num] = f
        if kernel is not None:                 # the kernel's: as socket() would have said
            f.sockfamily, f.l4proto = kernel[1], kernel[2]
        return f

    def _connect(self, ev: Event, p: Process) -> None:
        facts = _facts(ev)
        sa = facts.sockaddr
        f = self._sock_fd(p, ev.args.get("fd"), sa, _stamp(ev), facts)
        if sa is not None:
            fam, addr, port = sa
            if fam == "unix":
                f.type = "unix"
                f.sockfamily = "unix"
                f.name = addr
            else:
                f.type = fam
                f.is_server = False
                f.sip, f.sport = addr, port
                # the client end: the kernel's after the call (whatever it did), else /proc's
                local = _kernel_local(ev)
                if local is None and (ev.res == 0 or ev.res == -115):   # or EINPROGRESS
                    local = self.local_address(p, f, ev.args.get("fd"))
                if local is not None:
                    f.cip, f.cport = local
                elif _kernel_kind(facts) is not None:      # no IP socket: no end of its own
                    f.cip, f.cport = _unspecified(fam), 0
                if f.cip is None:
                    f.cip, f.cport = _unspecified(fam), 0
                f.name = f"{f.cip}:{f.cport}->{f.sip}:{f.sport}"
            ev.args["tuple"] = f.name
        ev.fd = f

    def _accept(self, ev: Event, p: Process) -> None:
        facts = _facts(ev)
        sa = facts.sockaddr
        listen = p.fds.get(facts.listen_fd) if facts.listen_fd is not None else None
        kernel = _kernel_kind(facts)
        kind = sa[0] if sa is not None else kernel[0] if kernel is not None else (
            listen.type if listen is not None else "ipv4")
        f = FdInfo(ev.res if ev.res >= 0 else -1, kind, "")
        f.is_server = True
        if kind == "unix":
            f.sockfamily = "unix"
            f.name = listen.name if listen is not None else (sa[1] if sa else "")
        else:
            f.sockfamily = "ip"
            f.l4proto = kernel[2] if kernel is not None else \
                listen.l4proto if listen is not None and listen.l4proto else "tcp"
            if sa is not None:
                f.cip, f.cport = sa[1], sa[2]
            local = _kernel_local(ev)       # the accepted socket's own end: exact
            if local is None and listen is not None and listen.sip is not None:
                local = listen.sip, listen.sport
            if (local is None or local[0] == ip_addresses.ANY4 or not local[1]) and ev.res >= 0:
                local = self.local_address(p, f, ev.res) or local
            if local is not None:
                f.sip, f.sport = local
            f.name = f"{f.cip}:{f.cport}->{f.sip}:{f.sport}"
        ev.args["tuple"] = f.name
        f.ino = _stamp(ev) or f.ino
        if ev.res >= 0:
            p.fds[ev.res] = f
        ev.fd = f

    def _bind(self, ev: Event, p: Process) -> None:
        facts = _facts(ev)
        sa = facts.sockaddr
        f = self._sock_fd(p, ev.args.get("fd"), sa, _stamp(ev), facts)
        if sa is not None:
            fam, addr, port = sa
            f.type = fam
            if fam == "unix":
                f.sockfamily = "unix"
                f.name = addr
            else:
                f.is_server = True
                f.sip, f.sport = addr, port
                f.name = f"{addr}:{port}"
        ev.fd = f

    def _datagram(self, ev: Event, p: Process) -> None:
        sa = _facts(ev).sockaddr
        num = ev.args.get("fd")
        f = self.lookup(p, num, _stamp(ev)) if isinstance(num, int) and num >= 0 else None
        if sa is not None and sa[0] != "unix":
            if f is None or f.type not in ("ipv4", "ipv6"):
                f = self._sock_fd(p, num, sa, _stamp(ev))
                f.l4proto = "udp"
            before = f.name
            if f.is_server is None:
                f.is_server = False
            if f.is_server:
                f.cip, f.cport = sa[1], sa[2]
            else:
                f.sip, f.sport = sa[1], sa[2]
                if f.cip is None:
                    f.cip, f.cport = _unspecified(sa[0]), 0
            f.name = f"{f.cip}:{f.cport}->{f.sip}:{f.sport}"
            ev.args["tuple"] = f.name
            if f.name != before:
                _own_facts(ev).fd_name_changed = True
        ev.fd = f

    def _listen(self, ev: Event, p: Process) -> None:
        """A listening socket as the kernel has it (its family, type, local end: what the table
        would have learned from its ``socket`` and ``bind``), else the table's entry.  The
        table itself is left as it was: ``listen`` teaches it nothing (the socket prefilter
        counts on that, see ``sockfilter.TEACHERS``)."""
        num = ev.args.get("fd")
        if not isinstance(num, int) or num < 0:
            return
        f = self.lookup(p, num, _stamp(ev))
        facts = _facts(ev)
        kernel = _kernel_kind(facts)
        if kernel is None:
            ev.fd = f
            return
        kind, sockfamily, l4proto = kernel
        if not _same_socket(f, kind, sockfamily):
            f = FdInfo(num, kind, "")
            f.ino = _stamp(ev)
        else:
            f = replace(f)
        f.sockfamily, f.l4proto = sockfamily, l4proto
        local = facts.local
        if sockfamily == "ip":
            f.is_server = True
            f.cip = f.cport = None
            if local is not None:
                f.type = local[0]
                f.sip, f.sport = local[1], local[2]
                f.name = f"{f.sip}:{f.sport}"
        ev.fd = f

    def _use_fd(self, ev: Event, p: Process) -> None:
        num = ev.args.get("fd")
        if isinstance(num, int) and num >= 0:
            ev.fd = self.lookup(p, num, _stamp(ev))

    def _close(self, ev: Event, p: Process) -> None:
        num = ev.args.get("fd")
        f = p.fds.pop(num, None) if isinstance(num, int) else None
        ev.fd = f

    def _dup(self, ev: Event, p: Process) -> None:
        old = ev.args.get("oldfd")
        src = self.lookup(p, old, _stamp(ev)) if isinstance(old, int) and old >= 0 else None
        facts = _facts(ev)
        kernel = _kernel_kind(facts)
        if kernel is not None:                 # a socket: its family, type and ends are the
            src = _as_kernel_has_it(src, old, kernel, facts)    # kernel's
            if isinstance(old, int) and old >= 0:
                p.fds[old] = src
        ev.fd2 = src
        if ev.res >= 0 and src is not None:
            f = src.dup(ev.res)                 # what a dup copies: core/event.py's declarations
            f.open_flags = 0o2000000 if (ev.args.get("flags") or 0) & 0o2000000 else 0
            p.fds[ev.res] = f
            ev.fd = f
        else:
            ev.fd = src

    def _chdir(self, ev: Event, p: Process) -> None:
        path = self.resolve(p, AT_FDCWD, ev.args.get("path"))
        if ev.res == 0 and path:
            p.cwd = path

    def _fchdir(self, ev: Event, p: Process) -> None:
        num = ev.args.get("fd")
        f = self.lookup(p, num, _stamp(ev)) if isinstance(num, int) else None
        ev.fd = f
        if ev.res == 0:
            if f is not None and f.name.startswith("/"):
                p.cwd = f.name
            else:
                cwd = self._link(p, f"cwd")
                if cwd:
                    p.cwd = cwd

    def _paths(self, ev: Event, p: Process) -> None:
        a = ev.args
        for name, dirarg in PATH_ARGS[ev.type]:
            v = a.get(name)
            if isinstance(v, str):
                a[name] = self.resolve(p, a.get(dirarg) if dirarg else AT_FDCWD, v)

    # -- the local end of a socket, from /proc/net -------------------------------------------

    def local_address(self, p: Process, f: FdInfo, num: Any) -> tuple[Any, int] | None:
        if not isinstance(num, int) or num < 0:
            return None
        link = self._link(p, f"fd/{num}")
        pid = p.pid
        if not link or not link.startswith("socket:["):
            return None
        inode = link[8:-1]
        proto = f.l4proto or "tcp"
        files = [f"{proto}6", proto] if f.type == "ipv6" else [proto, f"{proto}6"]
        for name in files:
            try:
                with open(f"{self.proc_root}/{pid}/net/{name}") as fh:
                    next(fh, None)
                    for line in fh:
                        parts = line.split()
                        if len(parts) > 9 and parts[9] == inode:
                            return _parse_proc_net_addr(parts[1])
            except OSError:
                continue
        return None


def sock_kind(family: int, stype: int, proto: int) -> tuple[str, str | None, str | None]:
    """A socket's ``fd.type``, ``fd.sockfamily``, ``fd.l4proto`` from its family (``AF_*``),
    type (``SOCK_*``, flags ignored) and protocol: what ``socket`` says, and what the kernel
    says of a socket the table did not see made.  A family it does not know is ``ipv4``."""
    kind = _FAMILIES.get(family, "unix" if family == 1 else "ipv4")
    stype &= 0xF
    if kind in ("ipv4", "ipv6"):
        l4proto = "icmp" if stype == 3 and proto in (1, 58) else _SOCK_TYPES.get(stype, "raw")
        return kind, "ip", l4proto
    return kind, "unix" if kind == "unix" else None, None


def _kernel_kind(facts: KernelFacts) -> tuple[str, str | None, str | None] | None:
    """:func:`sock_kind` of the socket the kernel described in the event's record; None when
    it did not (not a socket, or not read)."""
    if facts.sock_family is None:
        return None
    return sock_kind(facts.sock_family, facts.sock_type or 0, facts.sock_proto or 0)


def _same_socket(f: FdInfo | None, kind: str, sockfamily: str | None) -> bool:
    """Whether the table's entry ``f`` may be the socket the kernel describes (``kind``,
    ``sockfamily``: :func:`sock_kind`'s): one of the same family (an IP socket's type may be
    the other IP one: an IPv6 socket with IPv4-mapped ends), or of the same type."""
    return f is not None and (f.type == kind
                              or _SOCK_FAMILY.get(f.type, f.type) == (sockfamily or kind))


def _as_kernel_has_it(f: FdInfo | None, num: Any, kernel: tuple[str, str | None, str | None],
                      facts: KernelFacts) -> FdInfo:
    """The entry of a socket a ``dup`` copies, its family and protocol the kernel's; its ends
    the kernel's where the table knew none (a UDP socket's peer the table learned from its
    messages stays)."""
    kind, sockfamily, l4proto = kernel
    if not _same_socket(f, kind, sockfamily):
        f = FdInfo(num if isinstance(num, int) else -1, kind, "")
        f.ino = facts.ino
    f.sockfamily, f.l4proto = sockfamily, l4proto
    local, peer = facts.local, facts.peer
    if sockfamily != "ip" or local is None:
        f.type = kind
        return f
    connected = peer is not None and peer[2] != 0
    f.type = (peer if connected else local)[0]
    if f.sip is None and f.cip is None:
        if f.is_server:
            f.sip, f.sport = local[1], local[2]
            if connected:
                f.cip, f.cport = peer[1], peer[2]
        else:
            f.cip, f.cport = local[1], local[2]
            if connected:                      # taken for a client's (connect's) socket
                f.sip, f.sport = peer[1], peer[2]
                f.is_server = False
        if f.sip is not None and f.cip is not None:
            f.name = f"{f.cip}:{f.cport}->{f.sip}:{f.sport}"
    return f


def _unspecified(family: str) -> Any:
    """The address of a socket's end not bound yet (0.0.0.0 or ::)."""
    return ip_addresses.ANY4 if family == "ipv4" else ip_addresses.ANY6


def _kernel_local(ev: Event) -> tuple[Any, int] | None:
    """The socket's local end the live source read in the kernel (connect, accept)."""
    local = _facts(ev).local
    return (local[1], local[2]) if local is not None and local[0] != "unix" else None


def _parse_proc_net_addr(text: str) -> tuple[Any, int] | None:
    try:
        hexip, hexport = text.split(":")
        return ip_addresses.parse_hex(hexip), int(hexport, 16)
    except ValueError:
        return None


#: Path arguments made absolute: event type -> [(argument, its dirfd argument or None)].
PATH_ARGS: dict[str, list[tuple[str, str | None]]] = {
    "rename": [("oldpath", None), ("newpath", None)],
    "renameat": [("oldpath", "olddirfd"), ("newpath", "newdirfd")],
    "renameat2": [("oldpath", "olddirfd"), ("newpath", "newdirfd")],
    "unlink": [("path", None)],
    "unlinkat": [("name", "dirfd")],
    "mkdir": [("path", None)],
    "mkdirat": [("path", "dirfd")],
    "rmdir": [("path", None)],
    "link": [("oldpath", None), ("newpath", None)],
    "linkat": [("oldpath", "olddir"), ("newpath", "newdir")],
    "symlink": [("linkpath", None)],
    "symlinkat": [("linkpath", "linkdirfd")],
    "chmod": [("filename", None)],
    "fchmodat": [("filename", "dirfd")],
    "chown": [("path", None)],
    "fchownat": [("pathname", "dirfd")],
    "chroot": [("path", None)],
}
