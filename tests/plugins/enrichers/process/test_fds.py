"""The fd table: path resolution, sockets, dup/close, cwd."""

from __future__ import annotations

import ipaddress
import os
import socket

import pytest

from syswarden.core.event import Event, FdInfo, KernelFacts, Process
from syswarden.plugins.enrichers.process.fds import FdTable, normalise

IP = ipaddress.ip_address


def ev(evt_type, res=0, facts=None, **args):
    e = Event(evt_type, tid=1, pid=1, res=res, args=dict(args))
    e.kernel = KernelFacts(**facts) if facts else None
    return e


def proc(cwd="/home/u"):
    return Process(999999, cwd=cwd)   # a pid with no /proc entry: nothing is read from /proc


def test_normalise():
    assert normalise("/a/./b/../c//d/") == "/a/c/d"
    assert normalise("//etc/passwd") == "/etc/passwd"


def test_open_resolves_against_cwd_and_dirfd():
    t, p = FdTable(), proc()
    e = ev("openat", res=3, dirfd=-100, name="../x/./f.txt", flags=0o101)
    t.enrich(e, p)
    assert e.fd.name == "/home/x/f.txt" and e.fd.num == 3 and e.fd.type == "file"
    assert e.args["name"] == "/home/x/f.txt" and e.kernel.nameraw == "../x/./f.txt"
    assert p.fds[3] is e.fd
    d = ev("openat", res=4, dirfd=-100, name="/etc", flags=0o200000)
    t.enrich(d, p)
    assert d.fd.type == "directory"
    r = ev("openat", res=5, dirfd=4, name="passwd", flags=0)
    t.enrich(r, p)
    assert r.fd.name == "/etc/passwd"
    failed = ev("open", res=-2, name="/nope", flags=0)
    t.enrich(failed, p)
    assert failed.fd.num == -1 and failed.fd.name == "/nope" and -2 not in p.fds


def test_path_only_syscalls_are_made_absolute():
    t, p = FdTable(), proc("/srv")
    p.fds[7] = FdInfo(7, "directory", "/data")
    e = ev("renameat2", olddirfd=-100, oldpath="a", newdirfd=7, newpath="sub/b", flags=0)
    t.enrich(e, p)
    assert (e.args["oldpath"], e.args["newpath"]) == ("/srv/a", "/data/sub/b")
    m = ev("mkdir", path="new", mode=0o755)
    t.enrich(m, p)
    assert m.args["path"] == "/srv/new"


def test_chdir_fchdir_move_the_cwd():
    t, p = FdTable(), proc("/")
    t.enrich(ev("chdir", res=0, path="tmp/../var"), p)
    assert p.cwd == "/var"
    t.enrich(ev("chdir", res=-2, path="/nope"), p)
    assert p.cwd == "/var"
    p.fds[9] = FdInfo(9, "directory", "/opt")
    t.enrich(ev("fchdir", res=0, fd=9), p)
    assert p.cwd == "/opt"


def test_socket_connect_close():
    t, p = FdTable(), proc()
    s = ev("socket", res=4, domain=socket.AF_INET, type=socket.SOCK_STREAM, proto=0)
    t.enrich(s, p)
    assert (s.fd.type, s.fd.l4proto, s.fd.sockfamily) == ("ipv4", "tcp", "ip")
    c = ev("connect", res=0, facts={"sockaddr": ("ipv4", IP("10.0.0.9"), 443)}, fd=4,
           addr="10.0.0.9:443")
    t.enrich(c, p)
    assert c.fd is p.fds[4] and c.fd.sip == IP("10.0.0.9") and c.fd.sport == 443
    assert c.fd.is_server is False and c.fd.name == "0.0.0.0:0->10.0.0.9:443"
    assert c.args["tuple"] == c.fd.name
    x = ev("close", res=0, fd=4)
    t.enrich(x, p)
    assert x.fd.sport == 443 and 4 not in p.fds


