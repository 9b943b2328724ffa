"""The CRI engine: the kubelet's runtime API (``runtime.v1.RuntimeService``), as containerd's CRI
plugin and CRI-O serve it.

A lookup is the kubelet's own view of a container:

- ``ContainerStatus`` (verbose): the CRI container name (``container.name``), the image as the
  pod spec named it, the image id, the labels and mounts, the start time; its verbose ``info``
  (JSON) holds the OCI spec the runtime made (user, host namespaces, privileged:
  :func:`~.grpcio.spec_facts`) and the privileged flag of the container's config;
- ``ListContainers`` (filtered by id): the pod sandbox the container belongs to;
- ``PodSandboxStatus`` (verbose): the pod's name, namespace, uid (``k8s.pod.*``, set as the
  kubelet's ``io.kubernetes.*`` labels where the container lacks them), the pod's labels
  (``k8s.pod.label[...]``), its ip (``k8s.pod.ip``), host networking, and the CNI result the
  runtime recorded (``k8s.pod.cni.json``).

``container.type`` is the runtime's name from ``Version``: ``containerd`` or ``cri-o``.  The
CRI has no event stream in the runtimes of this era: containers started on containerd are
announced by the containerd engine's stream; otherwise a lookup starts when an event first
carries the container (and the batch waits for it, bounded).
"""

from __future__ import annotations

import json
from typing import Any

from syswarden.core.event import Container, Mount

from ..engine import ContainerEngine
from ..metadata import K8S_NS, K8S_POD, K8S_SANDBOX, K8S_UID, image_parts, strip_algo
from ..stubs.cri import api_pb2, api_pb2_grpc
from .grpcio import GrpcLink, json_or_empty, spec_facts

DEFAULT_SOCKETS = ("/run/containerd/containerd.sock", "/run/crio/crio.sock",
                   "/run/k3s/containerd/containerd.sock")

_PROPAGATION = {
    api_pb2.PROPAGATION_PRIVATE: "rprivate",
    api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared",
}
_RUNTIME_TYPES = {"containerd": "containerd", "cri-o": "cri-o"}


class CriEngine(ContainerEngine):
    """``runtime.v1.RuntimeService`` (``container.type``: the runtime's name)."""

    name = "cri"
    types = frozenset({"cri", "containerd", "cri-o"})
    default_sockets = DEFAULT_SOCKETS

    def __init__(self, socket: str = DEFAULT_SOCKETS[0], timeout: float = 2.0) -> None:
        super().__init__(socket, timeout)
        self.link = GrpcLink(socket, timeout)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.link.channel)
        self.kind = "cri"

    async def aclose(self) -> None:
        self.link.close()

    async def ping(self) -> str:
        answer = await self.link.call(self.runtime.Version, api_pb2.VersionRequest(version="v1"))
        self.kind = _RUNTIME_TYPES.get(answer.runtime_name, "cri")
        return f"{answer.runtime_name} {answer.runtime_version} (CRI {answer.runtime_api_version})"

    async def inspect(self, full_id: str) -> Container | None:
        status = await self.link.call(
            self.runtime.ContainerStatus,
            api_pb2.ContainerStatusRequest(container_id=full_id, verbose=True), not_found=True)
        if status is None or not status.status.id:
            return await self._sandbox(full_id)
        listed = await self.link.call(
            self.runtime.ListContainers,
            api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(id=status.status.id)))
        sandbox = None
        if listed.containers and listed.containers[0].pod_sandbox_id:
            sandbox = await self.link.call(
                self.runtime.PodSandboxStatus,
                api_pb2.PodSandboxStatusRequest(pod_sandbox_id=listed.containers[0]
                                                .pod_sandbox_id, verbose=True),
                not_found=True)
        return container_from_cri(status, sandbox, self.kind)

    async def _sandbox(self, full_id: str) -> Container | None:
        """A pod's sandbox (its pause process is in a container's cgroup of its own)."""
        box = await self.link.call(
            self.runtime.PodSandboxStatus,
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=full_id, verbose=True),
            not_found=True)
        if box is None or not box.status.id:
            return None
        return sandbox_from_cri(box, self.kind)

    async def list_running(self) -> list[str]:
        running = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)
        answer = await self.link.call(
            self.runtime.ListContainers,
            api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(state=running)))
        return [c.id for c in answer.containers]


