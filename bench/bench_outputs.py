"""Output figures: how fast alerts leave, and what a slow webhook costs the other outputs.

  (a) file output: alerts per second through an OutputRunner (offer -> queue -> file);
  (b) webhook intake with the receiver down: alerts per second written to the disk queue
      (SQLite WAL), i.e. how fast a burst is made crash-safe;
  (c) webhook delivery to a local HTTP receiver (keep-alive, one request per alert);
  (d) isolation: 1000 alerts offered to a file output and to a webhook whose receiver takes
      5 s per request: the time until the file has all of them, and the time the offers took;
  (e) recovery: 2,000 alerts spooled while the receiver answers 500, then it answers 200: the
      time until all are delivered, one request at a time (max_in_flight 1) and at the default
      (4), with an instant receiver and one taking 10 ms per request (a remote receiver).

Receivers are real (trio HTTP server on 127.0.0.1, the one the tests use).  Prints figures;
asserts nothing.

    .venv/bin/python bench/bench_outputs.py [--alerts N]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

import trio

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests", "plugins"))

from outputs.receivers import HttpReceiver  # noqa: E402  (the tests' receiver)

from syswarden.core.alert import Alert, Priority  # noqa: E402
from syswarden.core.metrics import Metrics  # noqa: E402
from syswarden.core.outputs import OutputRunner  # noqa: E402
from syswarden.plugins.outputs.file import FileOutput  # noqa: E402
from syswarden.plugins.outputs.webhook import WebhookOutput, webhook_section  # noqa: E402

CONFIG = {"json_output": False, "priority": "debug", "outputs": {"rate": 0, "max_burst": 1},
          "pipeline": {"output_queue": 200_000, "shutdown_grace": 60.0}}


def alerts(n: int) -> list[Alert]:
    now = time.time_ns()
    return [Alert("Bench rule", Priority.WARNING, f"bench alert {i} proc=bash", now + i,
                  {"proc.name": "bash", "container.id": "4f1a2b3c4d5e", "seq": i})
            for i in range(n)]


def webhook(url: str, directory: str, **over) -> WebhookOutput:
    section = webhook_section(True).defaults()
    section.update(name="bench", url=url, queue_file=os.path.join(directory, "q.sqlite3"),
                   retry_initial=0.05, retry_max=0.2, timeout=30)
    section.update(over)
    return WebhookOutput(CONFIG, section, Metrics())


async def until(predicate, poll: float = 0.005) -> None:
    while not predicate():
        await trio.sleep(poll)


async def bench_file(n: int, directory: str) -> None:
    path = os.path.join(directory, "events.txt")
    metrics = Metrics()
    runner = OutputRunner.for_output(FileOutput(CONFIG, {"filename": path}, metrics), CONFIG,
                                     metrics)
    batch = alerts(n)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        t0 = time.perf_counter()
        for a in batch:
            runner.offer(a)
        runner.close()
    dt = time.perf_counter() - t0
    print(f"(a) file output: {n} alerts in {dt:.3f} s = {n / dt:,.0f} alerts/s")


async def bench_spool(n: int, directory: str) -> None:
    out = webhook("http://127.0.0.1:9", directory)         # nothing listens: all stay queued
    runner = OutputRunner.for_output(out, CONFIG, Metrics())
    batch = alerts(n)
    async with trio.open_nursery() as nursery:
        await nursery.start(runner.run)
        t0 = time.perf_counter()
        for a in batch:
            runner.offer(a)
        await until(lambda: out.pending() >= n)
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    print(f"(b) webhook intake to the disk queue: {n} alerts in {dt:.3f} s = "
          f"{n / dt:,.0f} alerts/s")


async def bench_delivery(n: int, directory: str) -> None:
    receiver = HttpReceiver()
    batch = alerts(n)
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)               # on a port the kernel picks
        out = webhook(receiver.url, directory)
        runner = OutputRunner.for_output(out, CONFIG, Metrics())
        await nursery.start(runner.run)
        t0 = time.perf_counter()
        for a in batch:
            runner.offer(a)
        await receiver.wait_for(n, timeout=600)
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    print(f"(c) webhook delivery, one request per alert: {n} alerts in {dt:.3f} s = "
          f"{n / dt:,.0f} alerts/s")


async def bench_isolation(directory: str) -> None:
    n = 1000
    slow = HttpReceiver(mode="slow", delay=5.0)
    path = os.path.join(directory, "iso.txt")
    metrics = Metrics()
    file_runner = OutputRunner.for_output(FileOutput(CONFIG, {"filename": path}, metrics),
                                          CONFIG, metrics)
    batch = alerts(n)
    async with trio.open_nursery() as nursery:
        await nursery.start(slow.serve)
        hook_runner = OutputRunner.for_output(webhook(slow.url, directory), CONFIG, Metrics())
        await nursery.start(file_runner.run)
        await nursery.start(hook_runner.run)
        t0 = time.perf_counter()
        for a in batch:
            hook_runner.offer(a)
            file_runner.offer(a)
        offered = time.perf_counter() - t0
        await until(lambda: metrics.get("outputs.file.sent") >= n)
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    print(f"(d) with a 5 s-per-request webhook beside it: {n} alerts offered to both in "
          f"{offered * 1000:.1f} ms; the file output had all of them after {dt * 1000:.1f} ms")


async def bench_recovery(directory: str, in_flight: int, delay: float) -> None:
    n = 2000
    receiver = HttpReceiver(mode="fail")
    async with trio.open_nursery() as nursery:
        await nursery.start(receiver.serve)
        out = webhook(receiver.url, directory, max_in_flight=in_flight)
        runner = OutputRunner.for_output(out, CONFIG, Metrics())
        await nursery.start(runner.run)
        for a in alerts(n):
            runner.offer(a)
        await until(lambda: out.pending() >= n and len(receiver.seen) >= 5)
        t0 = time.perf_counter()
        receiver.mode, receiver.delay = ("slow", delay) if delay else ("ok", 0.0)
        await receiver.wait_for(n, timeout=600)
        dt = time.perf_counter() - t0
        nursery.cancel_scope.cancel()
    print(f"(e) recovery, receiver {delay * 1000:.0f} ms per request, max_in_flight "
          f"{in_flight}: {n} spooled alerts drained in {dt:.2f} s = {n / dt:,.0f} alerts/s")


async def main(n: int) -> None:
    for bench in (bench_file, bench_spool, bench_delivery):
        with tempfile.TemporaryDirectory() as directory:
            await bench(n, directory)
    with tempfile.TemporaryDirectory() as directory:
        await bench_isolation(directory)
    for delay in (0.0, 0.01):
        for in_flight in (1, 4):
            with tempfile.TemporaryDirectory() as directory:
                await bench_recovery(directory, in_flight, delay)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--alerts", type=int, default=20_000)
    args = parser.parse_args()
    trio.run(main, args.alerts)
