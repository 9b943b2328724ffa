"""Falco's ``container.*`` and ``k8s.*`` fields, declared beside their readers.

Readers read ``evt.container`` (a :class:`~syswarden.core.event.Container`, None on the host)
and ``evt.proc.container_id`` (``"host"``, a 12-hex short id, or ``""`` when unknown).  They
follow Falco's semantics (falcosecurity/libs, the container filter checks):

- On the host, ``container.id``, ``container.name``, ``container.type`` and
  ``container.full_id`` read ``host``; every other field is unknown.
- In a container whose metadata is not known (the lookup is pending or failed, or the runtime
  is not Docker), ``container.id`` and ``container.type`` are known, the rest is unknown.
- A missing value is None, which the rule engine treats as Falco treats a field that extracts
  nothing: every comparison on it is false.  So ``container.mount.dest[/mnt*] != "N/A"`` holds
  only when a mount whose *source* matches ``/mnt*`` exists, as the seed's rules expect.
- ``container.mount.<x>[arg]``: an integer arg is the mount's index; any other arg is a glob
  (``fnmatch``, ``*`` crosses ``/``) on the mount's source (on its destination for
  ``container.mount.source``); the first matching mount answers.
- ``%container.info`` is ``<name> (id=<id>)``, Falco's generic rendering of it.
- ``k8s.*`` come from the labels the kubelet sets (``io.kubernetes.pod.namespace``,
  ``io.kubernetes.pod.name``, ``io.kubernetes.pod.uid``, ``io.kubernetes.sandbox.id``); pod
  labels are the labels of the pod's sandbox container.  The ``k8s.rc.*``, ``k8s.svc.*``,
  ``k8s.rs.*``, ``k8s.deployment.*`` fields (Falco's deprecated API-server fields) are declared
  so rules naming them load; they read as unknown.
"""

from __future__ import annotations

import fnmatch
import re
from typing import Any, Callable

from syswarden.core.fields import ArgKind, Bound, FieldSet, FieldType

from .cgroup import HOST, SHORT_ID_LEN

fields = FieldSet("docker")
field = fields.field

S = FieldType.STRING
B = FieldType.BOOL
ABS = FieldType.ABSTIME
REL = FieldType.RELTIME

K8S_NS = "io.kubernetes.pod.namespace"
K8S_POD = "io.kubernetes.pod.name"
K8S_UID = "io.kubernetes.pod.uid"
K8S_SANDBOX = "io.kubernetes.sandbox.id"
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


@field("container.id", S, "The truncated container id (first 12 characters); 'host' for a "
       "process on the host")
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
field("container.full_id", S, "The full container id; 'host' for a process on the host")(
    _or_host(lambda c: c.full_id))
field("container.name", S, "The container name; 'host' for a process on the host")(
    _container_name)
field("container.type", S, "The container type (docker, containerd, cri-o, podman, cri); "
      "'host' for a process on the host")(_or_host(lambda c: c.type))


@field("container.info", S, "Falco's %container.info: '<name> (id=<id>)'")
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


for _name, _attr_name, _desc in (
    ("container.image", "image", "The container image as it was named (e.g. nginx:latest)"),
    ("container.image.id", "image_id", "The container image id (e.g. 6f7e2741b66b...)"),
    ("container.image.repository", "image_repository",
     "The container image repository (e.g. falcosecurity/falco)"),
    ("container.image.tag", "image_tag", "The container image tag (e.g. stable, latest)"),
    ("container.image.digest", "image_digest", "The container image registry digest"),
    ("container.ip", "ip", "The container's primary ipv4 address, from the container engine"),
    ("container.user", "user", "The user the container's process runs as (Config.User)"),
):
    fields.field(_name, S, _desc)(_attr(_attr_name))

for _name, _attr_name, _desc in (
    ("container.privileged", "privileged", "'true' for a privileged container, else 'false'"),
    ("container.host_pid", "host_pid", "'true' when the container shares the host's pid "
     "namespace"),
    ("container.host_network", "host_network", "'true' when the container shares the host's "
     "network namespace"),
    ("container.host_ipc", "host_ipc", "'true' when the container shares the host's ipc "
     "namespace"),
):
    fields.field(_name, B, _desc)(_attr(_attr_name))


@field("container.healthcheck", S, "The container's health check command line; 'NONE' when "
       "it has none")
def _healthcheck(evt: Any) -> str | None:
    c = evt.container
    if c is None or not c.complete:
        return None
    return c.healthcheck or "NONE"


def _no_probe(evt: Any) -> str | None:
    c = evt.container
    return "NONE" if c is not None and c.complete else None


field("container.liveness_probe", S, "The container's liveness probe ('NONE': Docker has "
      "none)")(_no_probe)
field("container.readiness_probe", S, "The container's readiness probe ('NONE': Docker has "
      "none)")(_no_probe)
fields.declare("container.cni.json", S, "The pod's CNI result as JSON (CRI runtimes only)")


@field("container.start_ts", ABS, "Container start as epoch timestamp in nanoseconds")
def _start_ts(evt: Any) -> int | None:
    c = evt.container
    return c.start_ts if c is not None else None


