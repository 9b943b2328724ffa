"""The webhook with its spool on a full disk (a real 256 kB tmpfs, filled): alerts the spool
cannot take are delivered from memory while the receiver answers; with the receiver down too,
what cannot be delivered is counted as dropped, and the exit log says exactly what happened."""

from __future__ import annotations

import errno
import logging
import re
import subprocess

import pytest
import trio

from syswarden.plugins.outputs.webhook import WebhookOutput
from syswarden.testing import base_config, make_alert

from .helpers import hook, spooled

LOGGER = "syswarden.outputs.webhook"


@pytest.fixture
def tiny_fs(tmp_path):
    """A 256 kB tmpfs mounted for the test, unmounted after."""
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(mnt)],
                   check=True)          # 0700: the spool refuses a directory others can write
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=True)


def fill(directory) -> None:
    """Write a file until the file system says it is full."""
    with open(directory / "filler", "wb", buffering=0) as fh:
        try:
            while True:
                fh.write(b"\0" * 4096)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC


async def test_a_full_disk_with_the_receiver_up_delivers_every_alert(receiver, drive, metrics,
                                                                    tiny_fs, caplog):
    out = WebhookOutput(base_config(), hook(receiver.url, tiny_fs), metrics)
    driven = await drive(out)
    fill(tiny_fs)
    alerts = [make_alert(i) for i in range(50)]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for a in alerts:
            driven.offer([a])
            await trio.sleep(0)                # many batches, many failed writes
        await receiver.wait_for(50)
        await driven.stop()
    assert "held in memory" in caplog.text          # the disk was indeed full
    assert sorted(receiver.uuids()) == sorted(a.uuid for a in alerts)
    assert metrics.get("outputs.hook.sent") == 50
    assert metrics.drops() == {}
    assert "kept in" not in caplog.text and out.pending() == 0


async def test_a_full_disk_with_the_receiver_down_counts_and_tells_what_is_lost(
        receiver, drive, metrics, tiny_fs, caplog):
    receiver.down()
    config = base_config(pipeline={"output_queue": 1000, "shutdown_grace": 0.5})
    section = hook(receiver.url, tiny_fs)
    driven = await drive(WebhookOutput(config, section, metrics), config)
    driven.offer([make_alert(i) for i in range(5)])
    with trio.fail_after(10):
        while spooled(section["queue_file"]) < 5:
            await trio.sleep(0.01)
    fill(tiny_fs)
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for i in range(5, 35):
            driven.offer([make_alert(i)])
            await trio.sleep(0)
        await driven.stop()
    kept = spooled(section["queue_file"])
    dropped = metrics.get("outputs.hook.spool_error.dropped")
    assert metrics.get("outputs.hook.sent") == 0
    assert dropped > 0 and kept + dropped == 35
    assert re.search(rf"\b{dropped} alerts could be neither delivered nor written", caplog.text)
    kept_lines = re.findall(r"(\d+) alerts not delivered yet, kept in", caplog.text)
    assert kept_lines == ([str(kept)] if kept else []), caplog.text


async def test_room_again_before_the_stop_keeps_the_held_alerts_on_disk(receiver, drive, metrics,
                                                                       tiny_fs, caplog):
    receiver.down()
    config = base_config(pipeline={"output_queue": 1000, "shutdown_grace": 0.5})
    section = hook(receiver.url, tiny_fs)
    driven = await drive(WebhookOutput(config, section, metrics), config)
    fill(tiny_fs)
    alerts = [make_alert(i) for i in range(20)]
    with caplog.at_level(logging.INFO, logger=LOGGER):
        for a in alerts:
            driven.offer([a])
            await trio.sleep(0)
        (tiny_fs / "filler").unlink()
        await driven.stop()
    assert "held in memory" in caplog.text
    assert metrics.drops() == {}
    assert spooled(section["queue_file"]) == 20
    assert re.search(r"\b20 alerts not delivered yet, kept in", caplog.text)
