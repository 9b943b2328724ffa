"""Falco's ``container.*`` and ``k8s.*`` fields: one table of rows (:data:`FIELDS`, made from
:class:`~syswarden.core.fields.Field` rows), the readers above it.

Readers read ``evt.container`` (a :class:`~syswarden.core.event.Container`, None on the host)
and ``evt.proc.container_id`` (``"host"``, a 12-hex short id, or ``""`` when unknown).  They
follow Falco's semantics (falcosecurity/libs, the container filter checks):

- On the host, ``container.id``, ``container.name``, ``container.type`` and
  ``container.full_id`` read ``host``; every other field is unknown.
- In a container whose metadata is not known (the lookup is pending or failed, or the runtime
  is known to no engine), ``container.id`` and ``container.type`` are known, the rest is unknown.
- A missing value is None, which the rule engine treats as Falco treats a field that extracts
  nothing: every comparison on it is false.  So ``container.mount.dest[/mnt*] != "N/A"`` holds
  only when a mount whose *source* matches ``/mnt*`` exists, as the seed's rules expect.
- ``container.mount.<x>[arg]``: an integer arg is the mount's index; any other arg is a glob
  (``fnmatch``, ``*`` crosses ``/``) on the mount's source (on its destination for
  ``container.mount.source``); the first matching mount answers.
- ``%container.info`` is ``<name> (id=<id>)``, Falco's generic rendering of it.
- ``k8s.*`` come from the labels the kubelet sets (``io.kubernetes.pod.namespace``,
  ``io.kubernetes.pod.name``, ``io.kubernetes.pod.uid``, ``io.kubernetes.sandbox.id``), which
  the CRI engine fills from the pod sandbox's status; pod labels are the labels of the pod's
  sandbox.  The ``k8s.rc.*``, ``k8s.svc.*``,
  ``k8s.rs.*``, ``k8s.deployment.*`` fields (Falco's deprecated API-server fields) are declared
  so rules naming them load; they read as unknown.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable

from syswarden.core.cgroups import HOST, SHORT_ID_LEN
from syswarden.core.fields import ArgKind, Bound, Field, FieldType, define

from .metadata import K8S_NS, K8S_POD, K8S_SANDBOX, K8S_UID

S = FieldType.STRING
B = FieldType.BOOL
ABS = FieldType.ABSTIME
REL = FieldType.RELTIME

NA = "<NA>"


def _cid(evt: Any) -> str | None:
    c = evt.container
    if c is not None:
        return c.id
    p = evt.proc
    return (p.container_id or None) if p is not None else None


def _is_host(evt: Any) -> bool:
    if evt.container is not None:
        return False
    p = evt.proc
    return p is not None and p.container_id == HOST


# -- identity ---------------------------------------------------------------------------------


def _container_id(evt: Any) -> str | None:
    return _cid(evt)


def _or_host(get: Callable[[Any], str | None]) -> Callable[[Any], str | None]:
    """A reader of the container's value that reads ``host`` for a process on the host."""
    def read(evt: Any) -> str | None:
        c = evt.container
        if c is not None:
            return get(c) or None
        return HOST if _is_host(evt) else None
    return read


_container_name = _or_host(lambda c: c.name)


def _container_info(evt: Any) -> str | None:
    cid = _cid(evt)
    if cid is None:
        return None
    name = _container_name(evt)
    return f"{name if name is not None else NA} (id={cid})"


def _attr(name: str) -> Callable[[Any], Any]:
    def read(evt: Any) -> Any:
        c = evt.container
        return getattr(c, name, None) if c is not None else None
    return read


def _healthcheck(evt: Any) -> str | None:
    c = evt.container
    if c is None or not c.complete:
        return None
    return c.healthcheck or "NONE"


def _probe(name: str) -> Callable[[Any], str | None]:
    """Falco's ``container.<name>``: the probe's command line (its argv joined by spaces),
    ``NONE`` when the container has none."""
    def read(evt: Any) -> str | None:
        c = evt.container
        if c is None or not c.complete:
            return None
        argv = getattr(c, name)
        return " ".join(argv) if argv else "NONE"
    return read


