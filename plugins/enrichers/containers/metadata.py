"""What every engine's metadata shares: RFC 3339 times, image names split as Falco does, the
kubelet's labels, and a pod's probes from its ``last-applied-configuration`` annotation.

- ``container.image`` is the image as the user (or the kubelet) named it (``nginx``,
  ``nginx:latest``, ``registry:5000/team/app@sha256:...``); ``image.repository`` and
  ``image.tag`` are split from it (the registry host stays in the repository, the tag defaults
  to ``latest``, a digest goes to ``image.digest``); ``image.id`` is the image's id without the
  ``sha256:`` prefix.
- ``start_ts`` is in ns since the epoch (None before the container started); where it is
  the start of the container's first process (:func:`process_start_ns`), it is what Falco
  reads (``proc.pidns_init_start_ts``, the start of the pid namespace's init).
- A pod's probes (:func:`pod_probes`, :func:`probes_of`) are read from the JSON ``kubectl
  apply`` leaves in the pod's annotations, hostile input: bounded, never raising.
"""

from __future__ import annotations

import calendar
import json
import os
import re
from typing import Any, Mapping

_TS = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d+))?(Z|[+-]\d\d:\d\d)$")


def parse_timestamp(text: str | None) -> int | None:
    """RFC 3339 with nanoseconds (Docker's times) -> ns since the epoch; None for zero/unset."""
    if not text:
        return None
    m = _TS.match(text)
    if not m:
        return None
    year, mon, day, hh, mm, ss = (int(m.group(i)) for i in range(1, 7))
    if year <= 1:
        return None
    frac = (m.group(7) or "").ljust(9, "0")[:9]
    secs = calendar.timegm((year, mon, day, hh, mm, ss, 0, 0, 0))
    tz = m.group(8)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        secs -= sign * (int(tz[1:3]) * 3600 + int(tz[4:6]) * 60)
    return secs * 1_000_000_000 + int(frac)


_CLK_TCK = os.sysconf("SC_CLK_TCK")


def process_start_ns(pid: int, proc_root: str = "/proc") -> int | None:
    """When process ``pid`` started, in ns since the epoch, as ``/proc`` tells it (the boot
    time plus the start in clock ticks, as the process table reads it); None when it is gone."""
    try:
        with open(f"{proc_root}/stat") as f:
            btime = next(int(line.split()[1]) for line in f if line.startswith("btime "))
        with open(f"{proc_root}/{pid}/stat") as f:
            ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    except (OSError, StopIteration, IndexError, ValueError):
        return None
    return btime * 1_000_000_000 + ticks * 1_000_000_000 // _CLK_TCK


def split_image(image: str) -> tuple[str, str, str]:
    """``[host[:port]/]path[:tag][@digest]`` -> (repository, tag, digest); tag may be ""."""
    digest = ""
    if "@" in image:
        image, _, digest = image.partition("@")
    tag = ""
    slash = image.rfind("/")
    colon = image.rfind(":")
    if colon > slash:
        image, tag = image[:colon], image[colon + 1:]
    return image, tag, digest


def short_labels(labels: Mapping[str, Any], most: int) -> dict[str, str]:
    """The labels Falco's engines report (its ``label_max_len``): those whose value is at most
    ``most`` bytes long; a longer one is dropped whole."""
    return {str(k): str(v) for k, v in labels.items() if len(str(v).encode()) <= most}


def strip_algo(value: str) -> str:
    """An image or content digest without its ``sha256:`` prefix."""
    return value.split(":", 1)[1] if value.startswith("sha256:") else value


def image_parts(image: str, image_id: str) -> tuple[str | None, str | None, str | None]:
    """(repository, tag, digest) of an image name; no repository or tag for an image run by
    its id (Falco then asks the image; the id is kept)."""
    if not image:
        return None, None, None
    repo, tag, digest = split_image(image)
    if image_id.startswith(image) or image.startswith("sha256:"):
        repo, tag = "", ""
    return repo or None, (tag or "latest") if repo else None, digest or None


#: The labels the kubelet puts on a pod's containers (and the CRI gives back).
K8S_POD = "io.kubernetes.pod.name"
K8S_NS = "io.kubernetes.pod.namespace"
K8S_UID = "io.kubernetes.pod.uid"
K8S_SANDBOX = "io.kubernetes.sandbox.id"
K8S_CONTAINER = "io.kubernetes.container.name"