def test_bind_then_accept_gives_the_server_tuple():
    t, p = FdTable(), proc()
    t.enrich(ev("socket", res=3, domain=socket.AF_INET, type=socket.SOCK_STREAM, proto=0), p)
    t.enrich(ev("bind", res=0, facts={"sockaddr": ("ipv4", IP("0.0.0.0"), 8080)}, fd=3), p)
    a = ev("accept4", res=5, facts={"sockaddr": ("ipv4", IP("192.168.1.7"), 51000),
                                    "listen_fd": 3}, flags=0)
    t.enrich(a, p)
    f = a.fd
    assert f.is_server is True and f.cip == IP("192.168.1.7") and f.cport == 51000
    assert f.sport == 8080 and f.name == "192.168.1.7:51000->0.0.0.0:8080"
    assert p.fds[5] is f


def test_udp_sendto_updates_the_tuple():
    t, p = FdTable(), proc()
    t.enrich(ev("socket", res=6, domain=socket.AF_INET, type=socket.SOCK_DGRAM, proto=0), p)
    s = ev("sendto", res=10, facts={"sockaddr": ("ipv4", IP("8.8.8.8"), 53)}, fd=6, size=10)
    t.enrich(s, p)
    assert s.fd.l4proto == "udp" and s.fd.name == "0.0.0.0:0->8.8.8.8:53"
    assert s.kernel.fd_name_changed is True


def test_dup_copies_and_the_old_fd_is_fd2():
    t, p = FdTable(), proc()
    p.fds[3] = FdInfo(3, "file", "/etc/hosts")
    d = ev("dup2", res=1, oldfd=3, newfd=1)
    t.enrich(d, p)
    assert d.fd.num == 1 and d.fd.name == "/etc/hosts" and d.fd2 is p.fds[3]


def test_a_reused_file_number_is_checked_against_proc(tmp_path):
    """A file's close never leaves the kernel: a later use of its number reads /proc."""
    t = FdTable()
    me = Process(os.getpid(), live=True)       # this machine's: its /proc may be read
    path = tmp_path / "real"
    path.write_text("x")
    with open(path) as f:
        me.fds[f.fileno()] = FdInfo(f.fileno(), "file", "/stale/name")
        e = ev("fchmod", res=0, fd=f.fileno(), mode=0o600)
        t.enrich(e, me)
        assert e.fd.name == str(path)


def test_local_end_of_a_real_connection(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname())
    try:
        t = FdTable()
        f = FdInfo(client.fileno(), "ipv4", l4proto="tcp")
        assert t.local_address(Process(os.getpid(), live=True), f, client.fileno()) == \
            (IP("127.0.0.1"), client.getsockname()[1])
    finally:
        client.close()
        server.close()


@pytest.mark.parametrize("family, host, local, fd_type", [
    (socket.AF_INET6, "::1", "::1", "ipv6"),
    (socket.AF_INET6, "::ffff:127.0.0.1", "127.0.0.1", "ipv6"),   # an IPv4-mapped address
])
def test_local_end_of_a_real_ipv6_connection(family, host, local, fd_type):
    server = socket.socket(family)
    server.bind((host, 0))
    server.listen(1)
    client = socket.create_connection(server.getsockname()[:2])
    try:
        f = FdInfo(client.fileno(), fd_type, l4proto="tcp")
        got = FdTable().local_address(Process(os.getpid(), live=True), f, client.fileno())
        assert got == (IP(local), client.getsockname()[1]) and str(got[0]) == local
    finally:
        client.close()
        server.close()


