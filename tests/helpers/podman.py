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
import subprocess
import tempfile
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

    def run(self, image: str, *cmd: str, name: str | None = None,
            labels: dict[str, str] | None = None, volumes: tuple[str, ...] = ()
            ) -> PodmanContainer:
        name = name or f"sw-{uuid.uuid4().hex[:10]}"
        args = ["run", "-d", "--name", name, *ULIMITS]
        for k, v in (labels or {}).items():
            args += ["--label", f"{k}={v}"]
        for v in volumes:
            args += ["-v", v]
        cid = self.podman(*args, image, *cmd).stdout.strip().splitlines()[-1]
        doc = json.loads(self.podman("inspect", cid).stdout)[0]
        return PodmanContainer(doc["Id"], name, int(doc["State"]["Pid"]))


@pytest.fixture(scope="module")
def podman(dockerd: None) -> Iterator[Podman]:  # noqa: F811
    """One podman API service per test module, the app image loaded."""
    from tests.helpers.containerd import APP_IMAGE, build_images

    if shutil.which("podman") is None:
        pytest.skip("podman is not installed (scripts/setup.sh)")
    build_images()
    service = Podman()
    try:
        service.start()
        service.load(APP_IMAGE)
        yield service
    finally:
        service.stop()
