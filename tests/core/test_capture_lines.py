"""Reading a damaged capture: every complete line before the damage is delivered, then the
damage is raised with the line it cut; a clean .gz (several members, zero padding) reads whole.

The damage is real: a ``.gz`` cut in the middle, and one with bytes overwritten.  What is
readable before the damage is measured independently of the reader under test: by zlib
decompressing only the bytes before the damaged offset.
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from syswarden.core.capture import CaptureDamaged, CaptureWriter, read_capture
from syswarden.core.capture.lines import open_lines, read_lines
from syswarden.core.event import Event, Process


def _capture(path, n: int = 3000) -> bytes:
    """A plain capture of ``n`` varied events (so that it does not compress to nothing)."""
    with CaptureWriter(str(path)) as w:
        for i in range(n):
            proc = Process(1000 + i, comm=f"p{i * 7919 % 10007}", args=[str(i * i)],
                           container_id="host")
            evt = Event("openat", ts=1_800_000_000_000_000_000 + i * 977, tid=proc.pid,
                        pid=proc.pid, num=i + 1, args={"name": f"/tmp/{i * 31337 % 99991}"})
            evt.proc = proc
            w.write(evt)
    return path.read_bytes()


def _lines_before(compressed_prefix: bytes) -> int:
    """Complete lines in what zlib makes of the bytes before the damage."""
    return zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(compressed_prefix).count(b"\n")


def _read(path) -> tuple[list[Event], CaptureDamaged | None]:
    events: list[Event] = []
    try:
        for evt in read_capture(str(path)):
            events.append(evt)
    except CaptureDamaged as exc:
        return events, exc
    return events, None


def test_a_truncated_gz_delivers_every_complete_line_before_the_cut(tmp_path):
    packed = gzip.compress(_capture(tmp_path / "cap.jsonl"))
    cut = len(packed) // 2
    damaged = tmp_path / "cut.jsonl.gz"
    damaged.write_bytes(packed[:cut])
    complete = _lines_before(packed[:cut])   # the header is one of them
    assert 100 < complete < 3000
    events, damage = _read(damaged)
    assert [e.num for e in events] == list(range(1, complete))
    assert damage is not None and "truncated" in damage.message
    assert damage.location.file == str(damaged) and damage.location.line == complete + 1


def test_a_corrupt_gz_delivers_every_complete_line_before_the_corrupt_bytes(tmp_path):
    packed = gzip.compress(_capture(tmp_path / "cap.jsonl"))
    at = len(packed) // 2
    damaged = tmp_path / "corrupt.jsonl.gz"
    damaged.write_bytes(packed[:at] + b"\xff" * 64 + packed[at + 64:])
    complete = _lines_before(packed[:at])
    events, damage = _read(damaged)
    # what the first corrupt bits still decode to may complete a line or two more
    assert len(events) >= complete - 1
    assert [e.num for e in events] == list(range(1, len(events) + 1))
    assert damage is not None and "corrupt" in damage.message
    assert damage.location.line == len(events) + 2


def test_several_members_and_zero_padding_read_like_gzip_does(tmp_path):
    one = b"".join(json.dumps({"type": "open", "num": i}).encode() + b"\n" for i in range(1, 4))
    two = b"".join(json.dumps({"type": "close", "num": i}).encode() + b"\n"
                   for i in range(4, 6))
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(gzip.compress(one) + gzip.compress(two) + b"\0" * 1024)
    events, damage = _read(path)
    assert damage is None
    assert [e.num for e in events] == [1, 2, 3, 4, 5]
    with gzip.open(path) as fh:
        assert fh.read() == one + two


@pytest.mark.parametrize("content", [b"", gzip.compress(b"")])
def test_an_empty_file_has_no_lines(tmp_path, content):
    path = tmp_path / "empty.jsonl.gz"
    path.write_bytes(content)
    with open_lines(str(path)) as fh:
        assert list(read_lines(fh, lambda n, m: None)) == []


def test_a_gz_that_is_not_gzip_is_damage_at_its_first_line(tmp_path):
    path = tmp_path / "plain.jsonl.gz"
    path.write_text('{"type": "open"}\n')
    events, damage = _read(path)
    assert events == [] and damage is not None and damage.location.line == 1