def test_an_entry_stamped_with_another_inode_is_stale():
    counted: list = []
    t, p = FdTable(count=lambda name, n=1: counted.append(name)), proc()
    t.enrich(ev("socket", res=3, facts={"ino": 11}, domain=socket.AF_INET,
                type=socket.SOCK_STREAM, proto=0), p)
    assert p.fds[3].ino == 11
    same = ev("dup2", res=7, facts={"ino": 11}, oldfd=3, newfd=7)
    t.enrich(same, p)
    assert same.fd2 is p.fds[3] and p.fds[7].type == "ipv4" and not counted
    other = ev("fchmod", facts={"ino": 12}, fd=3, mode=0o600)    # 3 closed, taken by a file
    t.enrich(other, p)
    assert other.fd is None and 3 not in p.fds and counted == ["fds.stale"]
    c = ev("connect", res=0, facts={"ino": 13, "sockaddr": ("ipv4", IP("10.0.0.9"), 443)},
           fd=7, addr="10.0.0.9:443")
    t.enrich(c, p)                 # 7 is another socket now: a new entry, stamped
    assert c.fd is p.fds[7] and c.fd.ino == 13 and counted == ["fds.stale", "fds.stale"]
    unstamped = ev("fchmod", fd=7, mode=0o600)                   # a replay without stamps
    t.enrich(unstamped, p)
    assert unstamped.fd is p.fds[7]


def test_a_file_learned_from_proc_has_its_realpath(tmp_path):
    """A file opened before the agent knew (through a symbolic link): /proc/PID/fd's link is
    the file the kernel holds, so fd.realpath is known as an open's walk would give it; an
    unlinked file's is not (its link is marked deleted)."""
    t = FdTable()
    me = Process(os.getpid(), live=True)
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "gone").write_text("y")
    with open(tmp_path / "link") as f, open(tmp_path / "gone") as g:
        os.unlink(tmp_path / "gone")
        e = ev("fchmod", res=0, fd=f.fileno(), mode=0o600)
        t.enrich(e, me)
        assert e.fd.realpath == str(tmp_path / "real")
        e = ev("fchmod", res=0, fd=g.fileno(), mode=0o600)
        t.enrich(e, me)
        assert e.fd.name.endswith("gone (deleted)") and e.fd.realpath is None


# -- what the kernel says of a socket the table did not see made ------------------------------

V4 = ("ipv4", IP("10.0.0.5"), 40000)
SERVER = ("ipv4", IP("10.0.0.9"), 53)
TCP4 = {"sock_family": socket.AF_INET, "sock_type": socket.SOCK_STREAM, "sock_proto": 6}
UDP4 = {"sock_family": socket.AF_INET, "sock_type": socket.SOCK_DGRAM, "sock_proto": 17}
ICMP6 = {"sock_family": socket.AF_INET6, "sock_type": socket.SOCK_RAW, "sock_proto": 58}
UNIX = {"sock_family": socket.AF_UNIX, "sock_type": socket.SOCK_STREAM, "sock_proto": 0}


@pytest.mark.parametrize("known, kernel, want", [
    (None, UDP4, ("ipv4", "ip", "udp")),               # not guessed tcp any more
    (None, TCP4, ("ipv4", "ip", "tcp")),
    # /proc's socket:[ino] is taken for a unix socket: the kernel says it is not
    (FdInfo(3, "unix", "socket:[123]"), UDP4, ("ipv4", "ip", "udp")),
    (None, None, ("ipv4", "ip", "tcp")),                # no kernel facts: the old guess
])
def test_connect_takes_the_socket_the_kernel_describes(known, kernel, want):
    t, p = FdTable(), proc()
    if known is not None:
        p.fds[3] = known
    e = ev("connect", res=0, fd=3, facts={"sockaddr": SERVER, "local": V4, **(kernel or {})})
    t.enrich(e, p)
    assert (e.fd.type, e.fd.sockfamily, e.fd.l4proto) == want
    assert e.fd.name == "10.0.0.5:40000->10.0.0.9:53" and p.fds[3] is e.fd


def test_a_failed_connect_has_the_client_end_the_kernel_has():
    t, p = FdTable(), proc()
    p.fds[3] = f = FdInfo(3, "ipv4", "")
    f.cip, f.cport = IP("192.168.1.1"), 1234                    # an earlier call's
    e = ev("connect", res=-111, fd=3, facts={"sockaddr": SERVER, **UDP4,
                                              "local": ("ipv4", IP("0.0.0.0"), 0)})
    t.enrich(e, p)
    assert e.fd.name == "0.0.0.0:0->10.0.0.9:53"


