"""Decoding hostile capture lines: one short-form line with a 1 MB command line, before/after.

Before: the short form split ``cmdline`` with :func:`shlex.split`, which grows a word one
character at a time (quadratic in the word's length); after: :mod:`syswarden.core.shellwords`.
Prints, for command lines of growing size (one long word, the worst case, and many short
words), the time :func:`shlex.split` takes and the time the decoder now takes for the whole
line (JSON parse included), then the reader's throughput on an ordinary capture (plain and
.gz), so that the cost of the hardening shows.  Prints figures; asserts nothing.

    .venv/bin/python bench/bench_capture_decode.py [--max-mb 1] [--events N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench_rules  # noqa: E402  (the event builder)

from syswarden.core.capture import CaptureWriter, Decoder, read_capture  # noqa: E402


def _best(fn, repeat: int = 3) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def _decode_line(line: str) -> None:
    Decoder().decode(json.loads(line))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--max-mb", type=float, default=1.0, help="largest command line, in MB")
    ap.add_argument("--events", type=int, default=50_000, help="events of the ordinary capture")
    args = ap.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"Python {platform.python_version()}")
    print(f"{'command line':<28} {'shlex.split (before)':>22} {'decode line (after)':>22}")
    size = 128 << 10
    while size <= args.max_mb * (1 << 20):
        for label, text in (("one word", "/bin/x " + "A" * size),
                            ("words of 3", "/bin/x " + "ab " * (size // 3))):
            line = json.dumps({"type": "execve", "proc": {"cmdline": text}})
            before = _best(lambda: shlex.split(text), repeat=1)
            after = _best(lambda: _decode_line(line))
            print(f"{size >> 10:>6} KB, {label:<18} {before:>20.3f}s {after * 1000:>19.1f}ms")
        size *= 2
    events = bench_rules.make_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("cap.jsonl", "cap.jsonl.gz"):
            path = os.path.join(tmp, name)
            with CaptureWriter(path) as w:
                w.write_batch(events)
            secs = _best(lambda: sum(1 for _ in read_capture(path)), repeat=2)
            print(f"reading {name:<14} {len(events) / secs:>10,.0f} events/s "
                  f"({os.path.getsize(path) / len(events):.0f} bytes/event on disk)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
