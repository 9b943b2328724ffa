"""The socket prefilter derived from rules: the families it keeps per socket syscall, and that
dropping what it keeps changes no alert (checked against the engine and the fd table over
sequences of synthetic socket events, Falco's rules included)."""

from __future__ import annotations

import ipaddress
import itertools
import socket

import pytest
from syswarden.core import ip_addresses
from syswarden.core.config import default_rules_path
from syswarden.core.event import Event, KernelFacts, Process
from syswarden.core.fields import Field, FieldType
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.operators import OPERATORS, Kind, Operator, Says
from syswarden.core.rules.sockfilter import (CLASSES, IP, NOT_TCP, OTHER, SOCKET_SYSCALLS, TCP, UNIX,
                                             SocketPrefilter, socket_prefilter)
from syswarden.core.rules import sockfilter as _sf
from syswarden.plugins.enrichers.process.fds import FdTable
from syswarden.testing import fields_with

FIELDS = collect_fields()
FALCO_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
IP_CLASSES = IP | {OTHER}


def engine(tmp_path, rules: str, fields=FIELDS, **kw) -> RuleEngine:
    f = tmp_path / "rules.yaml"
    f.write_text(rules)
    return RuleEngine.load([str(f)], fields, **kw)


def rule(cond: str, name: str = "r") -> str:
    return (f"- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n"
            f"  priority: WARNING\n")


def _classes(pf: SocketPrefilter | None, syscall: str) -> set[str] | None:
    """The classes ``syscall``'s events are sent for (None: all)."""
    got = pf.classes(syscall) if pf is not None else None
    return None if got is None else set(got)


def falco(compat) -> RuleEngine:
    return RuleEngine.load([str(compat / "falco-rules" / f) for f in FALCO_FILES], FIELDS,
                           rule_matching="all")


@pytest.mark.parametrize("cond, syscall, classes", [
    ("evt.type = sendto and fd.typechar = 4", "sendto", IP_CLASSES),
    ("evt.type = sendto and (fd.typechar = 4 or fd.typechar = 6)", "sendto", IP_CLASSES),
    ("evt.type = sendto and fd.l4proto != tcp", "sendto", {NOT_TCP, OTHER}),
    ("evt.type = sendto and fd.l4proto = tcp", "sendto", {TCP, OTHER}),
    ("evt.type = sendto and fd.l4proto in (udp, icmp)", "sendto", {NOT_TCP, OTHER}),
    ("evt.type = sendto and fd.l4proto = sctp", "sendto", set()),     # no such value
    ("evt.type = sendto and fd.l4proto != udp", "sendto", IP_CLASSES),
    ("evt.type = sendto and (fd.l4proto = tcp or fd.typechar = u)", "sendto",
     {TCP, OTHER, UNIX}),
    ("evt.type = sendto and fd.net != 127.0.0.0/8", "sendto", IP_CLASSES),
    ("evt.type = recvfrom and fd.type in (ipv4, ipv6) and proc.name = java", "recvfrom",
     IP_CLASSES),
    ("evt.type = sendmsg and fd.sockfamily = unix", "sendmsg", {UNIX}),
    ("evt.type = connect and fd.type = unix", "connect", {UNIX}),
    ("evt.type = connect and fd.typechar = n", "connect", {OTHER}),
    ("evt.type = sendto and (fd.typechar = u or fd.rport = 53)", "sendto", None),  # all three
    ("evt.type = sendto and (fd.typechar = u or fd.typechar = n)", "sendto", {UNIX, OTHER}),
    ("evt.type = sendto and fd.typechar = f", "sendto", set()),        # no socket is a file
    ("evt.type = socket and evt.arg.domain contains AF_PACKET", "socket", {OTHER}),
    ("evt.type = socket and evt.arg.domain = AF_INET6", "socket", IP_CLASSES),
    ("evt.type = socket and evt.arg.domain contains INET", "socket", IP_CLASSES),
    ("evt.type = socket and evt.arg.domain in (AF_UNIX, AF_NETLINK)", "socket", {UNIX, OTHER}),
    ("evt.type = socket and evt.arg.domain = 77", "socket", {OTHER}),  # no name: its number
    ("evt.type = execve and proc.name = nc", "sendto", set()),         # no rule: none sent
    # "may hold for any family": not filtered
    ("evt.type = sendto and proc.name = psql", "sendto", None),
    ("evt.type = sendto and not fd.typechar = u", "sendto", None),
    ("evt.type = sendto and toupper(fd.type) = UNIX", "sendto", None),
    ("evt.type = socket and evt.arg.domain contains A", "socket", None),
    ("evt.type = sendto and fd.name contains sock", "sendto", None),
])
def test_the_families_a_condition_leaves(tmp_path, cond, syscall, classes):
    pf = socket_prefilter(engine(tmp_path, rule(cond)))
    assert pf is not None
    assert pf.classes(syscall) == (None if classes is None else frozenset(classes))


