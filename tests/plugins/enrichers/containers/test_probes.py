"""Kubernetes probes as Falco's libsinsp reads them: the pod spec in the annotation
``kubectl.kubernetes.io/last-applied-configuration`` (parsed as hostile input), on real Docker
containers labelled as the kubelet's Docker shim labels them, and the processes a real
``docker exec`` runs told apart by the live pipeline (the eBPF source, the process enricher, the
container enricher, a rule).  The CRI's side: ``test_containerd.py``."""

from __future__ import annotations

import json
import logging

import pytest

from syswarden.plugins.enrichers.containers.engines.docker import container_from_inspect
from syswarden.plugins.enrichers.containers.metadata import (
    DOCKER_LAST_APPLIED, K8S_CONTAINER, K8S_SANDBOX, LAST_APPLIED_MAX, pod_probes, probes_of)
from tests.helpers.docker import docker, eventually, in_thread, inspect, process_event
from tests.helpers.runtimes import PROBE_OUTPUT, enrich, live_alerts, probes_told_apart, read

LIVENESS = ["cat", "/tmp/healthy"]
#: a shell that forks a child, then execs into another program: every process of it is the probe
READINESS = ["sh", "-c", "cat /tmp/ready; exec cat /tmp/ready"]


def pod_spec(*containers: dict) -> str:
    """A pod as ``kubectl apply`` records it (Falco's own tests use this shape)."""
    return json.dumps({"apiVersion": "v1", "kind": "Pod",
                       "metadata": {"annotations": {}, "name": "web-0", "namespace": "shop"},
                       "spec": {"containers": list(containers)}}) + "\n"


def probe(command: list) -> dict:
    return {"exec": {"command": command}, "initialDelaySeconds": 5, "periodSeconds": 5}


WEB = {"name": "web", "image": "alpine", "livenessProbe": probe(LIVENESS),
       "readinessProbe": probe(READINESS)}
SIDE = {"name": "side", "image": "alpine", "livenessProbe": probe(["'test'", '"-e"', "/x"]),
        "readinessProbe": {"httpGet": {"path": "/ready", "port": 8080}}}


# -- the annotation ----------------------------------------------------------------------------


def test_the_pod_spec_as_falco_reads_it() -> None:
    pod, error = pod_probes(pod_spec(WEB, SIDE))
    assert error is None
    assert pod == {"web": (LIVENESS, READINESS), "side": (["test", "-e", "/x"], [])}
    assert probes_of(pod, "side") == (["test", "-e", "/x"], [])
    assert probes_of(pod, None) == (LIVENESS, READINESS)         # Falco's containers[0]
    assert probes_of(pod, "POD") == ([], [])                      # not a spec container
    assert pod_probes(None) == ({}, None) and pod_probes("") == ({}, None)
    assert pod_probes(json.dumps({"kind": "Deployment", "spec": {"replicas": 2}})) == ({}, None)


