"""``samefile`` and ``fd.devino``/``fd.realpath`` in the rule engine and the open prefilter:
files named by identity, looked up with stat when the rules load and again when they reload,
and the prefilter's terms on the file itself staying sound when mixed with fd.name's."""

from __future__ import annotations

import os

import pytest
from syswarden.core.errors import RuleError
from syswarden.core.event import Event, FdInfo
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.operators import file_ids
from syswarden.core.rules.prefilter import READ, Term, open_prefilter

FIELDS = collect_fields()


def engine(tmp_path, cond: str) -> RuleEngine:
    f = tmp_path / "rules.yaml"
    f.write_text(f"- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n"
                 f"  priority: WARNING\n")
    return RuleEngine.load([str(f)], FIELDS)


def opened(path: str, realpath: str | None = None) -> Event:
    """An open of ``path`` as the fd table makes it: the kernel's device and inode (as stat
    encodes them, as the live source sends them) and realpath."""
    st = os.stat(path)
    ev = Event("openat", ts=1, tid=1, pid=1, res=3, args={"name": path, "flags": 0})
    ev.fd = FdInfo(3, "file", path)
    ev.fd.dev, ev.fd.ino, ev.fd.realpath = st.st_dev, st.st_ino, realpath or path
    return ev


def test_a_hard_link_is_the_same_file_on_the_root_fs_and_a_tmpfs(tmp_path):
    places = [tmp_path]
    if os.path.isdir("/dev/shm"):
        places.append("/dev/shm")
    for where in places:
        target = os.path.join(where, f"sw-samefile-{os.getpid()}")
        link, other = target + ".link", target + ".other"
        for p in (target, other):
            open(p, "w").close()
        os.link(target, link)
        try:
            eng = engine(tmp_path, f"evt.type = openat and fd.devino samefile ({target}, "
                                   f"{tmp_path}/no-such-file)")
            assert eng.check(opened(link)) and eng.check(opened(target))
            assert not eng.check(opened(other))
        finally:
            for p in (target, link, other):
                os.unlink(p)


def test_the_identity_is_the_devices_major_minor_and_inode():
    st = os.stat("/etc/passwd")
    ids = file_ids(["/etc/passwd", "/no/such/file"])
    assert ids.ids == {(os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)}
    assert set(ids) == {f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"}
    assert ids.paths == ("/etc/passwd", "/no/such/file")
    assert not file_ids([])


def test_the_files_are_looked_up_again_when_the_rules_load_again(tmp_path):
    """A file replaced by a rename (as passwd replaces /etc/shadow) is another inode: the
    rules loaded before keep the old one, those loaded after (a reload) name the new one."""
    watched = tmp_path / "watched"
    watched.write_text("one")
    cond = f"evt.type = openat and fd.devino samefile ({watched})"
    before = engine(tmp_path, cond)
    old = opened(str(watched))
    (tmp_path / "new").write_text("two")
    os.rename(tmp_path / "new", watched)
    new = opened(str(watched))
    assert before.check(old) and not before.check(new)
    after = engine(tmp_path, cond)
    assert after.check(new) and not after.check(old)
    pf = open_prefilter(after)
    st = os.stat(watched)
    assert pf.accepts(3, os.O_RDONLY, "/x", ident=(os.major(st.st_dev), os.minor(st.st_dev),
                                                   st.st_ino))


@pytest.mark.parametrize("cond", [
    "fd.name samefile (/etc/shadow)",
    "fd.realpath samefile (/etc/shadow)",
    "proc.name samefile (/etc/shadow)",
])
def test_samefile_takes_the_identity_field_only(tmp_path, cond):
    with pytest.raises(RuleError, match=r"samefile.*fd\.devino"):
        engine(tmp_path, f"evt.type = openat and {cond}")


def test_fd_realpath_is_the_file_s_path_and_fd_name_the_path_written(tmp_path):
    eng = engine(tmp_path, "evt.type = openat and fd.realpath in (/etc/passwd)")
    through_link = opened("/etc/passwd", realpath="/etc/passwd")
    through_link.fd.name = "/tmp/link"
    assert eng.check(through_link)
    cut = opened("/etc/passwd", realpath=".../etc/passwd")     # a walk cut short
    assert not eng.check(cut)


@pytest.mark.parametrize("cond, sent, kept", [
    # a conjunction of a test on fd.name and one on fd.realpath keeps one of them (wider):
    # an open named /b/x whose file is /a/y must be sent
    ("fd.realpath startswith /a/ and fd.name startswith /b/",
     [("/b/x", "/a/y")], [("/c/x", "/c/y")]),
    ("fd.realpath pmatch (/a) or fd.name = /b",
     [("/x", "/a/y"), ("/b", "/b")], [("/a/y", "/x")]),
    ("fd.devino samefile (/etc/passwd) and fd.name startswith /b/",
     [("/c/x", "/etc/passwd")], [("/c/x", "/c/x")]),
])
def test_terms_on_the_file_itself_stay_sound(tmp_path, cond, sent, kept):
    st = os.stat("/etc/passwd")
    passwd = (os.major(st.st_dev), os.minor(st.st_dev), st.st_ino)
    eng = engine(tmp_path, f"evt.type = openat and evt.is_open_read = true and ({cond})")
    pf = open_prefilter(eng)
    assert pf is not None
    for want, cases in ((True, sent), (False, kept)):
        for name, real in cases:
            ident = passwd if real == "/etc/passwd" else (0, 0, 1)
            assert pf.accepts(3, os.O_RDONLY, name, realpath=real, ident=ident) == want, \
                (cond, name, real, pf.describe())


def test_an_identity_term_covers_only_its_own_files():
    a, b = Term(frozenset({READ}), ids=frozenset({(1, 2, 3)})), \
        Term(frozenset({READ}), ids=frozenset({(1, 2, 3), (1, 2, 4)}))
    path = Term(frozenset({READ}), frozenset({"/etc"}))
    assert b.covers(a) and not a.covers(b)
    assert not path.covers(a) and not a.covers(path)
    assert Term(frozenset()).covers(a)
    assert path.both(a).ids == a.ids and path.both(a).prefixes is None
