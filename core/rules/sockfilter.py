"""The socket classes the loaded rules can match, per socket syscall, for the kernel.

A socket syscall (``sendto``, ``recvmsg``, ``connect``...) is often as frequent as the opens:
a database answers each query over a UNIX socket or a TCP connection with a ``sendto``.  Most
rules that follow these syscalls care about some IP sockets only (``fd.typechar = 4``,
``fd.net != ...``, ``fd.l4proto != tcp``).  From the rules' conditions, each folded for one
socket syscall, :func:`socket_prefilter` derives the *classes* of socket a rule can match:
:data:`UNIX` (``AF_UNIX``), :data:`TCP` (an IP socket of type ``SOCK_STREAM`` or
``SOCK_SEQPACKET``, which the fd table shows as ``fd.l4proto = tcp``), :data:`NOT_TCP` (the
other IP sockets: udp, raw, icmp) and :data:`OTHER` (netlink, packet...).  :data:`IP` is the
two IP classes.  A source that reads the socket's family and type where the syscall happens
drops the events of the other classes.

The derivation over-approximates, so it is sound by construction: a check it does not
understand (a process name, a negation, a file name) counts as "any class".  What it reads:

* ``fd.typechar``, ``fd.type``, ``fd.sockfamily`` compared with constants by an operator that
  says the value is one of them (``=``, ``in``: see :class:`~.operators.Says`);
* ``fd.l4proto`` likewise, or said not to be ``tcp`` (``!= tcp``);
* the other fields of IP sockets (``fd.net``, ``fd.sip``, ``fd.rport``, ``fd.connected``...,
  declared ``ip_only``), which have no value (every comparison false) on any other socket;
* ``socket``'s own ``evt.arg.domain``.

:data:`OTHER` comes along with any IP class: the fd table shows a socket of a family it does
not know (``AF_PACKET``) as ``ipv4``, with the protocol its type says.  The class judged is the
kernel's, of the socket the syscall used (or, for ``socket``, the one asked for); a syscall on
something that is not a socket is always sent.

The fd table learns from these events (a socket's family from ``socket``, its ends from
``bind``/``connect``/``accept``, a datagram's peer from ``sendto``...), and later events read
what it learned.  So every class some rule reads ``fd.*`` of (other than ``fd.num``) on an
event that uses an existing descriptor (:data:`READERS`, ``close``, ``dup``...: not a
``dirfd``, which a socket cannot be in a call that succeeds) is also sent by the syscalls that
teach the table (:data:`TEACHERS`), whatever their own rules say; a rule reading only what its
event's record says itself (:data:`OWN_FIELDS`: the live source's records of ``connect``,
``accept``, ``listen`` and ``dup`` carry their socket's family, type, protocol and ends, which
the fd table takes over what it learned) needs only the teachers of the classes whose record
may not say it (:data:`NOT_READ`).  A TCP socket's messages teach
it nothing (its ends come from ``connect``/``accept``; a receive on it returns no address),
unless a ``sendto``/``sendmsg`` names a destination (TCP Fast Open, which connects) or a
receive returns an address (an SCTP socket, which the table counts as ``tcp`` too by its
type): those are always sent (:data:`ADDRESSED`), the others keep the TCP class of the table's
readers out of :data:`MESSAGES`; nor do a UNIX socket's (the table keeps no UNIX address of a
message).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..event import FD_KINDS, OTHER_TYPECHAR
from ..syscalls import SOCKET_FAMILIES, SOCKET_TYPE_PROTOCOLS
from . import procnames, regions
from .operators import NOTHING_SAID, Says, says
from .prefilter import reads_a_descriptor
from .resolved import RCheck, RNode, iter_checks

log = logging.getLogger("syswarden.rules")

UNIX = "unix"
TCP = "tcp"
NOT_TCP = "ip-not-tcp"
OTHER = "other"
IP = frozenset({TCP, NOT_TCP})
CLASSES = frozenset({UNIX, TCP, NOT_TCP, OTHER})

#: The socket syscalls the prefilter speaks for.
SOCKET_SYSCALLS = ("socket", "connect", "accept", "accept4", "bind", "listen", "sendto",
                   "sendmsg", "recvfrom", "recvmsg")
#: Those whose events the fd table learns from (``listen`` only looks its fd up: its event's
#: entry is the kernel's view of the socket, the table's is left as it was).
TEACHERS = frozenset(SOCKET_SYSCALLS) - {"listen"}
#: Socket syscalls that read an existing descriptor's entry (``accept``: the listening one's).
READERS = frozenset(SOCKET_SYSCALLS) - {"socket"}
#: Teachers that teach the table nothing of a TCP socket (but :data:`ADDRESSED` calls).
MESSAGES = frozenset({"sendto", "sendmsg", "recvfrom", "recvmsg"})
#: Calls that may name a destination or return a source: on a TCP socket, one that does is
#: always sent.
ADDRESSED = frozenset({"sendto", "sendmsg", "recvfrom", "recvmsg"})
#: Per reader, the ``fd.*`` fields its own event sets, whatever the fd table knew of the
#: descriptor before: a rule reading only these on it needs no teacher of the IP classes.
#: Their record describes the socket as the kernel has it after the call (the live source's
#: ``SOCK_FD`` syscalls: its family, type and protocol, and its ends; see
#: ``plugins/sources/ebpf/program.py``), which the fd table takes over what it learned:
#: :data:`KIND_FIELDS` everywhere; ``connect``'s server end from its address (where the address
#: is none the decoder reads, ``AF_UNSPEC``..., the source gives an IP socket's peer as the
#: kernel has it, a UNIX socket's family alone) and its client end from the kernel; an
#: accepted socket's ends (its peer, its local end) and role; a listening IP socket's local end
#: (a listening socket has no client).  Not theirs: what depends on earlier calls (``fd.name``
#: of a UNIX socket, ``fd.connected``, ``fd.name_changed``, a UNIX socket's ``fd.is_server``),
#: nor, for ``dup``, an end (a UDP socket's peer is the last message's, which the table learned
#: from the messages).  A call on another socket (:data:`NOT_READ`: netlink, packet), whose
#: record has no end, takes those from the table, which shows a packet socket as ``ipv4``:
#: such a rule still needs the teachers of :data:`NOT_READ`.
KIND_FIELDS = frozenset({"fd.num", "fd.type", "fd.typechar", "fd.sockfamily", "fd.l4proto"})
#: The fields of both ends of an IP socket and their derivations (``fd.connected`` apart).
_ENDS = frozenset({
    "fd.sip", "fd.sport", "fd.cip", "fd.cport", "fd.lip", "fd.lport", "fd.rip", "fd.rport",
    "fd.ip", "fd.port", "fd.net", "fd.snet", "fd.cnet", "fd.lnet", "fd.rnet", "fd.sip.name",
    "fd.cip.name", "fd.lip.name", "fd.rip.name", "fd.sproto", "fd.cproto", "fd.lproto",
    "fd.rproto", "fd.proto"})
OWN_FIELDS: dict[str, frozenset[str]] = {
    "connect": KIND_FIELDS | _ENDS | {"fd.is_server"},
    "accept": KIND_FIELDS | _ENDS | {"fd.is_server"},
    "accept4": KIND_FIELDS | _ENDS | {"fd.is_server"},
    "listen": KIND_FIELDS | _ENDS,
    "dup": KIND_FIELDS,
    "dup2": KIND_FIELDS,
    "dup3": KIND_FIELDS,
}
NOT_READ = frozenset({"other"})

_FAMILY = {name: num for num, name in SOCKET_FAMILIES.items()}
_AF_UNIX = _FAMILY["AF_UNIX"]
_IP_FAMILIES = (_FAMILY["AF_INET"], _FAMILY["AF_INET6"])
#: Socket types the fd table shows as ``fd.l4proto = tcp`` (SOCK_STREAM, SOCK_SEQPACKET).
TCP_TYPES = tuple(t for t, proto in SOCKET_TYPE_PROTOCOLS.items() if proto == "tcp")
#: The classes of a socket's family class (core/event.py's ``FdKind.family``).
_FAMILY_CLASSES = {"ip": IP, "unix": frozenset({UNIX}), "other": frozenset({OTHER})}
#: ``fd.type`` and ``fd.typechar`` values as classes (a value no socket has: none).
_TYPES = {k.name: _FAMILY_CLASSES[k.family] for k in FD_KINDS if k.family}
_TYPECHARS = {**{k.char: _FAMILY_CLASSES[k.family] for k in FD_KINDS if k.family},
              OTHER_TYPECHAR: _FAMILY_CLASSES["other"]}
_SOCKFAMILIES = {"ip": IP, "unix": {UNIX}}
_L4PROTOS = {"tcp": {TCP}, "udp": {NOT_TCP}, "raw": {NOT_TCP}, "icmp": {NOT_TCP}}

# Abstract value of a condition: the classes it may hold for (None: any).
Classes = frozenset[str] | None


def socket_classes(family: int, stype: int | None = None) -> frozenset[str]:
    """The class of a kernel ``AF_*`` number and socket type (``SOCK_*``, without its flags);
    both IP classes when an IP socket's type is not known."""
    if family == _AF_UNIX:
        return frozenset({UNIX})
    if family not in _IP_FAMILIES:
        return frozenset({OTHER})
    if stype is None:
        return IP
    return frozenset({TCP if stype in TCP_TYPES else NOT_TCP})


