"""The webhook output against a real HTTP receiver on 127.0.0.1: faults, crashes, isolation."""

from __future__ import annotations

import json
import logging
import os
import signal
import sys

import pytest
import trio

from syswarden.core.errors import ConfigError, UnsafePathError
from syswarden.plugins.outputs.file import FileOutput
from syswarden.plugins.outputs.webhook import WebhookOutput
from syswarden.testing import base_config, make_alert
from tests.helpers.users import as_nobody, shared_dir

from ..receivers import HttpReceiver
from .helpers import hook, spooled

CHILD = os.path.join(os.path.dirname(__file__), "spool_child.py")


async def test_falco_json_body_with_stable_id(receiver, drive, metrics, tmp_path):
    """One request at a time (max_in_flight: 1): in order, each once."""
    out = WebhookOutput(base_config(), hook(receiver.url, tmp_path, max_in_flight=1), metrics)
    driven = await drive(out)
    alerts = [make_alert(i) for i in range(20)]
    driven.offer(alerts)
    await receiver.wait_for(20)
    await driven.stop()
    first = receiver.delivered[0]
    doc = first.json()
    assert first.method == "POST" and first.path == "/"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["user-agent"] == "syswarden"
    assert set(doc) >= {"hostname", "output", "output_fields", "priority", "rule", "source",
                        "tags", "time", "uuid"}
    assert receiver.uuids() == [a.uuid for a in alerts]          # in order, each once
    assert [r.json()["uuid"] for r in receiver.delivered] == [a.uuid for a in alerts]
    assert metrics.get("outputs.hook.sent") == 20
    assert out.pending() == 0 and metrics.snapshot()["outputs.hook.spooled"] == 0


@pytest.mark.parametrize("fault", ["fail", "close", "hang", "busy"])
async def test_retried_through_faults(receiver, drive, metrics, tmp_path, fault):
    """500s, connections closed unanswered, hangs (timeout), 429: retried until delivered."""
    receiver.mode = fault
    out = WebhookOutput(base_config(), hook(receiver.url, tmp_path, timeout=0.5), metrics)
    driven = await drive(out)
    alerts = [make_alert(i) for i in range(5)]
    driven.offer(alerts)
    with trio.fail_after(30):
        while len(receiver.seen) < 2:
            await trio.sleep(0.02)
    assert receiver.delivered == []
    receiver.mode = "ok"
    await receiver.wait_for(5)
    await driven.stop()
    assert set(receiver.uuids()) == {a.uuid for a in alerts}
    assert metrics.get("outputs.hook.retries") >= 1


async def test_4xx_not_retried_and_logged_with_body(receiver, drive, metrics, tmp_path, caplog):
    receiver.mode = "reject"
    out = WebhookOutput(base_config(), hook(receiver.url, tmp_path), metrics)
    driven = await drive(out)
    with caplog.at_level(logging.ERROR, logger="syswarden.outputs.webhook"):
        driven.offer([make_alert(i) for i in range(3)])
        await driven.stop()
    assert len(receiver.seen) == 3                       # one attempt each
    assert metrics.get("outputs.hook.rejected.dropped") == 3
    assert "HTTP 400" in caplog.text and "bad alert format" in caplog.text
    assert metrics.get("outputs.hook.retries") == 0


@pytest.mark.slow
async def test_receiver_down_30s_then_up_every_alert_delivered(receiver, drive, metrics,
                                                                tmp_path, nursery):
    receiver.down()
    out = WebhookOutput(base_config(), hook(receiver.url, tmp_path, retry_max=2.0,
                                            max_in_flight=1), metrics)
    driven = await drive(out)
    alerts = [make_alert(i) for i in range(100)]
    for a in alerts[:50]:
        driven.offer([a])
    await trio.sleep(15)
    for a in alerts[50:]:
        driven.offer([a])
    await trio.sleep(15)
    assert receiver.seen == [] and out.pending() == 100
    assert metrics.snapshot()["outputs.hook.spooled"] == 100
    await receiver.up(nursery)
    await receiver.wait_for(100, timeout=30)
    await driven.stop()
    assert receiver.uuids() == [a.uuid for a in alerts]
    assert metrics.get("outputs.hook.retries") > 5


