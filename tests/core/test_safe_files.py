"""Opening files root writes: what another user plants at the path is refused, modes are set.

The links, FIFOs and files are planted by the real user nobody (a forked child that dropped to
uid 65534) in a real world-writable sticky directory, as in /tmp."""

from __future__ import annotations

import os
import pathlib

import pytest

from syswarden.core.config import load_config
from syswarden.core.errors import ConfigError, UnsafePathError
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.safe_files import (dir_mode_for, make_dirs, mode_problem, open_file,
                                       open_private, parse_mode)
from tests.helpers.users import (SECRET, as_nobody, root_secret, shared_fixture,  # noqa: F401
                                 unchanged)


def mode_of(path: pathlib.Path) -> int:
    return os.lstat(path).st_mode & 0o7777


def append(path: pathlib.Path, text: bytes = b"alert\n", **kw) -> None:
    fd = open_file(str(path), **kw)
    try:
        os.write(fd, text)
    finally:
        os.close(fd)


def read_now(fd: int) -> bytes:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return b""


# -- what another user plants ---------------------------------------------------------------------

@pytest.mark.parametrize("truncate", [False, True])
def test_a_symlink_planted_by_nobody_is_refused(tmp_path, shared, truncate):
    secret = root_secret(tmp_path / "shadow")
    as_nobody(os.symlink, str(secret), str(shared / "events.txt"))
    with pytest.raises(UnsafePathError) as err:
        append(shared / "events.txt", truncate=truncate)
    text = str(err.value)
    assert str(shared / "events.txt") in text and "symbolic link" in text
    assert "uid 65534 (nobody)" in text and str(secret) in text and "hint:" in text
    assert unchanged(secret)


def test_a_symlink_to_a_missing_file_creates_nothing(tmp_path, shared):
    target = tmp_path / "cron.d-job"
    as_nobody(os.symlink, str(target), str(shared / "events.txt"))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        append(shared / "events.txt")
    assert not target.exists()


def test_a_hardlink_planted_by_nobody_is_refused(shared):
    # protected_hardlinks lets nobody link a file it may read and write: a root file that was
    # briefly 0666, then locked down to 0600 -- the link stays
    secret = root_secret(shared / "root-notes", 0o666)
    as_nobody(os.link, str(secret), str(shared / "events.txt"))
    os.chmod(secret, 0o600)
    with pytest.raises(UnsafePathError, match="2 hard links") as err:
        append(shared / "events.txt")
    assert str(shared / "events.txt") in str(err.value)
    assert unchanged(secret)


def test_a_fifo_planted_by_nobody_is_refused_without_blocking(shared):
    as_nobody(os.mkfifo, str(shared / "events.txt"), 0o666)
    with pytest.raises(UnsafePathError, match="is a FIFO, not a regular file"):
        append(shared / "events.txt")


def test_a_fifo_nobody_reads_gets_nothing(shared):
    fifo = shared / "events.txt"
    as_nobody(os.mkfifo, str(fifo), 0o666)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)       # the thief's end
    try:
        with pytest.raises(UnsafePathError, match="is a FIFO"):
            append(fifo)
        assert read_now(reader) == b""                      # nothing was written
    finally:
        os.close(reader)


def test_a_file_nobody_made_first_is_refused(shared):
    def plant() -> None:
        (shared / "events.txt").write_text("forged alert\n")
    as_nobody(plant)
    with pytest.raises(UnsafePathError, match=r"belongs to uid 65534 \(nobody\), not to root"):
        append(shared / "events.txt")
    assert (shared / "events.txt").read_text() == "forged alert\n"


def test_a_directory_symlink_planted_by_nobody_is_refused(tmp_path, shared):
    root_dir = tmp_path / "etc"
    root_dir.mkdir()
    as_nobody(os.symlink, str(root_dir), str(shared / "logs"))
    with pytest.raises(UnsafePathError, match="symbolic link owned by uid 65534") as err:
        append(shared / "logs" / "events.txt")
    assert str(shared / "logs") in str(err.value)
    assert list(root_dir.iterdir()) == []


def test_a_directory_nobody_owns_is_refused(shared):
    as_nobody(os.mkdir, str(shared / "logs"))
    with pytest.raises(UnsafePathError, match=r"the directory belongs to uid 65534"):
        append(shared / "logs" / "events.txt")
    assert list((shared / "logs").iterdir()) == []


def test_a_directory_others_can_write_without_the_sticky_bit_is_refused(tmp_path):
    (tmp_path / "open").mkdir()
    os.chmod(tmp_path / "open", 0o777)
    with pytest.raises(UnsafePathError, match="writable by others and not sticky"):
        append(tmp_path / "open" / "events.txt")
    assert not (tmp_path / "open" / "events.txt").exists()