#: Which processes a term is for: a name set and where they run (None: any; see
#: :mod:`.procnames`).
Who = tuple[frozenset[str] | None, frozenset[str] | None]
#: Per :data:`Who`, the classes sent for its processes.
Named = tuple[tuple[Who, frozenset[str]], ...]


@dataclass(frozen=True)
class SocketPrefilter:
    """Per socket syscall, the classes a rule can match whatever the process (``wanted``),
    and (``named``) the classes it can match for some processes (:data:`Who`: of some
    ``proc.name``, on the host or in a container, see :mod:`.procnames`); a syscall not in
    ``wanted``: every event."""

    wanted: tuple[tuple[str, frozenset[str]], ...]
    named: tuple[tuple[str, Named], ...] = ()
    #: ``connect``: per place a process runs (host, container: :mod:`.procnames`), the regions
    #: of an IPv4 destination some rule can match there (a place not named: any; see
    #: :mod:`.regions`); and the classes whose connects teach the fd table (sent to any)
    connect_regions: tuple[tuple[str, frozenset[str]], ...] = ()
    connect_taught: frozenset[str] = frozenset()

    def regions_for(self, host: bool | None) -> frozenset[str] | None:
        """The regions of a connect's IPv4 destination sent for a process on the host
        (``host``), in a container (not ``host``) or either (None); None: any."""
        by_place = dict(self.connect_regions)
        places = procnames.PLACES if host is None else \
            (procnames.HOST if host else procnames.CONTAINER,)
        out: frozenset[str] = frozenset()
        for p in places:
            if p not in by_place:
                return None
            out |= by_place[p]
        return out

    def classes(self, evt_type: str) -> frozenset[str] | None:
        """The classes ``evt_type``'s events may be sent for (for some process); None:
        all."""
        classes = dict(self.wanted).get(evt_type)
        if classes is None:
            return None
        for _names, more in self.named_of(evt_type):
            classes |= more
        return None if classes == CLASSES and self.named_of(evt_type) else classes

    def named_of(self, evt_type: str) -> Named:
        return dict(self.named).get(evt_type, ())

    def accepts(self, evt_type: str, family: int | None, stype: int | None = None,
                addressed: bool = False, name: str | None = None,
                host: bool | None = None, server: Any = None) -> bool:
        """Whether an event must be sent (the reference a source's own test implements): its
        syscall is not filtered, its family could not be read (``None``: not a socket, or
        no offsets), its class (by family and type) is wanted (for any process, or for its
        process's ``name`` as the process table has it and where it runs, ``host``; None: not
        known, any), or it is a ``sendto`` or ``sendmsg`` naming a destination, or a receive
        that returned an address (``addressed``), on a TCP socket; and, for a ``connect`` on
        an IP socket to an IPv4 ``server`` (its destination as the call names it), the
        region of that address is wanted, or its class teaches the fd table."""
        classes = dict(self.wanted).get(evt_type)
        if classes is None or family is None:
            return True
        mine = socket_classes(family, stype)
        if addressed and evt_type in ADDRESSED and TCP in mine:
            return True
        if evt_type == "connect" and mine & IP and not mine & self.connect_taught:
            region = regions.region_of(server)
            wanted = self.regions_for(host)
            if region is not None and wanted is not None and region not in wanted:
                return False
        return bool(mine & classes) or any(
            mine & more and procnames.allows(names, name)
            and procnames.allows_place(places, host)
            for (names, places), more in self.named_of(evt_type))

    def describe(self) -> str:
        if not self.wanted:
            return "every family"
        return "; ".join(f"{t}: {', '.join(sorted(c)) or 'none'}" + "".join(
            f"; {', '.join(sorted(more))}{procnames.describe(*who)}"
            for who, more in self.named_of(t)) + self._regions_said(t) for t, c in self.wanted)

    def _regions_said(self, evt_type: str) -> str:
        if evt_type != "connect" or not self.connect_regions:
            return ""
        return (" (IPv4 destinations: " + "; ".join(
            f"{', '.join(sorted(r)) or 'none'} on {p}" for p, r in self.connect_regions)
            + (f"; any for {', '.join(sorted(self.connect_taught))}"
               if self.connect_taught else "") + ")")

    @staticmethod
    def union(prefilters: list[SocketPrefilter]) -> SocketPrefilter:
        """What any of ``prefilters`` wants."""
        out: dict[str, frozenset[str]] | None = None
        named: dict[str, dict[Who, frozenset[str]]] = {}
        where: dict[str, Classes] = {p: frozenset() for p in procnames.PLACES}
        taught: frozenset[str] = frozenset()
        for pf in prefilters:
            mine = dict(pf.wanted)
            out = mine if out is None else \
                {t: c | mine[t] for t, c in out.items() if t in mine}
            for t, terms in pf.named:
                for who, more in terms:
                    by = named.setdefault(t, {})
                    by[who] = by.get(who, frozenset()) | more
            mine_where = dict(pf.connect_regions)
            where = {p: _or(r, mine_where.get(p)) for p, r in where.items()}
            taught |= pf.connect_taught
        return _make(out or {}, named, where, taught)


