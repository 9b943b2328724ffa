"""The rules' socket prefilter in the real kernel: over real socket calls on UNIX, UDP, TCP and
netlink sockets (loopback), it keeps exactly the events its Python reference
(:meth:`SocketPrefilter.accepts`) keeps (by family, type and whether a sendto names a
destination), counts them, and follows a rule reload."""

from __future__ import annotations

import ipaddress
import os
import socket
from collections import Counter
import subprocess
import sys

import pytest
import trio

from syswarden.core.cgroups import HOST, HOST_REF, read_proc_cgroup
from syswarden.core.config import default_rules_path
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.regions import PRIVATE, PUBLIC
from syswarden.core.rules.sockfilter import (IP, NOT_TCP, OTHER, SOCKET_SYSCALLS, TCP, UNIX,
                                             SocketPrefilter, socket_prefilter)
from syswarden.plugins.sources.ebpf.program import render_program
from syswarden.plugins.sources.ebpf.source import SOCKS_FILTERED, EbpfSource
from tests.helpers.ebpf import ARGS_FROM, events_of, needs_root, run_live, switched

FALCO_FILES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")
LOOPBACK = ipaddress.IPv4Address("127.0.0.1")

#: Sends a family no Falco rule wants (UNIX) on some syscalls and keeps IP on others.
MIXED = SocketPrefilter((
    ("accept4", frozenset()),
    ("bind", frozenset({OTHER})),
    ("connect", frozenset({UNIX})),
    ("recvfrom", IP),
    ("recvmsg", frozenset({TCP})),
    ("sendmsg", IP | {OTHER}),
    ("sendto", frozenset({UNIX, NOT_TCP})),
    ("socket", frozenset({UNIX, TCP})),
))

#: The child makes socket calls and prints each as "syscall fd family type addressed" (family:
#: the socket's AF_* number, or - when the fd is not a socket; addressed: 1 when a sendto or
#: sendmsg names a destination; for a connect, 1 when its address is none the decoder reads).
CHILD = """
import ctypes, os, socket
calls = []
def log(name, s, fam=None, addressed=0):
    fd = s if isinstance(s, int) else s.fileno()
    kind = s.type.value if fam is None else 0
    calls.append(f"{name} {fd} {fam if fam is not None else s.family.value} {kind} {addressed}")

a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
a.send(b"x"); log("sendto", a)
a.sendmsg([b"y"]); log("sendmsg", a)
b.recv(10); log("recvfrom", b)
b.recvmsg(10); log("recvmsg", b)

u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); log("socket", u)
u.bind(("127.0.0.1", 0)); log("bind", u)
u.sendto(b"x", u.getsockname()); log("sendto", u, addressed=1)
u.sendmsg([b"y"], [], 0, u.getsockname()); log("sendmsg", u, addressed=1)
u.recvfrom(10); log("recvfrom", u, addressed=1)
u.recvmsg(10); log("recvmsg", u, addressed=1)

l = socket.socket(socket.AF_INET, socket.SOCK_STREAM); log("socket", l)
l.bind(("127.0.0.1", 0)); log("bind", l)
l.listen(); log("listen", l)
c = socket.socket(socket.AF_INET, socket.SOCK_STREAM); log("socket", c)
c.connect(l.getsockname()); log("connect", c)
s, _ = l.accept(); log("accept4", s)
c.send(b"x"); log("sendto", c)
c.sendmsg([b"y"]); log("sendmsg", c)
c.sendto(b"z", l.getsockname()); log("sendto", c, addressed=1)    # ignored by TCP, but named
c.sendmsg([b"w"], [], 0, l.getsockname()); log("sendmsg", c, addressed=1)
s.recv(1); log("recvfrom", s)
s.recvmsg(1); log("recvmsg", s)

x = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); log("socket", x)
path = os.path.join(os.getcwd(), "srv.sock")
x.bind(path); log("bind", x)
x.listen(); log("listen", x)
y = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM); log("socket", y)
y.connect(path); log("connect", y)
z, _ = x.accept(); log("accept4", z)
y.sendmsg([b"q"]); log("sendmsg", y)

n = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 0); log("socket", n)
n.bind((0, 0)); log("bind", n)

v = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); log("socket", v)
v.connect(("127.0.0.1", 9)); log("connect", v)
unspec = ctypes.create_string_buffer(16)              # AF_UNSPEC: dissolves the association
ctypes.CDLL(None, use_errno=True).connect(v.fileno(), unspec, 16); log("connect", v, addressed=1)

r, w = os.pipe()
ctypes.CDLL(None, use_errno=True).sendto(w, b"x", 1, 0, None, 0); log("sendto", w, "-")
print("\\n".join(calls))
"""


