"""The file output: every alert appended; reopened after a logrotate rename."""

from __future__ import annotations

import json
import os

import pytest
import trio

from syswarden.core.errors import ConfigError, UnsafePathError
from syswarden.plugins.outputs import file as file_plugin
from syswarden.plugins.outputs.file import FileOutput
from syswarden.testing import base_config, make_alert
from tests.helpers.users import as_nobody, root_secret, shared_fixture, unchanged  # noqa: F401


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


# -- what another user plants at the path (a real user: nobody, in a sticky dir like /tmp) ------

async def wait_count(metrics, name: str, n: int) -> None:
    with trio.fail_after(10):
        while metrics.get(name) < n:
            await trio.sleep(0.01)


async def test_a_symlink_nobody_planted_stops_the_output_at_start(tmp_path, shared, drive,
                                                                  metrics):
    secret = root_secret(tmp_path / "shadow")
    as_nobody(os.symlink, str(secret), str(shared / "events.txt"))
    out = FileOutput(base_config(), {"filename": str(shared / "events.txt")}, metrics)
    with pytest.raises(UnsafePathError) as err:
        driven = await drive(out)
        driven.offer([make_alert(0)])
        await driven.stop()
    assert "symbolic link (owned by uid 65534 (nobody)" in str(err.value)
    assert unchanged(secret)


async def test_a_symlink_planted_before_a_reopen_is_refused_and_counted(
        tmp_path, shared, drive, metrics, caplog):
    """logrotate renamed the file; before SIGUSR1 reopens it, nobody plants a link there."""
    path = shared / "events.txt"
    secret = root_secret(tmp_path / "shadow")
    out = FileOutput(base_config(), {"filename": str(path), "keep_alive": True}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(0)])
    await wait_count(metrics, "outputs.file.sent", 1)
    os.rename(path, shared / "events.txt.1")
    as_nobody(os.symlink, str(secret), str(path))
    out.reopen()
    driven.offer([make_alert(1), make_alert(2)])
    await wait_count(metrics, "outputs.file.failed", 2)
    await driven.stop()
    assert unchanged(secret)
    assert metrics.get("outputs.file.sent") == 1
    assert f"cannot write {path}" in caplog.text and "symbolic link" in caplog.text


async def test_a_hardlink_nobody_planted_is_refused(shared, drive, metrics):
    secret = root_secret(shared / "root-notes", 0o666)     # linkable by nobody while 0666
    as_nobody(os.link, str(secret), str(shared / "events.txt"))
    os.chmod(secret, 0o600)
    out = FileOutput(base_config(), {"filename": str(shared / "events.txt")}, metrics)
    with pytest.raises(UnsafePathError, match="hard links"):
        driven = await drive(out)
        driven.offer([make_alert(0)])
        await driven.stop()
    assert unchanged(secret)


async def test_a_fifo_nobody_planted_and_reads_gets_no_alert(shared, drive, metrics):
    fifo = shared / "events.txt"
    as_nobody(os.mkfifo, str(fifo), 0o666)
    reader = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)        # the thief's end
    try:
        out = FileOutput(base_config(), {"filename": str(fifo)}, metrics)
        with pytest.raises(UnsafePathError, match="is a FIFO, not a regular file"):
            driven = await drive(out)
            driven.offer([make_alert(0)])
            await driven.stop()
        try:
            stolen = os.read(reader, 4096)
        except BlockingIOError:
            stolen = b""
        assert stolen == b""
    finally:
        os.close(reader)


# -- modes ----------------------------------------------------------------------------------------

async def test_the_file_is_created_0600(tmp_path, drive, metrics):
    path = tmp_path / "events.txt"
    driven = await drive(FileOutput(base_config(), {"filename": str(path)}, metrics))
    driven.offer([make_alert(0)])
    await driven.stop()
    assert path.stat().st_mode & 0o7777 == 0o600 and path.read_text()


@pytest.mark.parametrize("mode", ["0640", 0o640])
async def test_a_configured_mode_is_honoured(tmp_path, drive, metrics, mode):
    path = tmp_path / "events.txt"
    path.write_text("")
    os.chmod(path, 0o644)                                  # an older version's file
    out = FileOutput(base_config(), {"filename": str(path), "mode": mode}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(0)])
    await driven.stop()
    assert path.stat().st_mode & 0o7777 == 0o640


def test_a_bad_mode_is_a_config_error(tmp_path, metrics):
    with pytest.raises(ConfigError, match="file_output.mode must be an octal file mode"):
        FileOutput(base_config(), {"filename": str(tmp_path / "x"), "mode": "0666"}, metrics)
