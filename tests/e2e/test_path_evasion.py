"""No path evasion (issue 14): /etc/shadow read through a symbolic link, a hard link,
/proc/self/root or a bind mount raises the default rules' sensitive-file alert, as a plain read,
a relative path, a ``..`` path and ``openat2`` do.  Falco's ``fd.name`` (the path as written)
misses the first four; the default rules also test ``fd.realpath`` (the file the kernel opened)
and ``fd.devino samefile`` (its identity).  One live agent, its default rules, real syscalls.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

from syswarden.core.config import default_rules_path
from tests.e2e.live_alerts import json_agent, read_alerts

pytestmark = [pytest.mark.root]

RULE = "Sensitive file read by an untrusted program"

#: openat2(AT_FDCWD, argv[1], {O_RDONLY}) (x86_64's number), then read a byte.
OPENAT2 = """
import ctypes, os, sys
how = (ctypes.c_uint64 * 3)(os.O_RDONLY, 0, 0)
fd = ctypes.CDLL(None, use_errno=True).syscall(437, -100, sys.argv[1].encode(),
                                                 ctypes.byref(how), 24)
assert fd >= 0, ctypes.get_errno()
os.read(fd, 1)
"""


#: A rule naming a file of the test's folder by identity (the reload test's).
WATCHED = """
- rule: Watched file read
  desc: the test's watched file, by identity
  condition: evt.type in (open, openat) and evt.is_open_read = true and fd.num >= 0
             and fd.devino samefile ({work}/watched)
  output: watched file read (file=%fd.name pid=%proc.pid)
  priority: WARNING
"""


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    """The agent with its default rules (and the rule of :data:`WATCHED`), and a folder on
    /etc's file system (hard links cannot cross file systems) holding a symbolic and a hard
    link to /etc/shadow and an untrusted reader (a copy of cat)."""
    work = tmp_path_factory.mktemp("evasion")
    assert os.stat(work).st_dev == os.stat("/etc/shadow").st_dev
    (work / "sym").symlink_to("/etc/shadow")
    os.link("/etc/shadow", work / "hard")
    (work / "mnt").mkdir()
    (work / "watched").write_text("one")
    (work / "watched.yaml").write_text(WATCHED.format(work=work))
    reader = work / "sw-evader"
    shutil.copy2(shutil.which("cat"), reader)
    events = work / "alerts.json"
    try:
        with json_agent(events, default_rules_path(), str(work / "watched.yaml")) as running:
            yield work, events, running
    finally:
        (work / "hard").unlink()


def _alert_of(events, pid: int, rule: str = RULE, wait: float = 10) -> dict | None:
    """The alert of ``rule`` for process ``pid``, waited for ``wait`` seconds (None after)."""
    deadline = time.monotonic() + wait
    while True:
        for a in read_alerts(events):
            if a["rule"] == rule and a["output_fields"].get("proc.pid") == pid:
                return a
        if time.monotonic() > deadline:
            return None
        time.sleep(0.2)


@pytest.mark.parametrize("how, name", [
    ("symlink", "{work}/sym"),
    ("hardlink", "{work}/hard"),
    ("procroot", "/proc/self/root/etc/shadow"),
    ("bind", "{work}/mnt/shadow"),
    ("plain", "/etc/shadow"),
    ("relative", "/etc/shadow"),
    ("dotdot", "/etc/shadow"),
    ("openat2", "{work}/sym"),
])
def test_every_way_to_read_etc_shadow_raises_the_alert(agent, how, name):
    work, events, _agent = agent
    reader = str(work / "sw-evader")
    cmd, cwd = {
        "symlink": ([reader, "sym"], work),
        "hardlink": ([reader, "hard"], work),
        "procroot": ([reader, "/proc/self/root/etc/shadow"], work),
        # a private mount namespace (unshare execs its command: the reader keeps its pid)
        "bind": (["unshare", "-m", "--propagation", "private", "sh", "-c",
                  f"mount --bind /etc {work}/mnt && exec {reader} {work}/mnt/shadow"], work),
        "plain": ([reader, "/etc/shadow"], work),
        "relative": ([reader, "shadow"], "/etc"),
        "dotdot": ([reader, "../etc/shadow"], "/tmp"),
        "openat2": ([sys.executable, "-c", OPENAT2, "sym"], work),
    }[how]
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.DEVNULL)
    assert proc.wait() == 0
    alert = _alert_of(events, proc.pid)
    assert alert is not None, f"no {RULE!r} alert of pid {proc.pid}"
    fields = alert["output_fields"]
    # fd.name is Falco's, the path as written (made absolute); the realpath is the file's
    assert fields["fd.name"] == name.format(work=work)
    expected_real = {"hardlink": f"{work}/hard", "bind": f"{work}/mnt/shadow"}
    assert fields["fd.realpath"] == expected_real.get(how, "/etc/shadow")


def _read_link(work, name: str) -> int:
    """A new hard link ``name`` to the watched file, read by the reader; its pid."""
    link = work / name
    os.link(work / "watched", link)
    try:
        proc = subprocess.Popen([str(work / "sw-evader"), str(link)], stdout=subprocess.DEVNULL)
        assert proc.wait() == 0
    finally:
        link.unlink()
    return proc.pid


def test_the_files_a_rule_names_by_identity_are_looked_up_again_on_reload(agent):
    """A file replaced by a rename (as passwd replaces /etc/shadow) is another inode: the
    rules name it from their next reload (SIGHUP), the kernel's prefilter too."""
    work, events, running = agent
    rule = "Watched file read"
    assert _alert_of(events, _read_link(work, "link1"), rule) is not None
    (work / "watched.new").write_text("two")
    os.rename(work / "watched.new", work / "watched")
    assert _alert_of(events, _read_link(work, "link2"), rule, wait=2) is None
    reloads = running.stderr.count("reloaded:")
    running.proc.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 120
    while True:         # the reload loads a new program: read until it sees it
        assert time.monotonic() < deadline, f"not seen after the reload:\n{running.stderr}"
        if running.stderr.count("reloaded:") > reloads and \
                _alert_of(events, _read_link(work, "link3"), rule, wait=1) is not None:
            break
