"""The webhook in the real agent (the ``syswarden`` command): killed with SIGKILL while alerts
wait for a receiver that is down, restarted with the receiver up: every alert is delivered.
A webhook taking 5 s per request beside the file output: the file gets every alert at once,
and a stop keeps the undelivered alerts on disk.

The events come from the agent tests' kit plugins (tests/core/plugin_kit.py: a counting source
and a filter alerting on each event); the output is the real webhook output from http_output.
"""

from __future__ import annotations

import json
import pathlib
import signal

import trio

from syswarden.testing import SYSWARDEN

from ..receivers import HttpReceiver
from .helpers import spooled

KIT = str(pathlib.Path(__file__).parents[3] / "core" / "plugin_kit.py")
NOT_KIT = ["ebpf", "replay", "process", "container", "rules", "stdout", "file", "syslog", "program"]


def write_config(tmp_path, url: str, count: int, **extra) -> str:
    rules = tmp_path / "kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    cfg = {
        "plugins": [KIT], "disabled_plugins": NOT_KIT,
        "kit": {"rules": str(rules), "output": str(tmp_path / "kit-out.txt"), "count": count,
                "batch": 10, "forever": True},
        "pipeline": {"stats_interval": 0, "shutdown_grace": 2},
        "http_output": {"enabled": True, "url": url, "queue_file": str(tmp_path / "q.sqlite3"),
                        "retry_initial": 0.1, "retry_max": 0.5},
    }
    cfg.update(extra)
    path = tmp_path / f"config-{count}.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


async def test_agent_sigkill_then_restart_delivers_every_alert(receiver, nursery, tmp_path):
    receiver.down()
    agent = await trio.lowlevel.open_process([*SYSWARDEN, "-c", write_config(tmp_path,
                                                                          receiver.url, 100)])
    try:
        with trio.fail_after(60):
            while spooled(tmp_path / "q.sqlite3") < 100:
                assert agent.poll() is None, "the agent exited"
                await trio.sleep(0.05)
        agent.send_signal(signal.SIGKILL)
        await agent.wait()
    finally:
        agent.kill()
    await receiver.up(nursery)
    agent = await trio.lowlevel.open_process([*SYSWARDEN, "-c", write_config(tmp_path,
                                                                          receiver.url, 0)])
    try:
        await receiver.wait_for(100, timeout=60)
        agent.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await agent.wait() == 0
    finally:
        agent.kill()
    nums = [r.json()["output_fields"]["evt.num"] for r in receiver.delivered]
    assert sorted(nums) == list(range(1, 101))
    assert len({r.json()["uuid"] for r in receiver.delivered}) == 100
    assert spooled(tmp_path / "q.sqlite3") == 0


async def test_slow_webhook_beside_the_file_output_in_the_agent(nursery, tmp_path):
    slow = HttpReceiver(mode="slow", delay=5.0)
    await nursery.start(slow.serve)
    events = tmp_path / "events.txt"
    config = write_config(tmp_path, slow.url, 200,
                          file_output={"enabled": True, "keep_alive": True,
                                       "filename": str(events)},
                          disabled_plugins=[p for p in NOT_KIT if p != "file"])
    agent = await trio.lowlevel.open_process([*SYSWARDEN, "-c", config])
    try:
        # one webhook request takes 5 s: had the file waited for it, 200 alerts would take
        # 1000 s; the deadline only has to be far below that
        with trio.fail_after(30):
            while not events.exists() or len(events.read_text().splitlines()) < 200:
                await trio.sleep(0.05)
        assert len(slow.delivered) <= 1
        agent.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            assert await agent.wait() == 0
    finally:
        agent.kill()
    assert spooled(tmp_path / "q.sqlite3") >= 190        # kept for the next start
