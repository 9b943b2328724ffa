"""The image `make image` builds runs the agent in a container, as deploy/daemonset.yaml says:
its capabilities (no --privileged), the host's pid namespace and network, its host mounts and its
ConfigMap, read from that file.  From there the agent detects a shell started in another
container, with the container's fields, and its /healthz and /metrics answer on its port.

The image's Debian base is made once by debootstrap (minutes) and cached under
/var/cache/syswarden-image; after that a build is a COPY of the source (seconds).
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import yaml

from tests.helpers.docker import containers, docker, docker_images, dockerd  # noqa: F401
from tests.helpers.docker import exec_in_terminal, unique_name
from tests.helpers.paths import REPO

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

IMAGE = "syswarden:0.1.0"
DAEMONSET = REPO / "deploy" / "daemonset.yaml"


def manifests() -> tuple[dict, dict]:
    """(the ConfigMap, the DaemonSet) of deploy/daemonset.yaml."""
    docs = {d["kind"]: d for d in yaml.safe_load_all(DAEMONSET.read_text())}
    return docs["ConfigMap"], docs["DaemonSet"]


def docker_run_args(config_dir: Path, port: int) -> list[str]:
    """``docker run`` arguments for the DaemonSet's pod: its capabilities, host namespaces and
    host mounts, its config (the ConfigMap) and listen port ``port`` on 127.0.0.1."""
    _, ds = manifests()
    pod = ds["spec"]["template"]["spec"]
    (box,) = pod["containers"]
    sec = box["securityContext"]
    assert not sec.get("privileged") and sec["capabilities"]["drop"] == ["ALL"]
    args = ["--cap-drop", "ALL"]
    for cap in sec["capabilities"]["add"]:
        args += ["--cap-add", cap]
    if pod.get("hostPID"):
        args += ["--pid", "host"]
    if pod.get("hostNetwork"):
        args += ["--network", "host"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in box["volumeMounts"]:
        vol = volumes[mount["name"]]
        source = vol["hostPath"]["path"] if "hostPath" in vol else str(config_dir)
        if "hostPath" in vol and vol["hostPath"].get("type") == "DirectoryOrCreate":
            source = str(config_dir / "state")
        mode = ":ro" if mount.get("readOnly") else ""
        args += ["-v", f"{source}:{mount['mountPath']}{mode}"]
    for env in box.get("env", []):
        if env["name"] == "FALCO_HOSTNAME":
            args += ["-e", "FALCO_HOSTNAME=test-node"]
    return [*args, IMAGE, *box["args"], "-o", "webserver.listen_address=127.0.0.1",
            "-o", f"webserver.listen_port={port}"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def logs(cid: str) -> str:
    out = docker("logs", cid, check=False)
    return out.stdout + out.stderr


@pytest.fixture(scope="module")
def agent_container(docker_images, tmp_path_factory):  # noqa: F811
    """The agent in a container of the image, ready: (container id, its port)."""
    build = subprocess.run(["bash", str(REPO / "scripts" / "image.sh")], capture_output=True,
                           text=True, timeout=1200)
    assert build.returncode == 0, build.stdout + build.stderr
    config_map, _ = manifests()
    config_dir = tmp_path_factory.mktemp("image-config")
    for name, text in config_map["data"].items():
        (config_dir / name).write_text(text)
    port = free_port()
    name = unique_name("sw-agent")
    cid = docker("run", "-d", "--name", name, *docker_run_args(config_dir, port)).stdout.strip()
    try:
        deadline = time.monotonic() + 120
        while "syswarden ready" not in logs(cid):
            state = json.loads(docker("inspect", cid).stdout)[0]["State"]
            assert state["Running"], f"the agent's container stopped:\n{logs(cid)[-3000:]}"
            assert time.monotonic() < deadline, f"not ready:\n{logs(cid)[-3000:]}"
            time.sleep(0.5)
        yield cid, port
    finally:
        docker("rm", "-f", cid, check=False, timeout=60)


def test_the_agent_in_its_container_detects_a_shell_in_another_container(agent_container,
                                                                         containers):  # noqa: F811
    cid, _ = agent_container
    name = unique_name("sw-shelled")
    box = containers.run("nginx:latest", name=name)
    exec_in_terminal(name, "bash")
    deadline = time.monotonic() + 30
    while True:
        alerts = [json.loads(line) for line in logs(cid).splitlines() if line.startswith("{")]
        shells = [a for a in alerts if a["rule"] == "Shell with a terminal in a container"
                  and a["output_fields"].get("container.name") == name]
        if shells:
            break
        assert time.monotonic() < deadline, f"no alert for {name}:\n{logs(cid)[-3000:]}"
        time.sleep(0.5)
    fields = shells[0]["output_fields"]
    assert fields["container.id"] == box.short_id
    assert fields["container.image.repository"] == "nginx"
    assert fields["proc.name"] == "bash" and fields["proc.tty"] > 0


def test_healthz_and_metrics_answer_through_the_containers_port(agent_container):
    _, port = agent_container
    r = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
    assert "falcosecurity_scap_n_evts_total" in text
    assert 'falcosecurity_scap_engine_name_info{engine_name="ebpf"' in text


def test_the_daemonset_probes_and_scrapes_the_webservers_port():
    config_map, ds = manifests()
    config = yaml.safe_load(config_map["data"]["syswarden.yaml"])
    web = config["webserver"]
    pod = ds["spec"]["template"]
    (box,) = pod["spec"]["containers"]
    (port,) = box["ports"]
    assert port["containerPort"] == web["listen_port"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert box[probe]["httpGet"] == {"path": web["k8s_healthz_endpoint"], "port": "http"}
    notes = pod["metadata"]["annotations"]
    assert notes["prometheus.io/scrape"] == "true"
    assert notes["prometheus.io/port"] == str(web["listen_port"])
    assert web["prometheus_metrics_enabled"] and config["metrics"]["enabled"]
    (env,) = [e for e in box["env"] if e["name"] == "FALCO_HOSTNAME"]
    assert env["valueFrom"]["fieldRef"]["fieldPath"] == "spec.nodeName"
