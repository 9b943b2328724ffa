"""The CRI engine: the kubelet's runtime API (``runtime.v1.RuntimeService``), as containerd's CRI
plugin and CRI-O serve it.

A lookup is the kubelet's own view of a container, read as Falco's CRI engine reads it:

- ``ContainerStatus`` (verbose): the CRI container name (``container.name``), the image (its
  name from the status, the digest from ``image_ref``, the id from the container's config),
  the labels (those no longer than ``label_max_len``), the mounts (propagation ``private``,
  ``rslave``, ``rshared``), the creation time (``container.start_ts``), the uid; its verbose
  ``info`` (JSON) says privileged (the runtime spec's security context, else the config's,
  else the runtime's own flag) and the pid of its first process;
- ``ContainerStats``, with ``with_size`` only: the bytes of its writable layer;
- ``ListContainers`` (filtered by id): the pod sandbox the container belongs to;
- ``PodSandboxStatus`` (verbose): the pod's name, namespace, uid and sandbox id (``k8s.pod.*``,
  set as the kubelet's ``io.kubernetes.*`` labels), the pod's labels (``k8s.pod.label[...]``),
  its ip (``k8s.pod.ip``), host network, pid and ipc namespaces, and the CNI interfaces the
  runtime recorded (``k8s.pod.cni.json``).

``container.type`` is the runtime's name from ``Version``: ``containerd`` or ``cri-o``.

New containers are announced by the CRI's event stream, ``GetContainerEvents`` (containerd 1.7
and later, CRI-O 1.26 and later with ``enable_pod_events``), as Falco's CRI engine reads it: a
container created (``create`` hook) or started (``start`` hook) is looked up at once, so its
first process finds its metadata; a container deleted is forgotten.  A runtime that does not
serve the stream (``UNIMPLEMENTED``: containerd 1.6, Debian 12's) is said in one log line and
pinged instead; then containers started on containerd are announced by the containerd engine's
stream, or looked up when an event first carries them (the batch waits for it, bounded).
"""

from __future__ import annotations

import json
import logging
from typing import Any, AsyncIterator, Callable

from syswarden.core.event import Container, Mount

from ..engine import DEFAULT_OPTIONS, ContainerEngine, EngineEvent, EngineOptions
from ..metadata import (K8S_NS, K8S_POD, K8S_SANDBOX, K8S_UID, LAST_APPLIED, pod_probes,
                        probes_of, short_labels, split_image, strip_algo)
from ..stubs.cri import api_pb2, api_pb2_grpc
from .grpcio import GrpcLink, Unimplemented, json_or_empty

log = logging.getLogger("syswarden.container")

DEFAULT_SOCKETS = ("/run/containerd/containerd.sock", "/run/crio/crio.sock",
                   "/run/k3s/containerd/containerd.sock")

CNI_MAX = 4096
_PROPAGATION = {
    api_pb2.PROPAGATION_PRIVATE: "private",
    api_pb2.PROPAGATION_HOST_TO_CONTAINER: "rslave",
    api_pb2.PROPAGATION_BIDIRECTIONAL: "rshared",
}
_RUNTIME_TYPES = {"containerd": "containerd", "cri-o": "cri-o"}
#: CRI container event -> (what it means for the cache, the hook that must be on or None)
_EVENTS = {
    api_pb2.CONTAINER_CREATED_EVENT: ("refresh", "create"),
    api_pb2.CONTAINER_STARTED_EVENT: ("refresh", "start"),
    api_pb2.CONTAINER_DELETED_EVENT: ("destroy", None),
}


