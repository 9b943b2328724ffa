"""The fleet's on-disk mirror of the rules it runs: root writes it, so what another user plants
on its path is refused as for every file the agent writes (core/safe_files.py).

The links and directories are planted by the real user nobody in a real sticky world-writable
directory, as in /tmp; no NATS server is needed (the mirror is plain files)."""

from __future__ import annotations

import os

import pytest

from syswarden.core.errors import UnsafePathError
from syswarden.plugins.fleet.rules_source import Bundle, Mirror
from tests.helpers.users import as_nobody, shared_fixture  # noqa: F401

RULES = "- rule: r\n  desc: d\n  condition: evt.type = open\n  output: o\n  priority: INFO\n"


def bundle(revision: int, name: str = "rules.yaml") -> Bundle:
    return Bundle([(name, RULES)], "test", "now", revision)


def test_install_points_current_at_the_revision_and_keeps_one_previous(tmp_path):
    mirror = Mirror(str(tmp_path / "mirror"))
    for revision in (1, 2, 3):
        mirror.install(bundle(revision))
    assert mirror.revision() == 3 and mirror.sha256() == bundle(3).sha256
    assert sorted(p.name for p in (tmp_path / "mirror").iterdir()) == \
        ["current", "rev-2", "rev-3"]
    assert os.lstat(tmp_path / "mirror").st_mode & 0o777 == 0o700


def test_a_bundle_file_name_cannot_leave_its_revision(tmp_path):
    mirror = Mirror(str(tmp_path / "mirror"))
    mirror.install(bundle(1, name="../../escaped.yaml"))
    assert not list(tmp_path.glob("*escaped*"))
    assert [p.name for p in (tmp_path / "mirror" / "rev-1").iterdir()
            if not p.name.startswith(".")] == ["000-.._.._escaped.yaml"]


def test_a_mirror_directory_link_planted_by_nobody_is_refused(tmp_path, shared):
    target = tmp_path / "etc"
    target.mkdir()
    as_nobody(os.symlink, str(target), str(shared / "mirror"))
    with pytest.raises(UnsafePathError, match="symbolic link owned by uid 65534"):
        Mirror(str(shared / "mirror")).install(bundle(1))
    assert list(target.iterdir()) == []


def test_a_mirror_directory_nobody_made_first_is_refused(shared):
    as_nobody(os.mkdir, str(shared / "mirror"))
    with pytest.raises(UnsafePathError, match="belongs to uid 65534"):
        Mirror(str(shared / "mirror")).install(bundle(1))
    assert list((shared / "mirror").iterdir()) == []