def test_the_kernel_says_what_socket_would_have_said():
    """socket()'s derivation and the kernel's agree (an ICMPv6 raw socket)."""
    t, p = FdTable(), proc()
    s = ev("socket", res=4, domain=socket.AF_INET6, type=socket.SOCK_RAW, proto=58)
    t.enrich(s, p)
    mine = FdTable(), proc()
    c = ev("connect", res=0, fd=4, facts={"sockaddr": ("ipv6", IP("::1"), 0),
                                          "local": ("ipv6", IP("::1"), 0), **ICMP6})
    mine[0].enrich(c, mine[1])
    assert (s.fd.type, s.fd.sockfamily, s.fd.l4proto) == \
        (c.fd.type, c.fd.sockfamily, c.fd.l4proto) == ("ipv6", "ip", "icmp")


def test_listen_on_a_socket_not_seen_bound_has_the_kernels_local_end():
    t, p = FdTable(), proc()
    e = ev("listen", fd=5, backlog=10, facts={"local": ("ipv4", IP("0.0.0.0"), 8080), **TCP4})
    t.enrich(e, p)
    f = e.fd
    assert (f.type, f.l4proto, str(f.sip), f.sport, f.is_server, f.cip) == \
        ("ipv4", "tcp", "0.0.0.0", 8080, True, None)
    assert 5 not in p.fds                        # listen teaches the table nothing
    u = ev("listen", fd=6, backlog=10, facts=UNIX)
    p.fds[6] = FdInfo(6, "unix", "/run/x.sock")
    t.enrich(u, p)
    assert (u.fd.type, u.fd.name, u.fd.sockfamily, u.fd.l4proto) == \
        ("unix", "/run/x.sock", "unix", None)                   # the table's name stays
    assert p.fds[6].sockfamily is None and u.fd is not p.fds[6]


def test_an_accept_takes_its_protocol_and_family_from_the_kernel():
    t, p = FdTable(), proc()
    e = ev("accept4", res=7, flags=0, facts={"sockaddr": V4, "listen_fd": 5,
                                              "local": SERVER, **UDP4})
    t.enrich(e, p)
    assert (e.fd.type, e.fd.l4proto, e.fd.name) == ("ipv4", "udp", "10.0.0.5:40000->10.0.0.9:53")
    failed = ev("accept4", res=-11, flags=0, facts={"listen_fd": 5, "local": SERVER, **TCP4})
    t.enrich(failed, p)
    assert (failed.fd.l4proto, str(failed.fd.sip), failed.fd.sport) == ("tcp", "10.0.0.9", 53)


def test_dup_of_a_socket_the_table_did_not_know():
    t, p = FdTable(), proc()
    e = ev("dup2", res=1, oldfd=3, newfd=1, facts={"local": V4, "peer": SERVER, **TCP4})
    t.enrich(e, p)
    assert (e.fd.num, e.fd.type, e.fd.l4proto, e.fd.name) == \
        (1, "ipv4", "tcp", "10.0.0.5:40000->10.0.0.9:53")
    assert e.fd2.num == 3 and p.fds[3] is e.fd2 and p.fds[1] is e.fd


def test_dup_of_a_udp_socket_keeps_the_peer_the_table_learned_from_its_messages():
    t, p = FdTable(), proc()
    t.enrich(ev("socket", res=3, domain=socket.AF_INET, type=socket.SOCK_DGRAM, proto=0), p)
    t.enrich(ev("sendto", res=5, fd=3, size=5, facts={"sockaddr": SERVER}), p)
    e = ev("dup", res=4, oldfd=3, facts={"local": V4, "peer": ("ipv4", IP("0.0.0.0"), 0),
                                         **UDP4})
    t.enrich(e, p)
    assert (e.fd.type, e.fd.l4proto, str(e.fd.sip), e.fd.sport) == ("ipv4", "udp", "10.0.0.9", 53)
