"""The on-disk queue: order, bound, repeat notes folded, de-duplication windows, reopening."""

from __future__ import annotations

import os

import pytest

from syswarden.core.errors import UnsafePathError
from syswarden.plugins.outputs.spool import Spool
from syswarden.testing import make_alert
from tests.helpers.users import as_nobody, shared_fixture  # noqa: F401


def test_fifo_and_survives_reopen(tmp_path):
    path = str(tmp_path / "q.db")
    spool = Spool(path, 100)
    alerts = [make_alert(i) for i in range(5)]
    assert spool.add_alerts([(a, None) for a in alerts]) == 0
    spool.close()
    spool = Spool(path, 100)
    got = []
    while (job := spool.next_due(0)) is not None:
        got.append(job.alert)
        spool.done(job)
    assert [a.uuid for a in got] == [a.uuid for a in alerts]
    assert got[2] == alerts[2]                        # every field round-trips
    assert len(spool) == 0


def test_bound_drops_the_oldest(tmp_path):
    spool = Spool(str(tmp_path / "q.db"), 3)
    alerts = [make_alert(i) for i in range(5)]
    assert spool.add_alerts([(a, None) for a in alerts[:2]]) == 0
    assert spool.add_alerts([(a, None) for a in alerts[2:]]) == 2
    assert spool.next_due(0).alert.uuid == alerts[2].uuid


def test_repeats_fold_into_one_pending_note(tmp_path):
    spool = Spool(str(tmp_path / "q.db"), 100)
    first = make_alert(0)
    spool.add_alerts([(first, "k")])
    for i in range(1, 4):
        spool.add_repeat("k", make_alert(i), not_before=50.0)
    assert len(spool) == 2
    job = spool.next_due(10.0)
    assert job.kind == "alert"
    spool.done(job)
    assert spool.next_due(10.0) is None and spool.next_wake() == 50.0
    note = spool.next_due(60.0)
    assert (note.kind, note.count, note.alert.output_fields["seq"]) == ("repeat", 3, 3)
    assert spool.next_due(None).id == note.id           # stopping: everything is due


def test_dedup_window(tmp_path):
    spool = Spool(str(tmp_path / "q.db"), 100)
    assert spool.seen("k", 1000.0, 60) == (False, 1)
    assert spool.seen("k", 1030.0, 60) == (True, 2)
    spool.set_ref("k", "17")
    assert spool.dedup_info("k")[:2] == ("17", 2)
    assert spool.seen("k", 1061.0, 60) == (False, 1)    # a new window: a new ticket
    assert spool.dedup_info("k")[0] is None


def test_size_is_kept_across_reopen_and_trims(tmp_path):
    path = str(tmp_path / "q.db")
    spool = Spool(path, 4)
    spool.add_alerts([(make_alert(i), None) for i in range(3)])
    spool.add_repeat("k", make_alert(), 0)
    spool.add_repeat("k", make_alert(), 0)              # folded: no new job
    assert len(spool) == 4
    spool.close()
    spool = Spool(path, 4)
    assert len(spool) == 4
    assert spool.add_alerts([(make_alert(9), None)]) == 1 and len(spool) == 4
    spool.done(spool.next_due(None))
    assert len(spool) == 3
    assert spool.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0] == 3


def test_repeats_folded_while_a_note_is_sent_are_kept(tmp_path):
    spool = Spool(str(tmp_path / "q.db"), 100)
    spool.add_repeat("k", make_alert(1), 0)
    spool.add_repeat("k", make_alert(2), 0)
    note = spool.next_due(0)                      # being sent: count 2
    spool.add_repeat("k", make_alert(3), 0)       # arrives meanwhile
    spool.done(note, next_note=99.0)
    rest = spool.next_due(None)
    assert (rest.kind, rest.count, rest.alert.output_fields["seq"]) == ("repeat", 1, 3)
    assert spool.next_due(50.0) is None and len(spool) == 1
    spool.done(rest)
    assert len(spool) == 0


# -- the queue's path: what another user plants (the real user nobody, in a 1777 dir) -------------

