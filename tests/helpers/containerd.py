"""A standalone containerd for the tests, beside the shared dockerd: its own config, root, state
and socket in a temporary directory, its CRI plugin on, images imported from the local Docker
images (no registry), and pods created through the CRI API as the kubelet creates them.

``Containerd.start()`` runs Debian's ``containerd`` with that config (ready when its socket
answers); ``stop()`` removes every pod and container it holds, stops the daemon by its pid and
removes the directory.  ``restart()`` stops and starts the daemon on the same state.
"""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Iterator

import pytest

from tests.helpers.docker import TEST_LABEL, _busybox_rootfs, docker, dockerd  # noqa: F401
from tests.helpers.runtimes import RuntimeDaemon

PAUSE_IMAGE = "registry.k8s.io/pause:3.6"
NAMESPACE = "k8s.io"

CONFIG = """version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/ctd.sock"
[ttrpc]
  address = "{d}/ctd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{pause}"
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
  enable_selinux = false
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"""


#: an application image of the tests' own (busybox), under a name with a registry and a tag
APP_IMAGE = "sw.local/team/web:1.2"


def _build(ref: str, cmd: list[str]) -> None:
    """A busybox image with PATH set (the CRI takes a container's environment from its image
    alone)."""
    import json

    if docker("image", "inspect", ref, check=False).returncode == 0:
        return
    with tempfile.TemporaryDirectory(prefix="syswarden-img-") as tmp:
        root = pathlib.Path(tmp)
        _busybox_rootfs(root)
        tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True,
                             check=True)
        docker("import", "--change", f"LABEL {TEST_LABEL}=1", "--change",
               "ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin", "--change", f"CMD {json.dumps(cmd)}",
               "-", ref, input=tar.stdout)


def build_images() -> None:
    """The pause image (busybox sleeping: the sandbox's only process) and the app image."""
    _build(PAUSE_IMAGE, ["sleep", "2147483647"])
    _build(APP_IMAGE, ["sleep", "3600"])


#: Debian 13's containerd (1.7: its CRI serves GetContainerEvents), unpacked by
#: scripts/setup.sh beside Debian 12's (1.6: it does not)
NEXT_BIN = pathlib.Path("/opt/syswarden-test/containerd-next/usr/bin")


