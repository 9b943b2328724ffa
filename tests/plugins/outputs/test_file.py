"""The file output: every alert appended; reopened after a logrotate rename."""

from __future__ import annotations

import json
import os

import trio

from syswarden.plugins.outputs import file as file_plugin
from syswarden.plugins.outputs.file import FileOutput

from .conftest import base_config, make_alert


async def test_every_alert_appended_as_text(tmp_path, drive, metrics):
    path = tmp_path / "events.txt"
    out = FileOutput(base_config(), {"filename": str(path)}, metrics)
    driven = await drive(out)
    alerts = [make_alert(i) for i in range(200)]
    driven.offer(alerts)
    await driven.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 200
    assert lines[0].endswith("Notice A shell was spawned in a container (seq=0 proc=bash)")
    assert metrics.get("outputs.file.sent") == 200


async def test_json_override_per_output(tmp_path, drive, metrics):
    path = tmp_path / "events.json"
    out = FileOutput(base_config(json_output=False), {"filename": str(path), "json_output": True},
                     metrics)
    driven = await drive(out)
    alert = make_alert(7)
    driven.offer([alert])
    await driven.stop()
    doc = json.loads(path.read_text())
    assert doc["rule"] == alert.rule and doc["uuid"] == alert.uuid
    assert doc["output_fields"]["seq"] == 7


async def test_min_priority_filters(tmp_path, drive, metrics):
    from syswarden.core.alert import Priority
    path = tmp_path / "events.txt"
    out = FileOutput(base_config(), {"filename": str(path), "min_priority": "warning"}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(1, priority=Priority.NOTICE), make_alert(2, priority=Priority.ERROR)])
    await driven.stop()
    lines = path.read_text().splitlines()
    assert len(lines) == 1 and "Error" in lines[0]


async def test_reopen_after_rename_keep_alive(tmp_path, drive, metrics):
    """logrotate: rename, then SIGHUP/SIGUSR1 -> reopen(): new alerts go to a new file."""
    path = tmp_path / "events.txt"
    out = FileOutput(base_config(), {"filename": str(path), "keep_alive": True}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(3)])
    while metrics.get("outputs.file.sent") < 3:
        await trio.sleep(0.01)
    os.rename(path, tmp_path / "events.txt.1")
    driven.offer([make_alert(3)])            # still the open file: lands in the rotated one
    while metrics.get("outputs.file.sent") < 4:
        await trio.sleep(0.01)
    out.reopen()
    driven.offer([make_alert(i) for i in range(4, 6)])
    await driven.stop()
    rotated = (tmp_path / "events.txt.1").read_text().splitlines()
    fresh = path.read_text().splitlines()
    assert [ln.split("seq=")[1][0] for ln in rotated] == ["0", "1", "2", "3"]
    assert [ln.split("seq=")[1][0] for ln in fresh] == ["4", "5"]


async def test_without_keep_alive_each_write_opens_the_path(tmp_path, drive, metrics):
    path = tmp_path / "events.txt"
    out = FileOutput(base_config(), {"filename": str(path)}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(0)])
    while metrics.get("outputs.file.sent") < 1:
        await trio.sleep(0.01)
    os.rename(path, tmp_path / "events.txt.1")
    driven.offer([make_alert(1)])
    await driven.stop()
    assert "seq=1" in path.read_text() and "seq=1" not in (tmp_path / "events.txt.1").read_text()


async def test_unwritable_file_counted_not_raised(tmp_path, drive, metrics):
    out = FileOutput(base_config(), {"filename": str(tmp_path / "no" / "such" / "dir")}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(5)])
    await driven.stop()
    assert metrics.get("outputs.file.failed") == 5


def test_seed_falco_yaml_sections_build_the_output(tmp_path):
    """file_output as the seed's falco.yaml writes it (enabled, filename) builds an output."""
    from syswarden.core.protocols import PluginContext
    from syswarden.core.metrics import Metrics
    config = base_config(file_output={"enabled": True, "filename": str(tmp_path / "x")})
    ctx = PluginContext(config=config, metrics=Metrics(), fields=None)
    out = file_plugin.syswarden_make_outputs(ctx)
    assert out.name == "file" and out.filename == str(tmp_path / "x")
    config["file_output"]["enabled"] = False
    assert file_plugin.syswarden_make_outputs(ctx) is None
