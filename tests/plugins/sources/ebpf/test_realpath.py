"""fd.realpath and fd.devino in the real kernel: the path of the file an open actually opened,
walked from the file in the kernel, and its identity, whatever path the caller wrote (a
symbolic link, /proc/self/root, a relative path, a bind mount, a chroot), bounded and marked
when the path is too deep or too long; fd.name stays the path as written (Falco's).

One child, in a private mount namespace (``unshare -m``: its bind, tmpfs and overlay mounts
are its own), makes every open and prints what ``stat`` says of each file; one source, for each
way the exit handlers get their arguments, watches it (the fexit programs, where the kernel
runs them, share the handlers' code: test_fentry.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from syswarden.plugins.enrichers.process.fields.fd import devino
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf.source import EbpfSource
from syswarden.testing import read_field as field
from tests.helpers.ebpf import AsDecoded, events_of, needs_root

pytestmark = [needs_root, pytest.mark.root]

#: Every open of the child: a label, then what it opens (relative to the test's folder).
CHILD = r"""
import ctypes, json, os, subprocess, sys
work = sys.argv[1]
os.chdir(work)
ids = {}

def ident(path):
    st = os.stat(path)
    return f"{os.major(st.st_dev)}:{os.minor(st.st_dev)}:{st.st_ino}"

def opened(label, path, flags=os.O_RDONLY):
    os.close(os.open(path, flags, 0o600))
    ids[label] = ident(path)

opened("symlink", "sym")                                   # sym -> target
opened("procroot", f"/proc/self/root{work}/target")
opened("relative", "target")
opened("dotdot", f"../{os.path.basename(work)}/target")
opened("hardlink", "hard")                                 # a hard link to target
opened("newline", "new\nline")
opened("long", "/".join(["L" * 250] * 5) + "/long")
opened("deep", "/".join(["d"] * 60) + "/deep")
opened("creat", "made", os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
# openat2 through the symlink (x86_64: 437; struct open_how: flags, mode, resolve)
how = (ctypes.c_uint64 * 3)(os.O_RDONLY, 0, 0)
libc = ctypes.CDLL(None, use_errno=True)
fd = libc.syscall(437, -100, b"sym", ctypes.byref(how), 24)
assert fd >= 0, ctypes.get_errno()
os.close(fd)
ids["openat2"] = ident("sym")
# a bind mount of a folder, a tmpfs and an overlay, all this namespace's own
subprocess.run(["mount", "--bind", "bound", "mnt"], check=True)
opened("bind", "mnt/inside")
subprocess.run(["mount", "-t", "tmpfs", "none", "tmpfs"], check=True)
open("tmpfs/f", "w").close()
opened("tmpfs", "tmpfs/f")
if subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                   "lowerdir=lower,upperdir=upper,workdir=ovlwork", "merged"]).returncode == 0:
    opened("overlay-lower", "merged/low")
    open("merged/up", "w").close()
    opened("overlay-upper", "merged/up")
# a chrooted process sees its own root
pid = os.fork()
if pid == 0:
    os.chroot("jail")
    os.close(os.open("/inside", os.O_RDONLY))
    os._exit(0)
