"""NATS JetStream: what the nats output and the fleet cost, on a real 3-node cluster on
127.0.0.1 (``nats-server`` from Debian, started and stopped here).

1. alerts/s one agent (the kit's counting source, the nats output) sustains into an R3 stream,
   each publish acknowledged: stream time of the last alert minus that of the first;
2. alert-to-stream latency, p50/p99: alerts offered to the nats output at a steady rate, each
   stamped when offered; until the output sees its ack (stored on a quorum of replicas), and
   until the stream leader's store timestamp;
3. fan-in: 50 simulated publishers (a connection each, pipelined acknowledged publishes with
   Nats-Msg-Id, as the output does) into the one stream: alerts/s together, and the stream
   holding each exactly once;
4. a rules push reaching 50 agents: 50 simulated agents polling the rules bucket as the rules
   watcher does (``poll_interval`` 1 s): seconds from the push to each seeing the revision,
   and the time to check a bundle of Falco's default rules as an agent does before it reloads.

    python bench/bench_nats.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))      # tests.helpers (the kit agent's config)

import nats  # noqa: E402
import trio  # noqa: E402

from syswarden.core.alert import Alert, Priority  # noqa: E402
from syswarden.core.config import default_rules_path  # noqa: E402
from syswarden.core.metrics import Metrics  # noqa: E402
from syswarden.core.plugins import collect_fields  # noqa: E402
from syswarden.plugins.fleet.rules_source import Bundle, check_bundle  # noqa: E402
from syswarden.plugins.outputs.nats.output import NatsOutput  # noqa: E402
from syswarden.testing import SYSWARDEN, DrivenOutput, base_config, nats_cluster  # noqa: E402
from tests.helpers.nats import kit_config  # noqa: E402

STREAM = "SYSWARDEN_ALERTS"


def pct(values: list[float], p: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(p / 100 * len(values)))]


async def _drop_stream(js) -> None:
    try:
        await js.delete_stream(STREAM)
    except Exception:
        pass


async def _ends(js) -> tuple[int, float]:
    info = await js.stream_info(STREAM)
    first = await js.get_msg(STREAM, info.state.first_seq)
    last = await js.get_msg(STREAM, info.state.last_seq)
    return info.state.messages, (last.time - first.time).total_seconds()


def throughput(cluster, tmp: str, n: int) -> tuple[float, int]:
    cluster.call(_drop_stream)
    import pathlib
    cfg = kit_config(pathlib.Path(tmp), "tp", cluster.urls, n, batch=200)
    proc = subprocess.Popen([*SYSWARDEN, "-c", cfg], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                count, _ = cluster.call(_ends)
            except Exception:
                count = 0
            if count >= n:
                break
            time.sleep(0.5)
        count, span = cluster.call(_ends)
    finally:
        proc.terminate()
        proc.wait(30)
    return count / span, count


async def _latency(urls: list[str], tmp: str, rate: float, seconds: float) -> list[float]:
    section = {"stream": STREAM, "subject_prefix": "syswarden", "replicas": 3,
               "create_stream": True, "max_age": 0.0, "duplicate_window": 120.0,
               "max_in_flight": 256, "retry_max": 1.0,
               "queue_file": os.path.join(tmp, "lat.sqlite3"), "queue_max": 1_000_000}
    config = base_config(nats={"servers": urls})
    acked: dict[str, int] = {}

    class Timed(NatsOutput):            # when the agent sees each alert acknowledged
        async def _publish(self, jobs):
            results = await super()._publish(jobs)
            now = time.time_ns()
            for job, r in zip(jobs, results):
                if r is True:
                    acked[job.alert.uuid] = now
            return results
    output = Timed(config, section, Metrics())
    driven = DrivenOutput(output, config)
    stamps: dict[str, int] = {}
    async with trio.open_nursery() as nursery:
        await nursery.start(driven.run)
        step = 1.0 / rate
        start = trio.current_time()
        for i in range(int(rate * seconds)):
            await trio.sleep_until(start + i * step)
            alert = Alert("bench", Priority.WARNING, f"alert {i}", time.time_ns(), {"i": i})
            stamps[alert.uuid] = alert.time_ns
            driven.offer([alert])
        await driven.stop(60)
    return [(acked[u] - t) / 1e9 for u, t in stamps.items() if u in acked]


def latency(cluster, tmp: str, rate: float, seconds: float) -> tuple[float, ...]:
    """p50, p99 of raised -> acknowledged (as the agent sees it), p50, p99 of raised -> stored
    by the stream's leader (its timestamp), and how many."""
    cluster.call(_drop_stream)
    to_ack = trio.run(_latency, cluster.urls, tmp, rate, seconds)
    to_store = [m.time.timestamp() - doc_time_ns(json.loads(m.data)) / 1e9
                for m in cluster.messages(STREAM)]
    return (pct(to_ack, 50) * 1000, pct(to_ack, 99) * 1000, pct(to_store, 50) * 1000,
            pct(to_store, 99) * 1000, len(to_ack))


