"""Docker's ``GET /containers/{id}/json`` answer -> :class:`~syswarden.core.event.Container`.

Follows what Falco's Docker engine takes from the same answer:

- ``container.image`` is ``Config.Image``, the image as the user named it (``nginx``,
  ``nginx:latest``, ``registry:5000/team/app@sha256:...``); ``image.repository`` and
  ``image.tag`` are split from it (the registry host stays in the repository, the tag defaults
  to ``latest``, a digest goes to ``image.digest``); ``image.id`` is the image's id without the
  ``sha256:`` prefix.
- ``container.name`` is ``Name`` without its leading ``/``.
- ``privileged`` is ``HostConfig.Privileged``; mounts are ``Mounts`` in Docker's order.
- ``start_ts`` is ``State.StartedAt`` in ns since the epoch (None before the container started).
"""

from __future__ import annotations

import calendar
import re
from typing import Any

from syswarden.core.event import Container, Mount

from .cgroup import SHORT_ID_LEN

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


def _strip_algo(value: str) -> str:
    return value.split(":", 1)[1] if value.startswith("sha256:") else value


def container_from_inspect(doc: dict[str, Any]) -> Container:
    """Build a complete :class:`Container` from an inspect answer."""
    full_id = str(doc.get("Id") or "")
    config = doc.get("Config") or {}
    host = doc.get("HostConfig") or {}
    state = doc.get("State") or {}
    image = str(config.get("Image") or "")
    image_id = _strip_algo(str(doc.get("Image") or ""))
    repo, tag, digest = split_image(image) if image else ("", "", "")
    if image and (image_id.startswith(image) or image.startswith("sha256:")):
        # run by image id: no name to split (Falco then asks the image; we keep the id)
        repo, tag = "", ""
    name = str(doc.get("Name") or "")
    if name.startswith("/"):
        name = name[1:]
    mounts = [
        Mount(source=str(m.get("Source") or ""), dest=str(m.get("Destination") or ""),
              mode=str(m.get("Mode") or ""), rw=bool(m.get("RW", True)),
              propagation=str(m.get("Propagation") or ""))
        for m in (doc.get("Mounts") or []) if isinstance(m, dict)
    ]
    labels = {str(k): str(v) for k, v in (config.get("Labels") or {}).items()}
    healthcheck = None
    test = (config.get("Healthcheck") or {}).get("Test")
    if isinstance(test, list) and test:
        if test[0] == "CMD" and len(test) > 1:
            healthcheck = " ".join(str(t) for t in test[1:])
        elif test[0] == "CMD-SHELL" and len(test) > 1:
            healthcheck = "/bin/sh -c " + str(test[1])
        elif test[0] == "NONE":
            healthcheck = "NONE"
    networks = ((doc.get("NetworkSettings") or {}).get("IPAddress")) or None
    container = Container(
        id=full_id[:SHORT_ID_LEN],
        full_id=full_id,
        type="docker",
        name=name or None,
        image=image or None,
        image_repository=repo or None,
        image_tag=(tag or "latest") if repo else None,
        image_id=image_id or None,
        image_digest=digest or None,
        privileged=bool(host.get("Privileged")) if "Privileged" in host else None,
        mounts=mounts,
        labels=labels,
        start_ts=parse_timestamp(state.get("StartedAt")),
        healthcheck=healthcheck,
        ip=networks,
        user=str(config.get("User")) if config.get("User") else None,
        complete=True,
        host_pid=host.get("PidMode") == "host",
        host_network=host.get("NetworkMode") == "host",
        host_ipc=host.get("IpcMode") == "host",
    )
    return container
