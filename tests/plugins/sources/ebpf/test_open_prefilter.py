"""The rules' open prefilter in the real kernel: it keeps exactly the opens its Python reference
(:meth:`OpenPrefilter.accepts`) keeps, counts them, and never hides what a rule needs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import trio

from syswarden.core.config import default_rules_path
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.prefilter import open_prefilter
from syswarden.plugins.sources.ebpf.source import FILTERED, EbpfSource
from syswarden.testing import read_field as field
from tests.helpers.ebpf import (ARGS_FROM, RELOAD_TIMEOUT, AsDecoded, events_of, needs_root,
                                run_live)

pytestmark = [needs_root, pytest.mark.root]

DEFAULT = RuleEngine.load([default_rules_path()], collect_fields())

#: A child opens each of these (path, flags, directory?) and closes it.
OPENS = [
    ("/dev/null", os.O_RDONLY, False),                  # kept: no rule reads it
    ("/etc/passwd", os.O_RDONLY, False),                # kept: not a sensitive file
    ("/etc/shadow", os.O_RDONLY, False),                # sent: a sensitive file
    ("/no/such/file", os.O_RDONLY, False),              # kept: failed
    ("{tmp}/written", os.O_WRONLY | os.O_CREAT, False), # sent: a write
    ("{tmp}/written", os.O_RDONLY, False),              # kept
    ("{tmp}", os.O_RDONLY, True),                       # sent: a directory (a dirfd to be)
    ("/tmp/../etc/shadow", os.O_RDONLY, False),         # sent: fd.name is /etc/shadow
    ("//etc/shadow", os.O_RDONLY, False),               # sent: not as fd.name shows it
    ("/etc/./passwd", os.O_RDONLY, False),              # sent: cannot be judged here
    ("relative-name", os.O_RDONLY, False),              # sent: relative
]

CHILD = """
import os, sys
for arg in sys.argv[1:]:
    path, flags = arg.rsplit(":", 1)
    try:
        os.close(os.open(path, int(flags), 0o600))
    except OSError:
        pass
"""


#: Substring and glob tests ({tmp}: the test's folder), and the opens that exercise them.
SUBSTRING_RULES = """
- rule: key
  desc: d
  condition: evt.type in (open, openat) and fd.name contains secret-key
  output: o
  priority: WARNING
