"""The containerd engine: containerd's own gRPC API (``containerd.services.*.v1``).

A container lives in a containerd namespace (``k8s.io`` is the kubelet's, ``default`` is
``ctr``'s): every call names one in its ``containerd-namespace`` metadata, and a lookup tries
each namespace ``Namespaces.List`` gives, but Docker's ``moby`` (its containers are the Docker
engine's, under their Docker names).  What is read follows Falco's containerd engine:

- ``Containers.Get``: the image as named, the labels (those no longer than
  ``label_max_len``), the OCI spec (an ``Any`` holding the spec's JSON: mounts, uid, host
  namespaces, privileged: :func:`~.grpcio.spec_facts`); ``container.name`` is the short id (a
  container of containerd has no other name).
- ``Tasks.Get``: the task's pid, the container's first process (``Container.pid``); the start
  of that process is ``container.start_ts``, as Falco reads it (the start of the pid
  namespace's init); a container with no task (created, not started) or in the host's pid
  namespace has its creation time.
- ``Images.Get``: the image's digest (``container.image.digest``); with ``with_size``, the
  size of the image's target (what Falco's containerd engine reports as the size).
- ``Tasks.List``: the running containers after a (re)connection.
- A container the CRI plugin made (labelled ``io.cri-containerd.kind``) is left to the CRI
  engine when one asks the same socket (``cri_managed=False``): the CRI knows its pod.
- ``Events.Subscribe`` with ``/containers/create`` and ``/tasks/start`` as ``hooks`` says (->
  look it up at once, so a container's first process finds its metadata cached),
  ``/containers/update`` and ``/containers/delete``.

The stubs are generated from the upstream ``.proto`` files at set-up time (:mod:`..protos`).
"""

from __future__ import annotations

from typing import Any, AsyncIterator

from syswarden.core.event import Container

from ..engine import DEFAULT_OPTIONS, ContainerEngine, EngineEvent, EngineOptions
from ..metadata import image_parts, process_start_ns, short_labels
from ..stubs.containerd.events import container_pb2 as container_events
from ..stubs.containerd.events import task_pb2 as task_events
from ..stubs.containerd.services.containers.v1 import containers_pb2, containers_pb2_grpc
from ..stubs.containerd.services.events.v1 import events_pb2, events_pb2_grpc
from ..stubs.containerd.services.images.v1 import images_pb2, images_pb2_grpc
from ..stubs.containerd.services.namespaces.v1 import namespace_pb2, namespace_pb2_grpc
from ..stubs.containerd.services.tasks.v1 import tasks_pb2, tasks_pb2_grpc
from ..stubs.containerd.services.version.v1 import version_pb2_grpc
from ..stubs.containerd.types.task import task_pb2
from .grpcio import GrpcLink, json_or_empty, spec_facts

DEFAULT_SOCKET = "/run/containerd/containerd.sock"
#: containerd namespaces whose containers another engine answers for (Docker's)
SKIPPED_NAMESPACES = frozenset({"moby"})
#: the label containerd's CRI plugin puts on the containers and sandboxes it made
CRI_KIND = "io.cri-containerd.kind"
#: topic -> (event message, what it means for the cache, the hook that must be on or None)
TOPICS = {
    "/containers/create": (container_events.ContainerCreate, "refresh", "create"),
    "/tasks/start": (task_events.TaskStart, "refresh", "start"),
    "/containers/update": (container_events.ContainerUpdate, "refresh", None),
    "/containers/delete": (container_events.ContainerDelete, "destroy", None),
}


def _ns(namespace: str) -> tuple[tuple[str, str], ...]:
    return (("containerd-namespace", namespace),)


