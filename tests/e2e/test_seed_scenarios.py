"""The article's four scenarios, end to end: live eBPF source, Docker enricher, rule engine and
file output together, with the article's own config (../shared/compat/seed-rules/falco.yaml) and
rule files, run as the article runs them (container names as in the article; local images stand
in for nginx and alpine).  Each scenario also runs against our default rules, which must raise
the equivalent alert.
"""

from __future__ import annotations

import os

import pytest

from syswarden.testing import running_agent
from tests.helpers.docker import containers, docker, docker_images, dockerd  # noqa: F401
from tests.helpers.docker import exec_in_terminal
from tests.helpers.paths import COMPAT

pytestmark = [pytest.mark.root, pytest.mark.docker]

SEED = COMPAT / "seed-rules"
TIME = r"^\d\d:\d\d:\d\d\.\d{9}: "
ID = r"[0-9a-f]{12}"


@pytest.fixture
def seed_agent(tmp_path, docker_images):  # noqa: F811
    """Start the agent with the seed's falco.yaml and a rules file; alerts go to a temp file."""
    def start(rules: str):
        events = tmp_path / "falco_events.log"
        rules_path = rules if os.path.isabs(rules) else str(SEED / rules)
        return running_agent("-c", str(SEED / "falco.yaml"), "-r", rules_path,
                             "-o", f"file_output.filename={events}",
                             "-o", "stdout_output.enabled=false"), str(events)
    return start


def fresh(name: str) -> str:
    docker("rm", "-f", name, check=False)
    return name


def test_a_terminal_shell_in_a_container(seed_agent, containers):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules.yaml")
    with agent_cm as agent:
        name = fresh("example1")
        containers.run("nginx:latest", name=name)
        exec_in_terminal(name, "bash")
        line = agent.wait_for_line(
            events, TIME + r"Notice A shell was spawned in a container with an attached "
            rf"terminal \(user=root .*example1 \(id={ID}\) shell=bash parent=\S+ "
            r"cmdline=bash .*terminal=[1-9]\d*")
    print(line)
    assert "example1" in line


def test_an_unauthorized_process_in_an_nginx_container(seed_agent, containers):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules_3.yaml")
    with agent_cm as agent:
        name = fresh("example2")
        box = containers.run("nginx:latest", name=name)
        exec_in_terminal(name, "ls", send=b"")
        agent.wait_for_line(events, TIME + rf"Warning Unauthorized process \(ls\) running in "
                                           rf"\({box.short_id}\)")
        lines = agent.lines(events)
    assert not [line for line in lines if "Unauthorized process (nginx" in line]


def test_writing_outside_the_user_data_dirs(seed_agent, containers):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules_4.yaml")
    with agent_cm as agent:
        name = fresh("example3")
        containers.run("nginx:latest", name=name)
        docker("exec", name, "sh", "-c", "mkdir /userdata; touch /userdata/foo")
        docker("exec", name, "touch", "/usr/foo")
        agent.wait_for_line(events, TIME + r"Error Writing to non user_data dir \(user=root "
                                           r"command=touch /usr/foo file=/usr/foo\)")
        lines = agent.lines(events)
    assert not [line for line in lines if "/userdata" in line]


def test_a_container_started_with_a_sensitive_mount(seed_agent, containers):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules_5.yaml")
    with agent_cm as agent:
        name = fresh("example4")
        containers.run("alpine:latest", "sh", name=name, volumes=("/mnt:/tmp/mnt",))
        agent.wait_for_line(events, TIME + r"Informational Container with sensitive mount "
                                           rf"started \(user=root .*command=sh .*example4 "
                                           rf"\(id={ID}\)")


# -- the same scenarios against our default rules ---------------------------------------------
# Where the article tunes Falco's rules (its /userdata data directory, its /mnt sensitive mount),
# the same tuning is written for ours, the way docs/rules.md shows: append to a list or macro.

ARTICLE_TUNING = """
- list: sw_container_data_dirs
  items: [/userdata]
  append: true

- macro: sw_sensitive_mount
  condition: or container.mount.dest[/mnt*] exists
  append: true
"""


@pytest.fixture
def default_agent(tmp_path, docker_images):  # noqa: F811
    from syswarden.core.config import default_rules_path
    tuning = tmp_path / "article_tuning.yaml"
    tuning.write_text(ARTICLE_TUNING)
    events = tmp_path / "events.log"
    return running_agent("-c", str(SEED / "falco.yaml"), "-r", default_rules_path(),
                         "-r", str(tuning), "-o", f"file_output.filename={events}",
                         "-o", "stdout_output.enabled=false"), str(events)


def test_default_rules_a_terminal_shell_in_a_container(default_agent, containers):  # noqa: F811
    agent_cm, events = default_agent
    with agent_cm as agent:
        name = fresh("example1")
        containers.run("nginx:latest", name=name)
        exec_in_terminal(name, "bash")
        agent.wait_for_line(events, TIME + r"Notice Shell with a terminal started in a "
                                           rf"container .*shell=bash .*terminal=[1-9]\d* .*"
                                           rf"container=example1 \(id={ID}\)")


def test_default_rules_an_unexpected_process_in_nginx(default_agent, containers):  # noqa: F811
    agent_cm, events = default_agent
    with agent_cm as agent:
        name = fresh("example2")
        box = containers.run("nginx:latest", name=name)
        exec_in_terminal(name, "ls", send=b"")
        agent.wait_for_line(events, TIME + r"Warning Unexpected process in a container of a "
                                           rf"known image \(process=ls .*\(id={box.short_id}\)")
        lines = agent.lines(events)
    assert not [line for line in lines if "Unexpected process" in line and "process=nginx" in line]


def test_default_rules_writing_outside_the_data_dirs(default_agent, containers):  # noqa: F811
    agent_cm, events = default_agent
    with agent_cm as agent:
        name = fresh("example3")
        containers.run("nginx:latest", name=name)
        docker("exec", name, "sh", "-c", "mkdir /userdata; touch /userdata/foo")
        docker("exec", name, "touch", "/usr/foo")
        agent.wait_for_line(events, TIME + r"Notice File opened for writing outside the data "
                                           r"directories of a container \(file=/usr/foo .*"
                                           r"command=touch /usr/foo")
        lines = agent.lines(events)
    assert not [line for line in lines if "file=/userdata" in line]


def test_default_rules_a_sensitive_mount(default_agent, containers):  # noqa: F811
    agent_cm, events = default_agent
    with agent_cm as agent:
        name = fresh("example4")
        containers.run("alpine:latest", "sh", name=name, volumes=("/mnt:/tmp/mnt",))
        agent.wait_for_line(events, TIME + r"Warning Container started with a sensitive mount "
                                           rf"\(container=example4 \(id={ID}\) .*"
                                           r"mounts=/mnt:/tmp/mnt")