def _start_ts(evt: Any) -> int | None:
    c = evt.container
    return c.start_ts if c is not None else None


def _duration(evt: Any) -> int | None:
    c = evt.container
    if c is None or not c.start_ts or not evt.ts:
        return None
    return evt.ts - c.start_ts


# -- labels -----------------------------------------------------------------------------------


def _join_labels(labels: dict[str, str] | None, k8s: bool = False) -> str | None:
    if labels is None:
        return None
    items = [(k, v) for k, v in sorted(labels.items())
             if not k8s or not (k.startswith("io.kubernetes.") or k.startswith("annotation."))]
    return ",".join(f"{k}:{v}" if v else k for k, v in items)


def _container_label(arg: Any) -> Bound:
    key = str(arg)

    def read(evt: Any) -> str | None:
        c = evt.container
        return c.labels.get(key) if c is not None else None
    return Bound(read)


def _container_labels(evt: Any) -> str | None:
    c = evt.container
    return _join_labels(c.labels) if c is not None and c.complete else None


# -- mounts -----------------------------------------------------------------------------------


def _mount_text(m: Any) -> str:
    return f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rw else 'false'}:{m.propagation}"


def _container_mounts(evt: Any) -> str | None:
    c = evt.container
    if c is None or not c.complete:
        return None
    return ",".join(_mount_text(m) for m in c.mounts)


def _mount(part: Callable[[Any], str], key: str) -> Callable[[Any], Bound]:
    """The reader of ``container.mount.<x>`` (every mount's part: many), ``[index]`` (that
    mount's) or ``[glob]`` (the first mount whose ``key``, source or dest, matches), given the
    argument."""
    def bind(arg: Any) -> Bound:
        if arg is None or arg == "":
            def read_all(evt: Any) -> tuple | None:
                c = evt.container
                if c is None or not c.complete:
                    return None
                return tuple(part(m) for m in c.mounts)
            return Bound(read_all, many=True)
        if isinstance(arg, int) or (isinstance(arg, str) and arg.strip().isdigit()):
            index = int(arg)

            def read_index(evt: Any) -> str | None:
                c = evt.container
                if c is None or index >= len(c.mounts):
                    return None
                return part(c.mounts[index])
            return Bound(read_index)
        match = re.compile(fnmatch.translate(str(arg))).match

        def read_glob(evt: Any) -> str | None:
            c = evt.container
            if c is None:
                return None
            for m in c.mounts:
                if match(getattr(m, key)):
                    return part(m)
            return None
        return Bound(read_glob)
    return bind


# -- Kubernetes -------------------------------------------------------------------------------


def _label(key: str) -> Callable[[Any], str | None]:
    def read(evt: Any) -> str | None:
        c = evt.container
        return c.labels.get(key) if c is not None else None
    return read


def _pod_labels_of(evt: Any) -> dict[str, str] | None:
    c = evt.container
    if c is None:
        return None
    return getattr(c, "pod_labels", None)


def _sandbox_full(evt: Any) -> str | None:
    c = evt.container
    if c is None:
        return None
    sid = c.labels.get(K8S_SANDBOX)
    if sid:
        return sid
    if c.name and c.name.startswith("k8s_POD_"):
        return c.full_id or None
    return None


def _sandbox_short(evt: Any) -> str | None:
    sid = _sandbox_full(evt)
    return sid[:SHORT_ID_LEN] if sid else None


def _pod_label(arg: Any) -> Bound:
    key = str(arg)

    def read(evt: Any) -> str | None:
        labels = _pod_labels_of(evt)
        return labels.get(key) if labels is not None else None
    return Bound(read)


def _pod_labels(evt: Any) -> str | None:
    return _join_labels(_pod_labels_of(evt), k8s=True)