@pytest.mark.parametrize("said, classes", [(True, {UNIX}), (False, None)])
def test_the_socket_prefilter_reads_what_an_operator_says(tmp_path, said, classes):
    """What an operator says of the value (here: it is one of the constants) is what the
    socket prefilter reads, with no edit of it."""
    OPERATORS.add(Operator(
        "is", Kind.VALUE, "equal", lambda const, ftype: lambda v: v == const,
        says=(lambda const: Says(equals=frozenset({const}))) if said else None))
    try:
        pf = socket_prefilter(engine(tmp_path, rule("evt.type = sendto and fd.type is unix")))
    finally:
        OPERATORS.remove("is")
    assert _classes(pf, "sendto") == classes


@pytest.mark.parametrize("ip_only, classes", [(True, IP_CLASSES), (False, None)])
def test_an_fd_field_declared_ip_only_leaves_the_ip_sockets(tmp_path, ip_only, classes):
    """What the socket prefilter knows of an fd field is what its row declares: a plugin's
    field declared ``ip_only`` (no value on another socket) leaves the IP classes."""
    tos = Field("fd.tos", FieldType.UINT64, "a test field", lambda e: 0, ip_only=ip_only)
    pf = socket_prefilter(engine(tmp_path, rule("evt.type = sendto and fd.tos = 16"),
                                 fields_with(tos)))
    assert _classes(pf, "sendto") == classes


def test_a_family_some_rule_reads_through_the_fd_table_is_sent_by_the_calls_that_teach_it(
        tmp_path):
    """close's fd.type comes from the socket's socket/bind/connect: those send UNIX too."""
    pf = socket_prefilter(engine(tmp_path, rule("evt.type = sendto and fd.typechar = 4", "s")
                                 + rule("evt.type = close and fd.type = unix", "d")))
    assert pf is not None
    for teacher in ("socket", "bind", "connect", "accept4"):
        assert pf.classes(teacher) is None, teacher    # every class: not filtered
    # a TCP socket's messages teach the table nothing (sendto's own rule wants TCP above),
    # nor do a UNIX socket's (the table keeps no UNIX address of a message)
    assert pf.classes("recvmsg") == CLASSES - {TCP, UNIX}
    assert pf.classes("sendto") == CLASSES - {UNIX}
    assert pf.classes("listen") == frozenset()        # learns nothing: only its own rules


@pytest.mark.parametrize("reader", [
    'concat(fd.name, "") contains sock',                # a transformer's argument
    'join(",", (proc.name, fd.name)) contains sock',
    'toupper(concat(fd.name, "x")) contains SOCK',
])
def test_a_field_read_through_a_transformer_is_read_through_the_fd_table(tmp_path, reader):
    """A rule reading fd.name on read(), inside join() or concat(), needs every socket's
    name from the calls that teach the fd table, as the same rule without the call does."""
    pf = socket_prefilter(engine(tmp_path, rule(f"evt.type = read and {reader}")
                                 + rule("evt.type = connect and fd.typechar = u", "u")))
    assert pf is not None
    for teacher in ("socket", "bind", "connect", "accept4", "sendto"):
        assert pf.classes(teacher) is None, teacher


def test_a_directory_fd_is_no_socket(tmp_path):
    """fd.name read on renameat (a dirfd) does not make every socket family matter."""
    pf = socket_prefilter(engine(tmp_path, rule("evt.type = sendto and fd.typechar = 4", "s")
                                 + rule("evt.type = renameat and fd.name startswith /root")))
    assert pf is not None and pf.classes("sendto") == IP_CLASSES