def _make(wanted: dict[str, frozenset[str]],
          named: dict[str, dict[Who, frozenset[str]]] | None = None,
          connect_regions: dict[str, Classes] | None = None,
          connect_taught: frozenset[str] = frozenset()) -> SocketPrefilter:
    """Without the syscalls every class of which is wanted whatever the name, the named
    terms whose classes are wanted whatever the name, and the regions of ``connect`` of the
    places where they are all wanted (all of them when ``connect`` is not filtered or its IP
    classes all teach the fd table)."""
    kept = {t: c for t, c in wanted.items() if c != CLASSES}
    terms = {t: tuple(sorted(((n, more) for n, more in (named or {}).get(t, {}).items()
                              if not more <= kept[t]), key=_order))
             for t in kept}
    where = tuple(sorted((p, r) for p, r in (connect_regions or {}).items()
                         if r is not None and r != regions.REGIONS))
    if "connect" not in kept or connect_taught >= IP or not where:
        where, connect_taught = (), frozenset()
    return SocketPrefilter(tuple(sorted(kept.items())),
                           tuple(sorted((t, n) for t, n in terms.items() if n)),
                           where, connect_taught)


def socket_prefilter(engine: Any) -> SocketPrefilter | None:
    """The prefilter of a :class:`~.engine.RuleEngine`'s active rules, or None (send all)."""
    state = _state_classes(engine)
    wanted: dict[str, frozenset[str]] = {}
    named: dict[str, dict[Who, frozenset[str]]] = {}
    for t in SOCKET_SYSCALLS:
        classes, by_who = _of_rules_by_name(engine, t)
        if t in TEACHERS:
            taught = state - {TCP, UNIX} if state is not None and t in MESSAGES else state
            classes = _closed(_or(classes, taught))
        if classes is not None:
            wanted[t] = classes
            named[t] = by_who
    pf = _make(wanted, named, _connect_regions(engine), IP if state is None else state & IP)
    if not pf.wanted:
        log.info("socket syscalls are not filtered at the source: rules can match any family")
        return None
    return pf


