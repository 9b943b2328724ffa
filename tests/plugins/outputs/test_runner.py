"""core/outputs.py, what every output shares: threshold, token bucket, bounded queue, counters.
(Here beside the outputs it serves; its mirror place would be tests/core/test_outputs.py.)"""

from __future__ import annotations

import trio

from syswarden.core.alert import Priority
from syswarden.core.outputs import (AlertFormatter, OutputRunner, OutputSettings, TokenBucket,
                                    batches)
from syswarden.core.protocols import Output
from syswarden.testing import base_config, make_alert


class Parked(Output):
    """An output that never reads its queue (a receiver that hangs), to fill the queue."""

    name = "parked"
    settings = OutputSettings(queue_size=3)

    async def run(self, alerts, *, task_status=trio.TASK_STATUS_IGNORED):
        task_status.started()


def test_full_queue_drops_and_counts(metrics):
    runner = OutputRunner.for_output(Parked(), base_config(), metrics)
    for i in range(10):
        runner.offer(make_alert(i))
    assert runner.pending() == 3
    assert metrics.get("outputs.parked.queued") == 3
    assert metrics.get("outputs.parked.dropped") == 7


def test_token_bucket_suppresses_and_counts(metrics):
    output = Parked()
    output.settings = OutputSettings(queue_size=100, rate=1.0, max_burst=4)
    runner = OutputRunner.for_output(output, base_config(), metrics)
    for i in range(10):
        runner.offer(make_alert(i))
    assert metrics.get("outputs.parked.queued") == 4
    assert metrics.get("outputs.parked.suppressed") == 6


def test_global_rate_and_priority_apply_when_the_output_has_none(metrics):
    config = base_config(priority="warning", outputs={"rate": 0.001, "max_burst": 2})
    runner = OutputRunner.for_output(Parked(), config, metrics)
    runner.offer(make_alert(0, priority=Priority.NOTICE))          # below the threshold
    for i in range(3):
        runner.offer(make_alert(i, priority=Priority.ERROR))
    assert metrics.get("outputs.parked.queued") == 2
    assert metrics.get("outputs.parked.suppressed") == 1


def test_token_bucket_refills_at_the_rate():
    now = [0.0]
    bucket = TokenBucket(2.0, 2, clock=lambda: now[0])
    assert [bucket.take() for _ in range(3)] == [True, True, False]
    now[0] = 0.5                                      # one token back after 0.5 s at 2/s
    assert [bucket.take(), bucket.take()] == [True, False]
    assert TokenBucket(0, 1).take() and TokenBucket(0, 1).take()   # rate 0: unlimited


async def test_batches_take_what_is_queued_then_end():
    send, receive = trio.open_memory_channel(100)
    for i in range(5):
        send.send_nowait(i)
    send.close()
    got = [b async for b in batches(receive, limit=2)]
    assert got == [[0, 1], [2, 3], [4]]


def test_formatter_override():
    config = base_config(json_output=True)
    assert AlertFormatter.from_config(config, {"json_output": False}).json_output is False
    assert AlertFormatter.from_config(config, {"json_output": None}).json_output is True
    assert AlertFormatter.from_config(config).json_output is True