@pytest.mark.parametrize("cond", [
    "evt.type = close and fd.name startswith /root",     # a socket's fd.name is read too
    "proc.name = nc and fd.name contains x",              # any type: sockets' included
    "evt.type = sendto and proc.name startswith nc",     # no name set: any name
])
def test_a_rule_that_needs_every_family_turns_the_prefilter_off(tmp_path, caplog, cond):
    caplog.set_level("INFO", "syswarden.rules")
    eng = engine(tmp_path, rule(cond) + rule("evt.type in (sendto, connect, socket, accept, "
                                             "accept4, bind, sendmsg, recvfrom, recvmsg, "
                                             "listen) and proc.name startswith x", "all"))
    assert socket_prefilter(eng) is None
    assert "not filtered" in caplog.text


def test_a_rule_that_tests_the_process_name_wants_its_classes_for_those_names(tmp_path):
    """Per syscall, the classes any process's events are sent for, and those sent only for
    some names (``proc.name = X``, ``in``); a named term the unnamed classes cover is left
    out; the fd table's teachers are sent for every name."""
    pf = socket_prefilter(engine(tmp_path, rule(
        "evt.type = sendto and proc.name in (psql, nc)", "any-family")
        + rule("evt.type = sendto and fd.typechar = u", "unix")          # and teaches UNIX
        + rule("evt.type = socket and evt.arg.domain = AF_INET and proc.name = dig", "ip")
        + rule("evt.type = socket and evt.arg.domain = AF_UNIX and proc.name = nc", "covered")))
    assert pf is not None
    assert dict(pf.wanted)["sendto"] == {UNIX}
    assert pf.named_of("sendto") == (((frozenset({"psql", "nc"}), None), CLASSES),)
    assert pf.classes("sendto") is None                      # every class, by some name
    assert dict(pf.wanted)["socket"] == {UNIX}
    assert pf.named_of("socket") == (((frozenset({"dig"}), None), IP_CLASSES),)
    assert pf.classes("socket") is None                      # UNIX, and IP by dig
    udp = (socket.AF_INET, socket.SOCK_DGRAM)
    assert pf.accepts("sendto", *udp, name="nc") and pf.accepts("sendto", *udp)
    assert not pf.accepts("sendto", *udp, name="nginx")
    assert pf.accepts("sendto", socket.AF_UNIX, socket.SOCK_DGRAM, name="nginx")
    assert pf.accepts("socket", *udp, name="dig")
    assert not pf.accepts("socket", *udp, name="nc")
    assert "socket: unix; ip-not-tcp, other, tcp by dig" in pf.describe()
    # a reader of the fd table on any process: its teachers are sent whatever the name
    taught = socket_prefilter(engine(tmp_path, rule(
        "evt.type = socket and proc.name = curl and evt.arg.domain = AF_INET6")
        + rule("evt.type = close and fd.l4proto = udp", "reader")))
    assert taught is not None and dict(taught.wanted)["socket"] == {NOT_TCP, OTHER}
    assert taught.named_of("socket") == (((frozenset({"curl"}), None), IP_CLASSES),)
    assert SocketPrefilter.union([pf, taught]).named_of("sendto") == pf.named_of("sendto")


def test_falcos_rules_want_ip_sockets_only(compat):
    pf = socket_prefilter(falco(compat))
    assert pf is not None
    for syscall in ("sendto", "sendmsg", "connect", "accept4", "socket"):
        assert pf.classes(syscall) <= IP_CLASSES and NOT_TCP in pf.classes(syscall), syscall
        assert not pf.accepts(syscall, socket.AF_UNIX)
        assert pf.accepts(syscall, socket.AF_INET) and pf.accepts(syscall, socket.AF_INET6)
        assert pf.accepts(syscall, None)                  # not a socket: not judged


