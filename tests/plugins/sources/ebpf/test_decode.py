"""Record decoding: records built as program.c lays them out (struct rec + strings)."""

from __future__ import annotations

import ipaddress
import socket
import struct

import pytest

from syswarden.core.event import ExitFacts, ForkFacts, KernelFacts
from syswarden.plugins.sources.ebpf import decode as D
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf import record as R


def record(kind, evt, res=0, regs=(0,) * 6, strings=(), tid=100, pid=100, extra=0,
           cpu=1, ts=5, cgroup=77, ino=0, tail=b""):
    head = R.pack(ts=ts, cgroup=cgroup, res=res, a=regs, tid=tid, pid=pid, cpu=cpu,
                  kind=kind, evt=evt, slen=[len(s) for s in strings], extra=extra, ino=ino)
    return head + tail + b"".join(strings)


def sockaddr_in(ip: str, port: int) -> bytes:
    return struct.pack("<H", socket.AF_INET) + struct.pack(">H", port) + \
        socket.inet_aton(ip) + b"\0" * 8


def test_the_inode_of_an_fd_a_call_created_or_used_is_its_stamp():
    dec = D.Decoder()
    made = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["socket"], 5, (2, 1, 0, 0, 0, 0),
                             ino=4242))
    used = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["fchmod"], 0, (5, 0o644, 0, 0, 0, 0),
                             ino=77))
    assert made.kernel == KernelFacts(ino=4242) and used.kernel == KernelFacts(ino=77)
    assert dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["fchmod"], 0, (5, 0, 0, 0, 0, 0))).kernel \
        is None


def test_openat_merges_enter_args_with_the_result():
    dec = D.Decoder()
    regs = ((-100) & 0xFFFFFFFFFFFFFFFF, 0xdead, 0o1101, 0o644, 0, 0)
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["openat"], 3, regs, [b"out.txt"]))
    assert ev.type == "openat" and ev.res == 3 and ev.tid == 100 and ev.pid == 100
    assert ev.args == {"fd": 3, "dirfd": -100, "name": "out.txt", "flags": 0o1101,
                       "mode": 0o644}
    assert ev.cgroup_id == 77
    assert ev.ts == 5 + dec.epoch_offset
    assert ev.kernel is None                 # nothing beyond Falco's arguments


def test_an_open_s_realpath_follows_its_strings_into_the_kernel_facts():
    dec = D.Decoder()
    regs = ((-100) & 0xFFFFFFFFFFFFFFFF, 0xdead, 0, 0, 0, 0)
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["openat"], 3, regs,
                           [b"x", b"/etc/shado\xffw"]))
    assert ev.args["name"] == "x" and ev.kernel.realpath == "/etc/shado\udcffw"
    how = struct.pack("<QQQ", 0, 0, 0)
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["openat2"], 3, regs,
                           [b"x", how, b".../d/deep"]))
    assert ev.kernel.realpath == ".../d/deep" and ev.args["resolve"] == 0
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["creat"], 3, (0xdead, 0o600, 0, 0, 0, 0),
                           [b"/tmp/made", b"/tmp/made"]))
    assert ev.kernel.realpath == "/tmp/made"


def test_connect_sockaddr_becomes_falco_text_and_a_parsed_tuple():
    dec = D.Decoder()
    sa = sockaddr_in("127.0.0.1", 8080)
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["connect"], 0, (5, 1, 16, 0, 0, 0), [sa]))
    assert ev.args["fd"] == 5 and ev.args["addr"] == "127.0.0.1:8080"
    assert ev.kernel.sockaddr == ("ipv4", ipaddress.IPv4Address("127.0.0.1"), 8080)


def test_accept_listen_fd_goes_to_the_kernel_facts_not_args():
    dec = D.Decoder()
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID["accept4"], 7, (4, 0, 0, 0o2000000, 0, 0),
                           [sockaddr_in("10.1.2.3", 5555)]))
    assert ev.args["fd"] == 7 and ev.args["flags"] == 0o2000000
    assert "_listen_fd" not in ev.args and ev.kernel.listen_fd == 4


