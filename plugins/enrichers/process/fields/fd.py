"""Falco's ``fd.*`` fields: the file descriptor the call is about.

Readers read the :class:`~syswarden.core.event.FdInfo` the fd table attaches (``evt.fd``),
and what it found while it did (``evt.kernel``: ``fd.nameraw``, ``fd.name_changed``).

The ``fd.*net`` fields (``fd.net``, ``fd.snet`` ...) have Falco's IPNET type: their reader
returns the ip address of the fd and the rule engine checks it against the network operand.
``fd.ip``, ``fd.port`` and ``fd.net`` are multi-valued (the client and the server end).
"""

from __future__ import annotations

import os
from operator import attrgetter
from typing import Any, Callable

from syswarden.core import dns
from syswarden.core.event import FD_KINDS, FD_TYPES, OTHER_TYPECHAR
from syswarden.core.fields import ArgKind, Bound, Field

from .common import IP, NET, PORT, B, C, I

#: Falco's ``fd.typechar`` for each ``fd.type`` (core/event.py's FD_KINDS).
TYPECHARS = {k.name: k.char for k in FD_KINDS}
_FILE_TYPES = frozenset(k.name for k in FD_KINDS if k.path)
_IP_TYPES = frozenset(k.name for k in FD_KINDS if k.family == "ip")


def _fd_num(e):
    # a call that failed to make its fd (an open: num -1) has Falco's fd.num, the call's result
    f = e.fd
    if f is None:
        return None
    if f.num >= 0:
        return f.num
    return e.res if e.res is not None and e.res < 0 else None


def _fd_type(e):
    f = e.fd
    return f.type if f is not None else None


def _fd_typechar(e):
    f = e.fd
    return TYPECHARS.get(f.type, OTHER_TYPECHAR) if f is not None else None


def _fd_name(e):
    f = e.fd
    return f.name if f is not None else None


def directory_of(name: str) -> str:
    """Falco's ``fd.directory`` of a path: everything before the last slash, or ``/``."""
    pos = name.rfind("/")
    if pos <= 0:
        return "/"
    return name[:pos] if pos < len(name) - 1 else name


def _fd_directory(e):
    f = e.fd
    if f is None or f.type not in _FILE_TYPES or not f.name:
        return None
    if f.type == "directory":
        return f.name
    return directory_of(f.name)


def _fd_filename(e):
    # Falco reads it from the fd table: none for an open that failed (fd.name and fd.directory
    # are read from the event's arguments, and have a value)
    f = e.fd
    if f is None or f.num < 0 or f.type not in _FILE_TYPES or not f.name:
        return None
    pos = f.name.rfind("/")
    return f.name[pos + 1:] if 0 <= pos < len(f.name) - 1 else f.name


def _fd_nameraw(e):
    k = e.kernel
    if k is not None and k.nameraw is not None:
        return k.nameraw
    a = e.args
    raw = a.get("name") or a.get("path") or a.get("pathname")
    if isinstance(raw, str):
        return raw
    f = e.fd
    return f.name if f is not None and f.type in _FILE_TYPES else None


def _is_ip(f: Any) -> bool:
    return f is not None and f.type in _IP_TYPES


def _local(f: Any, ip: bool) -> Any:
    if f.is_server:
        return f.sip if ip else f.sport
    return f.cip if ip else f.cport


def _remote(f: Any, ip: bool) -> Any:
    if f.is_server:
        return f.cip if ip else f.cport
    return f.sip if ip else f.sport


def _ips(e):
    f = e.fd
    if not _is_ip(f):
        return None
    return tuple(v for v in (f.cip, f.sip) if v is not None)


def _ports(e):
    f = e.fd
    if not _is_ip(f):
        return None
    return tuple(v for v in (f.cport, f.sport) if v is not None)


def _sock(attr: str) -> Callable[[Any], Any]:
    """A reader of one end of an IP socket fd (client/server ip or port)."""
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        f = e.fd
        return get(f) if _is_ip(f) else None
    return read


def _end(local: bool, ip: bool) -> Callable[[Any], Any]:
    """A reader of the local or remote end of an IP socket fd, by the fd's role."""
    pick = _local if local else _remote

    def read(e: Any) -> Any:
        f = e.fd
        return pick(f, ip) if _is_ip(f) else None
    return read