def test_falcos_rules_want_no_tcp_sendto_for_themselves(compat, tmp_path):
    """Falco's sendto/sendmsg rules (outbound) want fd.l4proto != tcp: a database's or a web
    server's TCP messages stay in the kernel."""
    eng = falco(compat)
    for t in ("sendto", "sendmsg"):
        own = [_sf._abstract(node, t, {}) for _r, node in eng.conditions_for(t)]
        assert None not in own and frozenset().union(*own) == {NOT_TCP}, t
    pf = socket_prefilter(eng)
    assert pf is not None
    for t in ("sendto", "sendmsg", "recvfrom", "recvmsg"):
        assert TCP not in pf.classes(t), t
        assert not pf.accepts(t, socket.AF_INET, socket.SOCK_STREAM)
        assert pf.accepts(t, socket.AF_INET6, socket.SOCK_DGRAM)
        assert pf.accepts(t, socket.AF_INET)                  # type unknown: sent
    assert pf.accepts("sendto", socket.AF_INET, socket.SOCK_STREAM, addressed=True)
    # a receive that returned an address (an SCTP socket, "tcp" by its type) teaches the table
    assert pf.accepts("recvfrom", socket.AF_INET, socket.SOCK_STREAM, addressed=True)
    assert not pf.accepts("recvmsg", socket.AF_INET, socket.SOCK_STREAM, addressed=False)
    # connect's own rules want TCP; socket teaches the table nothing a rule reads of a TCP
    # socket: what connect, accept, listen and dup read, their record says
    assert TCP in pf.classes("connect") and TCP not in dict(pf.wanted)["socket"]


def test_the_default_rules_want_ip_connects_and_packet_sockets_only():
    """Their rules on connect read only what the connect itself says (fd.sip, fd.type): no
    other call needs to teach the fd table (a socket, an accept, a datagram's peer)."""
    pf = socket_prefilter(RuleEngine.load([default_rules_path()], FIELDS))
    assert pf is not None
    assert pf.classes("connect") == IP_CLASSES and pf.classes("socket") == {OTHER}
    for t in ("accept4", "bind", "sendto", "sendmsg", "recvfrom"):
        assert pf.classes(t) == {OTHER}, t
    assert not pf.accepts("sendmsg", socket.AF_UNIX) and pf.accepts("socket", socket.AF_PACKET)
    assert not pf.accepts("socket", socket.AF_INET, socket.SOCK_STREAM)
    assert not pf.accepts("connect", socket.AF_UNIX) and not pf.accepts("socket", socket.AF_UNIX)
    # a netlink socket's connect to an address not read takes its type from the table
    assert pf.accepts("socket", socket.AF_NETLINK) and pf.accepts("bind", socket.AF_NETLINK)


@pytest.mark.parametrize("cond", [
    "evt.type = connect and fd.typechar = 4 and fd.sip = 1.2.3.4 and fd.rport = 80",
    "evt.type = connect and fd.l4proto = udp and fd.cip = 1.2.3.4 and fd.sockfamily = ip",
    "evt.type = accept4 and fd.l4proto = tcp and fd.rnet = 10.0.0.0/8 and fd.sport = 80",
    "evt.type = listen and fd.l4proto = udp and fd.ip = 0.0.0.0 and fd.port = 53",
    "evt.type in (dup, dup2, dup3) and fd.type in (ipv4, ipv6) and fd.l4proto = tcp",
])
def test_a_rule_reading_what_its_own_record_says_needs_no_teacher_of_the_ip_classes(
        tmp_path, cond):
    """connect, accept, listen and dup records say their socket's family, type, protocol and
    (but dup's) ends: a rule reading only those needs the teachers of the sockets the record
    says nothing of (OTHER) alone."""
    pf = socket_prefilter(engine(tmp_path, rule(cond)))
    assert pf is not None and pf.classes("socket") == {OTHER}


@pytest.mark.parametrize("reads", [
    "evt.type = connect and fd.name contains x",           # a UNIX socket's: the table's
    "evt.type = connect and fd.connected = true",
    "evt.type = listen and fd.is_server = true",           # a UNIX socket's: its bind's
    "evt.type = dup and fd.sip = 1.2.3.4",                 # a UDP socket's: its messages'
    "evt.type = sendto and fd.l4proto = udp and fd.name_changed = true",
])
def test_a_rule_reading_what_the_table_knew_needs_the_teachers(tmp_path, reads):
    pf = socket_prefilter(engine(tmp_path, rule(reads)))
    assert pf is None or pf.classes("socket") is None or pf.classes("socket") & IP, reads