class CriEngine(ContainerEngine):
    """``runtime.v1.RuntimeService`` (``container.type``: the runtime's name)."""

    name = "cri"
    types = frozenset({"cri", "containerd", "cri-o"})
    default_sockets = DEFAULT_SOCKETS

    def __init__(self, socket: str = DEFAULT_SOCKETS[0], timeout: float = 2.0,
                 options: EngineOptions = DEFAULT_OPTIONS) -> None:
        super().__init__(socket, timeout, options)
        self.link = GrpcLink(socket, timeout)
        self.runtime = api_pb2_grpc.RuntimeServiceStub(self.link.channel)
        self.kind = "cri"
        #: whether the runtime serves GetContainerEvents (None: not asked yet)
        self.streams: bool | None = None

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
        container = container_from_cri(status, sandbox, self.kind, self.options,
                                       self.unreadable)
        if self.options.with_size:
            stats = await self.link.call(
                self.runtime.ContainerStats,
                api_pb2.ContainerStatsRequest(container_id=status.status.id), not_found=True)
            if stats is not None and stats.stats.HasField("writable_layer"):
                container.size_rw = stats.stats.writable_layer.used_bytes.value
        return container

    async def _sandbox(self, full_id: str) -> Container | None:
        """A pod's sandbox (its pause process is in a container's cgroup of its own)."""
        box = await self.link.call(
            self.runtime.PodSandboxStatus,
            api_pb2.PodSandboxStatusRequest(pod_sandbox_id=full_id, verbose=True),
            not_found=True)
        if box is None or not box.status.id:
            return None
        return sandbox_from_cri(box, self.kind, self.options)

    async def list_running(self) -> list[str]:
        running = api_pb2.ContainerStateValue(state=api_pb2.CONTAINER_RUNNING)
        answer = await self.link.call(
            self.runtime.ListContainers,
            api_pb2.ListContainersRequest(filter=api_pb2.ContainerFilter(state=running)))
        return [c.id for c in answer.containers]

    async def events(self) -> AsyncIterator[EngineEvent]:
        """``GetContainerEvents``; the base class's heartbeat when the runtime has no such
        stream (said once)."""
        try:
            async for answer in self.link.stream(self.runtime.GetContainerEvents,
                                                 api_pb2.GetEventsRequest()):
                self.streams = True
                action, hook = _EVENTS.get(answer.container_event_type, (None, None))
                if action is not None and answer.container_id \
                        and (hook is None or self.hooked(hook)):
                    yield EngineEvent(answer.container_id, action)
            return
        except Unimplemented as exc:
            if self.streams is None:
                log.info("cri: %s serves no container event stream (%s; containerd before "
                         "1.7, CRI-O without enable_pod_events): its containers are looked up "
                         "when an event first carries them", self.socket, exc)
            self.streams = False
        async for news in super().events():
            yield news


def _info(answer: Any) -> dict[str, Any]:
    """The verbose ``info`` map: containerd puts one JSON document under ``info``."""
    doc = json_or_empty(answer.info.get("info")) if answer is not None else {}
    return doc


def _privileged(info: dict[str, Any]) -> bool:
    """Falco's order: the runtime spec's security context, the container config's, the
    runtime's own ``privileged`` (CRI-O)."""
    for where in (info.get("runtimeSpec"), info.get("config")):
        security = ((where or {}).get("linux") or {}).get("security_context") or {} \
            if isinstance(where, dict) else {}
        if isinstance(security, dict) and "privileged" in security:
            return bool(security["privileged"])
    return bool(info.get("privileged", False))


def _image(st: Any, info: dict[str, Any]) -> dict[str, Any]:
    """Image name, repository, tag, id and digest as Falco's CRI engine reads them: the name
    from the status (or, when it is an id, from the runtime's annotations), the digest from
    ``image_ref`` (``host/image@sha256:...`` names the image too), the id from the config."""
    name, ref = st.image.image, st.image_ref
    digest = ""
    if ref.startswith("sha256:"):
        digest = ref
    elif "@sha256:" in ref:
        name, _, digest = ref.partition("@")
        tag = split_image(st.image.image)[1]
        name = f"{name}:{tag}" if tag else name
    if not name or name.startswith("sha256"):
        notes = (info.get("runtimeSpec") or {}).get("annotations") or {}
        name = next((notes[k] for k in ("io.kubernetes.cri.image-name",
                                         "io.kubernetes.cri-o.Image",
                                         "io.kubernetes.cri-o.ImageName") if k in notes), name)
    config_image = ((info.get("config") or {}).get("image") or {}).get("image") or ""
    image_id = strip_algo(config_image) if config_image.startswith("sha256:") else ""
    repo, tag, _ = split_image(name) if name else ("", "", "")
    return {"image": name or None, "image_repository": repo or None, "image_tag": tag or None,
            "image_id": image_id or strip_algo(st.image_id) or None,
            "image_digest": digest or None}