class Containerd(RuntimeDaemon):
    name = "containerd"

    def __init__(self, bin_dir: pathlib.Path | None = None) -> None:
        directory = pathlib.Path(tempfile.mkdtemp(prefix="sw-ctd-"))
        super().__init__(directory, str(directory / "ctd.sock"))
        (self.dir / "cni" / "bin").mkdir(parents=True)
        (self.dir / "cni" / "conf").mkdir(parents=True)
        (self.dir / "config.toml").write_text(CONFIG.format(d=self.dir, pause=PAUSE_IMAGE))
        self.bin = ""
        if bin_dir is not None:
            # its own ctr, and its own shims first on the daemon's PATH
            self.bin = f"{bin_dir}/"
            self.env = {**os.environ, "PATH": f"{bin_dir}:{os.environ.get('PATH', '')}"}

    def command(self) -> list[str]:
        return [f"{self.bin}containerd", "--config", str(self.dir / "config.toml")]

    def answers(self) -> bool:
        return self.ctr("version", check=False).returncode == 0

    def restart(self) -> None:
        self.kill()
        self.start()

    def stop(self) -> None:
        try:
            if self.running():
                self._remove_everything()
        finally:
            self.kill()
            subprocess.run(["umount", "-R", str(self.dir / "state")], capture_output=True,
                           check=False)
            shutil.rmtree(self.dir, ignore_errors=True)

    def _remove_everything(self) -> None:
        for kind in ("tasks", "containers"):
            out = self.ctr(kind, "ls", "-q", check=False).stdout
            for cid in out.split():
                if kind == "tasks":
                    self.ctr("tasks", "kill", "-s", "SIGKILL", cid, check=False)
                    for _ in range(50):
                        if self.ctr("tasks", "delete", cid, check=False).returncode == 0:
                            break
                        time.sleep(0.1)
                else:
                    self.ctr("containers", "delete", cid, check=False)

    # -- ctr ------------------------------------------------------------------------------

    def ctr(self, *args: str, check: bool = True, namespace: str = NAMESPACE,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run([f"{self.bin}ctr", "-a", self.socket, "-n", namespace, *args],
                              capture_output=True, text=True, check=check, timeout=timeout)

    def import_image(self, ref: str) -> None:
        """A local Docker image into the k8s.io namespace, under its name."""
        self.take_docker_image(ref, lambda tar: self.ctr("images", "import", tar))

    def run(self, image: str, *cmd: str, labels: dict[str, str] | None = None) -> "CtrContainer":
        """A container created and started through containerd's API (``ctr run``)."""
        cid = uuid.uuid4().hex + uuid.uuid4().hex
        args = ["run", "-d"]
        for k, v in (labels or {}).items():
            args += ["--label", f"{k}={v}"]
        self.ctr(*args, image, cid, *cmd)
        return CtrContainer(cid, self.task_pid(cid))

    def task_pid(self, cid: str) -> int:
        for line in self.ctr("tasks", "ls").stdout.splitlines()[1:]:
            parts = line.split()
            if parts and parts[0] == cid:
                return int(parts[1])
        raise RuntimeError(f"no task for {cid}")


@dataclass
class CtrContainer:
    id: str
    pid: int

    @property
    def short_id(self) -> str:
        return self.id[:12]


# -- pods through the CRI, as the kubelet creates them ----------------------------------------


@dataclass
class Pod:
    sandbox_id: str
    config: object          # the PodSandboxConfig it was created with
    name: str
    namespace: str
    uid: str


class Kubelet:
    """The kubelet's calls on a CRI socket: RunPodSandbox (host networking, so no hostname: the
    kubelet leaves it out for a host-network pod; cgroupfs parent
    ``/kubepods/besteffort/pod<uid>``, as the kubelet's cgroupfs driver gives), CreateContainer,
    StartContainer; everything it created is removed by ``close()``."""

    def __init__(self, socket: str, timeout: float = 60.0) -> None:
        import grpc

        from syswarden.plugins.enrichers.containers.stubs.cri import api_pb2, api_pb2_grpc

        self.api = api_pb2
        self.channel = grpc.insecure_channel(f"unix://{socket}")
        self.rt = api_pb2_grpc.RuntimeServiceStub(self.channel)
        self.images = api_pb2_grpc.ImageServiceStub(self.channel)
        self.timeout = timeout
        self.pods: list[str] = []

    def run_pod(self, name: str, namespace: str = "default",
                labels: dict[str, str] | None = None,
                annotations: dict[str, str] | None = None) -> Pod:
        api = self.api
        uid = str(uuid.uuid4())
        config = api.PodSandboxConfig(
            metadata=api.PodSandboxMetadata(name=name, namespace=namespace, uid=uid, attempt=0),
            log_directory=f"/tmp/sw-pod-logs/{uid}",
            labels={"io.kubernetes.pod.name": name, "io.kubernetes.pod.namespace": namespace,
                    "io.kubernetes.pod.uid": uid, **(labels or {})},
            annotations={"kubernetes.io/config.source": "api", **(annotations or {})},
            linux=api.LinuxPodSandboxConfig(
                cgroup_parent=f"/kubepods/besteffort/pod{uid}",
                security_context=api.LinuxSandboxSecurityContext(
                    namespace_options=self.namespaces())))
        answer = self.rt.RunPodSandbox(api.RunPodSandboxRequest(config=config),
                                       timeout=self.timeout)
        self.pods.append(answer.pod_sandbox_id)
        return Pod(answer.pod_sandbox_id, config, name, namespace, uid)

    def namespaces(self):
        """The kubelet's for a host-network pod that does not share its process namespace."""
        api = self.api
        return api.NamespaceOption(network=api.NODE, pid=api.CONTAINER, ipc=api.POD)

    def create_container(self, pod: Pod, name: str, image: str, *cmd: str,
                         mounts: tuple[tuple[str, str, bool], ...] = (),
                         labels: dict[str, str] | None = None) -> str:
        api = self.api
        # the kubelet names the image by its id, and says what the pod spec named
        image_id = self.images.ImageStatus(api.ImageStatusRequest(
            image=api.ImageSpec(image=image)), timeout=self.timeout).image.id
        config = api.ContainerConfig(
            metadata=api.ContainerMetadata(name=name, attempt=0),
            image=api.ImageSpec(image=image_id, user_specified_image=image), command=list(cmd),
            labels={"io.kubernetes.container.name": name,
                    "io.kubernetes.pod.name": pod.name,
                    "io.kubernetes.pod.namespace": pod.namespace,
                    "io.kubernetes.pod.uid": pod.uid, **(labels or {})},
            mounts=[api.Mount(host_path=h, container_path=c, readonly=ro)
                    for h, c, ro in mounts],
            linux=api.LinuxContainerConfig(security_context=api.LinuxContainerSecurityContext(
                namespace_options=self.namespaces())),
            log_path=f"{name}.log")
        answer = self.rt.CreateContainer(api.CreateContainerRequest(
            pod_sandbox_id=pod.sandbox_id, config=config, sandbox_config=pod.config),
            timeout=self.timeout)
        return answer.container_id

    def start_container(self, cid: str) -> int:
        """Start it; its first process's host pid."""
        self.rt.StartContainer(self.api.StartContainerRequest(container_id=cid),
                               timeout=self.timeout)
        return self.pid_of(cid)

    def exec_sync(self, cid: str, *cmd: str) -> int:
        """Run ``cmd`` in the container as the kubelet runs an exec probe (``ExecSync``); its
        exit code."""
        answer = self.rt.ExecSync(self.api.ExecSyncRequest(container_id=cid, cmd=list(cmd),
                                                           timeout=10), timeout=self.timeout)
        return answer.exit_code

    def pid_of(self, cid: str) -> int:
        import json

        st = self.rt.ContainerStatus(self.api.ContainerStatusRequest(container_id=cid,
                                                                     verbose=True),
                                     timeout=self.timeout)
        return int(json.loads(st.info["info"])["pid"])

    def sandbox_pid(self, pod: Pod) -> int:
        import json

        st = self.rt.PodSandboxStatus(self.api.PodSandboxStatusRequest(
            pod_sandbox_id=pod.sandbox_id, verbose=True), timeout=self.timeout)
        return int(json.loads(st.info["info"])["pid"])

    def remove_container(self, cid: str) -> None:
        self.rt.StopContainer(self.api.StopContainerRequest(container_id=cid, timeout=0),
                              timeout=self.timeout)
        self.rt.RemoveContainer(self.api.RemoveContainerRequest(container_id=cid),
                                timeout=self.timeout)

    def close(self) -> None:
        for sandbox in self.pods:
            try:
                self.rt.StopPodSandbox(self.api.StopPodSandboxRequest(pod_sandbox_id=sandbox),
                                       timeout=self.timeout)
                self.rt.RemovePodSandbox(
                    self.api.RemovePodSandboxRequest(pod_sandbox_id=sandbox),
                    timeout=self.timeout)
            except Exception:  # noqa: BLE001 (the daemon's own cleanup follows)
                pass
        self.channel.close()


# -- fixtures ---------------------------------------------------------------------------------


def _started(daemon: Containerd) -> Iterator[Containerd]:
    """``daemon`` started, its images imported (built with the local Docker: no registry),
    stopped and removed afterwards."""
    build_images()
    try:
        daemon.start()
        daemon.import_image(PAUSE_IMAGE)
        daemon.import_image(APP_IMAGE)
        yield daemon
    finally:
        daemon.stop()


@pytest.fixture(scope="module")
def containerd(dockerd: None) -> Iterator[Containerd]:
    """One standalone containerd (Debian's) per test module."""
    if shutil.which("containerd") is None:
        pytest.skip("containerd is not installed (scripts/setup.sh)")
    yield from _started(Containerd())


@pytest.fixture(scope="module")
def containerd_next(dockerd: None) -> Iterator[Containerd]:
    """One standalone containerd 1.7 (Debian 13's, unpacked by scripts/setup.sh) per module:
    its CRI serves the container event stream."""
    if not (NEXT_BIN / "containerd").exists():
        pytest.skip(f"no containerd 1.7 in {NEXT_BIN} (scripts/setup.sh)")
    yield from _started(Containerd(NEXT_BIN))


@pytest.fixture(scope="module")
def kubelet(containerd: Containerd) -> Iterator[Kubelet]:
    k = Kubelet(containerd.socket)
    try:
        yield k
    finally:
        k.close()
