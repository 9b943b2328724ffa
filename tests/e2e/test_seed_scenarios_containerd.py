"""The article's scenarios with containerd as the runtime: the whole agent (live eBPF source,
container enricher with the CRI and containerd engines on a standalone containerd, the seed's
config and rules, file output), the containers made as the kubelet makes them (a pod per
scenario, the container named as the article names it), commands run in them through
containerd's API (``ctr task exec``, under a real pseudo-terminal for the shell).

The article's second scenario (``container.image startswith nginx``) is not among them: on a
CRI runtime the image reads as the runtime names it (``docker.io/library/nginx:latest``), in
Falco as here, and that condition holds for neither.
"""

from __future__ import annotations

import uuid

import pytest

from syswarden.testing import running_agent
from tests.helpers.containerd import Containerd, Kubelet, containerd, kubelet  # noqa: F401
from tests.helpers.docker import docker_images, dockerd  # noqa: F401
from tests.helpers.paths import COMPAT
from tests.helpers.runtimes import run_in_terminal

pytestmark = [pytest.mark.root, pytest.mark.docker]

SEED = COMPAT / "seed-rules"
TIME = r"^\d\d:\d\d:\d\d\.\d{9}: "
ID = r"[0-9a-f]{12}"


@pytest.fixture(scope="module")
def nginx(containerd, docker_images) -> str:  # noqa: F811
    containerd.import_image("nginx:latest")
    return "nginx:latest"


@pytest.fixture
def seed_agent(tmp_path, containerd):  # noqa: F811
    def start(rules: str):
        events = tmp_path / "falco_events.log"
        sock = containerd.socket
        return running_agent("-c", str(SEED / "falco.yaml"), "-r", str(SEED / rules),
                             "-o", f"file_output.filename={events}",
                             "-o", "stdout_output.enabled=false",
                             "-o", f"container.engines.cri.sockets=[{sock}]",
                             "-o", f"container.engines.containerd.sockets=[{sock}]"), str(events)
    return start


def pod_container(kubelet: Kubelet, name: str, image: str, *cmd: str,  # noqa: F811
                  mounts: tuple = ()) -> str:
    pod = kubelet.run_pod(f"{name}-{uuid.uuid4().hex[:6]}", "default", {"app": name})
    cid = kubelet.create_container(pod, name, image, *cmd, mounts=mounts)
    kubelet.start_container(cid)
    return cid


def ctr_exec(containerd: Containerd, cid: str, *command: str) -> None:  # noqa: F811
    containerd.ctr("tasks", "exec", "--exec-id", uuid.uuid4().hex[:8], cid, *command)


def ctr_exec_in_terminal(containerd: Containerd, cid: str, *command: str,  # noqa: F811
                         send: bytes = b"exit\n") -> None:
    """``ctr task exec -t`` under a real pseudo-terminal."""
    run_in_terminal(["ctr", "-a", containerd.socket, "-n", "k8s.io", "tasks", "exec", "-t",
                     "--exec-id", uuid.uuid4().hex[:8], cid, *command], send)


def test_a_terminal_shell_in_a_pod(seed_agent, containerd, kubelet, nginx):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules.yaml")
    with agent_cm as agent:
        cid = pod_container(kubelet, "example1", nginx, "nginx", "300")
        ctr_exec_in_terminal(containerd, cid, "bash")
        line = agent.wait_for_line(
            events, TIME + r"Notice A shell was spawned in a container with an attached "
            rf"terminal \(user=root .*example1 \(id={cid[:12]}\) shell=bash parent=\S+ "
            r"cmdline=bash .*terminal=[1-9]\d*")
    assert "example1" in line


def test_writing_outside_the_user_data_dirs(seed_agent, containerd, kubelet,  # noqa: F811
                                            nginx):
    agent_cm, events = seed_agent("falco_rules_4.yaml")
    with agent_cm as agent:
        cid = pod_container(kubelet, "example3", nginx, "nginx", "300")
        ctr_exec(containerd, cid, "sh", "-c", "mkdir /userdata; touch /userdata/foo")
        ctr_exec(containerd, cid, "touch", "/usr/foo")
        agent.wait_for_line(events, TIME + r"Error Writing to non user_data dir \(user=root "
                                           r"command=touch /usr/foo file=/usr/foo\)")
        lines = agent.lines(events)
    assert not [line for line in lines if "file=/userdata" in line]


def test_a_pod_started_with_a_sensitive_mount(seed_agent, kubelet, nginx):  # noqa: F811
    agent_cm, events = seed_agent("falco_rules_5.yaml")
    with agent_cm as agent:
        cid = pod_container(kubelet, "example4", nginx, "sh", "-c", "sleep 300",
                            mounts=(("/mnt", "/tmp/mnt", False),))
        agent.wait_for_line(events, TIME + r"Informational Container with sensitive mount "
                                           rf"started \(user=root .*command=sh .*example4 "
                                           rf"\(id={cid[:12]}\)")