def _connect_regions(engine: Any) -> dict[str, Classes]:
    """Per place, the regions of an IPv4 destination the rules on ``connect`` that may hold
    there can match (None: any)."""
    out: dict[str, Classes] = {p: frozenset() for p in procnames.PLACES}
    memo: dict[int, procnames.Names] = {}
    for _rule, node in engine.conditions_for("connect"):
        where = regions.connect_regions([node])
        for place in procnames.condition_places(node, memo) or procnames.PLACES:
            out[place] = _or(out[place], where)
    return out


def _order(term: tuple[Who, frozenset[str]]) -> tuple:
    (names, places), more = term
    return (names is not None, sorted(names or ()), places is not None, sorted(places or ()),
            sorted(more))


def _of_rules_by_name(engine: Any, evt_type: str
                      ) -> tuple[Classes, dict[Who, frozenset[str]]]:
    """The classes ``evt_type``'s rules can match whatever the process (None: all), and per
    :data:`Who` the classes the rules that test the process's name or place can match."""
    out: Classes = frozenset()
    by_who: dict[Who, frozenset[str]] = {}
    memo: dict[int, Classes] = {}
    names_memo: dict[int, procnames.Names] = {}
    places_memo: dict[int, procnames.Names] = {}
    for _rule, node in engine.conditions_for(evt_type):
        classes = _closed(_abstract(node, evt_type, memo))
        who = (procnames.condition_names(node, names_memo),
               procnames.condition_places(node, places_memo))
        if who == (None, None):
            out = _or(out, classes)
            if out is None:
                return None, {}
        else:
            by_who[who] = by_who.get(who, frozenset()) | (
                CLASSES if classes is None else classes)
    return _closed(out), by_who