def doc_time_ns(doc: dict) -> int:
    import calendar
    base, frac = doc["time"].rstrip("Z").split(".")
    return calendar.timegm(time.strptime(base, "%Y-%m-%dT%H:%M:%S")) * 10**9 + int(frac)


async def _fan_in(urls: list[str], publishers: int, each: int) -> float:
    async def publisher(p: int) -> None:
        nc = await nats.connect(servers=urls)
        js = nc.jetstream(timeout=10)
        for start in range(0, each, 64):
            await asyncio.gather(*(
                js.publish(f"syswarden.alerts.sim-{p}.warning",
                           json.dumps({"hostname": f"sim-{p}", "i": i}).encode(),
                           stream=STREAM, headers={"Nats-Msg-Id": str(uuid.uuid4())})
                for i in range(start, min(each, start + 64))))
        await nc.close()
    t0 = time.perf_counter()
    await asyncio.gather(*(publisher(p) for p in range(publishers)))
    return time.perf_counter() - t0


def fan_in(cluster, publishers: int, each: int) -> tuple[float, int]:
    async def create(js) -> None:
        await _drop_stream(js)
        await js.add_stream(name=STREAM, subjects=["syswarden.alerts.>"], num_replicas=3)
    cluster.call(create)
    took = asyncio.run(_fan_in(cluster.urls, publishers, each))

    async def count(js) -> int:
        return (await js.stream_info(STREAM)).state.messages
    return publishers * each / took, cluster.call(count)


async def _push(urls: list[str], agents: int, poll: float) -> list[float]:
    nc = await nats.connect(servers=urls)
    js = nc.jetstream()
    kv = await js.create_key_value(bucket="BENCH_RULES", history=5, replicas=3)
    await kv.put("rules", Bundle([("a.yaml", "[]")]).encode())
    seen: list[float] = []
    pushed_at: list[float] = []
    done = asyncio.Event()

    async def agent() -> None:
        c = await nats.connect(servers=urls)
        akv = await c.jetstream().key_value("BENCH_RULES")
        rev = (await akv.get("rules")).revision
        await asyncio.sleep(poll * os.urandom(1)[0] / 255)      # agents poll out of step
        while True:
            entry = await akv.get("rules")
            if entry.revision != rev:
                seen.append(time.monotonic() - pushed_at[0])
                break
            await asyncio.sleep(poll)
        await c.close()
        if len(seen) == agents:
            done.set()
    tasks = [asyncio.create_task(agent()) for _ in range(agents)]
    await asyncio.sleep(2 * poll)
    pushed_at.append(time.monotonic())
    await kv.put("rules", Bundle([("b.yaml", "[]")]).encode())
    await asyncio.wait_for(done.wait(), 60)
    await asyncio.gather(*tasks)
    await js.delete_key_value("BENCH_RULES")
    await nc.close()
    return seen


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="smaller counts")
    args = ap.parse_args()
    n = 5000 if args.quick else 30000
    with tempfile.TemporaryDirectory(prefix="bench-nats-") as tmp, nats_cluster(tmp) as cluster:
        rate, count = throughput(cluster, tmp, n)
        print(f"1. one agent into an R3 stream, acked: {rate:,.0f} alerts/s ({count} alerts)")
        a50, a99, s50, s99, count = latency(cluster, tmp, 500.0, 4.0 if args.quick else 10.0)
        print(f"2. alert-to-stream latency at 500 alerts/s ({count} alerts): to the ack "
              f"p50 {a50:.1f} ms, p99 {a99:.1f} ms; to the leader's store p50 {s50:.1f} ms, "
              f"p99 {s99:.1f} ms")
        each = 100 if args.quick else 400
        rate, count = fan_in(cluster, 50, each)
        print(f"3. fan-in, 50 publishers x {each}: {rate:,.0f} alerts/s together; the stream "
              f"holds {count} (expected {50 * each})")
        seen = asyncio.run(_push(cluster.urls, 50, 1.0))
        print(f"4. rules push to 50 agents polling every 1 s: p50 {statistics.median(seen):.2f}"
              f" s, last {max(seen):.2f} s")
        fields = collect_fields({})
        with open(default_rules_path(), encoding="utf-8") as f:
            bundle = Bundle([("default_rules.yaml", f.read())])
        t0 = time.perf_counter()
        check_bundle(bundle, fields)
        print(f"   + checking a bundle of the default rules before the reload: "
              f"{time.perf_counter() - t0:.2f} s")


if __name__ == "__main__":
    main()