def test_sockaddr_families():
    v6 = struct.pack("<H", socket.AF_INET6) + struct.pack(">H", 443) + b"\0" * 4 + \
        socket.inet_pton(socket.AF_INET6, "2001:db8::1") + b"\0" * 4
    assert D.parse_sockaddr(v6) == ("ipv6", ipaddress.IPv6Address("2001:db8::1"), 443)
    mapped = v6[:8] + socket.inet_pton(socket.AF_INET6, "::ffff:1.2.3.4") + b"\0" * 4
    assert D.parse_sockaddr(mapped) == ("ipv4", ipaddress.IPv4Address("1.2.3.4"), 443)
    unix = struct.pack("<H", socket.AF_UNIX) + b"/run/x.sock\0junk"
    assert D.parse_sockaddr(unix) == ("unix", "/run/x.sock", 0)
    abstract = struct.pack("<H", socket.AF_UNIX) + b"\0hidden\0"
    assert D.sockaddr_text(D.parse_sockaddr(abstract)) == "@hidden"
    assert D.parse_sockaddr(b"\x01") is None


def test_exec_record_carries_argv_and_the_kernel_filename():
    dec = D.Decoder()
    comm = b"mytool".ljust(16, b"\0")
    ev = dec.decode(record(D.KIND_EXEC, D._NR["execve"], 0, strings=[
        b"/usr/bin/mytool", b"./mytool", b"./mytool\0-v\0x y\0", b"A=1\0B=x y\0"],
        extra=100, tail=R.pack_tail(comm=comm, euid=1000, egid=1000), cpu=3))
    assert ev.type == "execve" and ev.res == 0
    assert ev.args["exe"] == "./mytool" and ev.args["args"] == ["-v", "x y"]
    assert ev.args["filename"] == "./mytool" and ev.args["comm"] == "mytool"
    assert ev.kernel.exepath == "/usr/bin/mytool"
    assert ev.kernel.argv == ["./mytool", "-v", "x y"]
    assert ev.kernel.env == ["A=1", "B=x y"]
    # the cred was not read (no CREDS flag): the real ids, no capabilities
    assert ev.kernel.uid == 1000 and ev.kernel.gid == 1000 and ev.cpu == 3
    assert ev.kernel.cap_effective is None and ev.kernel.exe_inode == 0


def test_exec_record_reads_its_declared_parts_by_name():
    """The tty, login uid and namespace pid an exec record carries in a[] (record.EXEC_PARTS,
    written by EXEC_PUT in C) come back by name; a failed exec's are not read."""
    regs = R.pack_parts(R.EXEC_PARTS, vpid=7, tty=34816, loginuid=1000)
    assert regs[5] == 34816 | 1000 << 32 and regs[3] == 7
    tail = R.pack_tail(comm=b"id".ljust(16, b"\0"))
    ev = D.Decoder().decode(record(D.KIND_EXEC, D._NR["execve"], 0, regs, extra=100,
                                   strings=[b"/usr/bin/id", b"id", b"id\0", b""], tail=tail))
    assert (ev.kernel.vpid, ev.kernel.tty, ev.kernel.loginuid) == (7, 34816, 1000)
    unset = R.pack_parts(R.EXEC_PARTS, loginuid=0xFFFFFFFE)        # (uid_t)-2: no login uid
    ev = D.Decoder().decode(record(D.KIND_EXEC, D._NR["execve"], 0, unset, extra=100,
                                   strings=[b"", b"id", b"id\0", b""], tail=tail))
    assert ev.kernel.loginuid is None and ev.kernel.vpid is None and ev.kernel.tty == 0
    ev = D.Decoder().decode(record(D.KIND_EXEC_FAIL, D._NR["execve"], -2, regs, extra=100,
                                   strings=[b"", b"id", b"id\0", b""], tail=tail))
    assert ev.kernel.tty is None and ev.kernel.loginuid is None and ev.kernel.vpid is None
    with pytest.raises(TypeError, match="no part nice"):
        R.pack_parts(R.EXEC_PARTS, nice=1)


