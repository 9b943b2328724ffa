"""podman for the tests: its API service (``podman system service``) on a private socket, with
its own storage, run root, containers.conf and events file in a temporary directory; images
loaded from the local Docker images; containers made through the service (``podman --url``).

This machine lacks CAP_SYS_RESOURCE: podman's default rlimits (raised to the maximum) cannot be
set, so every container is run with limits below the hard ones (``ULIMITS``).  There is no
systemd here: the cgroupfs manager (``/libpod_parent/libpod-<id>``) and a file events log.
"""

from __future__ import annotations

import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.helpers.docker import dockerd  # noqa: F401
from tests.helpers.runtimes import RuntimeDaemon

ULIMITS = ("--ulimit", "nproc=1000:1000", "--ulimit", "nofile=1024:1024")

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1000:1000"]
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = "{d}/events.log"
runtime = "runc"
"""

STORAGE_CONF = """[storage]
driver = "vfs"
runroot = "{d}/run"
graphroot = "{d}/root"
"""


@dataclass
class PodmanContainer:
    id: str
    name: str
    pid: int

    @property
    def short_id(self) -> str:
        return self.id[:12]


class Podman(RuntimeDaemon):
    name = "podman"

    def __init__(self) -> None:
        directory = pathlib.Path(tempfile.mkdtemp(prefix="sw-podman-"))
        super().__init__(directory, str(directory / "podman.sock"))
        (self.dir / "containers.conf").write_text(CONTAINERS_CONF.format(d=self.dir))
        (self.dir / "storage.conf").write_text(STORAGE_CONF.format(d=self.dir))
        self.env = {**os.environ, "CONTAINERS_CONF": str(self.dir / "containers.conf"),
                    "CONTAINERS_STORAGE_CONF": str(self.dir / "storage.conf")}

    def command(self) -> list[str]:
        return ["podman", "system", "service", "--time=0", f"unix://{self.socket}"]

    def answers(self) -> bool:
        return self.podman("version", check=False).returncode == 0

    def stop(self) -> None:
        try:
            if self.running():
                self.podman("rm", "-af", "-t", "0", check=False)
        finally:
            self.kill()
            shutil.rmtree(self.dir, ignore_errors=True)

    def podman(self, *args: str, check: bool = True,
               timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(["podman", "--url", f"unix://{self.socket}", *args],
                              env=self.env, capture_output=True, text=True, check=check,
                              timeout=timeout)

    def load(self, ref: str) -> None:
        self.take_docker_image(ref, lambda tar: self.podman("load", "-i", tar))

    #: what every ``run`` adds
    run_args: tuple[str, ...] = ULIMITS

    def run(self, image: str, *cmd: str, name: str | None = None,
            labels: dict[str, str] | None = None, volumes: tuple[str, ...] = ()
            ) -> PodmanContainer:
        name = name or f"sw-{uuid.uuid4().hex[:10]}"
        args = ["run", "-d", "--name", name, *self.run_args]
        for k, v in (labels or {}).items():
            args += ["--label", f"{k}={v}"]
        for v in volumes:
            args += ["-v", v]
        cid = self.podman(*args, image, *cmd).stdout.strip().splitlines()[-1]
        doc = json.loads(self.podman("inspect", cid).stdout)[0]
        return PodmanContainer(doc["Id"], name, int(doc["State"]["Pid"]))


ROOTLESS_USER = "swrootless"
#: the subordinate uids and gids of its user namespace
SUB_IDS = "300000:65536"


class RootlessPodman(Podman):
    """podman's API service run by an unprivileged user (``ROOTLESS_USER``, made if missing,
    with subordinate ids), on that user's usual socket ``/run/user/<uid>/podman/podman.sock``.

    There is no systemd here to delegate a cgroup to the user: the test delegates one itself
    (a cgroup of the v2 hierarchy, the user's), puts the service in it and runs each container
    with ``--cgroup-parent`` there, so a container has a cgroup of its own
    (``.../libpod-<id>``), as under a systemd user session.  podman decides between cgroup v1
    and v2 by what is mounted at /sys/fs/cgroup: on a hybrid host the service runs in a mount
    namespace of its own where the v2 hierarchy is mounted there.  Clients are root's, over the
    socket (``podman --url``)."""

    name = "podman (rootless)"

    def __init__(self) -> None:
        import pwd

        if subprocess.run(["id", ROOTLESS_USER], capture_output=True,
                          check=False).returncode != 0:
            subprocess.run(["useradd", "--system", "--no-create-home", "--shell",
                            "/usr/sbin/nologin", ROOTLESS_USER], check=True)
        for ids in ("/etc/subuid", "/etc/subgid"):
            path = pathlib.Path(ids)
            text = path.read_text() if path.exists() else ""
            if not any(line.split(":")[0] == ROOTLESS_USER for line in text.splitlines()):
                path.write_text(text + f"{ROOTLESS_USER}:{SUB_IDS}\n")
        user = pwd.getpwnam(ROOTLESS_USER)
        self.uid, self.gid = user.pw_uid, user.pw_gid
        self.runtime_dir = pathlib.Path(f"/run/user/{self.uid}")
        (self.runtime_dir / "podman").mkdir(parents=True, exist_ok=True)
        for d in (self.runtime_dir, self.runtime_dir / "podman"):
            os.chown(d, self.uid, self.gid)
        self.runtime_dir.chmod(0o700)
        super().__init__()
        self.socket = str(self.runtime_dir / "podman" / "podman.sock")
        os.chown(self.dir, self.uid, self.gid)
        self.dir.chmod(0o755)
        (self.dir / "storage.conf").write_text(
            STORAGE_CONF.format(d=self.dir).replace(f"{self.dir}/run", f"{self.runtime_dir}/sw"))
        # no pids limit: the delegated v2 cgroup has no controller (they are v1's here)
        (self.dir / "containers.conf").write_text(CONTAINERS_CONF.format(d=self.dir).replace(
            "[containers]\n", "[containers]\npids_limit = 0\n"))
        self.cgroup = f"/sw-rootless-{uuid.uuid4().hex[:8]}"
        self.run_args = (*ULIMITS, "--network", "none", "--cgroup-parent", self.cgroup)

    def command(self) -> list[str]:
        from syswarden.core.cgroups import find_cgroup2_mount

        root = find_cgroup2_mount()
        if root is None:
            pytest.skip("no cgroup v2 hierarchy to delegate to the rootless user")
        group = pathlib.Path(root + self.cgroup)
        group.mkdir()
        for part in ("", "cgroup.procs", "cgroup.subtree_control", "cgroup.threads"):
            os.chown(group / part if part else group, self.uid, self.gid)
        env = " ".join(f"{k}={v}" for k, v in (
            ("XDG_RUNTIME_DIR", self.runtime_dir), ("HOME", self.dir),
            ("CONTAINERS_CONF", self.dir / "containers.conf"),
            ("CONTAINERS_STORAGE_CONF", self.dir / "storage.conf")))
        serve = (f"echo $$ > /sys/fs/cgroup{self.cgroup}/cgroup.procs && exec runuser -u "
                 f"{ROOTLESS_USER} -- env {env} podman system service --time=0 "
                 f"unix://{self.socket}")
        if root == "/sys/fs/cgroup":
            return ["sh", "-c", serve]
        return ["unshare", "--mount", "--propagation", "slave", "sh", "-c",
                f"mount -t cgroup2 none /sys/fs/cgroup && {serve}"]

    def stop(self) -> None:
        from syswarden.core.cgroups import find_cgroup2_mount

        try:
            super().stop()
        finally:
            # what the service left in its cgroup (podman inside the user namespace, the
            # namespace's pause process): every one of them this helper's, ended by its pid
            group = pathlib.Path((find_cgroup2_mount() or "/nonexistent") + self.cgroup)
            deadline = time.monotonic() + 10
            while group.is_dir() and time.monotonic() < deadline:
                pids = [int(p) for p in (group / "cgroup.procs").read_text().split()]
                for child in group.glob("*/"):
                    pids += [int(p) for p in (child / "cgroup.procs").read_text().split()]
                if not pids:
                    break
                for pid in pids:
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                time.sleep(0.1)
            for child in group.glob("*/") if group.is_dir() else ():
                child.rmdir()
            if group.is_dir():
                group.rmdir()
            pathlib.Path(self.socket).unlink(missing_ok=True)
            shutil.rmtree(self.runtime_dir / "sw", ignore_errors=True)


def _serve(make: type[Podman]) -> Iterator[Podman]:
    """A ``make()`` service started with the app image loaded, stopped afterwards."""
    from tests.helpers.containerd import APP_IMAGE, build_images

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/setup.sh)")
    build_images()
    service = make()
    try:
        service.start()
        service.load(APP_IMAGE)
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def podman(dockerd: None) -> Iterator[Podman]:  # noqa: F811
    """One podman API service per test module, the app image loaded."""
    yield from _serve(Podman)


@pytest.fixture(scope="module")
def rootless_podman(dockerd: None) -> Iterator[RootlessPodman]:  # noqa: F811
    """One rootless podman API service per test module, on its user's usual socket."""
    yield from _serve(RootlessPodman)  # type: ignore[misc]