@field("container.duration", REL, "Number of nanoseconds since container.start_ts")
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


@field("container.label", S, "A container label, e.g. container.label[com.example.team]",
       arg=ArgKind.KEY, arg_hint="[key]")
def _container_label(arg: Any) -> Bound:
    key = str(arg)

    def read(evt: Any) -> str | None:
        c = evt.container
        return c.labels.get(key) if c is not None else None
    return Bound(read)


@field("container.labels", S, "The container's labels, comma-separated key:value pairs")
def _container_labels(evt: Any) -> str | None:
    c = evt.container
    return _join_labels(c.labels) if c is not None and c.complete else None


# -- mounts -----------------------------------------------------------------------------------


def _mount_text(m: Any) -> str:
    return f"{m.source}:{m.dest}:{m.mode}:{'true' if m.rw else 'false'}:{m.propagation}"


@field("container.mounts", S, "The container's mounts, comma-separated "
       "source:dest:mode:rdrw:propagation items")
def _container_mounts(evt: Any) -> str | None:
    c = evt.container
    if c is None or not c.complete:
        return None
    return ",".join(_mount_text(m) for m in c.mounts)


_MOUNT_PARTS: dict[str, tuple[Callable[[Any], str], str]] = {
    "container.mount": (_mount_text, "source"),
    "container.mount.source": (lambda m: m.source, "dest"),
    "container.mount.dest": (lambda m: m.dest, "source"),
    "container.mount.mode": (lambda m: m.mode, "source"),
    "container.mount.rdwr": (lambda m: "true" if m.rw else "false", "source"),
    "container.mount.propagation": (lambda m: m.propagation, "source"),
}


def _mount_binder(part: Callable[[Any], str], key: str) -> Callable[[Any], Bound]:
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


for _name, (_part, _key) in _MOUNT_PARTS.items():
    _what = "Information about a single mount (source:dest:mode:rdrw:propagation)" \
        if _name == "container.mount" else "The {} of a mount".format(
            {"dest": "destination", "rdwr": "read/write flag (true/false)"}.get(
                _name.rsplit(".", 1)[1], _name.rsplit(".", 1)[1]))
    _by = "destination" if _key == "dest" else "source"
    fields.field(_name, S, f"{_what}, by index ([0]) or by a glob on its {_by} ([/proc*])",
                 arg=ArgKind.INDEX_OR_KEY, arg_hint="[index|glob]")(_mount_binder(_part, _key))


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


for _prefix in ("k8s", "container.k8s"):
    field(f"{_prefix}.pod.name", S, "The Kubernetes pod name (label "
          f"{K8S_POD})")(_label(K8S_POD))
    field(f"{_prefix}.ns.name", S, "The Kubernetes namespace name (label "
          f"{K8S_NS})")(_label(K8S_NS))
    field(f"{_prefix}.pod.id", S, "[legacy] The Kubernetes pod UID, as k8s.pod.uid")(
        _label(K8S_UID))
    field(f"{_prefix}.pod.label", S, "A Kubernetes pod label, e.g. k8s.pod.label[app] (from "
          "the pod's sandbox container)", arg=ArgKind.KEY, arg_hint="[key]")(_pod_label)
    field(f"{_prefix}.pod.labels", S, "The Kubernetes pod labels, comma-separated key:value "
          "pairs")(_pod_labels)

field("k8s.pod.uid", S, f"The Kubernetes pod UID (label {K8S_UID})")(_label(K8S_UID))
field("k8s.pod.sandbox_id", S, "The truncated pod sandbox id (first 12 characters)")(
    _sandbox_short)
field("k8s.pod.full_sandbox_id", S, "The full pod sandbox id")(_sandbox_full)
field("k8s.pod.ip", S, "The Kubernetes pod ip, as container.ip")(_attr("ip"))
fields.declare("k8s.pod.cni.json", S, "The pod's CNI result as JSON (CRI runtimes only)")

for _kind, _what in (("rc", "replication controller"), ("svc", "service"), ("rs", "replica set"),
                     ("deployment", "deployment")):
    fields.declare(f"k8s.{_kind}.name", S, f"[deprecated] Kubernetes {_what} name (unknown)")
    fields.declare(f"k8s.{_kind}.id", S, f"[deprecated] Kubernetes {_what} id (unknown)")
    fields.declare(f"k8s.{_kind}.label", S, f"[deprecated] Kubernetes {_what} label (unknown)",
                   arg=ArgKind.KEY, arg_hint="[key]")
    fields.declare(f"k8s.{_kind}.labels", S, f"[deprecated] Kubernetes {_what} labels "
                   "(unknown)")
fields.declare("k8s.ns.id", S, "[deprecated] Kubernetes namespace id (unknown)")
fields.declare("k8s.ns.label", S, "[deprecated] Kubernetes namespace label (unknown)",
               arg=ArgKind.KEY, arg_hint="[key]")
fields.declare("k8s.ns.labels", S, "[deprecated] Kubernetes namespace labels (unknown)")

FIELDS = fields.defs