def _falco(compat) -> SocketPrefilter:
    eng = RuleEngine.load([str(compat / "falco-rules" / f) for f in FALCO_FILES],
                          collect_fields())
    pf = socket_prefilter(eng)
    assert pf is not None
    return pf


def _default() -> SocketPrefilter:
    pf = socket_prefilter(RuleEngine.load([default_rules_path()], collect_fields()))
    assert pf is not None
    return pf


def _run_child(src: EbpfSource, script: str, cwd) -> tuple[int, str, list, list[int]]:
    """Load ``src`` and run ``script`` in a child python: its pid, its output, the events the
    kernel sent meanwhile, and the socket calls kept as counted before and after."""
    out: list = []
    counted: list[int] = []

    def action() -> None:
        counted.append(src.kernel_counters()[SOCKS_FILTERED])
        proc = subprocess.Popen([sys.executable, "-c", script], cwd=cwd,
                                stdout=subprocess.PIPE, text=True)
        stdout, _ = proc.communicate()
        assert proc.returncode == 0
        out.append((proc.pid, stdout))
        counted.append(src.kernel_counters()[SOCKS_FILTERED])

    events = events_of(src, action)
    return out[0][0], out[0][1], events, counted


def _fd_of(e) -> int | None:
    return e.res if e.type in ("socket", "accept", "accept4") else e.args.get("fd")


@needs_root
@pytest.mark.root
@ARGS_FROM
@pytest.mark.parametrize("which", ["falco", "mixed", "default"])
def test_the_kernel_keeps_exactly_the_socket_events_the_reference_keeps(request, tmp_path,
                                                                        args_from, which):
    # Falco's files only for "falco": the test guest has no ../shared
    pf = _falco(request.getfixturevalue("compat")) if which == "falco" else \
        _default() if which == "default" else MIXED
    src = EbpfSource({"args_from": args_from}, set(SOCKET_SYSCALLS), os.getpid(),
                     socket_prefilter=pf)
    pid, stdout, events, counted = _run_child(src, CHILD, tmp_path)
    calls = [(n, int(fd), None if fam == "-" else int(fam), int(kind), addressed == "1")
             for n, fd, fam, kind, addressed in (line.split() for line in stdout.split("\n")
                                                 if line)]
    seen = Counter((e.type, _fd_of(e)) for e in events
                   if e.pid == pid and e.type in SOCKET_SYSCALLS)
    expected: Counter = Counter()
    kept = 0
    # the child's name as the process table has it (its comm after the exec), where it runs
    comm = os.path.basename(sys.executable)[:15]
    host = (read_proc_cgroup(os.getpid()) or HOST_REF).id == HOST
    for name, fd, family, kind, addressed in calls:
        # every IPv4 connect of the child names 127.0.0.1, but the one to AF_UNSPEC
        server = LOOPBACK if name == "connect" and family == socket.AF_INET and \
            not addressed else None
        wanted = pf.accepts(name, family, kind, addressed and name != "connect", name=comm,
                            host=host, server=server)
        expected[(name, fd)] += wanted
        kept += not wanted
    keys = {k for k, n in expected.items() if n} | set(seen)
    assert {k: seen[k] for k in keys} == {k: expected[k] for k in keys}, calls
    # the default rules: a python on the host sends only its netlink socket's calls (their
    # rules on connect are for shells and containers, and read the connect's own fields: no
    # teacher of the IP classes is needed)
    assert kept >= {"falco": 8, "mixed": 10, "default": 30}[which]
    assert counted[1] - counted[0] >= kept                    # counted
    # a connect to an address the decoder does not read (AF_UNSPEC) comes with the socket's
    # peer as the kernel has it after (none: dissolved)
    v = next(fd for n, fd, _f, _k, addressed in calls if n == "connect" and addressed)
    unspec = [e for e in events if e.pid == pid and e.type == "connect"
              and e.args.get("fd") == v][-1:]
    assert pf.accepts("connect", socket.AF_INET, socket.SOCK_DGRAM, name=comm,
                      host=host) == bool(unspec)
    for e in unspec:
        assert e.kernel.sockaddr is not None and e.kernel.sockaddr[2] == 0, e.kernel


