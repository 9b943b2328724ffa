"""Replay throughput: a capture file through the whole pipeline, on one core.

Writes a capture of N realistic mixed events (the events of bench_rules.py: opens, execs,
connects, renames, closes; host and containers) with the capture writer, then runs
``syswarden -e CAPTURE`` in a subprocess pinned to one CPU (replay source -> process and Docker
enrichers -> rules -> file output) with (a) the default rules and (b) Falco's three rule files,
and prints events/s of the whole run (start-up excluded: measured from the readiness line to
exit).  The rule engine alone is measured by bench_rules.py; the difference is what decoding
the JSON lines and the stages cost.  Prints figures; asserts nothing.

    .venv/bin/python bench/bench_replay.py [--events N]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(__file__))
import bench_rules  # noqa: E402  (the event builder)

from syswarden.core.capture import CaptureWriter  # noqa: E402


def replay(capture: str, rules: list[str], out: str) -> tuple[float, str]:
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "syswarden.core.cli", "-e", capture,
           "-o", "stdout_output.enabled=false", "-o", "file_output.enabled=true",
           "-o", f"file_output.filename={out}", "-o", "json_output=true",
           "-o", "pipeline.stats_interval=0"]
    for r in rules:
        cmd += ["-r", r]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    ready = None
    lines = []
    for line in proc.stderr:
        lines.append(line)
        if ready is None and "syswarden ready" in line:
            ready = time.perf_counter()
    proc.wait()
    end = time.perf_counter()
    summary = next((ln for ln in reversed(lines) if "counters at exit" in ln), "").strip()
    if proc.returncode != 0 or ready is None:
        raise SystemExit(f"replay failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    return end - ready, summary


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    events = bench_rules.make_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        capture = os.path.join(tmp, "bench.jsonl")
        t0 = time.perf_counter()
        with CaptureWriter(capture) as writer:
            writer.write_batch(events)
        size = os.path.getsize(capture)
        print(f"{len(events):,} events written in {time.perf_counter() - t0:.1f}s "
              f"({size / len(events):.0f} bytes/event)")
        sets = [("(a) default rules", [])]
        if all(os.path.exists(f) for f in bench_rules.FALCO_FILES):
            sets.append(("(b) Falco stable+incubating+sandbox", bench_rules.FALCO_FILES))
        for label, rules in sets:
            secs, summary = replay(capture, rules, os.path.join(tmp, "alerts.json"))
            alerts = summary.split("alerts.total=")[1].split()[0] if "alerts.total=" in summary \
                else "0"
            print(f"{label:<40} {len(events) / secs:>10,.0f} events/s through the pipeline "
                  f"({secs:.1f}s, {alerts} alerts)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