def _pod_rows(prefix: str) -> tuple[Field, ...]:
    """The pod's fields, under ``k8s.`` and under ``container.k8s.``."""
    return (
        Field(f"{prefix}.pod.name", S, f"The Kubernetes pod name (label {K8S_POD})",
              _label(K8S_POD)),
        Field(f"{prefix}.ns.name", S, f"The Kubernetes namespace name (label {K8S_NS})",
              _label(K8S_NS)),
        Field(f"{prefix}.pod.id", S, "[legacy] The Kubernetes pod UID, as k8s.pod.uid",
              _label(K8S_UID)),
        Field(f"{prefix}.pod.label", S, "A Kubernetes pod label, e.g. k8s.pod.label[app] (from "
              "the pod's sandbox container)", _pod_label, ArgKind.KEY, "[key]"),
        Field(f"{prefix}.pod.labels", S, "The Kubernetes pod labels, comma-separated key:value "
              "pairs", _pod_labels),
    )


#: why Falco's API-server fields of Kubernetes objects are refused: Falco 0.44's container
#: plugin declares them deprecated and never extracts them (the k8smeta plugin has them)
NO_K8S_OBJECTS = ("deprecated in Falco (its container plugin never extracts it; Falco's "
                  "k8smeta plugin, which watches the Kubernetes API server, gives it)")


def _deprecated_rows(kind: str, what: str) -> tuple[Field, ...]:
    """Falco's deprecated API-server fields of one kind of object: refused (see
    :data:`NO_K8S_OBJECTS`)."""
    return (
        Field(f"k8s.{kind}.name", S, f"Kubernetes {what} name", None,
              unsupported=NO_K8S_OBJECTS),
        Field(f"k8s.{kind}.id", S, f"Kubernetes {what} id", None, unsupported=NO_K8S_OBJECTS),
        Field(f"k8s.{kind}.label", S, f"Kubernetes {what} label", None, ArgKind.KEY, "[key]",
              unsupported=NO_K8S_OBJECTS),
        Field(f"k8s.{kind}.labels", S, f"Kubernetes {what} labels", None,
              unsupported=NO_K8S_OBJECTS),
    )


def _mount_desc(what: str, by: str = "source") -> str:
    return f"{what}, by index ([0]) or by a glob on its {by} ([/proc*])"


