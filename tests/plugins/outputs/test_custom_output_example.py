"""The custom output example of docs/plugins.md, taken from the page itself, loaded the two ways
a user loads a plugin: by a path in the config and by an entry point of an installed
distribution; then run behind an OutputRunner like the agent runs it."""

from __future__ import annotations

import csv
import pathlib
import re
import textwrap

import pytest
import trio

from syswarden.core.alert import Priority
from syswarden.core.config import load_config, peek_plugin_keys
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.protocols import PluginContext
from syswarden.testing import DrivenOutput, make_alert

DOC = pathlib.Path(__file__).parents[3] / "docs" / "plugins.md"


def example_source() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [block] = [b for b in blocks if "def syswarden_make_outputs" in b]
    return block


def built_outputs(config_path: pathlib.Path):
    plugins = make_plugin_manager(peek_plugin_keys(str(config_path)))
    config = load_config(str(config_path), (), plugins.schemas())
    metrics = Metrics()
    record = next(r for r in plugins.records if "csv_output" in (r.module or "")
                  or r.name == "csv")
    outputs = [o for o in plugins.make("output", PluginContext(config, metrics,
                                                                plugins.fields()))
               if o.name == "csv"]
    return record, outputs, config, metrics


async def run_it(output, config, metrics, alerts) -> None:
    driven = DrivenOutput(output, config, metrics)
    async with trio.open_nursery() as nursery:
        await nursery.start(driven.run)
        driven.offer(alerts)
        await driven.stop()


def write_config(tmp_path, plugins_line: str) -> pathlib.Path:
    path = tmp_path / "config.yaml"
    path.write_text(textwrap.dedent(f"""
        {plugins_line}
        stdout_output: {{enabled: false}}
        csv_output:
          enabled: true
          filename: {tmp_path}/alerts.csv
          min_priority: warning
    """))
    return path


async def test_loaded_by_config_path(tmp_path):
    module = tmp_path / "csv_output.py"
    module.write_text(example_source())
    record, outputs, config, metrics = built_outputs(write_config(tmp_path,
                                                                  f"plugins: [{module}]"))
    assert record.origin == "config path" and record.name == "csv_output"
    [output] = outputs
    alerts = [make_alert(1, priority=Priority.ERROR), make_alert(2, priority=Priority.NOTICE)]
    await run_it(output, config, metrics, alerts)
    rows = list(csv.reader((tmp_path / "alerts.csv").open()))
    assert [r[1:4] for r in rows] == [["Error", alerts[0].rule, alerts[0].uuid]]
    assert metrics.get("outputs.csv.sent") == 1


@pytest.fixture
def installed_example(tmp_path, monkeypatch):
    """A real installed distribution: the module and its dist-info with the entry point."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "sw_csv_example.py").write_text(example_source())
    info = site / "sw_csv_example-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sw-csv-example\n"
                                   "Version: 0.1\n")
    (info / "entry_points.txt").write_text("[syswarden]\ncsv = sw_csv_example\n")
    (info / "RECORD").write_text("")
    monkeypatch.syspath_prepend(str(site))
    return site


async def test_loaded_by_entry_point(tmp_path, installed_example):
    record, outputs, config, metrics = built_outputs(write_config(tmp_path, ""))
    assert record.name == "csv" and record.origin == "entry point (sw-csv-example 0.1)"
    [output] = outputs
    alert = make_alert(5, priority=Priority.CRITICAL)
    await run_it(output, config, metrics, [alert])
    rows = list(csv.reader((tmp_path / "alerts.csv").open()))
    assert rows[0][1:4] == ["Critical", alert.rule, alert.uuid]