async def test_sigkill_while_waiting_then_restart_delivers_all(receiver, nursery, tmp_path):
    receiver.down()
    queue = tmp_path / "crash.sqlite3"
    child = await trio.lowlevel.open_process([sys.executable, CHILD, str(queue), receiver.url,
                                              "0", "100"])
    try:
        with trio.fail_after(30):
            while spooled(queue) < 100:
                await trio.sleep(0.05)
        child.send_signal(signal.SIGKILL)
        await child.wait()
    finally:
        child.kill()
    assert spooled(queue) == 100
    await receiver.up(nursery)
    child = await trio.lowlevel.open_process([sys.executable, CHILD, str(queue), receiver.url,
                                              "100", "10"])
    try:
        await receiver.wait_for(110, timeout=30)
    finally:
        child.kill()
        await child.wait()
    assert sorted(receiver.uuids()) == sorted(f"crash-{i}" for i in range(110))
    assert receiver.uuids()[:100] == [f"crash-{i}" for i in range(100)]   # old ones first


async def test_graceful_stop_keeps_the_rest_for_the_next_start(receiver, drive, metrics,
                                                                tmp_path, nursery):
    receiver.down()
    config = base_config(pipeline={"output_queue": 1000, "shutdown_grace": 0.5})
    section = hook(receiver.url, tmp_path, max_in_flight=1)        # in order
    driven = await drive(WebhookOutput(config, section, metrics), config)
    alerts = [make_alert(i) for i in range(7)]
    driven.offer(alerts)
    with trio.fail_after(5):
        await driven.stop()                    # returns after the grace period
    assert spooled(section["queue_file"]) == 7
    await receiver.up(nursery)
    driven = await drive(WebhookOutput(config, section, metrics), config)
    await receiver.wait_for(7)
    await driven.stop()
    assert receiver.uuids() == [a.uuid for a in alerts]


async def test_full_spool_drops_oldest_counted(receiver, drive, metrics, tmp_path, nursery):
    receiver.down()
    config = base_config(pipeline={"output_queue": 1000, "shutdown_grace": 0.2})
    section = hook(receiver.url, tmp_path, queue_max=10, max_in_flight=1)     # in order
    driven = await drive(WebhookOutput(config, section, metrics), config)
    alerts = [make_alert(i) for i in range(25)]
    for a in alerts:
        driven.offer([a])
        await trio.sleep(0)
    await driven.stop()
    assert metrics.get("outputs.hook.disk_full.dropped") == 15
    await receiver.up(nursery)
    driven = await drive(WebhookOutput(config, section, metrics), config)
    await receiver.wait_for(10)
    await driven.stop()
    assert receiver.uuids() == [a.uuid for a in alerts[15:]]


async def test_slow_webhook_does_not_delay_the_file_output(nursery, drive, metrics, tmp_path):
    slow = HttpReceiver(mode="slow", delay=5.0)
    await nursery.start(slow.serve)
    config = base_config()
    webhook = await drive(WebhookOutput(config, hook(slow.url, tmp_path, timeout=30), metrics),
                          config)
    path = tmp_path / "events.txt"
    file_out = await drive(FileOutput(config, {"filename": str(path)}, metrics), config)
    alerts = [make_alert(i) for i in range(50)]
    with trio.fail_after(3):        # each webhook request takes 5 s: the file must not wait
        for a in alerts:
            webhook.runner.offer(a)
            file_out.runner.offer(a)
        while not path.exists() or len(path.read_text().splitlines()) < 50:
            await trio.sleep(0.01)
    assert len(slow.delivered) == 0
    await file_out.stop()
    slow.down()
    webhook.runner.close()


