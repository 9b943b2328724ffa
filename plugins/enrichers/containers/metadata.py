"""What every engine's metadata shares: RFC 3339 times, image names split as Falco does, and
the kubelet's labels.

- ``container.image`` is the image as the user (or the kubelet) named it (``nginx``,
  ``nginx:latest``, ``registry:5000/team/app@sha256:...``); ``image.repository`` and
  ``image.tag`` are split from it (the registry host stays in the repository, the tag defaults
  to ``latest``, a digest goes to ``image.digest``); ``image.id`` is the image's id without the
  ``sha256:`` prefix.
- ``start_ts`` is in ns since the epoch (None before the container started); where it is
  the start of the container's first process (:func:`process_start_ns`), it is what Falco
  reads (``proc.pidns_init_start_ts``, the start of the pid namespace's init).
"""

from __future__ import annotations

import calendar
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
