"""Falco 0.44's own falco.yaml (../shared/compat/falco-config, unmodified) runs the live agent with
Falco's rules: its ``append_output: [{suggested_output: true}]`` puts the container fields into
alerts from a real container, ``-o`` reaches into its lists, ``rules:`` disables by tag,
``FALCO_HOSTNAME`` names the host, and ``watch_config_files`` picks up a config file dropped into
a ``config_files`` directory and an edited rules file while the agent runs.

One agent for the module (started once: the live eBPF source takes seconds to attach).
"""

from __future__ import annotations

import json
import os
import time
import uuid

import pytest

from syswarden.testing import AgentProcess, running_agent
from tests.helpers.docker import containers, docker_images, dockerd  # noqa: F401
from tests.helpers.paths import COMPAT

pytestmark = [pytest.mark.root, pytest.mark.docker]

MARK = f"/tmp/sw-dropin-{uuid.uuid4().hex[:8]}"


def marker_rule(name: str, suffix: str, tags: str = "[sw_dropin]") -> str:
    return f"""
- rule: {name}
  desc: a file named {MARK}-{suffix}* is opened
  condition: evt.type in (open, openat, openat2) and fd.name startswith "{MARK}-{suffix}"
  output: marker {suffix} opened by %proc.name (file=%fd.name)
  priority: WARNING
  tags: {tags}
"""


@pytest.fixture(scope="module")
def dropin(tmp_path_factory, docker_images):  # noqa: F811
    """The agent with Falco's falco.yaml, Falco's rules and ours; JSON alerts to a file."""
    tmp = tmp_path_factory.mktemp("dropin")
    rules = tmp / "sw_rules.yaml"
    rules.write_text(marker_rule("SW marker A", "a") + marker_rule("SW marker off", "off",
                                                                   "[sw_dropin, sw_off]"))
    configd = tmp / "config.d"
    configd.mkdir()
    events = tmp / "events.json"
    os.environ["FALCO_HOSTNAME"] = "dropin-node"
    try:
        with running_agent(
                "-c", str(COMPAT / "falco-config" / "falco.yaml"),
                "-r", str(COMPAT / "falco-rules" / "falco_rules.yaml"), "-r", str(rules),
                "-o", f"config_files=[{configd}]",
                "-o", "json_output=true", "-o", "json_include_message_property=true",
                "-o", "stdout_output.enabled=false", "-o", "syslog_output.enabled=false",
                "-o", "log_syslog=false", "-o", "webserver.enabled=false",
                "-o", "file_output.enabled=true", "-o", f"file_output.filename={events}",
                "-o", "rules=[{disable: {tag: sw_off}}]",
                "-o", "append_output[0].extra_fields=[{sw_pid: 'pid=%proc.pid'}]") as agent:
            yield agent, tmp, str(events)
    finally:
        del os.environ["FALCO_HOSTNAME"]


def alerts(agent: AgentProcess, events: str, rule: str) -> list[dict]:
    return [doc for doc in map(json.loads, agent.lines(events)) if doc["rule"] == rule]


def wait_alert(agent: AgentProcess, events: str, rule: str, timeout: float = 20) -> dict:
    line = agent.wait_for_line(events, f'"rule": "{rule}"', timeout)
    return json.loads(line)


def open_marker(suffix: str) -> str:
    path = f"{MARK}-{suffix}-{uuid.uuid4().hex[:6]}"
    with open(path, "w"):
        pass
    os.unlink(path)
    return path


def test_falcos_config_runs_with_falcos_rules_and_the_overrides(dropin):
    agent, _, events = dropin
    path = open_marker("a")
    doc = wait_alert(agent, events, "SW marker A")
    assert path in doc["output"]
    assert doc["hostname"] == "dropin-node"                      # FALCO_HOSTNAME
    assert doc["message"].startswith("marker a opened by")         # -o json_include_message
    assert doc["output_fields"]["sw_pid"] == f"pid={os.getpid()}"  # -o append_output[0]...
    assert "container_id=host" in doc["output"]                    # suggested output


def test_a_rule_disabled_by_tag_does_not_fire(dropin):
    agent, _, events = dropin
    open_marker("off")
    open_marker("a")                # after it in the same stream: judged after it
    deadline = time.monotonic() + 20
    while len(alerts(agent, events, "SW marker A")) < 2 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert len(alerts(agent, events, "SW marker A")) >= 2
    assert alerts(agent, events, "SW marker off") == []


def test_suggested_fields_come_from_a_real_container(dropin, containers):  # noqa: F811
    agent, _, events = dropin
    name = f"sw-dropin-{uuid.uuid4().hex[:6]}"
    # a touch a second: the first may come before the container's metadata is known
    box = containers.run("alpine:latest", "sh", "-c",
                         f"for i in {' '.join(map(str, range(60)))}; do "
                         f"touch {MARK}-a-box$i; sleep 1; done",
                         name=name)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = [d for d in alerts(agent, events, "SW marker A")
                 if d["output_fields"].get("container.name") == name]
        if found:
            break
        time.sleep(0.2)
    assert found, agent.stderr[-2000:]
    doc = found[0]
    assert f"container_id={box.id[:12]} container_name={name} " \
           "container_image_repository=alpine container_image_tag=latest" in doc["output"]
    assert doc["output_fields"]["container.id"] == box.id[:12]
    assert doc["output_fields"]["container.image.tag"] == "latest"


def test_a_config_file_dropped_into_config_files_is_picked_up(dropin):
    agent, tmp, events = dropin
    (tmp / "config.d" / "50-more.yaml").write_text(
        "append_output:\n  - match: {rule: SW marker A}\n    extra_output: dropped_in=yes\n")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        open_marker("a")
        time.sleep(0.5)
        if any("dropped_in=yes" in d["output"] for d in alerts(agent, events, "SW marker A")):
            break
    else:
        pytest.fail(f"the dropped-in config file was not picked up:\n{agent.stderr[-3000:]}")
    assert "a watched config or rules file changed: reloading" in agent.stderr


def test_a_rules_file_edited_while_running_is_reloaded(dropin):
    agent, tmp, events = dropin
    rules = tmp / "sw_rules.yaml"
    rules.write_text(rules.read_text() + "- rule: [broken\n")
    deadline = time.monotonic() + 20
    while "reload failed, keeping the running" not in agent.stderr:
        assert time.monotonic() < deadline, agent.stderr[-3000:]
        time.sleep(0.2)
    path = open_marker("a")                       # the running rules still judge
    agent.wait_for_line(events, path)
    rules.write_text(rules.read_text().replace("- rule: [broken\n", "")
                     + marker_rule("SW marker C", "c"))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        open_marker("c")
        time.sleep(0.5)
        if alerts(agent, events, "SW marker C"):
            break
    else:
        pytest.fail(f"the edited rules file was not reloaded:\n{agent.stderr[-3000:]}")

