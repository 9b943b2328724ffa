"""The data a receive filled, in the real kernel: ``recvfrom`` and ``recvmsg`` on UDP and TCP
sockets (loopback) carry their first bytes as Falco's ``data`` argument (``evt.buffer``), at
most ``snaplen`` of them, and nothing when the call received nothing."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syswarden.plugins.sources.ebpf.record import SNAPLEN
from syswarden.plugins.sources.ebpf.source import EbpfSource
from tests.helpers.ebpf import ARGS_FROM, events_of, needs_root

#: 200 bytes, each position's own: a cut at the wrong place or an offset shows
PAYLOAD = bytes(range(200))

#: The child receives PAYLOAD on each socket kind and call, then a call that receives nothing
#: (a non-blocking one on an empty socket, EAGAIN); it prints "syscall fd" for each.
CHILD = f"""
import socket
payload = bytes(range(200))
calls = []
u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
u.bind(("127.0.0.1", 0))
u.sendto(payload, u.getsockname()); u.recvfrom(4096); calls.append(f"recvfrom {{u.fileno()}}")
u.sendto(payload, u.getsockname()); u.recvmsg(4096); calls.append(f"recvmsg {{u.fileno()}}")
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen()
c = socket.create_connection(l.getsockname()); s, _ = l.accept()
c.sendall(payload); got = b""
while len(got) < 200:
    got += s.recv(4096)
calls.append(f"recvfrom {{s.fileno()}}")
s.setblocking(False)
try:
    s.recv(10)
except BlockingIOError:
    calls.append(f"empty {{s.fileno()}}")
print("\\n".join(calls))
"""


def _received(src: EbpfSource) -> tuple[list, list[tuple[str, int]]]:
    """The child's receives the kernel sent, and its calls ("recvfrom", fd)."""
    out: list = []

    def action() -> None:
        proc = subprocess.Popen([sys.executable, "-c", CHILD], stdout=subprocess.PIPE, text=True)
        stdout, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0
        out.append((proc.pid, stdout))

    events = events_of(src, action)
    pid, stdout = out[0]
    calls = [(name, int(fd)) for name, fd in (line.split() for line in stdout.splitlines())]
    return [e for e in events if e.pid == pid and e.type in ("recvfrom", "recvmsg")], calls


@needs_root
@pytest.mark.root
@ARGS_FROM
@pytest.mark.parametrize("snaplen", [SNAPLEN, 16])
def test_a_receive_carries_its_first_bytes_up_to_the_snaplen(args_from, snaplen):
    src = EbpfSource({"args_from": args_from, "snaplen": snaplen}, {"recvfrom", "recvmsg"},
                     os.getpid())
    events, calls = _received(src)
    got = {}
    for e in events:
        if e.res > 0 or e.res == -11:
            got.setdefault((e.type, e.args["fd"], e.res > 0), []).append(e)
    for name, fd in calls:
        if name == "empty":
            (e,) = got[("recvfrom", fd, False)]
            assert e.args["data"] == b""
            continue
        received = got[(name, fd, True)]
        # a TCP receive may come in pieces: each carries the start of its own piece
        first = received[0]
        assert first.args["data"] == PAYLOAD[:min(snaplen, first.res)]
        assert all(len(e.args["data"]) == min(snaplen, e.res) for e in received)
