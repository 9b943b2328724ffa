"""The stdout output: Falco's text (or JSON) lines on standard output."""

from __future__ import annotations

import json

import pytest

from syswarden.core.protocols import PluginContext
from syswarden.plugins.outputs import stdout as stdout_plugin
from syswarden.testing import base_config, make_alert


async def test_text_lines_on_stdout(capsys, drive, metrics):
    ctx = PluginContext(config=base_config(stdout_output={"enabled": True}), metrics=metrics,
                        fields=None)
    out = stdout_plugin.syswarden_make_outputs(ctx)
    driven = await drive(out)
    driven.offer([make_alert(i) for i in range(3)])
    await driven.stop()
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 3
    assert lines[2].split(": ", 1)[1] == "Notice A shell was spawned in a container (seq=2 " \
                                         "proc=bash)"


async def test_json_from_global_config(capsys, drive, metrics):
    ctx = PluginContext(config=base_config(json_output=True, stdout_output={"enabled": True}),
                        metrics=metrics, fields=None)
    out = stdout_plugin.syswarden_make_outputs(ctx)
    driven = await drive(out)
    alert = make_alert(1)
    driven.offer([alert])
    await driven.stop()
    doc = json.loads(capsys.readouterr().out)
    assert (doc["rule"], doc["priority"], doc["uuid"]) == (alert.rule, "Notice", alert.uuid)


def test_disabled_gives_none(metrics):
    ctx = PluginContext(config=base_config(stdout_output={"enabled": False}), metrics=metrics,
                        fields=None)
    assert stdout_plugin.syswarden_make_outputs(ctx) is None


async def test_a_stdout_nobody_reads_stalls_no_other_output(tmp_path, drive, metrics):
    """stdout piped into a reader that stopped reading: the write blocks, in its own thread;
    the file output beside it still gets every alert.  (A timer drains the pipe after 20 s so
    a regression fails instead of hanging.)"""
    import os
    import threading

    from syswarden.plugins.outputs.file import FileOutput
    from syswarden.plugins.outputs.stdout import StdoutOutput

    r, w = os.pipe()
    stream = os.fdopen(w, "w")
    drained = threading.Event()

    def drain():
        drained.set()
        while os.read(r, 65536):
            pass

    timer = threading.Timer(20, drain)
    timer.start()
    try:
        config = base_config(pipeline={"output_queue": 5000, "shutdown_grace": 1})
        stuck = await drive(StdoutOutput(config, {}, metrics, stream=stream), config)
        path = tmp_path / "events.txt"
        other = await drive(FileOutput(config, {"filename": str(path)}, metrics), config)
        alerts = [make_alert(i) for i in range(3000)]       # ~300 kB: far over a pipe's 64 kB
        for a in alerts:
            stuck.runner.offer(a)
            other.runner.offer(a)
        await other.stop()
        assert len(path.read_text().splitlines()) == 3000
        assert not drained.is_set()
        assert metrics.get("outputs.stdout.sent") < 3000     # it is indeed stuck
    finally:
        timer.cancel()
        if not drained.is_set():
            threading.Thread(target=drain, daemon=True).start()
        stuck.runner.close()


def exit_counters(log: str) -> dict[str, int]:
    """The agent's ``counters at exit:`` line as a dict."""
    line = [ln for ln in log.splitlines() if "counters at exit:" in ln][-1]
    pairs = (kv.rpartition("=") for kv in line.split("counters at exit: ", 1)[1].split())
    return {k: int(v) for k, _, v in pairs if v.isdigit()}


#: output case -> (its section, its config (None: stdout, a pipe nobody reads), whether some
#: alerts go out before it stalls, alerts raised)
STALLED = {
    "stdout": ("stdout_output", None, True, 3000),
    "program-keep-alive": ("program_output", {"enabled": True, "keep_alive": True,
                                              "program": "sleep 600"}, True, 3000),
    "program-each": ("program_output", {"enabled": True, "program": "sleep 600"}, False, 3000),
    # a receiver that accepts and never reads: enough to fill both ends' socket buffers
    "syslog-tcp": ("syslog_output", {"enabled": True, "address": "tcp://127.0.0.1:{port}"},
                   True, 20_000),
}


@pytest.mark.parametrize("case", list(STALLED))
async def test_a_stalled_output_at_stop_every_alert_is_written_or_counted(tmp_path, case):
    """The real agent, an output stalled (its stdout a pipe nobody reads; a program that never
    reads its stdin or never exits; a syslog receiver that stopped reading), stopped: the batch
    in hand when the grace ran out is counted as dropped like the rest of the queue, so
    written + dropped is every alert."""
    import os
    import pathlib
    import signal
    import socket
    import subprocess
    import sys

    import trio

    kit = str(pathlib.Path(__file__).parents[2] / "core" / "plugin_kit.py")
    rules = tmp_path / "kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    recorded = tmp_path / "kit-out.txt"
    config = tmp_path / "config.yaml"
    section, output, some_out, count = STALLED[case]
    name = section.removesuffix("_output")
    receiver = socket.create_server(("127.0.0.1", 0))        # never accepted, never read
    if output is not None and "address" in output:
        output = {**output, "address": output["address"].format(port=receiver.getsockname()[1])}
    others = {"stdout", "program", "syslog"} - {name}
    config.write_text(json.dumps({
        "plugins": [kit],
        "disabled_plugins": ["ebpf", "replay", "process", "container", "rules", "file", *others],
        "kit": {"rules": str(rules), "output": str(recorded), "count": count, "batch": 10,
                "forever": True},
        **({} if output is None else {section: output}),
        "pipeline": {"stats_interval": 0, "shutdown_grace": 1, "output_queue": count}}))
    r, w = os.pipe()                 # nobody reads r: ~64 kB fit, the rest blocks the writer
    log = tmp_path / "agent.log"
    with open(log, "w") as err:
        agent = subprocess.Popen([sys.executable, "-m", "syswarden.core.cli", "-c", str(config)],
                                 stdout=w, stderr=err)
    os.close(w)
    try:
        with trio.fail_after(60):    # every alert raised: the kit's own output has them all
            while not recorded.exists() or len(recorded.read_text().splitlines()) < count:
                assert agent.poll() is None, log.read_text()
                await trio.sleep(0.05)
        agent.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            while agent.poll() is None:
                await trio.sleep(0.05)
    finally:
        agent.kill()
        agent.wait()
        os.close(r)
        receiver.close()
    assert agent.returncode == 0, log.read_text()
    counters = exit_counters(log.read_text())
    assert counters["alerts.total"] == count
    sent = counters.get(f"outputs.{name}.sent", 0)
    dropped = counters.get(f"outputs.{name}.dropped", 0)
    assert (sent > 0) == some_out and sent < count and dropped > 0  # it was indeed stalled
    assert sent + dropped + counters.get(f"outputs.{name}.failed", 0) == count, log.read_text()