def test_exec_record_carries_the_effective_ids_capabilities_and_executable():
    dec = D.Decoder()
    f = R.EXE_FLAGS
    tail = R.pack_tail(comm=b"su", euid=0, egid=0, cap_effective=0x1FF, cap_permitted=0x3FF,
                       cap_inheritable=1, exe_ino=4242, exe_ctime=7, exe_mtime=8,
                       flags=f["CREDS"] | f["FILE"] | f["UPPER_LAYER"] | f["WRITABLE"])
    ev = dec.decode(record(D.KIND_EXEC, D._NR["execve"], 0, strings=[b"/bin/su", b"su", b"su\0",
                                                                    b""], tail=tail))
    k = ev.kernel
    assert (k.uid, k.gid) == (0, 0)              # the effective ids
    assert (k.cap_effective, k.cap_permitted, k.cap_inheritable) == (0x1FF, 0x3FF, 1)
    assert (k.exe_inode, k.exe_ctime, k.exe_mtime) == (4242, 7, 8)
    assert k.exe_upper_layer and k.exe_writable and k.env == [] and k.env_read
    assert ev.args["comm"] == "su"


def test_exec_record_carries_the_resources_and_groups_when_read():
    f = R.EXE_FLAGS
    tail = R.pack_tail(comm=b"sh", vm_size=2048, vm_rss=12, vm_swap=0, pf_major=1, pf_minor=90,
                       fdlimit=(1 << 64) - 1, vpgid=7, vsid=5,
                       flags=f["RESOURCES"] | f["GROUPS"])
    k = D.Decoder().decode(record(D.KIND_EXEC, D._NR["execve"], 0,
                                  strings=[b"", b"sh", b"sh\0", b""], tail=tail)).kernel
    assert (k.vm_size, k.vm_rss, k.vm_swap, k.pf_major, k.pf_minor) == (2048, 12, 0, 1, 90)
    assert k.fdlimit == -1 and (k.vpgid, k.sid) == (7, 5)       # RLIM_INFINITY: -1
    k = D.Decoder().decode(record(D.KIND_EXEC, D._NR["execve"], 0, strings=[b"", b"sh", b"",
                                                                           b""],
                                  tail=R.pack_tail(comm=b"sh", vm_size=9))).kernel
    assert k.vm_size is None and k.vpgid is None                # not read: unknown


def test_failed_execveat():
    dec = D.Decoder()
    ev = dec.decode(record(D.KIND_EXEC_FAIL, D._NR["execveat"], -2, regs=(3, 0, 0, 0, 0x1000, 0),
                           strings=[b"", b"prog", b"prog\0", b""],
                           tail=R.pack_tail(comm=b"sh")))
    assert ev.type == "execveat" and ev.res == -2
    assert ev.args["pathname"] == "prog" and ev.args["dirfd"] == 3
    assert ev.args["flags"] == 0x1000 and ev.kernel.exepath is None


def test_fork_tells_threads_from_processes():
    """A fork record's parts (record.FORK_PARTS, written by FORK_PUT in C) come back by name:
    the clone flags tell a thread, whichever clone call made it."""
    dec = D.Decoder()
    comm = b"parent".ljust(16, b"\0")
    regs = R.pack_parts(R.FORK_PARTS, flags=0x10000 | 0x100, uid=1000, gid=1001)
    t = dec.decode(record(D.KIND_FORK, D._NR["clone"], 201, regs=regs,
                          strings=[b"", b"", b"", comm], extra=201))
    assert t.type == "clone" and t.res == 201 and t.kernel == ForkFacts(child_tid=201, is_thread=True)
    assert (t.args["uid"], t.args["gid"], t.args["flags"]) == (1000, 1001, 0x10100)
    p = dec.decode(record(D.KIND_FORK, 0xFFFF, 202, regs=R.pack_parts(R.FORK_PARTS),
                          strings=[b"", b"", b"", comm], extra=202))   # the call not known
    assert p.type == "clone" and p.kernel.is_thread is False and p.args["comm"] == "parent"
    c3 = dec.decode(record(D.KIND_FORK, D._NR["clone3"], 203,
                           regs=R.pack_parts(R.FORK_PARTS, flags=0x10000),
                           strings=[b"", b"", b"", comm], extra=203))
    assert c3.type == "clone3" and c3.kernel.is_thread is True
    with pytest.raises(TypeError, match="no part"):
        R.pack_parts(R.FORK_PARTS, tty=1)