#: Connects of every region (non-blocking: sent whether they fail, wait or connect), each
#: printed as "fd type address".
CONNECTS = """
import socket
for kind, addr in [(socket.SOCK_STREAM, "127.0.0.1"), (socket.SOCK_STREAM, "127.3.2.1"),
                   (socket.SOCK_STREAM, "10.255.255.1"), (socket.SOCK_STREAM, "172.20.0.1"),
                   (socket.SOCK_STREAM, "192.168.255.1"), (socket.SOCK_STREAM, "0.0.0.0"),
                   (socket.SOCK_STREAM, "192.0.2.1"), (socket.SOCK_STREAM, "172.32.0.1"),
                   (socket.SOCK_DGRAM, "127.0.0.1"), (socket.SOCK_DGRAM, "198.51.100.1")]:
    s = socket.socket(socket.AF_INET, kind)
    s.setblocking(False)
    s.connect_ex((addr, 9))
    print(s.fileno(), kind.value, addr)
    s.close()
"""


@needs_root
@pytest.mark.root
@pytest.mark.parametrize("taught", [frozenset(), frozenset({NOT_TCP})])
def test_the_kernel_keeps_the_connects_to_regions_no_rule_wants(tmp_path, taught):
    """TCP and UDP connects to addresses of each region, with the regions public and private
    wanted on the host and public only in a container: the kernel sends exactly those the
    reference sends, by the region of the destination and where the process runs (and UDP's
    whatever the region when its class teaches the fd table)."""
    pf = SocketPrefilter((("connect", IP | {OTHER}),),
                         connect_regions=(("container", frozenset({PUBLIC})),
                                          ("host", frozenset({PUBLIC, PRIVATE}))),
                         connect_taught=taught)
    src = EbpfSource({}, {"connect"}, os.getpid(), socket_prefilter=pf)
    assert "dest_region(p.a[1], (u32)p.a[2])" in src.program_text()
    pid, stdout, events, counted = _run_child(src, CONNECTS, tmp_path)
    host = (read_proc_cgroup(os.getpid()) or HOST_REF).id == HOST
    comm = os.path.basename(sys.executable)[:15]
    calls = [(int(kind), addr) for _fd, kind, addr in
             (line.split() for line in stdout.split("\n") if line)]
    expected = {(kind, addr): pf.accepts("connect", socket.AF_INET, kind, name=comm,
                                         host=host, server=ipaddress.IPv4Address(addr))
                for kind, addr in calls}
    # the fd numbers repeat (each socket is closed before the next): by the socket's type as
    # the kernel said it and the address named
    sent = {(e.kernel.sock_type, str(e.kernel.sockaddr[1])) for e in events
            if e.pid == pid and e.type == "connect"}
    assert sent == {k for k, wanted in expected.items() if wanted}
    tcp, udp = socket.SOCK_STREAM.value, socket.SOCK_DGRAM.value
    assert {(tcp, "192.0.2.1"), (tcp, "172.32.0.1")} <= sent            # public
    assert not {(tcp, "127.0.0.1"), (tcp, "127.3.2.1"), (tcp, "0.0.0.0")} & sent
    assert ((tcp, "10.255.255.1") in sent) == host                      # private: on the host
    assert (udp, "198.51.100.1") in sent
    assert ((udp, "127.0.0.1") in sent) == bool(taught)                 # UDP teaches the table
    assert counted[1] - counted[0] >= sum(not w for w in expected.values())