@pytest.mark.parametrize("text,why", [
    ('{"spec": {"containers": [', "not JSON"),
    ("[" * 200_000, "not JSON"),                                     # nesting past the stack
    ("9" * 10_000, "not JSON"),                                      # past Python's int digits
    (" " * (LAST_APPLIED_MAX + 1), f"longer than {LAST_APPLIED_MAX} bytes"),
    ("é" * (LAST_APPLIED_MAX // 2 + 1), f"longer than {LAST_APPLIED_MAX} bytes"),
    (pod_spec({"name": "web", "livenessProbe": probe(["cat", 7])}),
     "container 'web': livenessProbe.exec.command is not a list of strings"),
    (pod_spec({"name": "web", "readinessProbe": probe("cat /tmp/x")}),
     "container 'web': readinessProbe.exec.command is not a list of strings"),
    (pod_spec({"name": "web", "livenessProbe": probe(["x"] * 257)}), "longer than 256"),
    (pod_spec({"name": "web", "livenessProbe": probe(["x" * 5000])}), "longer than 256"),
])
def test_a_hostile_annotation_gives_no_probe_and_a_reason(text: str, why: str) -> None:
    pod, error = pod_probes(text)
    assert all(p == ([], []) for p in pod.values())
    assert error is not None and why in error, error


# -- Docker: real containers ---------------------------------------------------------------------


def test_a_containers_own_annotation_label(containers) -> None:
    """Falco's own e2e case: a container labelled with the pod spec, with a HEALTHCHECK too:
    the probes are read (the first spec container's: the container has no kubelet name), the
    health check is not."""
    cid = containers.create("alpine:latest", "sleep", "60",
                            labels={DOCKER_LAST_APPLIED: pod_spec(WEB, SIDE)},
                            extra=("--health-cmd", "cat /tmp/healthy"))
    c = container_from_inspect(inspect(cid))
    assert (c.liveness_probe, c.readiness_probe) == (LIVENESS, READINESS)
    assert c.healthcheck is None
    assert DOCKER_LAST_APPLIED not in c.labels            # longer than label_max_len
    named = containers.create("alpine:latest", "sleep", "60",
                              labels={DOCKER_LAST_APPLIED: pod_spec(WEB, SIDE),
                                      K8S_CONTAINER: "side"})
    c = container_from_inspect(inspect(named))
    assert (c.liveness_probe, c.readiness_probe) == (["test", "-e", "/x"], [])


async def test_a_malformed_annotation_is_one_warning(enricher, containers, caplog) -> None:
    caplog.set_level(logging.DEBUG, logger="syswarden.container")
    bad = [await in_thread(containers.run, "alpine:latest", "sleep", "60",
                           labels={DOCKER_LAST_APPLIED: text, "sw.probe": "bad"},
                           extra=("--health-cmd", "true"))
           for text in ('{"spec": {"containers": [{"name": "web", "livenessProbe"',
                        pod_spec({"name": "web", "livenessProbe": probe({"cmd": "x"})}))]
    for box in bad:
        evt = process_event(box.pid)
        await enrich(enricher, evt)
        assert read("container.name", evt) == box.name           # the rest is read
        assert read("container.liveness_probe", evt) == "NONE"
        assert read("container.healthcheck", evt) == "/bin/sh -c true"  # no probe: Docker's
    said = [r for r in caplog.records if DOCKER_LAST_APPLIED in r.getMessage()]
    assert [r.levelno for r in said][:1] == [logging.WARNING], said
    assert all(r.levelno == logging.DEBUG for r in said[1:]) and len(said) >= 2
    assert "not JSON" in said[0].getMessage() and bad[0].short_id in said[0].getMessage()


async def test_a_pod_container_takes_its_probes_from_its_sandbox(enricher,
                                                                 containers) -> None:
    """The kubelet's Docker shim: the pod's annotations on the sandbox (``POD``) alone; each of
    the pod's containers reads the probes the spec gives its name."""
    sandbox = await in_thread(containers.run, "alpine:latest", "sleep", "60",
                              labels={DOCKER_LAST_APPLIED: pod_spec(WEB, SIDE),
                                      K8S_CONTAINER: "POD"})
    side = await in_thread(containers.run, "alpine:latest", "sleep", "60",
                           labels={K8S_SANDBOX: sandbox.id, K8S_CONTAINER: "side"},
                           extra=("--health-cmd", "true"))
    web = await in_thread(containers.run, "alpine:latest", "sleep", "60",
                          labels={K8S_SANDBOX: sandbox.id, K8S_CONTAINER: "web"})
    for box, live, ready, check in ((side, "test -e /x", "NONE", "NONE"),
                                    (web, "cat /tmp/healthy", " ".join(READINESS), "NONE"),
                                    (sandbox, "NONE", "NONE", "NONE")):
        evt = process_event(box.pid)
        await enrich(enricher, evt)
        assert read("container.liveness_probe", evt) == live, box.name
        assert read("container.readiness_probe", evt) == ready, box.name
        assert read("container.healthcheck", evt) == check, box.name


async def test_the_probes_a_docker_exec_runs_are_told_apart_live(enricher, containers,
                                                                 nursery) -> None:
    """The kubelet runs an exec probe as ``docker exec`` does: the live pipeline says which
    processes are the liveness probe, the readiness probe (the shell, its child, and what it
    execs into), and which are not (another exec; the container's own programs, even when they
    run the probe's very command), and renders the probes as Falco does."""
    alerts = await live_alerts(
        nursery, enricher, "evt.type = execve and container.label[sw.probe] = live",
        PROBE_OUTPUT, syscalls=frozenset({"execve"}))
    box = await in_thread(
        containers.run, "alpine:latest", "sh", "-c",
        "echo ok > /tmp/healthy; echo ok > /tmp/ready; cat /tmp/healthy; exec sleep 60",
        labels={DOCKER_LAST_APPLIED: pod_spec(WEB), "sw.probe": "live"})
    await eventually(lambda: any(t.endswith("sleep 60") for _, t in alerts))
    for command in (LIVENESS, ["cat", "/etc/hostname"], READINESS):
        await in_thread(docker, "exec", box.id, *command)
    no = "false false false"
    await probes_told_apart(alerts, (" ".join(LIVENESS), " ".join(READINESS)), [
        (no, ("sh -c echo ok > /tmp/healthy; echo ok > /tmp/ready; cat /tmp/healthy; "
              "exec sleep 60")),
        (no, "cat /tmp/healthy"),                               # the container's own
        (no, "sleep 60"),
        ("true false false", "cat /tmp/healthy"),               # docker exec: the probe
        (no, "cat /etc/hostname"),
        ("false true false", " ".join(READINESS)),
        ("false true false", "cat /tmp/ready"),                 # its child
        ("false true false", "cat /tmp/ready")])                # what it execs into
