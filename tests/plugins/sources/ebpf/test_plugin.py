"""The ebpf plugin's hooks and its clear failures (no root, no bcc)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from syswarden.core.errors import SourceError
from syswarden.core.metrics import Metrics
from syswarden.core.protocols import PluginContext, Source
from syswarden.plugins.sources import ebpf as plugin
from syswarden.plugins.sources.ebpf.source import DropMonitor
from tests.helpers.ebpf import needs_root


def config():
    return {name: section.defaults() for name, section in plugin.syswarden_config_schema().items()}


def test_schema_defaults_and_validation():
    cfg = config()
    assert cfg["ebpf"]["evt_ring_pages"] == 2048
    assert cfg["syscall_event_drops"]["actions"] == ["log", "alert"]
    assert plugin.syswarden_validate_config(cfg) is None
    cfg["syscall_event_drops"]["actions"] = ["log", "explode"]
    errors = plugin.syswarden_validate_config(cfg)
    assert any("explode" in e for e in errors)
    schema = plugin.syswarden_config_schema()["ebpf"]
    assert all(schema.keys[k].min == 1 for k in ("evt_ring_pages", "poll_ms"))
    # the bounds the program is rendered with (program.render_program clamps to them)
    assert (schema.keys["path_max"].min, schema.keys["path_max"].max) == (64, 4096)
    assert (schema.keys["argv_max"].min, schema.keys["argv_max"].max) == (256, 4096)


def test_no_live_source_when_replaying():
    ctx = PluginContext(config(), Metrics(), None, replay_file="capture.jsonl")
    assert plugin.syswarden_make_sources(ctx) is None


@needs_root
def test_live_source_is_built_with_the_event_types_and_agent_pid():
    ctx = PluginContext(config(), Metrics(), None, event_types={"openat"}, agent_pid=1234)
    src = plugin.syswarden_make_sources(ctx)
    assert isinstance(src, Source)
    assert src.event_types == {"openat"} and src.agent_pid == 1234      # the loader's to write


def test_without_root_one_clear_message():
    if os.geteuid() != 0:
        with pytest.raises(SourceError, match="needs root"):
            plugin.syswarden_make_sources(PluginContext(config(), Metrics(), None))
        return
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # a real unprivileged process
        try:
            os.setgid(65534)
            os.setuid(65534)
            from syswarden.plugins.sources.ebpf.source import check_environment
            try:
                check_environment()
                os.write(write, b"no error")
            except SourceError as exc:
                os.write(write, str(exc).encode())
        finally:
            os._exit(0)
    os.close(write)
    os.waitpid(pid, 0)
    with os.fdopen(read) as f:
        message = f.read()
    assert "needs root" in message and "hint:" in message and "Traceback" not in message


def test_bcc_missing_is_reported_with_what_to_run():
    # a fake, named so: bcc cannot be uninstalled for a test, so its import is made to fail
    code = ("import sys; sys.modules['bcc'] = None\n"
            "from syswarden.plugins.sources.ebpf.source import require_bcc\n"
            "try:\n    require_bcc()\nexcept Exception as e:\n    print(type(e).__name__, e)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    assert out.startswith("SourceError") and "bcc" in out and "make setup" in out


def test_drop_monitor_threshold_actions_and_rate_limit(caplog):
    alerts = []
    mon = DropMonitor({"threshold": 0.1, "actions": ["log", "alert"], "rate": 0.0,
                       "max_burst": 2}, lambda msg, detail: alerts.append((msg, detail)))
    assert mon.check(1000, {"events": 50}) is False          # 5 %: under the threshold
    assert mon.check(1000, {"events": 500}) is True
    assert mon.check(1000, {"events": 500}) is True
    assert mon.check(1000, {"events": 500}) is False         # burst used, rate 0: limited
    assert len(alerts) == 2 and "500 system calls dropped" in alerts[0][0]
    assert alerts[0][1]["n_drops_events"] == 500
    assert "syscall event drop" in caplog.text
    quiet = DropMonitor({"threshold": 0.0, "actions": ["ignore"]}, lambda *a: alerts.append(a))
    assert quiet.check(10, {"proc": 1}) is True and len(alerts) == 2
    sim = DropMonitor({"simulate_drops": True, "actions": []}, None)
    assert sim.check(0, {}) is True
