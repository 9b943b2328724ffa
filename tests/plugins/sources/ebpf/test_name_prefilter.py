"""Process names in the real kernel: the open and socket prefilters' name tests keep exactly the
events their Python references (:meth:`OpenPrefilter.accepts`, :meth:`SocketPrefilter.accepts`)
keep when given the name the process table has: the comm after the last exec (not a later
rename), copied at fork, and for a process already running when the program was loaded, the
name the table's snapshot read; and where it runs (a cgroup named as a container's)."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest

from syswarden.core.cgroups import cgroup2_root
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.prefilter import open_prefilter
from syswarden.core.rules.sockfilter import socket_prefilter
from syswarden.plugins.enrichers.process.table import ProcessTable
from syswarden.plugins.sources.ebpf.program import render_program
from syswarden.plugins.sources.ebpf.source import FILTERED, SOCKS_FILTERED, EbpfSource
from tests.helpers.ebpf import events_of, needs_root

LONG = "sw-long-name-abcdefghij"              # its comm: the first 15 bytes
RULES = f"""
- rule: read by some
  desc: d
  condition: evt.type in (open, openat) and evt.is_open_read = true
    and proc.name in (sw-named, {LONG})
  output: o
  priority: WARNING
- rule: written by any
  desc: d
  condition: evt.type = openat and evt.is_open_write = true and fd.name startswith /tmp/sw-w
  output: o
  priority: WARNING
- rule: sent by some
  desc: d
  condition: evt.type = sendto and proc.name = sw-named
  output: o
  priority: WARNING
- rule: in a container
  desc: d
  condition: evt.type in (openat, sendto) and container.id != host and fd.num >= 0
  output: o
  priority: WARNING
"""

#: The child (run through a link named as the process should be): optionally waits for a line
#: on stdin (started before the program is loaded), renames itself (prctl PR_SET_NAME: the
#: table keeps the name of the exec), opens PROBE for reading, sends a datagram on a UNIX
#: socket, and optionally does the same in a forked child; prints the pids that did.
CHILD = """
import ctypes, os, socket, sys
wait, rename, fork, probe = sys.argv[1:5]
if wait == "1":
    print("ready", flush=True)
    sys.stdin.readline()
if rename != "-":
    ctypes.CDLL(None).prctl(15, rename.encode(), 0, 0, 0)
def act():
    os.close(os.open(probe, os.O_RDONLY))
    a, b = socket.socketpair(socket.AF_UNIX, socket.SOCK_DGRAM)
    a.send(b"x")
act()
pids = [os.getpid()]
if fork == "1":
    pid = os.fork()
    if pid == 0:
        act()
        os._exit(0)
    os.waitpid(pid, 0)
    pids.append(pid)
