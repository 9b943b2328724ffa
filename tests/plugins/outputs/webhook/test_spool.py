"""The on-disk queue: order, bound, repeat notes folded, de-duplication windows, reopening."""

from __future__ import annotations

from syswarden.plugins.outputs.webhook.spool import Spool

from ..conftest import make_alert


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
