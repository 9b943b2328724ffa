"""Closes are not followed: an fd's inode number, read by the kernel where the fd is created and
where it is used, tells a live fd-table entry from a stale one (real kernel, real processes)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syswarden.core.config import default_rules_path
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.prefilter import open_prefilter
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf.source import EbpfSource
from tests.helpers.ebpf import ARGS_FROM, AsDecoded, events_of, needs_root

pytestmark = [needs_root, pytest.mark.root]

#: A socket's number, closed, taken again by an open the rules' prefilter keeps in the kernel,
#: then duplicated: the table's entry for that number is the socket, stale.
CHILD = """
import os, socket
s = socket.socket()
n = s.fileno()
s.close()
assert os.open("/dev/null", os.O_RDONLY) == n
os.dup2(n, 50)
print(n)
"""


@ARGS_FROM
def test_a_number_reused_behind_the_tables_back_is_not_taken_for_the_old_socket(args_from):
    pf = open_prefilter(RuleEngine.load([default_rules_path()], collect_fields()))
    src = EbpfSource({"args_from": args_from}, {"openat", "socket", "dup2"}, os.getpid(),
                     open_prefilter=pf)
    out: list[str] = []

    def action() -> None:
        assert not [tp for tp in src.attached if "close" in tp]     # closes not followed
        out.append(subprocess.run([sys.executable, "-c", CHILD], capture_output=True,
                                  text=True, check=True).stdout)

    events = events_of(src, action)
    n = int(out[0])
    dups = [e for e in events if e.type in ("dup2", "dup3") and e.args.get("oldfd") == n
            and e.res == 50]
    socks = [e for e in events if e.type == "socket" and e.res == n and e.pid == dups[0].pid]
    assert len(dups) == 1 and len(socks) == 1
    dup, sock = dups[0], socks[0]
    assert sock.kernel.ino and dup.kernel.ino and sock.kernel.ino != dup.kernel.ino
    assert not os.path.exists(f"/proc/{dup.pid}")
    decoded = AsDecoded(events)

    def dup_source(evts: list):
        decoded.enrich(evts)
        return dup.fd2

    assert dup_source(events) is None                  # stale: dropped, the process is gone
    decoded.raw[id(dup)][1].ino = 0                    # without the stamp, it would be taken
    assert dup_source(events).type == "ipv4"           # for the closed socket


def test_every_call_that_creates_or_uses_an_fd_sends_its_inode():
    text = P.render_program(None, {"btf": {"OFF_FILE_INODE": 1, "OFF_INODE_INO": 1}})
    for name in P.FD_CREATORS | set(P.FD_USERS):
        body = text.split(f"int do_exit_{name}(", 1)[1].split("\n}\n", 1)[0]
        # (an open reads its new file's inode once, for its number and its device)
        assert "r->ino = fd_ino(" in body or "r->ino = inode_ino(inode)" in body, name
