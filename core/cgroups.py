"""Cgroups: where the v2 hierarchy is, and which container a cgroup path names.

Shared by the process table (a process's cgroup id) and the container enricher (a cgroup id's
path, then the container it names).  On a hybrid host the v2 hierarchy is
``/sys/fs/cgroup/unified``.

A process belongs to a container when one of its cgroup paths has a component a container
runtime names after the container's 64-hex id (every driver, cgroup v1 and v2):

===============================  ===========================================  ==============
runtime                          cgroup component                             ``type``
===============================  ===========================================  ==============
Docker (cgroupfs driver)         ``/docker/<id>``                             docker
Docker (systemd driver)          ``/system.slice/docker-<id>.scope``          docker
containerd / CRI (systemd)       ``.../cri-containerd-<id>.scope``            containerd
containerd / CRI (cgroupfs)      ``...pod<uid>.slice:cri-containerd:<id>``    containerd
containerd (its own namespaces)  ``/k8s.io/<id>``, ``/default/<id>``          containerd
CRI-O                            ``.../crio-<id>.scope`` or ``crio-<id>``     cri-o
podman (systemd, cgroupfs)       ``.../libpod-<id>.scope``, ``libpod-<id>``   podman
podman (cgroupfs parent)         ``/machine.slice/<id>``, ``/libpod_parent/<id>``  podman
Kubernetes (cgroupfs driver)     ``/kubepods/<qos>/pod<uid>/<id>``            cri
===============================  ===========================================  ==============

``cri`` is a kubelet's container whose runtime the path does not say (containerd or CRI-O): the
CRI engine that knows it gives its runtime.  The reported id is Falco's short id, the first 12
hex characters; a process in none of these is on the ``host``.  Monitor processes
(``libpod-conmon-<id>``, ``crio-conmon-<id>``) run on the host, as Falco says.  The innermost
container wins (Docker in Docker).
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple

HOST = "host"
SHORT_ID_LEN = 12

_HEX64 = r"([0-9a-f]{64})"
#: Component patterns, tried on each path component from the innermost outwards.
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(rf"^docker-{_HEX64}\.scope$"), "docker"),
    (re.compile(rf"^cri-containerd-{_HEX64}\.scope$"), "containerd"),
    (re.compile(rf":cri-containerd:{_HEX64}$"), "containerd"),
    (re.compile(rf"^crio-{_HEX64}(?:\.scope)?$"), "cri-o"),
    (re.compile(rf"^libpod-{_HEX64}(?:\.scope)?$"), "podman"),
    (re.compile(rf"^{_HEX64}$"), ""),  # bare id: the parent says which runtime
)

#: containerd's own namespaces (``ctr -n NS``; ``k8s.io`` is the kubelet's): its cgroupfs driver
#: puts a container at ``/<namespace>/<id>``.
CONTAINERD_NAMESPACES = frozenset({"k8s.io", "default"})


class ContainerRef(NamedTuple):
    """Which container a cgroup path names: Falco's short id, the full id, the runtime."""

    id: str
    full_id: str
    type: str


HOST_REF = ContainerRef(HOST, "", HOST)


def _bare_type(parents: list[str]) -> str:
    """The runtime of a bare ``<id>`` component, from the components above it."""
    for part in reversed(parents):
        if part == "docker" or part.startswith("docker"):
            return "docker"
        if part.startswith("kubepods"):
            return "cri"
        if part.startswith("machine.slice") or part == "libpod_parent":
            return "podman"
        if part in CONTAINERD_NAMESPACES:
            return "containerd"
    return "docker"


def parse_cgroup_path(path: str) -> ContainerRef | None:
    """The container a single cgroup path belongs to, or None (not a container's cgroup)."""
    parts = [p for p in path.split("/") if p]
    for i in range(len(parts) - 1, -1, -1):
        comp = parts[i]
        for pattern, kind in _PATTERNS:
            m = pattern.search(comp)
            if m:
                full = m.group(1)
                return ContainerRef(full[:SHORT_ID_LEN], full, kind or _bare_type(parts[:i]))
    return None


def read_proc_cgroup_text(pid: int, proc_root: str = "/proc") -> str | None:
    """The text of ``/proc/PID/cgroup`` (one ``hierarchy-id:controllers:path`` line per
    hierarchy; ``0::path`` for the unified one), None when the process has gone.  The one
    reader of that file: the container enricher, the process table and the ``thread.cgroup``
    fields parse what it returns."""
    try:
        with open(f"{proc_root}/{pid}/cgroup", encoding="utf-8", errors="replace") as fh:
            return fh.read()
    except OSError:
        return None


def parse_proc_cgroup(text: str) -> ContainerRef:
    """The container of a process from the text of ``/proc/PID/cgroup`` (v1 and v2 lines).

    Every hierarchy is looked at (a v1 host may place a container in some controllers only);
    no container in any of them means the host.
    """
    for line in text.splitlines():
        _, _, path = line.partition(":")
        _, _, path = path.partition(":")
        ref = parse_cgroup_path(path)
        if ref is not None:
            return ref
    return HOST_REF


def unified_path(text: str) -> str | None:
    """The path of a process in the unified (v2) hierarchy, from the text of
    ``/proc/PID/cgroup`` (its ``0::`` line); None when it has none."""
    for line in text.splitlines():
        if line.startswith("0::"):
            return line[3:].strip()
    return None


def read_proc_cgroup(pid: int, proc_root: str = "/proc") -> ContainerRef | None:
    """The container of a live process, from ``/proc/PID/cgroup``; None when it has gone."""
    text = read_proc_cgroup_text(pid, proc_root)
    return None if text is None else parse_proc_cgroup(text)


def find_cgroup2_mount(mountinfo: str = "/proc/self/mountinfo") -> str | None:
    """Where the unified (v2) hierarchy is mounted: ``/sys/fs/cgroup`` or, on a hybrid host,
    ``/sys/fs/cgroup/unified``; None when it is not mounted."""
    try:
        with open(mountinfo, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                left, _, right = line.partition(" - ")
                if right.split(" ", 1)[0] == "cgroup2":
                    fields = left.split()
                    if len(fields) > 4 and fields[3] == "/":
                        return fields[4].replace("\\040", " ")
    except OSError:
        return None
    return None


@functools.lru_cache(maxsize=1)
def cgroup2_root() -> str | None:
    """:func:`find_cgroup2_mount` of this process, read once."""
    return find_cgroup2_mount()
