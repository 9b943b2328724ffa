"""What the webserver costs: serving /metrics while events stream, and start-up to ready.

(a) A capture of N realistic events (bench_rules.py's) is replayed through the whole pipeline,
pinned to one CPU, as fast as it goes (the replay waits for the pipeline: nothing is dropped,
so its rate is the highest sustained rate with zero drops): without the webserver, then with
the webserver and metrics on and a client on the other CPU fetching /metrics every second, and
every 0.1 s (ten times what a Prometheus scraping every second asks).  Prints the rates, the
cost of one scrape in the agent (the rate lost, over the scrapes served) and the scrape's
latency as the client sees it.

(a') The CPU one /metrics costs the agent, measured in the process: a real agent (default rules,
a file output) judges the same events, then its /metrics text is rendered 500 times
(``time.process_time``, median), as the app renders it for each scrape.

(b) The live agent's start-up to its readiness line with the webserver on, and where it goes
(the phases bench_startup.py prints, the webserver's included).

    .venv/bin/python bench/bench_webserver.py [--events N] [--rounds R] [--quick]
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench_rules  # noqa: E402  (the event builder)
import bench_startup  # noqa: E402
import httpx  # noqa: E402
from harness import machine, median  # noqa: E402

from syswarden.core.capture import CaptureWriter  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def replay(capture: str, out: str, every: float | None) -> tuple[float, list[float], int]:
    """Seconds from ready to exit; the scrape latencies (s); the size of the last /metrics."""
    port = free_port()
    cmd = ["taskset", "-c", "0", sys.executable, "-m", "syswarden.core.cli", "-e", capture,
           "-o", "stdout_output.enabled=false", "-o", "file_output.enabled=true",
           "-o", f"file_output.filename={out}", "-o", "json_output=true",
           "-o", "pipeline.stats_interval=0"]
    if every is not None:
        cmd += ["-o", "webserver.enabled=true", "-o", "webserver.listen_address=127.0.0.1",
                "-o", f"webserver.listen_port={port}",
                "-o", "webserver.prometheus_metrics_enabled=true", "-o", "metrics.enabled=true"]
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    ready = threading.Event()
    latencies: list[float] = []
    size = [0]
    lines: list[str] = []

    def scrape() -> None:
        os.sched_setaffinity(0, {1 % os.cpu_count()})
        ready.wait()
        with httpx.Client() as client:
            while proc.poll() is None:
                t0 = time.perf_counter()
                try:
                    body = client.get(f"http://127.0.0.1:{port}/metrics", timeout=5).content
                except httpx.HTTPError:
                    break
                latencies.append(time.perf_counter() - t0)
                size[0] = len(body)
                time.sleep(max(0.0, every - (time.perf_counter() - t0)))

    scraper = threading.Thread(target=scrape, daemon=True)
    if every is not None:
        scraper.start()
    start = None
    for line in proc.stderr:
        lines.append(line)
        if start is None and "syswarden ready" in line:
            start = time.perf_counter()
            ready.set()
    proc.wait()
    end = time.perf_counter()
    if proc.returncode != 0 or start is None:
        raise SystemExit(f"replay failed ({proc.returncode}):\n{''.join(lines[-20:])}")
    if every is not None:
        scraper.join(10)
    return end - start, latencies, size[0]


def render_cost(events: list) -> tuple[float, int, int]:
    """(ms of CPU per render, bytes, families) of a real agent's /metrics after ``events``."""
    import trio
    from prometheus_client import CollectorRegistry, generate_latest

    from syswarden.core.exposition import Figures, FiguresCollector
    from syswarden.testing import ListSource, make_agent
    with tempfile.TemporaryDirectory() as tmp:
        agent = make_agent(tmp, ListSource(events), builtins=("rules", "file"),
                           config={"file_output": {"enabled": True,
                                                   "filename": os.path.join(tmp, "a.json")},
                                   "pipeline": {"stats_interval": 0}})
        trio.run(agent.run)
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FiguresCollector(Figures(agent, {})))
        times = []
        for _ in range(500):
            t0 = time.process_time()
            body = generate_latest(registry)
            times.append(time.process_time() - t0)
    text = body.decode()
    return median(times) * 1000, len(body), text.count("# TYPE")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=300_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--quick", action="store_true", help="100,000 events, 1 round")
    args = ap.parse_args()
    if args.quick:
        args.events, args.rounds = 100_000, 1
    print(machine())
    events = bench_rules.make_events(args.events)
    with tempfile.TemporaryDirectory() as tmp:
        capture = os.path.join(tmp, "bench.jsonl")
        with CaptureWriter(capture) as writer:
            writer.write_batch(events)
        out = os.path.join(tmp, "alerts.json")
        print(f"(a) {len(events):,} events replayed on one CPU, default rules, "
              f"median of {args.rounds}")
        base = median(replay(capture, out, None)[0] for _ in range(args.rounds))
        print(f"    {'no webserver':<34} {len(events) / base:>9,.0f} events/s")
        for every in (1.0, 0.1):
            runs = [replay(capture, out, every) for _ in range(args.rounds)]
            secs = median(r[0] for r in runs)
            lat = sorted(x for r in runs for x in r[1])
            scrapes = median(len(r[1]) for r in runs)
            cost_ms = (secs - base) / max(1, scrapes) * 1000
            print(f"    {f'/metrics every {every:g} s':<34} {len(events) / secs:>9,.0f} events/s "
                  f"({(base / secs - 1) * 100:+.1f} % events/s; {scrapes:.0f} scrapes, "
                  f"{cost_ms:+.1f} ms of the run each; latency median "
                  f"{median(lat) * 1000:.1f} ms, max {lat[-1] * 1000:.1f} ms; "
                  f"{runs[-1][2]:,} bytes)")
    render_ms, size, families = render_cost(events)
    print(f"(a') one /metrics rendered in the agent: {render_ms:.2f} ms of CPU (median of 500), "
          f"{size:,} bytes, {families} families, after {len(events):,} events")
    print(f"(b) live agent, launch to ready with the webserver on, median of {args.rounds}")
    web = ("-o", "webserver.enabled=true", "-o", "webserver.listen_address=127.0.0.1",
           "-o", f"webserver.listen_port={free_port()}",
           "-o", "webserver.prometheus_metrics_enabled=true", "-o", "metrics.enabled=true")
    bench_startup.launch([], web)            # a warm machine first, not counted
    runs = [bench_startup.launch([], web) for _ in range(args.rounds)]
    print(f"    {'total':<34} {median(r['total'] for r in runs):.3f} s")
    for label, key in bench_startup.PHASES:
        print(f"    {label:<34} {median(r.get(key, 0.0) for r in runs):.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