def _proto(read_port: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """A reader of a port's protocol name as Falco gives it with its default
    ``hostname_and_port_resolution`` off: the port number as text (``443``)."""
    def read(e: Any) -> str | None:
        port = read_port(e)
        return str(port) if port is not None else None
    return read


def _host_name(read_ip: Callable[[Any], Any]) -> Callable[[Any], str | None]:
    """A reader of the name of one of the socket's addresses, as Falco gives it: the name a
    rule compares with that resolved to it (:mod:`syswarden.core.dns`; a comparison of the
    field tests the address against the name's, see there)."""
    name_of = dns.RESOLVER.name_of

    def read(e: Any) -> str | None:
        return name_of(read_ip(e))
    return read


def _protos(e):
    ports = _ports(e)
    return tuple(str(p) for p in ports) if ports is not None else None


def _fd_attr(attr: str) -> Callable[[Any], Any]:
    get = attrgetter(attr)

    def read(e: Any) -> Any:
        f = e.fd
        return get(f) if f is not None else None
    return read


_fd_cip = _sock("cip")
_fd_sip = _sock("sip")
_fd_lip = _end(True, True)
_fd_rip = _end(False, True)


def _fd_uid(e):
    f = e.fd
    return f"{e.tid}{f.num}" if f is not None and f.num >= 0 else None


def _container_id(e: Any) -> str:
    c = e.container
    if c is not None:
        return c.id
    p = e.proc
    return (p.container_id if p is not None else "") or "host"


def _fd_containername(e):
    f = e.fd
    return f"{_container_id(e)}:{f.name}" if f is not None else None


def _fd_containerdirectory(e):
    d = _fd_directory(e)
    return f"{_container_id(e)}:{d}" if d is not None else None


def _fd_connected(e):
    f = e.fd
    if f is None or f.type not in _IP_TYPES:
        return None
    return f.cip is not None and f.sip is not None and bool(f.sport)


def _fd_name_changed(e):
    k = e.kernel
    return k.fd_name_changed if k is not None else False


def _fd_dev(e):
    f = e.fd
    return f.dev if f is not None and f.dev else None


def _fd_dev_major(e):
    f = e.fd
    return os.major(f.dev) if f is not None and f.dev else None


def _fd_dev_minor(e):
    f = e.fd
    return os.minor(f.dev) if f is not None and f.dev else None


def _fd_ino(e):
    f = e.fd
    return f.ino if f is not None and f.ino else None


def _fd_realpath(e):
    f = e.fd
    return f.realpath if f is not None and f.type in _FILE_TYPES else None


def devino(dev: int, ino: int) -> str:
    """A file's identity as ``fd.devino`` writes it, ``major:minor:inode``, from a device
    number as ``stat`` (and ``fd.dev``) encode it."""
    return f"{os.major(dev)}:{os.minor(dev)}:{ino}"


def _fd_devino(e):
    f = e.fd
    if f is None or not f.dev or not f.ino or f.type not in _FILE_TYPES:
        return None
    return devino(f.dev, f.ino)


def _fd_types(arg):
    if arg is None:
        def read_all(e):
            p = e.proc
            if p is None:
                return None
            return tuple(dict.fromkeys(f.type for f in p.fds.values()))
        return Bound(read_all, many=True)
    n = int(arg)

    def read_n(e):
        p = e.proc
        f = p.fds.get(n) if p is not None else None
        return (f.type,) if f is not None else None
    return Bound(read_n, many=True)


FIELDS = (
    Field("fd.num", I, "The number of the file descriptor.", _fd_num, without_open=True),
    Field("fd.type", C, f"Type of fd: {', '.join(FD_TYPES[:-1])} or {FD_TYPES[-1]}.",
          _fd_type),
    Field("fd.typechar", C, "Type of fd as one character: f file, d directory, 4/6 ip sockets, "
          "u unix, p pipe, e event, s signalfd, l eventpoll, i inotify, m memfd, o other.",
          _fd_typechar),
    Field("fd.name", C, "Full name of the fd: the absolute path of a file, the connection "
          "tuple of a socket.", _fd_name),
    Field("fd.directory", C, "If the fd is a file, the directory that contains it.",
          _fd_directory),
    Field("fd.filename", C, "If the fd is a file, its name without the directory.",
          _fd_filename),
    Field("fd.nameraw", C, "The path as the process passed it (not made absolute).",
          _fd_nameraw),
    Field("fd.cip", IP, "Client IP address.", _fd_cip, ip_only=True, without_open=True),
    Field("fd.sip", IP, "Server IP address.", _fd_sip, ip_only=True, without_open=True),
    Field("fd.lip", IP, "Local IP address.", _fd_lip, ip_only=True, without_open=True),
    Field("fd.rip", IP, "Remote IP address.", _fd_rip, ip_only=True, without_open=True),
    Field("fd.cport", PORT, "For TCP/UDP fds, the client port.", _sock("cport"),
          ip_only=True, without_open=True),
    Field("fd.sport", PORT, "For TCP/UDP fds, the server port.", _sock("sport"),
          ip_only=True, without_open=True),
    Field("fd.lport", PORT, "For TCP/UDP fds, the local port.", _end(True, False),
          ip_only=True, without_open=True),
    Field("fd.rport", PORT, "For TCP/UDP fds, the remote port.", _end(False, False),
          ip_only=True, without_open=True),
    Field("fd.l4proto", C, "The IP protocol of a socket: tcp, udp, icmp or raw.",
          _fd_attr("l4proto"), ip_only=True, without_open=True),
    Field("fd.sockfamily", C, "The socket family of a socket: ip or unix.",
          _fd_attr("sockfamily"), without_open=True),
    Field("fd.is_server", B, "True if the process owning this fd is the server end of the "
          "connection.", _fd_attr("is_server"), without_open=True),
    Field("fd.uid", C, "A unique id of the fd: the thread id and the fd number chained.",
          _fd_uid),
    Field("fd.containername", C, "The container id and fd.name chained.", _fd_containername),
    Field("fd.containerdirectory", C, "The container id and fd.directory chained.",
          _fd_containerdirectory),
    Field("fd.proto", C, "Matches the protocol (client or server port) of the fd; the port "
          "number, as Falco without port name resolution (its default).", _protos, many=True),
    Field("fd.cproto", C, "For TCP/UDP fds, the client protocol (the port number).",
          _proto(_sock("cport"))),
    Field("fd.sproto", C, "For TCP/UDP fds, the server protocol (the port number).",
          _proto(_sock("sport"))),
    Field("fd.lproto", C, "For TCP/UDP fds, the local protocol (the port number).",
          _proto(_end(True, False))),
    Field("fd.rproto", C, "For TCP/UDP fds, the remote protocol (the port number).",
          _proto(_end(False, False))),
    Field("fd.cip.name", C, "Domain name of the client IP address: compared with a "
          "name, the name's addresses (looked up); read, the name a rule's resolved to it.",
          _host_name(_fd_cip)),
    Field("fd.sip.name", C, "Domain name of the server IP address: compared with a "
          "name, the name's addresses (looked up); read, the name a rule's resolved to it.",
          _host_name(_fd_sip)),
    Field("fd.lip.name", C, "Domain name of the local IP address: compared with a "
          "name, the name's addresses (looked up); read, the name a rule's resolved to it.",
          _host_name(_fd_lip)),
    Field("fd.rip.name", C, "Domain name of the remote IP address: compared with a "
          "name, the name's addresses (looked up); read, the name a rule's resolved to it.",
          _host_name(_fd_rip)),
    # filter-only fields: multi-valued (client or server) or compared against a network
    Field("fd.ip", IP, "Matches the ip address (client or server) of the fd.", _ips,
          many=True, ip_only=True, without_open=True),
    Field("fd.port", PORT, "Matches the port (client or server) of the fd.", _ports,
          many=True, ip_only=True, without_open=True),
    Field("fd.net", NET, "Matches the IP network (client or server) of the fd.", _ips,
          many=True, ip_only=True, without_open=True),
    Field("fd.cnet", NET, "Matches the client IP network of the fd.", _fd_cip,
          ip_only=True, without_open=True),
    Field("fd.snet", NET, "Matches the server IP network of the fd.", _fd_sip,
          ip_only=True, without_open=True),
    Field("fd.lnet", NET, "Matches the local IP network of the fd.", _fd_lip,
          ip_only=True, without_open=True),
    Field("fd.rnet", NET, "Matches the remote IP network of the fd.", _fd_rip,
          ip_only=True, without_open=True),
    Field("fd.connected", B, "For TCP/UDP fds, true if the socket is connected.",
          _fd_connected, ip_only=True, without_open=True),
    Field("fd.name_changed", B, "True when the event changed the name of its fd (a UDP "
          "tuple).", _fd_name_changed),
    Field("fd.dev", I, "Device number (major/minor) holding the file.", _fd_dev),
    Field("fd.dev.major", I, "Major device number holding the file.", _fd_dev_major),
    Field("fd.dev.minor", I, "Minor device number holding the file.", _fd_dev_minor),
    Field("fd.ino", I, "Inode number of the file.", _fd_ino),
    # beyond Falco: the file itself, whatever path named it
    Field("fd.realpath", C, "The path of the file as the kernel resolved it from the opened "
          "file (symbolic links, /proc/PID/root and .. followed; as the process sees it from "
          "its root); a path cut short is '...' and its last components (syswarden).",
          _fd_realpath),
    Field("fd.devino", C, "The identity of the file, major:minor:inode of its device and "
          "inode; compare it with `samefile` (syswarden).", _fd_devino),
    Field("fd.types", C, "The types of the fds the process has open; fd.types[n] the type of "
          "fd n.", _fd_types, ArgKind.INDEX_OPTIONAL, "[fd]"),
)