print(" ".join(map(str, pids)), flush=True)
"""

#: (exec'd as, renamed to, forks, started before the load, in a container's cgroup)
CASES = [
    ("sw-named", "-", False, False, False),
    ("sw-other", "-", True, False, False),     # kept, its forked child too
    (LONG, "-", False, False, False),          # sent: its comm is the name's first 15 bytes
    ("sw-other", "sw-named", False, False, False),  # kept: renamed after its exec
    ("sw-named", "sw-other", True, False, False),   # sent: likewise, and its child
    ("sw-named", "-", False, True, False),     # running before the load: the table's name
    ("sw-other", "-", False, True, False),
    ("sw-other", "-", True, False, True),      # sent: in a container
]


@pytest.fixture(scope="module")
def prefilters(tmp_path_factory):
    rules = tmp_path_factory.mktemp("rules") / "rules.yaml"
    rules.write_text(RULES)
    eng = RuleEngine.load([str(rules)], collect_fields())
    return open_prefilter(eng), socket_prefilter(eng)


def test_the_name_tests_are_rendered_where_the_prefilters_say(prefilters):
    opf, spf = prefilters
    assert any(t.names for t in opf.terms) and spf.named_of("sendto")
    text = render_program({"openat", "sendto"}, {}, opf, spf)
    wanted = text[text.index("open_wanted("):]
    wanted = wanted[:wanted.index("\n}\n")]
    # looked up only once a term's flags held
    assert "&& (name_bits() & 0x" in wanted and "(place_bits() & 2)" in wanted
    sendto = text[text.index("do_exit_sendto("):]
    sendto = sendto[:sendto.index("\n}\n")]
    assert "u64 nbits = name_bits();" in sendto and "(nbits & 0x" in sendto
    assert "(place & 2)" in sendto                    # in a container


@needs_root
@pytest.mark.root
def test_the_kernel_keeps_exactly_the_events_the_reference_keeps_by_name(tmp_path,
                                                                         prefilters):
    opf, spf = prefilters
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy")
    # a cgroup named as Docker names a container's (made before the load: its place known)
    box = os.path.join(root, f"docker-{os.urandom(32).hex()}.scope")
    os.mkdir(box)
    try:
        _check_names_and_places(tmp_path, opf, spf, box)
    finally:
        os.rmdir(box)


def _check_names_and_places(tmp_path, opf, spf, box: str) -> None:
    probe = tmp_path / "probe"
    probe.write_text("x")
    links = {}
    for name in {c[0] for c in CASES}:
        links[name] = tmp_path / name
        os.symlink(os.path.realpath(sys.executable), links[name])

    def start(case) -> subprocess.Popen:
        name, rename, fork, early, contained = case

        def enter() -> None:
            with open(os.path.join(box, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

        return subprocess.Popen([str(links[name]), "-c", CHILD, "1" if early else "0", rename,
                                 "1" if fork else "0", str(probe)],
                                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                preexec_fn=enter if contained else None)

    early = {i: start(c) for i, c in enumerate(CASES) if c[3]}
    for p in early.values():
        assert p.stdout.readline() == "ready\n"
    table = ProcessTable()
    table.snapshot()                           # what the process enricher reads at start
    src = EbpfSource({}, {"openat", "sendto"}, os.getpid(), open_prefilter=opf,
                     socket_prefilter=spf, process_names=table.names)
    names: dict[int, str] = {}                 # pid -> the name the table gives it
    host: dict[int, bool] = {}
    counted: list[list[int]] = []

    def action() -> None:
        counted.append(src.kernel_counters())
        for i, case in enumerate(CASES):
            p = early.get(i) or start(case)
            out, _ = p.communicate("go\n" if i in early else None)
            assert p.returncode == 0, out
            for pid in map(int, out.split()):
                names[pid] = case[0][:15]
                host[pid] = not case[4]
        counted.append(src.kernel_counters())

    events = events_of(src, action)
    seen = Counter((e.pid, e.type) for e in events if e.pid in names
                   and (e.type == "sendto" or e.args.get("name") == str(probe)))
    expected: Counter = Counter()
    for pid, name in names.items():
        expected[(pid, "openat")] += opf.accepts(3, os.O_RDONLY | os.O_CLOEXEC, str(probe),
                                                 name=name, host=host[pid])
        expected[(pid, "sendto")] += spf.accepts("sendto", 1, 2, name=name, host=host[pid])
    assert +seen == +expected, names
    kept = [k for k in expected if not expected[k]]
    assert len(kept) >= 8                      # sw-other's own and its children's
    assert all(expected[(pid, t)] for pid in host if not host[pid] for t in ("openat", "sendto"))
    assert counted[1][FILTERED] - counted[0][FILTERED] >= 4
    assert counted[1][SOCKS_FILTERED] - counted[0][SOCKS_FILTERED] >= 4


@needs_root
@pytest.mark.root
def test_a_cgroup_made_after_the_load_gets_its_place_from_its_first_exec(tmp_path, prefilters):
    """A host cgroup made after the program was loaded: its place is not known, so the first
    process in it is sent whatever its name; its exec teaches the source, which writes the
    place, and a later process there (a name no rule tests, on the host) is kept."""
    opf, spf = prefilters
    root = cgroup2_root()
    if root is None:
        pytest.skip("no cgroup v2 hierarchy")
    probe = tmp_path / "probe"
    probe.write_text("x")
    other = tmp_path / "sw-other"
    os.symlink(os.path.realpath(sys.executable), other)
    src = EbpfSource({}, {"openat", "sendto"}, os.getpid(), open_prefilter=opf,
                     socket_prefilter=spf)
    late = os.path.join(root, f"sw-late-{os.urandom(6).hex()}")
    pids: list[int] = []
    drained: list = []

    def run_inside() -> None:
        def enter() -> None:
            with open(os.path.join(late, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))
        out = subprocess.run([str(other), "-c", CHILD, "0", "-", "0", str(probe)],
                             preexec_fn=enter, capture_output=True, text=True, check=True)
        pids.append(int(out.stdout.split()[0]))

    def action() -> None:
        os.mkdir(late)                        # after the load
        run_inside()
        drained.extend(src.drain())           # the reader sees its exec, learns the place
        run_inside()

    try:
        events = drained + events_of(src, action)
    finally:
        os.rmdir(late)
    sent = Counter(e.pid for e in events if e.type in ("openat", "sendto")
                   and (e.type == "sendto" or e.args.get("name") == str(probe)))
    assert sent[pids[0]] == 2                  # its place not known: sent
    assert sent[pids[1]] == 0                  # the host's, known by then: kept
    assert not opf.accepts(3, os.O_RDONLY | os.O_CLOEXEC, str(probe), name="sw-other",
                           host=True)