def test_the_handlers_test_the_family_where_the_prefilter_says():
    text = render_program(set(SOCKET_SYSCALLS), {}, socket_prefilter=MIXED)
    assert "#define SOCK_FILTER 1" in text
    handler = text[text.index("do_exit_sendto("):text.index("do_exit_recvfrom(")]
    assert "sock_bits = sock_class((s64)(int)p.a[0]);" in handler
    assert "sock_bits & 9)" in handler                       # UNIX, NOT_TCP
    assert "(sock_bits & 2) && p.a[4] != 0" in handler       # TCP naming a destination
    socket_ = text[text.index("do_exit_socket("):]
    socket_ = socket_[:socket_.index("\n}\n")]                  # that handler only
    assert "sock_bits = socket_class((u32)p.a[0], (u32)p.a[1] & 0xf);" in socket_  # its arguments
    assert "sock_bits & 3)" in socket_                       # UNIX, TCP
    connect = text[text.index("do_exit_connect("):]
    assert "sock_bits == 2" not in connect.split("}\n", 1)[0]      # names its peer anyway
    assert "#define SOCK_FILTER 0" in render_program(set(SOCKET_SYSCALLS), {})
    assert "#define SOCK_FILTER 0" in render_program(set(SOCKET_SYSCALLS), {})


@needs_root
def test_without_the_switch_every_family_is_sent():
    src = EbpfSource({"socket_prefilter": False}, {"sendto"}, os.getpid(),
                     socket_prefilter=MIXED)
    assert src.socket_prefilter is None and "SOCK_FILTER 0" in src.program_text()
    src.set_socket_prefilter(MIXED)                           # a reload: still off
    assert src.socket_prefilter is None


@needs_root
@pytest.mark.root
async def test_a_rule_reload_that_changes_the_socket_prefilter_loads_a_new_program(compat):
    child = [sys.executable, "-c", "import os, socket\na, b = socket.socketpair("
             "socket.AF_UNIX, socket.SOCK_DGRAM)\na.sendmsg([b'x'])\nprint(os.getpid())"]
    pids: list[int] = []

    async def run_child() -> None:
        pids.append(int((await trio.run_process(child, capture_stdout=True)).stdout))

    async def action(live) -> None:
        src, first = live.source, live.source.prog
        await run_child()
        src.set_socket_prefilter(src.socket_prefilter)          # unchanged: nothing to do
        assert not src._needs_reload
        src.set_socket_prefilter(None)                          # every family now
        await switched(src, first)
        assert "SOCK_FILTER 0" in src.program_text()
        await run_child()

    live = await run_live({"sendmsg"}, action, {}, socket_prefilter=_falco(compat))
    sent = {e.pid for e in live.events if e.type == "sendmsg"}
    assert pids[0] not in sent and pids[1] in sent            # kept before, sent after


def test_the_child_reports_what_it_did(tmp_path):
    """The child script itself, without the kernel: every call it logs is one it made."""
    proc = subprocess.run([sys.executable, "-c", CHILD], cwd=tmp_path, capture_output=True,
                          text=True, check=True)
    names = {line.split()[0] for line in proc.stdout.split("\n") if line}
    assert names <= set(SOCKET_SYSCALLS) and {"sendto", "sendmsg", "socket"} <= names
    assert f" {socket.AF_NETLINK}" in proc.stdout