def _of_rules(engine: Any, evt_type: str | None, arg_type: str | None,
              fd_readers_only: bool = False) -> Classes:
    out: Classes = frozenset()
    memo: dict[int, Classes] = {}
    for _rule, node in engine.conditions_for(evt_type):
        if fd_readers_only:
            reads = _fd_reads(node)
            if not reads:
                continue
            if reads <= OWN_FIELDS.get(evt_type or "", frozenset()):
                # its event's own, but for a socket of NOT_READ's to an address not read,
                # whose type the table shows as ipv4 when it does not know the socket
                own = _abstract(node, arg_type, memo)
                if own is None or own & (IP | NOT_READ):
                    out = _or(out, NOT_READ)
                continue
        out = _or(out, _abstract(node, arg_type, memo))
        if out is None:
            return None
    return out


def _state_classes(engine: Any) -> Classes:
    """The classes some rule reads the fd table's ``fd.*`` of, on an event that uses an fd it
    did not create."""
    out: Classes = frozenset()
    types: list[str | None] = sorted(engine.named_types())
    for t in [*types, None]:
        if t == "socket" or not (t in READERS or reads_a_descriptor(t)):
            continue
        out = _or(out, _of_rules(engine, t, t, fd_readers_only=True))
        if out is None:
            return None
    return out


def _fd_reads(node: RNode) -> set[str]:
    """The ``fd.*`` fields a condition reads, but ``fd.num`` (the event's own argument)."""
    return {d.name for check in iter_checks(node) for f in (check.field, check.rhs)
            if f is not None for d in f.reads if d.name.startswith("fd.") and d.name != "fd.num"}


def _or(a: Classes, b: Classes) -> Classes:
    return None if a is None or b is None else a | b


def _closed(c: Classes) -> Classes:
    """With :data:`OTHER` wherever an IP class is (see the module docstring)."""
    if c is None:
        return None
    return c | {OTHER} if c & IP else c


def _abstract(node: RNode, evt_type: str | None, memo: dict[int, Classes]) -> Classes:
    return procnames.sets_of(node, lambda c: _check(c, evt_type), memo)


def _check(c: RCheck, evt_type: str | None) -> Classes:
    """One comparison as the classes it may hold for; None when it says nothing of them."""
    f = c.field
    said = says(c.op, c.const) if c.rhs is None else NOTHING_SAID
    if f.key == "evt.arg.domain" and evt_type == "socket" and c.rhs is None:
        return _domains(said)
    if f.key != f.name or (c.rhs is not None and c.rhs.key != c.rhs.name):
        return None                          # a transformer, an argument: not understood
    if f.name == "fd.l4proto" and c.rhs is None:
        if said.excludes is not None and "tcp" in said.excludes:
            return frozenset({NOT_TCP})
        return _named(said, _L4PROTOS) if said.equals is not None else IP
    if _ip_only(f) or (c.rhs is not None and _ip_only(c.rhs)):
        return IP                            # no value, every comparison false, elsewhere
    if c.rhs is not None:
        return None
    if f.name == "fd.typechar":
        return _named(said, _TYPECHARS)
    if f.name == "fd.type":
        return _named(said, _TYPES)
    if f.name == "fd.sockfamily":
        return _named(said, _SOCKFAMILIES)
    return None


def _ip_only(f: Any) -> bool:
    """Whether a bound field is one declared ``ip_only`` (a value only on an IP socket)."""
    return len(f.reads) == 1 and f.reads[0].name == f.name and f.reads[0].ip_only


def _named(said: Says, table: dict[str, set[str] | frozenset[str]]) -> Classes:
    """A comparison that says the value is one of some names (``= X``, ``in (X, Y)``) as
    classes: those of the names ``table`` knows (a name it does not know is no socket's)."""
    if said.equals is None:
        return None
    return frozenset(c for n in map(str, said.equals) if n in table for c in table[n])


def _domains(said: Says) -> Classes:
    """A test of ``socket``'s ``evt.arg.domain`` (rendered as its ``AF_*`` name, or as its
    number when the name is not known) as the classes of the families it can hold for: one
    that says the name is one of some (``=``, ``in``) or contains one of some (``contains``)."""
    if said.equals is not None:
        consts, within = [str(x) for x in said.equals], False
    elif said.substrings is not None:
        consts, within = list(said.substrings), True
    else:
        return None
    out = set()
    for k in consts:
        for n, name in SOCKET_FAMILIES.items():
            if k in name if within else k == name:
                out |= socket_classes(n)
        if k.isdigit() and (within or int(k) not in SOCKET_FAMILIES):
            out.add(OTHER)                   # a number without a name, rendered as digits
    return frozenset(out)