class ContainerdEngine(ContainerEngine):
    """containerd's gRPC API (``container.type`` containerd)."""

    name = "containerd"
    types = frozenset({"containerd", "cri"})
    default_sockets = (DEFAULT_SOCKET, "/run/k3s/containerd/containerd.sock")

    def __init__(self, socket: str = DEFAULT_SOCKET, timeout: float = 2.0,
                 cri_managed: bool = True, options: EngineOptions = DEFAULT_OPTIONS) -> None:
        super().__init__(socket, timeout, options)
        self.cri_managed = cri_managed
        self.link = GrpcLink(socket, timeout)
        channel = self.link.channel
        self.containers = containers_pb2_grpc.ContainersStub(channel)
        self.images = images_pb2_grpc.ImagesStub(channel)
        self.tasks = tasks_pb2_grpc.TasksStub(channel)
        self.event_service = events_pb2_grpc.EventsStub(channel)
        self.version = version_pb2_grpc.VersionStub(channel)
        self.namespace_service = namespace_pb2_grpc.NamespacesStub(channel)

    async def namespaces(self) -> list[str]:
        """The namespaces to look in, ``k8s.io`` (the kubelet's) first."""
        answer = await self.link.call(self.namespace_service.List,
                                      namespace_pb2.ListNamespacesRequest())
        names = [n.name for n in answer.namespaces if n.name not in SKIPPED_NAMESPACES]
        return sorted(names, key=lambda n: n != "k8s.io")

    async def aclose(self) -> None:
        self.link.close()

    async def ping(self) -> str:
        from google.protobuf import empty_pb2

        answer = await self.link.call(self.version.Version, empty_pb2.Empty())
        return f"containerd {answer.version}"

    async def inspect(self, full_id: str) -> Container | None:
        for namespace in await self.namespaces():
            md = _ns(namespace)
            got = await self.link.call(self.containers.Get,
                                       containers_pb2.GetContainerRequest(id=full_id), md,
                                       not_found=True)
            if got is None:
                continue
            c = got.container
            if not self.cri_managed and CRI_KIND in c.labels:
                return None             # the CRI engine on this socket answers for it
            target = None
            if c.image:
                image = await self.link.call(self.images.Get,
                                             images_pb2.GetImageRequest(name=c.image), md,
                                             not_found=True)
                target = image.image.target if image is not None else None
            task = await self.link.call(self.tasks.Get,
                                        tasks_pb2.GetRequest(container_id=c.id), md,
                                        not_found=True)
            container = container_from_containerd(c, target, self.options)
            if task is not None and task.process.pid:
                container.pid = task.process.pid
                if not container.host_pid:
                    container.start_ts = process_start_ns(task.process.pid) \
                        or container.start_ts
            return container
        return None

    async def list_running(self) -> list[str]:
        ids: list[str] = []
        for namespace in await self.namespaces():
            answer = await self.link.call(self.tasks.List, tasks_pb2.ListTasksRequest(),
                                          _ns(namespace))
            ids += [t.id for t in answer.tasks if t.status == task_pb2.Status.RUNNING]
        return ids

    async def events(self) -> AsyncIterator[EngineEvent]:
        request = events_pb2.SubscribeRequest(
            filters=[f'topic=="{topic}"' for topic, (_, _, hook) in TOPICS.items()
                     if hook is None or self.hooked(hook)])
        async for envelope in self.link.stream(self.event_service.Subscribe, request):
            if envelope.namespace in SKIPPED_NAMESPACES:
                continue
            known = TOPICS.get(envelope.topic)
            if known is None:
                continue
            message_type, action, _ = known
            # containerd's type urls carry no '/' ("containerd.events.TaskStart"), which
            # Any.Unpack refuses: the name is checked here, the bytes parsed as the message
            if envelope.event.type_url.rsplit("/", 1)[-1] != message_type.DESCRIPTOR.full_name:
                continue
            message = message_type.FromString(envelope.event.value)
            full = getattr(message, "container_id", "") or getattr(message, "id", "")
            if full:
                yield EngineEvent(full, action)


def container_from_containerd(c: Any, target: Any = None,
                              options: EngineOptions = DEFAULT_OPTIONS) -> Container:
    """A :class:`Container` from containerd's container record and its image's target
    descriptor, as Falco's engine reads them."""
    spec = json_or_empty(c.spec.value) if c.HasField("spec") else {}
    repo, tag, image_digest = image_parts(c.image, "")
    created = c.created_at.seconds * 1_000_000_000 + c.created_at.nanos \
        if c.HasField("created_at") else None
    return Container(
        id=c.id[:12], full_id=c.id, type="containerd", name=c.id[:12],
        image=c.image or None, image_repository=repo, image_tag=tag,
        image_digest=image_digest or (target.digest if target is not None else None) or None,
        labels=short_labels(c.labels, options.label_max_len), start_ts=created,
        size_rw=target.size if options.with_size and target is not None else None,
        complete=True, **spec_facts(spec))
