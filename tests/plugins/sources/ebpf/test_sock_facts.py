"""Socket calls say their socket: connect, accept, listen and dup records carry the socket's
family, type, protocol and ends as the kernel has them, so the fd table need not have seen the
calls that made it (real kernel, real sockets)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.sockfilter import SOCKET_SYSCALLS, socket_prefilter
from syswarden.plugins.sources.ebpf.source import EbpfSource
from tests.helpers.ebpf import AsDecoded, events_of, needs_root
from tests.helpers.paths import COMPAT

pytestmark = [needs_root, pytest.mark.root]

#: A TCP server on loopback and its client ``t``, connected.
CONNECTED = """
import os, socket, sys
srv = socket.socket()
srv.bind(("127.0.0.1", 0))
srv.listen()
t = socket.socket()
t.connect(srv.getsockname())
"""
#: Those, the server's accept, a connected UDP socket, each dup'd; what they are on stdout.
CHILD = CONNECTED + """
c, _ = srv.accept()
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.connect(("127.0.0.1", 9))
os.dup2(t.fileno(), 60)
os.dup2(u.fileno(), 61)
print(srv.getsockname()[1], t.getsockname()[1], u.getsockname()[1], srv.fileno(), t.fileno(),
      u.fileno(), c.fileno())
"""


def _run(src: EbpfSource, child: str) -> tuple[list, list[int]]:
    out: list[str] = []

    def action() -> None:
        out.append(subprocess.run([sys.executable, "-c", child], capture_output=True,
                                  text=True, check=True).stdout)

    events = events_of(src, action)
    return events, [int(x) for x in out[0].split()]


#: The calls that tell the fd table of a socket.
SOCKET_CALLS = frozenset(SOCKET_SYSCALLS) | {"dup", "dup2", "dup3", "close"}


def _alone(events: list, pick) -> list:
    """The events ``pick`` keeps, enriched by a fresh table that sees no other socket call
    (their process gone): what they say themselves."""
    seen = [e for e in events if pick(e) or e.type not in SOCKET_CALLS]
    AsDecoded(seen).enrich(seen)
    return [e for e in seen if pick(e)]


def test_connect_listen_accept_and_dup_say_the_socket_the_table_did_not_see_made():
    src = EbpfSource({}, {"connect", "listen", "accept4", "accept", "dup2"}, os.getpid())
    events, (port, tport, uport, srv, t, u, c) = _run(src, CHILD)
    pids = {e.pid for e in events if e.type == "listen" and e.args.get("fd") == srv
            and e.kernel and e.kernel.local and e.kernel.local[2] == port}
    assert len(pids) == 1
    pid = pids.pop()
    assert not [e for e in events if e.pid == pid and e.type == "socket"]     # not followed
    mine = [e for e in events if e.pid == pid or e.type not in SOCKET_CALLS]

    (listen,) = _alone(mine, lambda e: e.type == "listen")
    assert (listen.fd.type, listen.fd.l4proto, listen.fd.sockfamily) == ("ipv4", "tcp", "ip")
    assert (str(listen.fd.sip), listen.fd.sport, listen.fd.is_server) == ("127.0.0.1", port, True)

    tcp, udp = _alone(mine, lambda e: e.type == "connect")
    assert (tcp.fd.num, tcp.fd.type, tcp.fd.l4proto) == (t, "ipv4", "tcp")
    assert tcp.fd.name == f"127.0.0.1:{tport}->127.0.0.1:{port}"
    # the table used to guess tcp for a socket whose socket() it did not see
    assert (udp.fd.num, udp.fd.type, udp.fd.l4proto) == (u, "ipv4", "udp")
    assert udp.fd.name == f"127.0.0.1:{uport}->127.0.0.1:9"

    (acc,) = _alone(mine, lambda e: e.type in ("accept", "accept4"))
    assert (acc.res, acc.fd.type, acc.fd.l4proto, acc.fd.is_server) == (c, "ipv4", "tcp", True)
    assert acc.fd.name == f"127.0.0.1:{tport}->127.0.0.1:{port}"

    dups = _alone(mine, lambda e: e.type == "dup2" and e.res in (60, 61))
    by = {e.res: e.fd for e in dups}
    assert (by[60].type, by[60].l4proto, by[60].sockfamily) == ("ipv4", "tcp", "ip")
    assert by[60].name == f"127.0.0.1:{tport}->127.0.0.1:{port}"
    assert (by[61].type, by[61].l4proto) == ("ipv4", "udp")
    assert by[61].name == f"127.0.0.1:{uport}->127.0.0.1:9"
    assert {e.kernel.sock_type for e in dups} == {1, 2}          # SOCK_STREAM, SOCK_DGRAM


#: A reverse shell's shape: a connected TCP socket on stdout.
REVERSE = CONNECTED + """
sys.stdout.write(f"{t.fileno()} {srv.getsockname()[1]}")
sys.stdout.flush()
os.dup2(t.fileno(), 1)
"""


@pytest.mark.skipif(not COMPAT.is_dir(), reason="no compat rule files (SYSWARDEN_SHARED)")
def test_a_reverse_shell_is_seen_by_falcos_rule_with_its_socket_kept_in_the_kernel():
    eng = RuleEngine.load(sorted(str(f) for f in (COMPAT / "falco-rules").glob("*.yaml")),
                          collect_fields(), rule_matching="all")
    pf = socket_prefilter(eng)
    src = EbpfSource({}, {"socket", "dup2"}, os.getpid(), socket_prefilter=pf)
    events, (fd, port) = _run(src, REVERSE)
    dups = [e for e in events if e.type == "dup2" and e.args.get("oldfd") == fd and e.res == 1
            and e.kernel and e.kernel.peer and e.kernel.peer[2] == port]
    assert len(dups) == 1
    pid = dups[0].pid
    # its TCP socket() was kept in the kernel (the UDP one of an interpreter's start may not)
    assert not [e for e in events if e.pid == pid and e.type == "socket" and e.res == fd]
    (dup,) = _alone(events, lambda e: e is dups[0])
    assert dup.proc is not None and dup.proc.pid == pid
    dup.proc.container_id = "0123456789ab"          # the rule is for containers
    assert dup.fd.type == "ipv4" and dup.fd.l4proto == "tcp"
    fired = {a.rule for a in eng.check(dup) or ()}
    assert "Redirect STDOUT/STDIN to Network Connection in Container" in fired
