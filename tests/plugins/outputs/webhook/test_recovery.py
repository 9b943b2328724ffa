"""A receiver that answers 500 for a while, then 200: while it fails the webhook probes with one
alert at a time; once it answers, the spool drains at full speed (several requests at once,
each alert sent once, no backoff between them)."""

from __future__ import annotations

import trio

from syswarden.plugins.outputs.webhook import WebhookOutput
from syswarden.testing import base_config, make_alert

from .helpers import hook


async def test_a_recovered_receiver_gets_the_spool_at_full_speed(receiver, drive, metrics,
                                                                 tmp_path):
    receiver.mode = "fail"
    out = WebhookOutput(base_config(), hook(receiver.url, tmp_path), metrics)
    driven = await drive(out)
    alerts = [make_alert(i) for i in range(200)]
    driven.offer(alerts)
    with trio.fail_after(30):
        while out.pending() < 200 or len(receiver.seen) < 5:
            await trio.sleep(0.01)
        receiver.max_concurrent = 0                     # from here on, the receiver failed
        while len(receiver.seen) < 10:
            await trio.sleep(0.01)
    assert receiver.max_concurrent == 1                 # failing: one probe at a time
    failed = len(receiver.seen)
    retries = metrics.get("outputs.hook.retries")
    receiver.mode, receiver.delay = "slow", 0.02        # answers again, 20 ms per request
    await receiver.wait_for(200)
    await driven.stop()
    assert sorted(receiver.uuids()) == sorted(a.uuid for a in alerts)
    assert len(receiver.seen) - failed <= 200           # each alert sent once after recovery
    assert metrics.get("outputs.hook.retries") - retries <= 1   # the probe in flight, at most
    assert receiver.max_concurrent == 4                 # max_in_flight requests at once
    assert metrics.get("outputs.hook.sent") == 200 and out.pending() == 0