def _info(answer: Any) -> dict[str, Any]:
    """The verbose ``info`` map: containerd puts one JSON document under ``info``."""
    doc = json_or_empty(answer.info.get("info")) if answer is not None else {}
    return doc


def container_from_cri(answer: Any, sandbox_answer: Any, kind: str) -> Container:
    """A :class:`Container` from ``ContainerStatus`` and its pod's ``PodSandboxStatus``."""
    st = answer.status
    info = _info(answer)
    spec = info.get("runtimeSpec") if isinstance(info.get("runtimeSpec"), dict) else {}
    facts = spec_facts(spec) if spec else {}
    config = info.get("config") if isinstance(info.get("config"), dict) else {}
    security = ((config.get("linux") or {}).get("security_context") or {})
    privileged = bool(security.get("privileged")) if "privileged" in security \
        else facts.get("privileged")
    image = st.image.user_specified_image or st.image.image
    ref_id = st.image_ref if st.image_ref.startswith("sha256:") else ""
    image_id = strip_algo(st.image_id or ref_id or (image if image.startswith("sha256:")
                                                    else ""))
    repo, tag, digest = image_parts(image, image_id)
    if st.image_ref and "@" in st.image_ref and not digest:
        digest = st.image_ref.partition("@")[2]
    mounts = [Mount(source=m.host_path, dest=m.container_path, mode="ro" if m.readonly else "",
                    rw=not m.readonly, propagation=_PROPAGATION.get(m.propagation, ""))
              for m in st.mounts]
    labels = dict(st.labels)
    pod: dict[str, Any] = {"pod_labels": {}, "ip": None, "cni_json": None,
                           "host_network": facts.get("host_network")}
    if sandbox_answer is not None and sandbox_answer.status.id:
        labels = _pod_labels(labels, sandbox_answer.status)
        pod = _pod_facts(sandbox_answer)
    return Container(
        id=st.id[:12], full_id=st.id, type=kind,
        name=st.metadata.name or None,
        image=image or None, image_repository=repo, image_tag=tag,
        image_id=image_id or None, image_digest=digest,
        privileged=privileged,
        mounts=mounts or facts.get("mounts", []),
        labels=labels,
        start_ts=st.started_at or None,
        user=facts.get("user"),
        host_pid=facts.get("host_pid"),
        host_ipc=facts.get("host_ipc"),
        complete=True,
        **pod,
    )


def _pod_facts(sandbox_answer: Any) -> dict[str, Any]:
    """What a container takes from its pod: the pod's labels, ip, host networking, CNI."""
    box = sandbox_answer.status
    cni = _info(sandbox_answer).get("cniResult")
    return {
        "pod_labels": dict(box.labels),
        "ip": box.network.ip or None,
        "host_network": box.linux.namespaces.options.network == api_pb2.NODE,
        "cni_json": json.dumps(cni, separators=(",", ":"), sort_keys=True) if cni else None,
    }


def _pod_labels(labels: dict[str, str], box: Any) -> dict[str, str]:
    """The kubelet's pod labels (``io.kubernetes.*``) from the sandbox, where missing."""
    labels.setdefault(K8S_POD, box.metadata.name)
    labels.setdefault(K8S_NS, box.metadata.namespace)
    labels.setdefault(K8S_UID, box.metadata.uid)
    labels.setdefault(K8S_SANDBOX, box.id)
    return labels


def sandbox_from_cri(sandbox_answer: Any, kind: str) -> Container:
    """A pod sandbox as a container (Falco's: named after the pod)."""
    box = sandbox_answer.status
    spec = _info(sandbox_answer).get("runtimeSpec")
    facts = spec_facts(spec) if isinstance(spec, dict) else {}
    facts.update(_pod_facts(sandbox_answer))
    return Container(
        id=box.id[:12], full_id=box.id, type=kind, name=box.metadata.name or None,
        labels=_pod_labels(dict(box.labels), box), start_ts=box.created_at or None,
        complete=True, **facts)