def test_a_private_dir_refuses_even_a_sticky_shared_one(shared):
    with pytest.raises(UnsafePathError, match="the directory is writable by others"):
        append(shared / "queue.db", private_dir=True)


# -- reading what only root could have written (open_private) ------------------------------------

def read_private(path: pathlib.Path) -> bytes:
    fd = open_private(str(path))
    try:
        return os.read(fd, 4096)
    finally:
        os.close(fd)


def test_a_private_read_refuses_what_nobody_planted_in_a_sticky_shared_dir(shared):
    as_nobody(lambda: (shared / "kept.json").write_text("nobody's program"))
    with pytest.raises(UnsafePathError, match="the directory is writable by others"):
        read_private(shared / "kept.json")


def test_a_private_read_refuses_a_file_others_can_write_or_own_or_a_link(tmp_path):
    private = tmp_path / "cache"
    private.mkdir(mode=0o700)
    root_secret(private / "open.json", 0o666)
    with pytest.raises(UnsafePathError, match="the file is writable by others"):
        read_private(private / "open.json")
    root_secret(private / "given.json")
    os.chown(private / "given.json", 65534, 65534)
    with pytest.raises(UnsafePathError, match=r"belongs to uid 65534 \(nobody\)"):
        read_private(private / "given.json")
    (private / "link.json").symlink_to(root_secret(tmp_path / "shadow"))
    with pytest.raises(UnsafePathError, match="symbolic link"):
        read_private(private / "link.json")
    with pytest.raises(FileNotFoundError):
        read_private(private / "missing.json")
    assert read_private(root_secret(private / "ours.json")) == SECRET


# -- what is allowed ------------------------------------------------------------------------------

def test_our_own_file_in_a_sticky_shared_dir_is_written(shared):
    append(shared / "events.txt", b"one\n")
    append(shared / "events.txt", b"two\n")
    assert (shared / "events.txt").read_bytes() == b"one\ntwo\n"


def test_a_symlink_root_made_on_the_way_is_followed(tmp_path):
    (tmp_path / "real").mkdir()
    os.symlink("real", tmp_path / "logs")
    append(tmp_path / "logs" / "events.txt")
    assert (tmp_path / "real" / "events.txt").read_bytes() == b"alert\n"


def test_truncate_empties_only_after_the_checks(tmp_path):
    path = tmp_path / "capture.jsonl"
    path.write_bytes(b"old capture\n")
    append(path, b"new\n", truncate=True)
    assert path.read_bytes() == b"new\n"


# -- modes --------------------------------------------------------------------------------------

def test_files_are_created_0600_and_directories_0700_whatever_the_umask(tmp_path):
    old = os.umask(0)
    try:
        append(tmp_path / "a" / "b" / "events.txt", make_dirs=True)
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "a") == 0o700 and mode_of(tmp_path / "a" / "b") == 0o700
    assert mode_of(tmp_path / "a" / "b" / "events.txt") == 0o600


def test_a_configured_mode_is_honoured_under_a_strict_umask(tmp_path):
    old = os.umask(0o077)
    try:
        append(tmp_path / "d" / "events.txt", mode=0o640, make_dirs=True,
               dir_mode=dir_mode_for(0o640))
    finally:
        os.umask(old)
    assert mode_of(tmp_path / "d" / "events.txt") == 0o640
    assert mode_of(tmp_path / "d") == 0o750


def test_an_existing_world_readable_file_gets_the_mode(tmp_path):
    path = tmp_path / "events.txt"
    path.write_text("from an older version\n")
    os.chmod(path, 0o644)
    append(path)
    assert mode_of(path) == 0o600


def test_make_dirs_keeps_an_existing_directory_mode(tmp_path):
    (tmp_path / "lib").mkdir(mode=0o755)
    make_dirs(str(tmp_path / "lib" / "syswarden"))
    assert mode_of(tmp_path / "lib") == 0o755
    assert mode_of(tmp_path / "lib" / "syswarden") == 0o700


@pytest.mark.parametrize("value, mode", [
    ("0600", 0o600), ("600", 0o600), ("0o640", 0o640), (0o644, 0o644), (0o400, 0o400),
])
def test_modes_accepted(value, mode):
    assert mode_problem(value) is None and parse_mode(value) == mode


@pytest.mark.parametrize("value", [
    "0666", 0o664, 0o700, 0o4600, 600, 640, "rw-------", "", "0x180", True, 1.5,
])
def test_modes_refused(value):
    assert "at most 0644" in mode_problem(value)


def test_a_bad_mode_in_the_config_file_is_located(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text("file_output:\n  enabled: true\n  mode: 0666\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(path), (), make_plugin_manager({}).schemas())
    text = str(err.value)
    assert f"{path}:3" in text and "file_output.mode: must be an octal file mode" in text
    assert "0o666 in octal" in text