def test_with_falco_rules_tcp_socket_and_accept4_stay_in_the_kernel(compat):
    """Issue 19: with Falco's rules, no rule reads on a later event what the table learns of
    a TCP socket from its socket/accept: those are kept for the processes no rule names."""
    pf = socket_prefilter(falco(compat))
    assert pf is not None
    for syscall in ("socket", "accept4", "accept", "bind"):
        assert TCP not in dict(pf.wanted)[syscall], syscall
        assert not pf.accepts(syscall, socket.AF_INET, socket.SOCK_STREAM, name="wrk",
                              host=True), syscall


def test_the_union_of_prefilters_wants_what_any_wants():
    a = SocketPrefilter((("connect", frozenset({UNIX})), ("sendto", frozenset({UNIX}))))
    b = SocketPrefilter((("sendto", IP_CLASSES),))
    u = SocketPrefilter.union([a, b])
    assert u.classes("sendto") is None                    # every class: not filtered
    assert u.classes("connect") is None                   # b does not filter it
    assert SocketPrefilter.union([b]) == b


# -- soundness: dropping what it keeps changes no alert ----------------------------------------

NAMES = ["ssh", "nc", "java", "bash", "postgres", "login"]
V4, V6 = ipaddress.IPv4Address, ipaddress.IPv6Address
#: (domain, socket type, the peer's sockaddr as decoded, the local one)
SOCKETS = [
    (socket.AF_UNIX, socket.SOCK_STREAM, ("unix", "/run/postgresql/.s.PGSQL.5432", 0), None),
    (socket.AF_UNIX, socket.SOCK_DGRAM, ("unix", "/dev/log", 0), None),
    (socket.AF_INET, socket.SOCK_DGRAM, ("ipv4", V4("8.8.8.8"), 53), ("ipv4", V4("10.1.1.1"), 4000)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("93.184.216.34"), 443),
     ("ipv4", V4("10.1.1.1"), 4001)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("127.0.0.1"), 5432),
     ("ipv4", V4("127.0.0.1"), 4002)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("10.96.0.1"), 2222),
     ("ipv4", V4("10.1.1.1"), 4004)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("192.168.7.7"), 22),
     ("ipv4", V4("192.168.7.1"), 4005)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("0.0.0.0"), 80),
     ("ipv4", V4("127.0.0.1"), 4006)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("169.254.169.254"), 80),
     ("ipv4", V4("10.1.1.1"), 4007)),
    (socket.AF_INET, socket.SOCK_STREAM, ("ipv4", V4("203.0.113.9"), 2222),
     ("ipv4", V4("10.1.1.1"), 4008)),
    (socket.AF_INET, socket.SOCK_DGRAM, ("ipv4", V4("127.0.0.53"), 53),
     ("ipv4", V4("127.0.0.1"), 4009)),
    (socket.AF_INET6, socket.SOCK_DGRAM, ("ipv6", V6("2001:db8::1"), 123),
     ("ipv6", V6("2001:db8::2"), 4003)),
    (socket.AF_NETLINK, socket.SOCK_RAW, None, None),
    (socket.AF_PACKET, socket.SOCK_RAW, None, None),
]


def _sequence(domain: int, stype: int, peer, local) -> list[tuple[Event, int]]:
    """A socket's life as the live source decodes it, each event with its socket's family:
    what the kernel says of the socket (family, type, ends) with the calls that say it."""
    def ev(t: str, res: int, args: dict, sa=None, **facts) -> tuple[Event, int]:
        e = Event(t, ts=1, tid=1000, pid=1000, res=res, args=args)
        e.kernel = KernelFacts(77, sa, **facts)
        return e, domain
    kernel = {"sock_family": domain, "sock_type": stype, "sock_proto": 0}
    ends = {"local": local} if local is not None else {}
    return [
        ev("socket", 5, {"domain": domain, "type": stype, "proto": 0}),
        ev("bind", 0, {"fd": 5}, local, **kernel),
        ev("connect", 0, {"fd": 5}, peer, local=local, **kernel),
        ev("connect", -111, {"fd": 5}, peer, **ends, **kernel),   # refused
        # AF_UNSPEC, an address not read: an IP socket's peer as the kernel has it after,
        # a UNIX socket's family
        ev("connect", 0, {"fd": 5}, None if peer is None else ("unix", "", 0)
           if peer[0] == "unix" else
           (peer[0], ip_addresses.ANY4 if peer[0] == "ipv4" else ip_addresses.ANY6, 0),
           **ends, **kernel),
        ev("connect", 0, {"fd": 5}, peer, local=local, **kernel),
        ev("sendto", 10, {"fd": 5, "size": 10}, peer),
        ev("sendmsg", 10, {"fd": 5, "size": 10}, peer),
        ev("sendto", 10, {"fd": 5, "size": 10}),          # connected: no destination named
        ev("sendmsg", 10, {"fd": 5, "size": 10}),
        ev("recvfrom", 10, {"fd": 5, "size": 10}, peer),
        ev("recvmsg", 10, {"fd": 5, "size": 10}, None),
        ev("listen", 0, {"fd": 5, "backlog": 5}, **ends, **kernel),
        ev("accept4", 6, {"flags": 0}, peer, listen_fd=5, local=local, **kernel),
        ev("accept4", -11, {"flags": 0}, None, listen_fd=5, **ends, **kernel),   # EAGAIN
        ev("dup", 7, {"oldfd": 5}, peer=peer if local else None, **ends, **kernel),
        # a reverse shell's: the socket on its stdout
        ev("dup2", 1, {"oldfd": 5, "newfd": 1}, peer=peer if local else None, **ends,
           **kernel),
    ]


