"""The command line: flags, exit codes, messages without tracebacks."""

from __future__ import annotations

import gzip
import json
import pathlib
import signal
import subprocess
import time

import pytest

from syswarden.core.plugins import BUILTIN_PLUGINS
from syswarden.testing import SYSWARDEN as CLI

KIT_PATH = str(pathlib.Path(__file__).with_name("plugin_kit.py"))


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def kit_config(tmp_path, **kit) -> str:
    rules = tmp_path / "kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    cfg = {"plugins": [KIT_PATH], "disabled_plugins": [n for n, _, _ in BUILTIN_PLUGINS],
           "kit": {"rules": str(rules), "output": str(tmp_path / "alerts.txt"), **kit},
           "pipeline": {"stats_interval": 0}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_version():
    out = run("--version")
    assert out.returncode == 0 and out.stdout.startswith("syswarden ")


def test_an_unknown_flag_is_a_usage_error():
    out = run("--no-such-flag")
    assert out.returncode == 2 and "unrecognized arguments" in out.stderr


def test_a_mistyped_config_key_gets_a_located_error_and_no_traceback(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("json_output: true\nstdout_ouput:\n  enabled: true\n")
    out = run("-c", str(path), "--dry-run")
    assert out.returncode == 2
    assert f"{path}:2:1 (stdout_ouput): unknown config key 'stdout_ouput'" in out.stderr
    assert "did you mean stdout_output?" in out.stderr
    assert "Traceback" not in out.stderr


def test_a_bad_override_is_a_usage_error():
    out = run("-o", "json_output=perhaps", "--dry-run")
    assert out.returncode == 2 and "json_output must be a boolean" in out.stderr


def test_list_fields_prints_every_declared_field():
    out = run("--list-fields")
    assert out.returncode == 0
    assert any(line.startswith("proc.name ") for line in out.stdout.splitlines())
    assert out.stdout.rstrip().endswith("fields")


def test_run_for_a_while_with_M_announces_ready_and_exits_zero(tmp_path):
    out = run("-c", kit_config(tmp_path, count=10, forever=True), "-M", "0.5")
    assert out.returncode == 0, out.stderr
    assert "syswarden ready" in out.stderr
    assert (tmp_path / "alerts.txt").read_text().split() == [str(i) for i in range(1, 11)]


def start_until_ready(*args: str) -> subprocess.Popen:
    """The agent started with ``args``, once it has logged ``syswarden ready``."""
    proc = subprocess.Popen([*CLI, *args], stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    line = "-"
    while line and "syswarden ready" not in line and time.monotonic() < deadline:
        line = proc.stderr.readline()   # "" at the end: the agent exited
    if "syswarden ready" not in line:
        proc.kill()
        proc.wait()
        pytest.fail("the agent did not get ready")
    return proc


def test_sigterm_stops_the_agent_with_exit_code_zero(tmp_path):
    proc = start_until_ready("-c", kit_config(tmp_path, count=5, forever=True))
    try:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        proc.kill()
        proc.wait()


def test_a_crash_while_running_exits_one_with_a_clear_message(tmp_path):
    out = run("-c", kit_config(tmp_path, count=3, crash=True))
    assert out.returncode == 1
    assert "source 'kit-source' failed: RuntimeError: the kit source broke on purpose" \
        in out.stderr


def test_no_source_at_all_is_an_environment_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("disabled_plugins: [ebpf, replay]\n")
    out = run("-c", str(path), "--dry-run")
    assert out.returncode == 3 and "no event source is enabled" in out.stderr


def test_dry_run_starts_nothing(tmp_path):
    out = run("-c", kit_config(tmp_path, count=3), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "dry run ok" in out.stdout
    assert not (tmp_path / "alerts.txt").exists()


@pytest.mark.parametrize("sub", ["test-rules", "capture"])
def test_subcommands_have_their_own_help(sub):
    out = run(sub, "--help")
    assert out.returncode == 0 and f"syswarden {sub}" in out.stdout


def test_the_seed_config_and_rules_dry_run(compat):
    out = run("-c", str(compat / "seed-rules" / "falco.yaml"),
              "-r", str(compat / "seed-rules" / "falco_rules.yaml"), "--dry-run")
    assert out.returncode == 0, out.stderr
    assert "dry run ok: sources=ebpf enrichers=process,container filters=rules" in out.stdout
    assert "outputs=stdout,file" in out.stdout


def test_validate_exit_codes(compat, tmp_path):
    good = run("-V", str(compat / "falco-rules" / "falco_rules.yaml"))
    assert good.returncode == 0 and ": Ok" in good.stdout
    broken = tmp_path / "broken.yaml"
    broken.write_text("- rule: Broken\n  desc: x\n  condition: proc.name = \n  output: x\n"
                      "  priority: WARNING\n")
    bad = run("-V", str(broken))
    assert bad.returncode == 1 and f"{broken}: Invalid" in bad.stdout
    assert f"{broken}:3" in bad.stdout


def test_sigterm_stops_a_replay_of_huge_lines_promptly(tmp_path):
    """A capture whose lines carry a 1 MB command line: SIGTERM during the replay is answered
    (the agent stops gracefully and exits 0 before the end of the file)."""
    word = "A" * (1 << 20)
    line = json.dumps({"type": "execve", "proc": {"cmdline": f"/usr/bin/bench -x {word}"}})
    big = tmp_path / "big.jsonl.gz"
    with gzip.open(big, "wt", compresslevel=1) as fh:
        for _ in range(1000):
            fh.write(line + "\n")
    proc = start_until_ready("-e", str(big), "-o", "disabled_plugins=[ebpf]",
                             "-o", "stdout_output.enabled=false", "-o", "pipeline.stats_interval=0")
    try:
        time.sleep(0.5)  # well inside the replay: the first batches are being decoded
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=120) == 0   # a hang guard, not a timing
        err = proc.stderr.read()
    finally:
        proc.kill()
        proc.wait()
    assert "SIGTERM: stopping" in err
    judged = int(err.split("events.judged=")[1].split()[0]) if "events.judged=" in err else 0
    assert judged < 1000
