"""Container ids from cgroup paths (every runtime's layout) and from real kernel cgroup ids."""

from __future__ import annotations

import os

import pytest

from syswarden.core.cgroup_ids import CgroupResolver
from syswarden.core.cgroups import (
    HOST_REF, ContainerRef, find_cgroup2_mount, parse_cgroup_path, parse_proc_cgroup,
    read_proc_cgroup,
)
from tests.helpers.docker import CgroupProcess, cgroup_id, cgroup_v2_path

A = "3ad7b26ded6d8e7b23da7d48fe889434573036c27ae5a74837233de441c3601e"
B = "63060edc2d3aa803ab559f2393776b151f99fc5b05035b21db66b3b62246ad6a"
POD = "pod3e41dc6b_08a8_44db_bc2a_3724b18ab19a"

LAYOUTS = [
    # (cgroup path, expected (short id, type) or None for the host)
    (f"/docker/{A}", (A[:12], "docker")),
    (f"/system.slice/docker-{A}.scope", (A[:12], "docker")),
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{POD}.slice/"
     f"cri-containerd-{A}.scope", (A[:12], "containerd")),
    (f"/kubepods-besteffort-{POD}.slice:cri-containerd:{A}", (A[:12], "containerd")),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-{POD}.slice/crio-{A}.scope",
     (A[:12], "cri-o")),
    (f"/kubepods/burstable/{POD}/crio-{A}", (A[:12], "cri-o")),
    (f"/machine.slice/libpod-{A}.scope", (A[:12], "podman")),
    (f"/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{A}.scope/container",
     (A[:12], "podman")),
    (f"/kubepods/besteffort/{POD}/{A}", (A[:12], "cri")),
    (f"/docker/{A}/docker/{B}", (B[:12], "docker")),               # Docker in Docker
    (f"/machine.slice/libpod-conmon-{A}.scope", None),              # podman's monitor: host
    (f"/kubepods.slice/crio-conmon-{A}.scope", None),               # CRI-O's monitor: host
    ("/", None),
    ("/user.slice/user-1000.slice/session-4.scope", None),
    ("/system.slice/docker.service", None),
    (f"/docker/{A[:40]}", None),                                    # not a 64-hex id
    (f"/k8s.io/{A}", (A[:12], "containerd")),                       # ctr -n k8s.io, cgroupfs
    (f"/default/{A}", (A[:12], "containerd")),                      # ctr's default namespace
    (f"/libpod_parent/libpod-{A}", (A[:12], "podman")),             # podman, cgroupfs
    (f"/libpod_parent/{A}", (A[:12], "podman")),
    (f"/kubepods/besteffort/{POD}/crio-{A}", (A[:12], "cri-o")),    # CRI-O, cgroupfs
    (f"/kubepods.slice/kubepods-{POD}.slice/cri-containerd-{A}.scope", (A[:12], "containerd")),
    (f"/system.slice/containerd.service/kubepods-burstable-{POD}.slice:cri-containerd:{A}",
     (A[:12], "containerd")),                                       # v1, systemd cgroup path
    (f"/kubepods/burstable/{POD}/{A}", (A[:12], "cri")),            # kubelet, cgroupfs, v1
    (f"/user.slice/user-1000.slice/user@1000.service/app.slice/docker-{A}.scope",
     (A[:12], "docker")),                                           # rootless Docker
]


@pytest.mark.parametrize("path,expected", LAYOUTS)
def test_runtime_layouts(path: str, expected: tuple[str, str] | None) -> None:
    ref = parse_cgroup_path(path)
    if expected is None:
        assert ref is None
    else:
        assert ref is not None and (ref.id, ref.type) == expected
        assert len(ref.id) == 12 and ref.full_id.startswith(ref.id)


def test_proc_cgroup_v1_and_v2_lines() -> None:
    v1 = "\n".join([f"12:pids:/docker/{A}", f"4:memory:/docker/{A}", "1:name=systemd:/"])
    assert parse_proc_cgroup(v1) == ContainerRef(A[:12], A, "docker")
    v2 = f"0::/system.slice/docker-{B}.scope\n"
    assert parse_proc_cgroup(v2).id == B[:12]
    assert parse_proc_cgroup("0::/\n") == HOST_REF
    # v1 lines of every runtime (a controller line names the container, name=systemd may not)
    for line, kind in ((f"11:devices:/kubepods/besteffort/{POD}/{A}", "cri"),
                       (f"4:memory:/kubepods.slice/kubepods-{POD}.slice/crio-{A}.scope", "cri-o"),
                       (f"9:pids:/machine.slice/libpod-{A}.scope", "podman"),
                       (f"3:cpu,cpuacct:/k8s.io/{A}", "containerd")):
        text = f"12:blkio:/\n{line}\n1:name=systemd:/user.slice\n0::/\n"
        assert parse_proc_cgroup(text) == ContainerRef(A[:12], A, kind)
    assert parse_proc_cgroup("") == HOST_REF


def test_cgroup2_mount_is_found() -> None:
    root = find_cgroup2_mount()
    assert root is not None and os.path.isfile(os.path.join(root, "cgroup.procs"))


@pytest.mark.docker
def test_real_container_by_kernel_cgroup_id(containers) -> None:
    c = containers.run("alpine:latest")
    cg = cgroup_id(c.pid)
    resolver = CgroupResolver()
    ref = resolver.resolve(cg)
    assert ref == ContainerRef(c.short_id, c.id, "docker")
    assert resolver.path_of(cg) == cgroup_v2_path(c.pid)
    assert resolver.resolve(cg) is ref                   # cached
    assert read_proc_cgroup(c.pid) == ref               # the /proc way agrees
    resolver.close()


def test_host_and_unknown_cgroup_ids() -> None:
    resolver = CgroupResolver()
    assert resolver.resolve(cgroup_id(os.getpid())) == HOST_REF
    assert resolver.resolve(1) == HOST_REF               # the root cgroup
    assert resolver.resolve(0) is None
    assert resolver.resolve(2**62 + 12345) is None       # no such cgroup
    resolver.close()


@pytest.mark.docker
def test_walk_fallback_finds_the_same_path(containers) -> None:
    c = containers.run("alpine:latest")
    resolver = CgroupResolver()
    resolver._open_by_handle = None                      # as on a kernel without fhandles
    assert resolver.resolve(cgroup_id(c.pid)).id == c.short_id
    assert resolver.walks == 1
    resolver.close()


RUNTIMES = [
    (f"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-{POD}.slice/"
     f"cri-containerd-{A}.scope", "containerd"),
    (f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-{POD}.slice/crio-{A}.scope",
     "cri-o"),
    (f"/machine.slice/libpod-{A}.scope/container", "podman"),
    (f"/system.slice/docker-{A}.scope", "docker"),
    (f"/kubepods/besteffort/{POD}/{A}", "cri"),
    (f"/k8s.io/{A}", "containerd"),
]


@pytest.mark.parametrize("path,kind", RUNTIMES)
def test_every_runtime_from_a_real_kernel_cgroup_id(path: str, kind: str) -> None:
    """A real process in a real cgroup laid out as each runtime does: the kernel id it gets
    resolves to the container."""
    with CgroupProcess(A, path=path, pidns=False) as proc:
        resolver = CgroupResolver()
        assert resolver.resolve(cgroup_id(proc.pid)) == ContainerRef(A[:12], A, kind)
        resolver.close()
    assert not os.path.exists(find_cgroup2_mount().rstrip("/") + path)