def container_from_cri(answer: Any, sandbox_answer: Any, kind: str,
                       options: EngineOptions = DEFAULT_OPTIONS,
                       warn: Callable[[str, str], None] | None = None) -> Container:
    """A :class:`Container` from ``ContainerStatus`` and its pod's ``PodSandboxStatus``, read
    as Falco's CRI engine reads them; its probes from the pod's ``last-applied-configuration``
    annotation (the container's own annotations, else the pod sandbox's), the spec's
    container of its CRI name.  ``warn(id, what)`` is told what could not be read."""
    st = answer.status
    info = _info(answer)
    most = options.label_max_len
    mounts = [Mount(source=m.host_path, dest=m.container_path, rw=not m.readonly,
                    propagation=_PROPAGATION.get(m.propagation, "unknown"))
              for m in st.mounts]
    labels = short_labels(st.labels, most)
    pod: dict[str, Any] = {}
    if sandbox_answer is not None and sandbox_answer.status.id:
        labels = _pod_labels(labels, sandbox_answer.status)
        pod = _pod_facts(sandbox_answer, most)
    notes = st.annotations if LAST_APPLIED in st.annotations else \
        sandbox_answer.status.annotations if sandbox_answer is not None else {}
    spec, error = pod_probes(notes.get(LAST_APPLIED))
    if error is not None and warn is not None:
        warn(st.id, f"{LAST_APPLIED}: {error}")
    liveness, readiness = probes_of(spec, st.metadata.name)
    return Container(
        id=st.id[:12], full_id=st.id, type=kind, name=st.metadata.name or None,
        privileged=_privileged(info), mounts=mounts, labels=labels,
        start_ts=st.created_at or None,
        user=str(st.user.linux.uid) if st.HasField("user") else "0",
        liveness_probe=liveness, readiness_probe=readiness,
        pid=_pid(info), complete=True, **_image(st, info), **pod)


def _pid(info: dict[str, Any]) -> int | None:
    """The pid of the first process, from the verbose info (containerd's and CRI-O's)."""
    pid = info.get("pid")
    return pid if isinstance(pid, int) and pid > 0 else None


def _pod_facts(sandbox_answer: Any, most: int) -> dict[str, Any]:
    """What a container takes from its pod: the pod's labels (those no longer than ``most``),
    ip, host namespaces, CNI."""
    box = sandbox_answer.status
    options = box.linux.namespaces.options
    return {
        "pod_labels": short_labels(box.labels, most),
        "ip": box.network.ip or None,
        "host_network": options.network == api_pb2.NODE,
        "host_pid": options.pid == api_pb2.NODE,
        "host_ipc": options.ipc == api_pb2.NODE,
        "cni_json": _cni_json(_info(sandbox_answer)),
    }


def _cni_json(info: dict[str, Any]) -> str | None:
    """The pod's CNI interfaces but ``lo`` and ``veth`` (containerd's ``cniResult``), or
    CRI-O's ``io.kubernetes.cri-o.CNIResult`` annotation; at most 4096 characters."""
    text = None
    result = info.get("cniResult")
    if isinstance(result, dict) and isinstance(result.get("interfaces"), list):
        ifaces = [i for i in result["interfaces"]
                  if isinstance(i, dict) and i.get("name") not in ("lo", "veth")]
        text = json.dumps(ifaces, separators=(",", ":"))
    else:
        notes = (info.get("runtimeSpec") or {}).get("annotations") or {}
        text = notes.get("io.kubernetes.cri-o.CNIResult")
    return text[:CNI_MAX] if text else None


def _pod_labels(labels: dict[str, str], box: Any) -> dict[str, str]:
    """The kubelet's pod labels (``io.kubernetes.*``), from the sandbox's status."""
    labels[K8S_SANDBOX] = box.id
    labels[K8S_UID] = box.metadata.uid
    labels[K8S_POD] = box.metadata.name
    labels[K8S_NS] = box.metadata.namespace
    return labels


def sandbox_from_cri(sandbox_answer: Any, kind: str,
                     options: EngineOptions = DEFAULT_OPTIONS) -> Container:
    """A pod sandbox as a container, named after the pod (Falco's CRI engine does not answer
    for a sandbox: its pause process would read unknown)."""
    box = sandbox_answer.status
    most = options.label_max_len
    return Container(
        id=box.id[:12], full_id=box.id, type=kind, name=box.metadata.name or None,
        labels=_pod_labels(short_labels(box.labels, most), box),
        start_ts=box.created_at or None, pid=_pid(_info(sandbox_answer)),
        complete=True, **_pod_facts(sandbox_answer, most))