FIELDS = define("container", (
    # identity
    Field("container.id", S, "The truncated container id (first 12 characters); 'host' for a "
          "process on the host", _container_id),
    Field("container.full_id", S, "The full container id; 'host' for a process on the host",
          _or_host(lambda c: c.full_id)),
    Field("container.name", S, "The container name; 'host' for a process on the host",
          _container_name),
    Field("container.type", S, "The container type (docker, containerd, cri-o, podman, cri); "
          "'host' for a process on the host", _or_host(lambda c: c.type)),
    Field("container.info", S, "Falco's %container.info: '<name> (id=<id>)'", _container_info),
    Field("container.image", S, "The container image as it was named (e.g. nginx:latest)",
          _attr("image")),
    Field("container.image.id", S, "The container image id (e.g. 6f7e2741b66b...)",
          _attr("image_id")),
    Field("container.image.repository", S, "The container image repository (e.g. "
          "falcosecurity/falco)", _attr("image_repository")),
    Field("container.image.tag", S, "The container image tag (e.g. stable, latest)",
          _attr("image_tag")),
    Field("container.image.digest", S, "The container image registry digest",
          _attr("image_digest")),
    Field("container.ip", S, "The container's primary ipv4 address, from the container engine",
          _attr("ip")),
    Field("container.user", S, "The user the container's process runs as (Config.User)",
          _attr("user")),
    Field("container.privileged", B, "'true' for a privileged container, else 'false'",
          _attr("privileged")),
    Field("container.host_pid", B, "'true' when the container shares the host's pid namespace",
          _attr("host_pid")),
    Field("container.host_network", B, "'true' when the container shares the host's network "
          "namespace", _attr("host_network")),
    Field("container.host_ipc", B, "'true' when the container shares the host's ipc namespace",
          _attr("host_ipc")),
    Field("container.healthcheck", S, "The container's health check command line; 'NONE' when "
          "it has none", _healthcheck),
    Field("container.liveness_probe", S, "The container's Kubernetes liveness probe command "
          "line (its pod spec's exec probe); 'NONE' when it has none", _probe("liveness_probe")),
    Field("container.readiness_probe", S, "The container's Kubernetes readiness probe command "
          "line (its pod spec's exec probe); 'NONE' when it has none",
          _probe("readiness_probe")),
    Field("container.cni.json", S, "The pod's CNI result as JSON (CRI runtimes only)",
          _attr("cni_json")),
    Field("container.start_ts", ABS, "Container start as epoch timestamp in nanoseconds",
          _start_ts),
    Field("container.duration", REL, "Number of nanoseconds since container.start_ts",
          _duration),
    # labels
    Field("container.label", S, "A container label, e.g. container.label[com.example.team]",
          _container_label, ArgKind.KEY, "[key]"),
    Field("container.labels", S, "The container's labels, comma-separated key:value pairs",
          _container_labels),
    # mounts
    Field("container.mounts", S, "The container's mounts, comma-separated "
          "source:dest:mode:rdrw:propagation items", _container_mounts),
    Field("container.mount", S,
          _mount_desc("Information about a single mount (source:dest:mode:rdrw:propagation)"),
          _mount(_mount_text, "source"), ArgKind.INDEX_OR_KEY, "[index|glob]"),
    Field("container.mount.source", S, _mount_desc("The source of a mount", "destination"),
          _mount(lambda m: m.source, "dest"), ArgKind.INDEX_OR_KEY, "[index|glob]"),
    Field("container.mount.dest", S, _mount_desc("The destination of a mount"),
          _mount(lambda m: m.dest, "source"), ArgKind.INDEX_OR_KEY, "[index|glob]"),
    Field("container.mount.mode", S, _mount_desc("The mode of a mount"),
          _mount(lambda m: m.mode, "source"), ArgKind.INDEX_OR_KEY, "[index|glob]"),
    Field("container.mount.rdwr", S, _mount_desc("The read/write flag (true/false) of a mount"),
          _mount(lambda m: "true" if m.rw else "false", "source"), ArgKind.INDEX_OR_KEY,
          "[index|glob]"),
    Field("container.mount.propagation", S, _mount_desc("The propagation of a mount"),
          _mount(lambda m: m.propagation, "source"), ArgKind.INDEX_OR_KEY, "[index|glob]"),
    # Kubernetes
    *_pod_rows("k8s"),
    *_pod_rows("container.k8s"),
    Field("k8s.pod.uid", S, f"The Kubernetes pod UID (label {K8S_UID})", _label(K8S_UID)),
    Field("k8s.pod.sandbox_id", S, "The truncated pod sandbox id (first 12 characters)",
          _sandbox_short),
    Field("k8s.pod.full_sandbox_id", S, "The full pod sandbox id", _sandbox_full),
    Field("k8s.pod.ip", S, "The Kubernetes pod ip, as container.ip", _attr("ip")),
    Field("k8s.pod.cni.json", S, "The pod's CNI result as JSON (CRI runtimes only)",
          _attr("cni_json")),
    *_deprecated_rows("rc", "replication controller"),
    *_deprecated_rows("svc", "service"),
    *_deprecated_rows("rs", "replica set"),
    *_deprecated_rows("deployment", "deployment"),
    Field("k8s.ns.id", S, "Kubernetes namespace id", None, unsupported=NO_K8S_OBJECTS),
    Field("k8s.ns.label", S, "Kubernetes namespace label", None, ArgKind.KEY, "[key]",
          unsupported=NO_K8S_OBJECTS),
    Field("k8s.ns.labels", S, "Kubernetes namespace labels", None,
          unsupported=NO_K8S_OBJECTS),
))