# -- Kubernetes probes -----------------------------------------------------------------------

#: The annotation ``kubectl apply`` leaves on what it applied: the object as applied, in JSON.
#: A pod's holds the pod's spec, and so its containers' probes.
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
#: ... as the kubelet's Docker shim (dockershim, cri-dockerd) labels a pod's sandbox container
#: with the pod's annotations
DOCKER_LAST_APPLIED = "annotation." + LAST_APPLIED
#: The longest annotation read, in bytes: Kubernetes' bound on all of an object's annotations
LAST_APPLIED_MAX = 256 * 1024
#: The longest probe command kept: what the eBPF source can keep of an argv at most (entries,
#: bytes); a process running a longer one could never be told apart
PROBE_ARGS_MAX = 256
PROBE_BYTES_MAX = 4096

#: a pod spec container's (liveness, readiness) exec commands, argv; empty: none
Probes = tuple[list[str], list[str]]


def pod_probes(text: Any) -> tuple[dict[str, Probes], str | None]:
    """The exec probes of each container of the pod spec a ``last-applied-configuration``
    annotation holds, by container name in the spec's order, as Falco reads them
    (``spec.containers[].livenessProbe.exec.command``, ``readinessProbe``), each argument
    without the pairs of quotes around it; and why the annotation could not be read (None when
    it was, or when there is none).  A probe that is not ``exec`` (``httpGet``, ``tcpSocket``,
    ``grpc``) is none.  Hostile input: an annotation longer than :data:`LAST_APPLIED_MAX`
    bytes is not parsed; malformed JSON, a command that is not a list of strings or is longer
    than :data:`PROBE_ARGS_MAX` entries or :data:`PROBE_BYTES_MAX` bytes give no probe and a
    reason; nothing raises."""
    if text is None or text == "":
        return {}, None
    if not isinstance(text, str):
        return {}, "not text"
    if len(text) > LAST_APPLIED_MAX or len(text.encode("utf-8", "replace")) > LAST_APPLIED_MAX:
        return {}, f"longer than {LAST_APPLIED_MAX} bytes, not read"
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as exc:
        return {}, f"not JSON ({str(exc)[:80]})"
    spec = doc.get("spec") if isinstance(doc, dict) else None
    containers = spec.get("containers") if isinstance(spec, dict) else None
    if not isinstance(containers, list):
        return {}, None                 # not a pod's (Falco reads no probe either)
    out: dict[str, Probes] = {}
    error = None
    for c in containers:
        if not isinstance(c, dict):
            continue
        name = c.get("name") if isinstance(c.get("name"), str) else ""
        live, why_live = _exec_command(c.get("livenessProbe"))
        ready, why_ready = _exec_command(c.get("readinessProbe"))
        why = why_live or why_ready
        if why and error is None:
            error = f"container {name[:64]!r}: {'livenessProbe' if why_live else 'readinessProbe'}"\
                    f".exec.command {why}"
        out.setdefault(name, (live, ready))
    return out, error


def _exec_command(probe: Any) -> tuple[list[str], str | None]:
    """A probe's exec command, argv (empty: none or not an exec probe), and what is wrong with
    it."""
    command = ((probe.get("exec") if isinstance(probe, dict) else None) or {})
    command = command.get("command") if isinstance(command, dict) else None
    if command is None:
        return [], None
    if not isinstance(command, list) or not all(isinstance(a, str) for a in command):
        return [], "is not a list of strings"
    if len(command) > PROBE_ARGS_MAX or sum(len(a) + 1 for a in command) > PROBE_BYTES_MAX:
        return [], f"is longer than {PROBE_ARGS_MAX} arguments or {PROBE_BYTES_MAX} bytes"
    return [_unquoted(a) for a in command], None


def _unquoted(arg: str) -> str:
    """``arg`` without the pairs of ``"`` or ``'`` around it (Falco's ``normalize_arg``)."""
    while len(arg) >= 2 and arg[0] in "\"'" and arg[-1] == arg[0]:
        arg = arg[1:-1]
    return arg


def probes_of(pod: dict[str, Probes], name: str | None) -> Probes:
    """The probes of the container ``name`` of a pod spec (none when the spec has no container
    of that name: an init container, a pod's sandbox); with no name, the first container's, as
    Falco reads them (``spec.containers[0]``, whatever the container)."""
    if name is None:
        return next(iter(pod.values()), ([], []))
    return pod.get(name, ([], []))