def _alerts(eng: RuleEngine, table: FdTable, e: Event, p: Process) -> set[str]:
    e.proc, e.fd, e.fd2 = p, None, None
    table.enrich(e, p)
    return {a.rule for a in eng.check(e) or ()}


NAMED = rule("evt.type in (connect, sendto, accept4) and proc.name in (nc, bash) and "
              "fd.typechar = 4", "named") + rule("evt.type = socket and proc.name = java", "j") \
    + rule("evt.type in (bind, recvfrom) and container.id != host", "c")


@pytest.mark.parametrize("rules", ["default", "falco", "named"])
def test_dropping_what_the_prefilter_keeps_changes_no_alert(compat, tmp_path, rules):
    """Over every socket's life, for processes of several names (the name the process table
    has: ``proc.name``), in a container or not."""
    eng = falco(compat) if rules == "falco" else \
        engine(tmp_path, NAMED, rule_matching="all") if rules == "named" else \
        RuleEngine.load([default_rules_path()], FIELDS, rule_matching="all")
    pf = socket_prefilter(eng)
    assert pf is not None
    kept = hits = connects_kept = 0
    for (domain, stype, peer, local), name, container in itertools.product(
            SOCKETS, NAMES, ("host", "0123456789ab")):
        procs = []
        for _ in range(2):
            p = Process(1000)
            p.comm, p.exepath, p.cwd, p.container_id = name, "/usr/bin/" + name, "/", container
            procs.append(p)
        every = FdTable(proc_root=str(tmp_path / "noproc"))
        some = FdTable(proc_root=str(tmp_path / "noproc"))
        for (e, family), (e2, _) in zip(_sequence(domain, stype, peer, local),
                                        _sequence(domain, stype, peer, local)):
            matched = _alerts(eng, every, e, procs[0])
            hits += bool(matched)
            addressed = e.kernel.sockaddr is not None
            # a connect naming an IPv4 address (not the AF_UNSPEC one: the kernel's peer)
            server = peer[1] if e.type == "connect" and peer is not None and \
                peer[0] == "ipv4" and e.kernel.sockaddr == peer else None
            if pf.accepts(e.type, family, stype, addressed, name=name,
                          host=container == "host", server=server):
                assert _alerts(eng, some, e2, procs[1]) == matched, (e.type, domain, name)
            else:
                kept += 1
                connects_kept += server is not None
                assert not matched, (e.type, domain, name, matched)
    assert kept > 50 and hits > 0                # it keeps events, and rules do match some
    # Falco's: TCP connects to loopback and 0.0.0.0 on the host, by their region
    assert connects_kept > 0 or rules != "falco"


def test_every_socket_syscall_the_source_follows_is_covered():
    from syswarden.plugins.sources.ebpf.program import BY_NAME
    from syswarden.plugins.sources.ebpf.sock_filter import CLASS_OF
    assert set(SOCKET_SYSCALLS) == set(CLASS_OF)
    assert all(s in BY_NAME for s in SOCKET_SYSCALLS)