- rule: environ
  desc: d
  condition: evt.type = openat and evt.is_open_read = true and fd.name glob {tmp}/*/environ
  output: o
  priority: WARNING
- rule: dot
  desc: d
  condition: evt.type = openat and fd.name startswith {tmp}/.hidden
  output: o
  priority: WARNING
"""
SUBSTRING_OPENS = [
    ("{tmp}/my-secret-key", os.O_RDONLY, False),        # sent: contains it
    ("{tmp}/public-key", os.O_RDONLY, False),           # kept
    ("{tmp}/d/environ", os.O_RDONLY, False),            # sent: the glob's head and its run
    ("{tmp}/d/environx", os.O_RDONLY, False),           # sent: contains /environ (wider)
    ("{tmp}/d/cmdline", os.O_RDONLY, False),            # kept
    ("{tmp}/.hidden", os.O_RDONLY, False),              # sent: a dot file is judged
    ("{tmp}/.other", os.O_RDONLY, False),               # kept: judged too
    ("{tmp}/d/../d/cmdline", os.O_RDONLY, False),       # sent: a .. component
    ("{tmp}/d/./cmdline", os.O_RDONLY, False),          # sent: a . component
]


@ARGS_FROM
def test_the_kernel_keeps_exactly_the_opens_the_reference_keeps(tmp_path, args_from):
    pf = open_prefilter(DEFAULT)
    assert pf is not None
    (tmp_path / "relative-name").write_text("x")
    _check_the_kernel(tmp_path, args_from, pf, OPENS, 4)


@ARGS_FROM
def test_the_kernel_tests_substrings_globs_and_dot_files_as_the_reference(tmp_path, args_from):
    rules = tmp_path / "rules.yaml"
    rules.write_text(SUBSTRING_RULES.format(tmp=tmp_path))
    pf = open_prefilter(RuleEngine.load([str(rules)], collect_fields()))
    assert pf is not None and any(t.substrings for t in pf.terms)
    (tmp_path / "d").mkdir()
    for name in ("my-secret-key", "public-key", "d/environ", "d/environx", "d/cmdline",
                 ".hidden", ".other"):
        (tmp_path / name).write_text("x")
    _check_the_kernel(tmp_path, args_from, pf, SUBSTRING_OPENS, 3)


def _check_the_kernel(tmp_path, args_from, pf, table, kept) -> None:
    opens = [(p.format(tmp=tmp_path), f, d) for p, f, d in table]
    src = EbpfSource({"args_from": args_from}, {"openat", "open"}, os.getpid(),
                     open_prefilter=pf)
    child: list[int] = []
    before: list[int] = []

    def action() -> None:
        before.append(src.kernel_counters()[FILTERED])
        proc = subprocess.Popen([sys.executable, "-c", CHILD,
                                 *[f"{p}:{f}" for p, f, _ in opens]], cwd=tmp_path)
        child.append(proc.pid)
        proc.wait()
        before.append(src.kernel_counters()[FILTERED])

    events = events_of(src, action)
    seen = {(e.args.get("name"), e.args.get("flags") & ~(1 << 30)) for e in events
            if e.pid == child[0] and e.type in ("open", "openat")}
    expected_kept = 0
    for path, flags, is_dir in opens:
        res = -2 if path.startswith("/no/") else 3
        wanted = pf.accepts(res, flags | os.O_CLOEXEC, path, is_dir)
        assert ((path, flags | os.O_CLOEXEC) in seen) == wanted, (path, oct(flags), seen)
        expected_kept += not wanted
    assert expected_kept == kept
    assert before[1] - before[0] >= expected_kept       # counted (the interpreter's own too)


def test_the_kernel_judges_the_file_an_open_reached_as_the_reference(tmp_path):
    """Opens whose path names no sensitive file but whose file is one (a symbolic link, a hard
    link) are sent: the kernel walked the file's path and compared its identity, as
    ``accepts`` with the realpath and identity does; the same through links to an ordinary
    file are kept."""
    pf = open_prefilter(DEFAULT)
    assert os.stat(tmp_path).st_dev == os.stat("/etc/shadow").st_dev   # hard links: one fs
    links = {"sym-shadow": "/etc/shadow", "sym-passwd": "/etc/passwd"}
    for name, target in links.items():
        (tmp_path / name).symlink_to(target)
    os.link("/etc/shadow", tmp_path / "hard-shadow")
    os.link("/etc/passwd", tmp_path / "hard-passwd")
    try:
        src = EbpfSource({}, {"openat"}, os.getpid(), open_prefilter=pf)
        child: list[int] = []
        paths = [str(tmp_path / n) for n in (*links, "hard-shadow", "hard-passwd")]

        def action() -> None:
            proc = subprocess.Popen([sys.executable, "-c", CHILD,
                                     *[f"{p}:{os.O_RDONLY}" for p in paths]])
            child.append(proc.pid)
            proc.wait()

        events = events_of(src, action)
        sent = {e.args.get("name") for e in events if e.pid == child[0]}
        for path in paths:
            st = os.stat(path)
            wanted = pf.accepts(3, os.O_RDONLY | os.O_CLOEXEC, path,
                                realpath=os.path.realpath(path),
                                ident=(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino))
            assert (path in sent) == wanted == ("shadow" in path), (path, sent)
    finally:
        (tmp_path / "hard-shadow").unlink()


def test_a_file_reached_through_a_directory_fd_is_named_after_the_process_is_gone():
    """The directory's open is sent although no rule reads /etc: the relative open through it
    is then resolved even when the process is gone before it is enriched (without that open,
    it could not be)."""
    script = ("import os\nd = os.open('/etc', os.O_RDONLY)\n"
              "os.close(os.open('shadow', os.O_RDONLY, dir_fd=d))\n")
    src = EbpfSource({}, {"openat"}, os.getpid(), open_prefilter=open_prefilter(DEFAULT))
    pids: list[int] = []

    def action() -> None:
        proc = subprocess.Popen([sys.executable, "-c", script])
        pids.append(proc.pid)
        assert proc.wait() == 0

    events = events_of(src, action)
    assert not os.path.exists(f"/proc/{pids[0]}")
    mine = [e for e in events if e.pid == pids[0] and e.type == "openat"
            and e.args.get("name") in ("/etc", "shadow")]
    assert [e.args["name"] for e in mine] == ["/etc", "shadow"]

    decoded = AsDecoded(events)

    def fd_name_of_shadow(evts: list) -> str:
        decoded.enrich(evts)
        return field("fd.name", mine[1])

    assert fd_name_of_shadow(events) == "/etc/shadow"
    assert fd_name_of_shadow([e for e in events if e is not mine[0]]) != "/etc/shadow"


def test_without_the_prefilter_every_open_is_sent(tmp_path):
    src = EbpfSource({"open_prefilter": False}, {"openat"}, os.getpid(),
                     open_prefilter=open_prefilter(DEFAULT))
    assert "OPEN_FILTER 0" in src.program_text()
    events = events_of(src, lambda: subprocess.run(
        [sys.executable, "-c", CHILD, f"/dev/null:{os.O_RDONLY}"], check=True))
    assert any(e.args.get("name") == "/dev/null" for e in events)


async def test_a_rule_reload_that_changes_the_prefilter_loads_a_new_program():
    child = [sys.executable, "-c", CHILD + "print(os.getpid())", f"/dev/null:{os.O_RDONLY}"]
    pids: list[int] = []

    async def action(live) -> None:
        src = live.source
        first = src.prog
        pids.append(int((await trio.run_process(child, capture_stdout=True)).stdout))
        src.set_open_prefilter(src.open_prefilter)              # unchanged: nothing to do
        assert not src._needs_reload
        src.set_open_prefilter(None)                            # every open now
        with trio.fail_after(RELOAD_TIMEOUT):
            while src.prog is first:
                await trio.sleep(0.05)
        assert "OPEN_FILTER 0" in src.program_text()
        pids.append(int((await trio.run_process(child, capture_stdout=True)).stdout))

    live = await run_live({"openat"}, action, {}, prefilter=open_prefilter(DEFAULT))
    nulls = {e.pid for e in live.events if e.type == "openat"
             and e.args.get("name") == "/dev/null"}
    assert pids[0] not in nulls and pids[1] in nulls       # kept before, sent after


def test_the_realpath_is_walked_only_where_it_may_judge_or_is_sent(tmp_path):
    """Rules that read no fd.realpath: realpath_needed is 0, so an open nothing keeps is judged
    without the walk; an open the path as written keeps is sent with its realpath walked (a
    symbolic link: the file it reached).  The default rules' realpath terms need it for a
    read."""
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
- rule: keep
  desc: d
  condition: evt.type = openat and fd.name startswith {tmp_path}/keep
  output: o
  priority: WARNING
""")
    engine = RuleEngine.load([str(rules)], collect_fields())
    src = EbpfSource({}, {"openat"}, os.getpid(), open_prefilter=open_prefilter(engine))
    text = src.program_text()
    needed = text[text.index("static __always_inline int realpath_needed("):]
    assert needed[:needed.index("}")].split("{", 1)[1].split() == ["return", "0;"]
    default = EbpfSource({}, {"openat"}, os.getpid(), open_prefilter=open_prefilter(DEFAULT))
    dtext = default.program_text()
    body = dtext[dtext.index("static __always_inline int realpath_needed("):]
    assert "flags" in body[:body.index("}")]
    (tmp_path / "target").write_text("x")
    (tmp_path / "keep-link").symlink_to(tmp_path / "target")
    (tmp_path / "other").write_text("y")
    child: list[int] = []

    def action() -> None:
        proc = subprocess.Popen([sys.executable, "-c", CHILD,
                                 *[f"{tmp_path / n}:{os.O_RDONLY}" for n in ("keep-link",
                                                                              "other")]])
        child.append(proc.pid)
        proc.wait()

    events = [e for e in events_of(src, action) if e.pid == child[0] and e.type == "openat"]
    sent = {e.args.get("name"): e for e in events}
    assert str(tmp_path / "other") not in sent
    assert sent[str(tmp_path / "keep-link")].kernel.realpath == str(tmp_path / "target")