def test_exit_and_broken_records():
    dec = D.Decoder()
    ev = dec.decode(record(D.KIND_EXIT, 0, extra=1))
    assert ev.type == "procexit" and ev.kernel == ExitFacts(group_dead=True)
    assert dec.decode(b"short") is None
    assert dec.decode(record(99, 0)) is None
    assert dec.decode(record(D.KIND_SYSCALL, 60000)) is None
    assert dec.errors == 3


@pytest.mark.parametrize("name, regs, strings", [
    ("dup2", (3, 1, 0, 0, 0, 0), [sockaddr_in("10.0.0.5", 40000), sockaddr_in("10.0.0.9", 443)]),
    ("listen", (3, 10, 0, 0, 0, 0), [sockaddr_in("10.0.0.5", 40000)]),
    ("connect", (3, 1, 16, 0, 0, 0), [sockaddr_in("10.0.0.9", 443),
                                      sockaddr_in("10.0.0.5", 40000)]),
])
def test_a_socket_call_says_its_socket_family_type_protocol_and_ends(name, regs, strings):
    dec = D.Decoder()
    info = R.pack_sock_info(socket.AF_INET, socket.SOCK_STREAM, 6)
    ev = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID[name], 1 if name == "dup2" else 0, regs,
                           strings, extra=info, ino=9))
    k = ev.kernel
    assert (k.sock_family, k.sock_type, k.sock_proto, k.ino) == (socket.AF_INET, 1, 6, 9)
    assert k.local == ("ipv4", ipaddress.ip_address("10.0.0.5"), 40000)
    if name == "dup2":
        assert k.peer == ("ipv4", ipaddress.ip_address("10.0.0.9"), 443)
    # not a socket (a dup of a file): nothing said
    plain = dec.decode(record(D.KIND_SYSCALL, P.EVT_ID[name], 0, regs, ino=9))
    assert plain.kernel.sock_family is None and plain.kernel.local is None


def test_the_record_of_a_socket_call_has_room_for_its_ends():
    for name in P.LOCAL_END | P.PEER_END | set(P.SOCK_FD):
        assert P.BY_NAME[name].slots <= R.STRING_SLOTS
    c = P.render_program(["dup2", "listen"])
    body = c.split("int do_exit_dup2(", 1)[1].split("\n}\n", 1)[0]
    assert "r->extra = sock_info(sfd);" in body and "put_sock_ends(r, pos, 0, sfd" in body


def test_a_filtered_socket_call_reads_its_socket_once():
    """The socket prefilter's class and the record's SOCK_INFO come from one sock_info()."""
    from syswarden.core.rules.sockfilter import SocketPrefilter
    from syswarden.plugins.sources.ebpf import sock_filter
    assert set(sock_filter.INFO_OF) <= set(P.SOCK_FD)
    pf = SocketPrefilter(tuple((n, frozenset({"unix"})) for n in sorted(sock_filter.CLASS_OF)))
    c = P.render_program(None, socket_prefilter=pf)
    for name in sorted(P.SOCK_FD):
        body = c.split(f"int do_exit_{name}(", 1)[1].split("\n}\n", 1)[0]
        assert body.count("sock_info(") == 1, name
