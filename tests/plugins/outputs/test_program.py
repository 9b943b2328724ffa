"""The program output: a real shell command fed alerts on stdin, per alert or kept alive."""

from __future__ import annotations

import os
import signal

import pytest
import trio

from syswarden.core.errors import ConfigError
from syswarden.plugins.outputs.program import ProgramOutput
from syswarden.testing import base_config, make_alert


def _children(pid: int) -> list[int]:
    out = []
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/children") as fh:
            out += [int(p) for p in fh.read().split()]
    return out


async def _lines(path, n: int, timeout: float = 10) -> list[str]:
    with trio.fail_after(timeout):
        while True:
            lines = path.read_text().splitlines() if path.exists() else []
            if len(lines) >= n:
                return lines
            await trio.sleep(0.02)


async def test_keep_alive_gets_every_alert_and_is_restarted(tmp_path, drive, metrics):
    sink = tmp_path / "sink.txt"
    out = ProgramOutput(base_config(), {"program": f"cat >> {sink}", "keep_alive": True},
                        metrics)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(50)])
    await _lines(sink, 50)
    first_pid = out.pid
    assert first_pid is not None
    # the consumer dies (its shell follows): the next alert finds it dead and restarts it
    for child in _children(first_pid):
        os.kill(child, signal.SIGKILL)
    with trio.fail_after(10):
        while out._proc.poll() is None:
            await trio.sleep(0.02)
    driven.offer([make_alert(i) for i in range(50, 100)])
    lines = await _lines(sink, 100)
    await driven.stop()
    assert sorted(int(ln.split("seq=")[1].split(" ")[0]) for ln in lines) == list(range(100))
    assert metrics.get("outputs.program.restarts") == 1
    assert metrics.get("outputs.program.sent") == 100


async def test_keep_alive_reopen_starts_a_new_process(tmp_path, drive, metrics):
    sink = tmp_path / "sink.txt"
    out = ProgramOutput(base_config(), {"program": f"echo start >> {sink}; cat >> {sink}",
                                        "keep_alive": True}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(0)])
    await _lines(sink, 2)
    out.reopen()
    driven.offer([make_alert(1)])
    await driven.stop()
    lines = sink.read_text().splitlines()
    assert [ln for ln in lines if ln == "start"] == ["start", "start"]
    assert metrics.get("outputs.program.restarts") == 0


async def test_one_process_per_alert_without_keep_alive(tmp_path, drive, metrics):
    sink = tmp_path / "sink.txt"
    out = ProgramOutput(base_config(json_output=True),
                        {"program": f"(echo begin; cat) >> {sink}"}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(5)])
    await driven.stop()
    lines = sink.read_text().splitlines()
    assert lines.count("begin") == 5
    assert sum(1 for ln in lines if ln.startswith("{")) == 5


async def test_failing_program_counted(tmp_path, drive, metrics):
    out = ProgramOutput(base_config(), {"program": "cat > /dev/null; exit 3"}, metrics)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(3)])
    await driven.stop()
    assert metrics.get("outputs.program.failed") == 3


def test_empty_program_is_a_config_error(metrics):
    with pytest.raises(ConfigError, match="program_output.program"):
        ProgramOutput(base_config(), {"program": "  "}, metrics)