def mode_of(path) -> int:
    return os.lstat(path).st_mode & 0o7777


def test_a_symlinked_queue_file_is_refused(tmp_path, shared):
    """SQLite would create its database at the link's target, a path nobody chose."""
    (tmp_path / "root").mkdir(mode=0o700)
    target = tmp_path / "root" / "planted.db"
    as_nobody(os.symlink, str(target), str(shared / "q.db"))
    with pytest.raises(UnsafePathError, match="is a symbolic link") as err:
        Spool(str(shared / "q.db"), 100)
    assert str(shared / "q.db") in str(err.value) and "uid 65534 (nobody)" in str(err.value)
    assert not target.exists()


def test_a_symlinked_queue_directory_is_refused(tmp_path, shared):
    root_dir = tmp_path / "lib"
    root_dir.mkdir(mode=0o700)
    as_nobody(os.symlink, str(root_dir), str(shared / "syswarden"))
    with pytest.raises(UnsafePathError, match="symbolic link owned by uid 65534"):
        Spool(str(shared / "syswarden" / "q.db"), 100)
    assert list(root_dir.iterdir()) == []


def test_a_queue_directory_nobody_made_is_refused(shared):
    as_nobody(os.mkdir, str(shared / "syswarden"), 0o777)
    with pytest.raises(UnsafePathError, match="the directory belongs to uid 65534"):
        Spool(str(shared / "syswarden" / "q.db"), 100)
    assert list((shared / "syswarden").iterdir()) == []


def test_a_queue_in_a_shared_sticky_directory_is_refused(shared):
    """Even sticky: SQLite creates q.db-wal and q.db-shm by name, nobody could make them first."""
    with pytest.raises(UnsafePathError, match="the directory is writable by others"):
        Spool(str(shared / "q.db"), 100)
    assert list(shared.iterdir()) == []


# -- modes ----------------------------------------------------------------------------------------

def test_queue_0600_its_side_files_0600_and_new_directories_0700(tmp_path):
    path = tmp_path / "lib" / "syswarden" / "q.db"
    old = os.umask(0o022)
    try:
        spool = Spool(str(path), 100)
        spool.add_alerts([(make_alert(1), None)])
        assert mode_of(f"{path}-wal") == 0o600 and mode_of(f"{path}-shm") == 0o600
        spool.close()
    finally:
        os.umask(old)
    assert mode_of(path) == 0o600
    assert mode_of(tmp_path / "lib") == 0o700 and mode_of(tmp_path / "lib" / "syswarden") == 0o700


def test_a_configured_mode_reaches_the_side_files_and_the_directory(tmp_path):
    path = tmp_path / "q" / "q.db"
    spool = Spool(str(path), 100, mode=0o640)
    spool.add_alerts([(make_alert(1), None)])
    assert [mode_of(p) for p in (path, f"{path}-wal", f"{path}-shm")] == [0o640] * 3
    assert mode_of(tmp_path / "q") == 0o750
    spool.close()


def test_side_files_left_by_an_older_run_get_the_mode(tmp_path):
    path = str(tmp_path / "q.db")
    older = Spool(path, 100, mode=0o644)            # still open: its -wal and -shm stay
    older.add_alerts([(make_alert(1), None)])
    assert mode_of(path + "-wal") == 0o644
    spool = Spool(path, 100)
    assert [mode_of(p) for p in (path, path + "-wal", path + "-shm")] == [0o600] * 3
    assert spool.next_due(None).alert.output_fields["seq"] == 1
    spool.close()
    older.close()


def test_oldest_in_order_and_done_many(tmp_path):
    spool = Spool(str(tmp_path / "q.db"), 100)
    alerts = [make_alert(i) for i in range(6)]
    spool.add_alerts([(a, None) for a in alerts])
    first = spool.oldest(4)
    assert [j.alert.uuid for j in first] == [a.uuid for a in alerts[:4]]
    spool.done_many(first[:3])
    assert len(spool) == 3
    assert [j.alert.uuid for j in spool.oldest(10)] == [a.uuid for a in alerts[3:]]