async def test_compressed_uploads_and_env_headers(receiver, drive, metrics, tmp_path,
                                                  monkeypatch):
    monkeypatch.setenv("SW_TEST_TOKEN", "s3cret")
    monkeypatch.setenv("SW_TEST_PORT", str(receiver.port))
    section = hook("http://127.0.0.1:${SW_TEST_PORT}", tmp_path, compress_uploads=True,
                   headers={"Authorization": "Bearer ${SW_TEST_TOKEN}", "X-Static": "v"})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    alert = make_alert()
    driven.offer([alert])
    await receiver.wait_for(1)
    await driven.stop()
    got = receiver.delivered[0]
    assert got.headers["content-encoding"] == "gzip"
    assert got.headers["authorization"] == "Bearer s3cret" and got.headers["x-static"] == "v"
    assert got.json()["uuid"] == alert.uuid               # decompressed by the receiver


def test_unset_env_is_a_config_error(tmp_path, metrics):
    section = hook("http://127.0.0.1:1", tmp_path, headers={"X": "${SW_SURELY_UNSET_VAR}"})
    with pytest.raises(ConfigError, match="SW_SURELY_UNSET_VAR"):
        WebhookOutput(base_config(), section, metrics)


def test_bad_url_is_a_config_error(tmp_path, metrics):
    with pytest.raises(ConfigError, match="url must start with http"):
        WebhookOutput(base_config(), hook("127.0.0.1:80", tmp_path), metrics)


def test_a_bad_queue_mode_is_a_config_error(tmp_path, metrics):
    with pytest.raises(ConfigError, match="webhook 'hook' queue_mode must be an octal file mode"):
        WebhookOutput(base_config(), hook("http://127.0.0.1:1", tmp_path, queue_mode="0606"),
                      metrics)


async def test_queue_mode_reaches_the_queue(receiver, drive, metrics, tmp_path):
    section = hook(receiver.url, tmp_path, queue_mode="0640")
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    driven.offer([make_alert(0)])
    await driven.stop()
    assert os.stat(section["queue_file"]).st_mode & 0o7777 == 0o640


async def test_a_queue_file_nobody_linked_stops_the_output(receiver, drive, metrics, tmp_path):
    target = tmp_path / "planted.db"
    with shared_dir() as shared:
        as_nobody(os.symlink, str(target), str(shared / "q.db"))
        section = hook(receiver.url, tmp_path, queue_file=str(shared / "q.db"))
        with pytest.raises(UnsafePathError, match="is a symbolic link"):
            await drive(WebhookOutput(base_config(), section, metrics))
    assert not target.exists()


async def test_dedup_window_folds_repeats(receiver, drive, metrics, tmp_path):
    section = hook(receiver.url, tmp_path, dedup_window=60, key_fields=["proc.name"])
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    driven.offer([make_alert(i) for i in range(10)])                     # same proc.name
    driven.offer([make_alert(99, **{"proc.name": "sh"})])                # another key
    await driven.stop()
    assert len(receiver.delivered) == 2
    assert metrics.get("outputs.hook.deduplicated") == 9


async def test_text_body_when_json_output_false(receiver, drive, metrics, tmp_path):
    driven = await drive(WebhookOutput(base_config(), hook(receiver.url, tmp_path,
                                                           json_output=False), metrics))
    driven.offer([make_alert(3)])
    await receiver.wait_for(1)
    await driven.stop()
    got = receiver.delivered[0]
    assert got.headers["content-type"] == "text/plain"
    assert got.body.decode().endswith("Notice A shell was spawned in a container (seq=3 proc=bash)")
    with pytest.raises(json.JSONDecodeError):
        got.json()


async def test_echo_prints_the_answer(receiver, drive, metrics, tmp_path, capsys):
    driven = await drive(WebhookOutput(base_config(), hook(receiver.url, tmp_path, echo=True),
                                       metrics))
    driven.offer([make_alert()])
    await receiver.wait_for(1)
    await driven.stop()
    assert capsys.readouterr().out == '{"ok": true}\n'


async def test_unwritable_queue_file_is_an_output_error(tmp_path, metrics):
    from syswarden.core.errors import OutputError
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    out = WebhookOutput(base_config(), hook("http://127.0.0.1:9", tmp_path,
                                            queue_file=str(blocker / "q.sqlite3")), metrics)
    send, receive = trio.open_memory_channel(1)
    with pytest.raises(OutputError, match="cannot open its queue"):
        await out.run(receive)
