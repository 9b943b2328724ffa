"""The replay source: batches from a capture file, malformed lines counted, end of file."""

from __future__ import annotations

import gzip
import json
import logging

import pytest
import trio

from syswarden.core.capture import CaptureError, CaptureWriter, header_record
from syswarden.core.event import Event, Process
from syswarden.core.metrics import Metrics
from syswarden.core.protocols import PluginContext
from syswarden.core.fields import FieldRegistry
from syswarden.plugins.sources import replay
from syswarden.plugins.sources.replay import ReplaySource


def _ctx(replay_file=None, batch_size=4) -> PluginContext:
    config = {"pipeline": {"batch_size": batch_size}}
    return PluginContext(config, Metrics(), FieldRegistry(), replay_file=replay_file)


def _write_capture(path, n: int) -> None:
    parent = Process(100, comm="bash", exe="bash", container_id="host")
    with CaptureWriter(str(path)) as w:
        for i in range(n):
            proc = Process(1000 + i, ppid=100, comm=f"p{i}", container_id="host")
            proc.parent = parent
            evt = Event("execve", ts=1_800_000_000_000_000_000 + i, tid=proc.pid, pid=proc.pid,
                        num=i + 1)
            evt.proc = proc
            w.write(evt)


async def _collect(source: ReplaySource) -> list[list[Event]]:
    send, recv = trio.open_memory_channel[list[Event]](2)
    batches: list[list[Event]] = []
    async with trio.open_nursery() as nursery:
        async def consume():
            async with recv:
                async for batch in recv:
                    batches.append(batch)
        async def produce(task_status=trio.TASK_STATUS_IGNORED):
            async with send:
                await source.run(send, task_status=task_status)
        nursery.start_soon(consume)
        await nursery.start(produce)
    return batches


def test_no_replay_file_no_source():
    assert replay.syswarden_make_sources(_ctx()) is None


async def test_replays_every_event_in_batches_and_returns_at_end_of_file(tmp_path):
    path = tmp_path / "cap.jsonl"
    _write_capture(path, 10)
    ctx = _ctx(str(path), batch_size=4)
    source = replay.syswarden_make_sources(ctx)
    assert isinstance(source, ReplaySource)
    batches = await _collect(source)
    assert [len(b) for b in batches] == [4, 4, 2]
    events = [e for b in batches for e in b]
    assert [e.num for e in events] == list(range(1, 11))
    assert [e.proc.comm for e in events] == [f"p{i}" for i in range(10)]
    # one parent object shared by all, as the process table would have it
    assert len({id(e.proc.parent) for e in events}) == 1
    assert ctx.metrics.get(replay.MALFORMED) == 0


async def test_malformed_lines_are_counted_logged_with_line_numbers_and_skipped(tmp_path, caplog):
    path = tmp_path / "cap.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(header_record()) + "\n")
        fh.write(json.dumps({"type": "openat", "fd": {"name": "/etc/passwd"}}) + "\n")
        fh.write("garbage\n")
        fh.write(json.dumps({"type": "openat", "proc": {"pid": "x"}}) + "\n")
        fh.write("\n")
        fh.write(json.dumps({"type": "execve"}) + "\n")
    # a line that is not UTF-8
    raw = gzip.decompress(path.read_bytes()) + b'{"type": "open", "fd": {"name": "\xff"}}\n'
    path.write_bytes(gzip.compress(raw))
    ctx = _ctx(str(path))
    caplog.set_level(logging.WARNING, "syswarden.replay")
    batches = await _collect(replay.syswarden_make_sources(ctx))
    assert [e.type for b in batches for e in b] == ["openat", "execve"]
    assert ctx.metrics.get(replay.MALFORMED) == 3
    assert ctx.metrics.drops() == {replay.MALFORMED: 3}
    for lineno in (3, 4, 7):
        assert f"cap.jsonl.gz:{lineno}: malformed capture line skipped" in caplog.text


def test_unreadable_file_fails_at_start_up(tmp_path):
    with pytest.raises(CaptureError, match="cannot read capture"):
        replay.syswarden_make_sources(_ctx(str(tmp_path / "none.jsonl")))


def test_newer_format_fails_at_start_up(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text("\n" + json.dumps({"syswarden_capture": 7}) + "\n")
    with pytest.raises(CaptureError, match="version 7"):
        replay.syswarden_make_sources(_ctx(str(path)))


async def test_cancelled_replay_stops_cleanly(tmp_path):
    path = tmp_path / "cap.jsonl"
    _write_capture(path, 50)
    source = replay.syswarden_make_sources(_ctx(str(path), batch_size=5))
    send, recv = trio.open_memory_channel[list[Event]](0)
    got = []
    async with trio.open_nursery() as nursery:
        async with send:
            await nursery.start(source.run, send)
            async with recv:
                got.append(await recv.receive())
                nursery.cancel_scope.cancel()
    assert len(got[0]) == 5 and source.sent < 50