os.waitpid(pid, 0)
print(json.dumps(ids))
"""


@pytest.fixture(scope="module", params=[
    "enter", pytest.param("regs", marks=pytest.mark.skipif(
        not P.registers_usable(), reason="no BTF or not x86_64: arguments from enter only"))])
def opens(request, tmp_path_factory):
    """(events of the child's opens by label, what stat said of each file, the folder)."""
    work = tmp_path_factory.mktemp("realpath")
    (work / "target").write_text("x")
    (work / "sym").symlink_to(work / "target")
    os.link(work / "target", work / "hard")
    (work / "new\nline").write_text("x")
    long = work / "/".join(["L" * 250] * 5)
    long.mkdir(parents=True)
    (long / "long").write_text("x")
    deep = work / "/".join(["d"] * 60)
    deep.mkdir(parents=True)
    (deep / "deep").write_text("x")
    for d in ("bound", "mnt", "tmpfs", "lower", "upper", "ovlwork", "merged", "jail"):
        (work / d).mkdir()
    (work / "bound" / "inside").write_text("x")
    (work / "lower" / "low").write_text("x")
    (work / "jail" / "inside").write_text("x")
    src = EbpfSource({"args_from": request.param}, {"open", "openat", "openat2", "creat"},
                     os.getpid())
    out: list[str] = []

    def action() -> None:
        out.append(subprocess.run(["unshare", "-m", "--propagation", "private", sys.executable,
                                   "-c", CHILD, str(work)], capture_output=True, text=True,
                                  check=True).stdout)

    events = events_of(src, action)
    ids = json.loads(out[0])
    AsDecoded(events).enrich(events)
    mine = [e for e in events if e.type in ("open", "openat", "openat2", "creat")
            and e.res >= 0]
    return mine, ids, work


def _opened(events: list, nameraw: str, evt_type: str = "openat"):
    got = [e for e in events if e.type == evt_type and field("fd.nameraw", e) == nameraw]
    assert got, f"no {evt_type} of {nameraw!r}"
    return got[-1]


@pytest.mark.parametrize("label, written, real", [
    ("symlink", "sym", "target"),
    ("procroot", "/proc/self/root{work}/target", "target"),
    ("relative", "target", "target"),
    ("dotdot", "../{base}/target", "target"),
    ("hardlink", "hard", "hard"),              # the name it was opened by: a link is a name
    ("bind", "mnt/inside", "mnt/inside"),      # the path through the mount, as d_path says
    ("tmpfs", "tmpfs/f", "tmpfs/f"),
    ("overlay-lower", "merged/low", "merged/low"),
    ("overlay-upper", "merged/up", "merged/up"),
])
def test_the_realpath_is_the_file_opened_and_the_identity_is_stat_s(opens, label, written,
                                                                     real):
    events, ids, work = opens
    if label not in ids:
        pytest.skip("no overlayfs on this kernel")     # this machine's has it
    ev = _opened(events, written.format(work=work, base=work.name))
    assert field("fd.realpath", ev) == f"{work}/{real}"
    assert field("fd.devino", ev) == ids[label]               # the kernel's, stat's: alike
    # fd.name is Falco's: the path as written, made absolute
    assert field("fd.name", ev) == os.path.normpath(
        os.path.join(work, written.format(work=work, base=work.name)))


def test_a_hard_link_a_bind_mount_and_the_file_are_one_identity(opens):
    events, ids, work = opens
    assert ids["hardlink"] == ids["symlink"] == ids["relative"]
    target = os.stat(work / "target")
    assert field("fd.devino", _opened(events, "hard")) == devino(target.st_dev, target.st_ino)
    inside = os.stat(work / "bound" / "inside")
    assert field("fd.devino", _opened(events, "mnt/inside")) == \
        devino(inside.st_dev, inside.st_ino)


def test_openat2_and_creat_have_it_too(opens):
    events, ids, work = opens
    ev = _opened(events, "sym", "openat2")
    assert field("fd.name", ev) == f"{work}/sym"
    assert field("fd.realpath", ev) == f"{work}/target"
    assert field("fd.devino", ev) == ids["openat2"]
    made = _opened(events, "made")          # python's os.open: openat with O_CREAT
    assert field("fd.realpath", made) == f"{work}/made"


def test_a_chrooted_process_sees_the_path_from_its_own_root(opens):
    events, _ids, work = opens
    ev = _opened(events, "/inside")
    assert field("fd.realpath", ev) == "/inside"


def test_hostile_names_give_a_bounded_path_marked_when_cut(opens):
    events, _ids, work = opens
    assert field("fd.realpath", _opened(events, "new\nline")) == f"{work}/new\nline"
    # 60 directories: deeper than the walk goes; 5 names of 250 bytes: longer than it keeps
    deep = field("fd.realpath", _opened(events, "/".join(["d"] * 60) + "/deep"))
    assert deep.startswith(".../d/d/") and deep.endswith("/d/deep")
    assert len(deep) < 1024 and (work.name not in deep)
    # (the path as written is cut too: longer than the record keeps of a string)
    longs = [e for e in events if (field("fd.nameraw", e) or "").startswith("L" * 250)]
    assert len(longs) == 1
    long = field("fd.realpath", longs[0])
    assert long.startswith(".../") and long.endswith("L/long") and len(long) < 1024
    assert set(long[4:].split("/")) <= {"L" * 250, "long"}     # whole names only
