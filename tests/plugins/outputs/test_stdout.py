"""The stdout output: Falco's text (or JSON) lines on standard output."""

from __future__ import annotations

import json

from syswarden.core.protocols import PluginContext
from syswarden.plugins.outputs import stdout as stdout_plugin

from .conftest import base_config, make_alert


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
