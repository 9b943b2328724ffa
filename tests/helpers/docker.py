"""Real Docker for tests: the daemon, locally built images, containers that always go away.

Reusable by any test (``from tests.helpers.docker import ...``: pytest runs as
``python -m pytest`` from the repository root, which puts the root on ``sys.path``).
Everything here drives the real ``docker`` CLI against a real dockerd:

- :func:`ensure_dockerd` starts dockerd with ``scripts/dockerd.sh`` when it is not answering
  (no iptables, no bridge: every container runs with ``--network none``);
  :func:`dockerd_pid`, :func:`stop_dockerd` (by its pid) and :func:`start_dockerd` let a test
  take the daemon away and bring it back.
- :func:`ensure_images` builds, without any registry, ``nginx:latest`` (a busybox-static rootfs;
  ``/usr/sbin/nginx`` is a real program, a copy of ``sleep``, so ``nginx 300`` is a main
  process named ``nginx``; a real ``/bin/bash`` with the libraries ``ldd`` lists; default
  command ``nginx 3600``) and ``alpine:latest`` (busybox only; default command ``sleep 3600``).
  Images built here carry the label ``org.syswarden.test=1``; an existing image without it is
  rebuilt, so a pulled image never stands in for ours.
- :class:`Containers` runs containers (always ``--network none``) and removes every one it
  started on exit, whatever happened; the ``containers`` fixture wraps it.
- :func:`exec_in_terminal`: ``docker exec -it`` under a real pseudo-terminal.
- :func:`cgroup_v2_path` / :func:`cgroup_id` give the real cgroup (v2) of a process: what
  ``bpf_get_current_cgroup_id`` reports for it.

Fixtures: ``dockerd`` (session), ``docker_images`` (session, implies dockerd), ``containers``
(function).  Import them into a test module or a conftest: ``from tests.helpers.docker import
dockerd, docker_images, containers  # noqa: F401``.
"""

from __future__ import annotations

import functools
import json
import os
import pathlib
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterator

import pytest

from tests.helpers.paths import REPO

if TYPE_CHECKING:
    from syswarden.core.event import Event

DOCKERD_SCRIPT = REPO / "scripts" / "dockerd.sh"
TEST_LABEL = "org.syswarden.test"
BUSYBOX_APPLETS = ("sh", "ls", "cat", "touch", "mkdir", "sleep", "echo", "rm", "cp", "mv", "ps",
                   "id", "env", "true", "false", "grep", "head", "mount", "hostname", "wget",
                   "nc", "chmod", "ln", "readlink", "sed", "tail", "test", "uname", "whoami")


def docker(*args: str, check: bool = True, timeout: float = 120,
           input: bytes | None = None) -> subprocess.CompletedProcess:
    """Run the docker CLI; returns the completed process (text output)."""
    proc = subprocess.run(["docker", *args], input=input, capture_output=True,
                          timeout=timeout, check=False)
    out = subprocess.CompletedProcess(proc.args, proc.returncode,
                                      proc.stdout.decode(errors="replace"),
                                      proc.stderr.decode(errors="replace"))
    if check and out.returncode != 0:
        raise RuntimeError(f"docker {' '.join(args)} failed ({out.returncode}): "
                           f"{out.stderr.strip()}")
    return out


# -- the daemon -------------------------------------------------------------------------------


def dockerd_answers() -> bool:
    return docker("info", "--format", "{{.ServerVersion}}", check=False, timeout=20).returncode == 0


def ensure_dockerd() -> None:
    """Start dockerd (``scripts/dockerd.sh``, idempotent) unless it already answers."""
    if shutil.which("docker") is None:
        pytest.skip("docker is not installed")
    if dockerd_answers():
        return
    start_dockerd()


def start_dockerd() -> None:
    res = subprocess.run(["bash", str(DOCKERD_SCRIPT)], capture_output=True, text=True,
                         timeout=120)
    if res.returncode != 0 or not dockerd_answers():
        pytest.fail(f"dockerd did not start: {res.stderr.strip()}")


def dockerd_pid() -> int | None:
    """The pid of the running dockerd (from its pidfile, else by scanning /proc)."""
    try:
        pid = int(pathlib.Path("/var/run/docker.pid").read_text().strip())
        if _comm(pid) == "dockerd":
            return pid
    except (OSError, ValueError):
        pass
    for entry in os.listdir("/proc"):
        if entry.isdigit() and _comm(int(entry)) == "dockerd":
            return int(entry)
    return None


def _comm(pid: int) -> str:
    try:
        return pathlib.Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def stop_dockerd(timeout: float = 60.0) -> int:
    """Stop dockerd by its pid (SIGTERM) and wait until it has exited; return the pid."""
    pid = dockerd_pid()
    if pid is None:
        raise RuntimeError("dockerd is not running")
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not os.path.exists(f"/proc/{pid}") or _state(pid) == "Z":
            return pid
        time.sleep(0.1)
    raise RuntimeError(f"dockerd (pid {pid}) did not exit within {timeout}s")


def _state(pid: int) -> str:
    try:
        stat = pathlib.Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return ""


# -- images -----------------------------------------------------------------------------------


def _copy_with_libs(binary: str, root: pathlib.Path, dest: str) -> None:
    """Copy a dynamically linked program into ``root`` at ``dest`` with what ``ldd`` lists."""
    target = root / dest.lstrip("/")
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(binary, target)
    out = subprocess.run(["ldd", binary], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        parts = line.split()
        path = None
        if "=>" in parts:
            i = parts.index("=>")
            if i + 1 < len(parts) and parts[i + 1].startswith("/"):
                path = parts[i + 1]
        elif parts and parts[0].startswith("/"):
            path = parts[0]
        if path:
            lib = root / path.lstrip("/")
            lib.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(os.path.realpath(path), lib)


def _busybox_rootfs(root: pathlib.Path) -> None:
    busybox = shutil.which("busybox") or "/bin/busybox"
    for d in ("bin", "sbin", "usr/bin", "usr/sbin", "etc", "tmp", "proc", "sys", "dev", "root",
              "var/run", "mnt"):
        (root / d).mkdir(parents=True, exist_ok=True)
    shutil.copy2(busybox, root / "bin" / "busybox")
    for applet in BUSYBOX_APPLETS:
        link = root / "bin" / applet
        if not link.exists():
            link.symlink_to("busybox")
    (root / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n"
                                          "nobody:x:65534:65534:nobody:/:/bin/false\n")
    (root / "etc" / "group").write_text("root:x:0:\nnogroup:x:65534:\n")
    (root / "tmp").chmod(0o1777)


def _import(root: pathlib.Path, ref: str, cmd: list[str]) -> None:
    tar = subprocess.run(["tar", "-C", str(root), "-c", "."], capture_output=True, check=True)
    docker("import", "--change", f"LABEL {TEST_LABEL}=1", "--change", f"CMD {json.dumps(cmd)}",
           "-", ref, input=tar.stdout)


def _ours(ref: str) -> bool:
    res = docker("image", "inspect", "--format", "{{json .Config.Labels}}", ref, check=False)
    if res.returncode != 0:
        return False
    try:
        return (json.loads(res.stdout.strip() or "null") or {}).get(TEST_LABEL) == "1"
    except ValueError:
        return False


def build_nginx(ref: str = "nginx:latest") -> None:
    with tempfile.TemporaryDirectory(prefix="syswarden-nginx-") as tmp:
        root = pathlib.Path(tmp)
        _busybox_rootfs(root)
        _copy_with_libs("/bin/bash", root, "/bin/bash")
        _copy_with_libs(os.path.realpath(shutil.which("sleep") or "/bin/sleep"), root,
                        "/usr/sbin/nginx")
        (root / "etc" / "nginx").mkdir()
        (root / "etc" / "nginx" / "nginx.conf").write_text("# test image\n")
        _import(root, ref, ["nginx", "3600"])


def build_alpine(ref: str = "alpine:latest") -> None:
    with tempfile.TemporaryDirectory(prefix="syswarden-alpine-") as tmp:
        root = pathlib.Path(tmp)
        _busybox_rootfs(root)
        (root / "etc" / "alpine-release").write_text("3.19.0\n")
        _import(root, ref, ["sleep", "3600"])


def ensure_images() -> None:
    """Build ``nginx:latest`` and ``alpine:latest`` locally unless ours are there already."""
    if not _ours("nginx:latest"):
        build_nginx()
    if not _ours("alpine:latest"):
        build_alpine()


# -- containers -------------------------------------------------------------------------------


@dataclass
class RunningContainer:
    id: str                 # full 64-hex id
    name: str
    pid: int                # host pid of its first process
    inspect: dict[str, Any] = field(default_factory=dict, repr=False)

    @property
    def short_id(self) -> str:
        return self.id[:12]


def unique_name(prefix: str = "sw") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


class Containers:
    """Start containers and remove every one of them on ``close()`` (or leaving ``with``)."""

    def __init__(self) -> None:
        self.started: list[str] = []

    def __enter__(self) -> "Containers":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def create(self, image: str = "nginx:latest", *cmd: str, name: str | None = None,
               volumes: tuple[str, ...] = (), privileged: bool = False,
               labels: dict[str, str] | None = None, extra: tuple[str, ...] = ()) -> str:
        """``docker create`` (not started); returns the full id."""
        args = ["create", "--network", "none", "--name", name or unique_name()]
        for v in volumes:
            args += ["-v", v]
        if privileged:
            args.append("--privileged")
        for k, v in (labels or {}).items():
            args += ["--label", f"{k}={v}"]
        args += list(extra)
        args.append(image)
        args += list(cmd)
        cid = docker(*args).stdout.strip()
        self.started.append(cid)
        return cid

    def start(self, cid: str) -> RunningContainer:
        docker("start", cid)
        return self.describe(cid)

    def run(self, image: str = "nginx:latest", *cmd: str, **kw: Any) -> RunningContainer:
        """``docker run -d --network none ...``; returns the running container."""
        return self.start(self.create(image, *cmd, **kw))

    def describe(self, cid: str) -> RunningContainer:
        doc = inspect(cid)
        return RunningContainer(doc["Id"], doc["Name"].lstrip("/"),
                                int(doc["State"]["Pid"]), doc)

    def remove(self, cid: str) -> None:
        docker("rm", "-f", "-v", cid, check=False, timeout=60)
        if cid in self.started:
            self.started.remove(cid)

    def close(self) -> None:
        for cid in list(reversed(self.started)):
            self.remove(cid)


def exec_in_terminal(container: str, *command: str, send: bytes = b"exit\n") -> None:
    """``docker exec -it CONTAINER COMMAND`` under a real pseudo-terminal."""
    from tests.helpers.runtimes import run_in_terminal
    run_in_terminal(["docker", "exec", "-it", container, *command], send=send)


def inspect(cid: str) -> dict[str, Any]:
    return json.loads(docker("inspect", "--type", "container", cid).stdout)[0]


# -- cgroups ----------------------------------------------------------------------------------


def cgroup2_root() -> str:
    with open("/proc/self/mountinfo") as fh:
        for line in fh:
            left, _, right = line.partition(" - ")
            if right.startswith("cgroup2 "):
                return left.split()[4]
    raise RuntimeError("no cgroup v2 hierarchy is mounted")


def cgroup_v2_path(pid: int) -> str:
    """The process's cgroup on the unified hierarchy (the ``0::`` line of /proc/PID/cgroup)."""
    for line in pathlib.Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        if line.startswith("0::"):
            return line[3:]
    raise RuntimeError(f"pid {pid} has no cgroup v2 line")


def cgroup_id(pid: int) -> int:
    """The kernel cgroup id of a process: the inode of its cgroup v2 directory."""
    return os.stat(cgroup2_root().rstrip("/") + cgroup_v2_path(pid)).st_ino


class CgroupProcess:
    """A process placed in the cgroup Docker would give a container that cannot start here.

    This machine's capability bounding set lacks CAP_SYS_RESOURCE, so runc refuses to start a
    ``--privileged`` container.  Such a container can still be *created* (Docker's metadata is
    real: ``HostConfig.Privileged`` is true); this puts a real process in a cgroup at the path
    Docker uses (``/docker/<full id>`` on the unified hierarchy) and, with ``pidns``, in a new
    pid namespace where it is pid 1, as runc would: ``sh`` joins the cgroup, then ``unshare``
    forks the command as vpid 1 and it execs.  ``pid`` is that command's host pid.
    ``close()`` kills it and removes the cgroup.
    """

    def __init__(self, full_id: str, *cmd: str, pidns: bool = True,
                 path: str | None = None) -> None:
        # ``path`` (relative to the v2 root) gives another runtime's layout, e.g.
        # ``/kubepods.slice/crio-<id>.scope``; the directories made here are removed on close
        root = cgroup2_root().rstrip("/")
        self.path = root + (path if path is not None else f"/docker/{full_id}")
        self._made: list[str] = []
        parts = self.path[len(root):].strip("/").split("/")
        for i in range(1, len(parts) + 1):
            d = root + "/" + "/".join(parts[:i])
            if not os.path.isdir(d):
                os.mkdir(d)
                self._made.append(d)
        cmd = cmd or ("sleep", "300")
        inner = " ".join(cmd)
        if pidns:
            inner = f"unshare --pid --fork {inner}"
        self.popen = subprocess.Popen(
            ["sh", "-c", f"echo $$ > {self.path}/cgroup.procs && exec {inner}"])
        self.pid = self.popen.pid
        deadline = time.monotonic() + 10
        rel = self.path[len(root):]
        while _v2_path_or_none(self.pid) != rel:      # sh has joined the cgroup
            if time.monotonic() > deadline or self.popen.poll() is not None:
                self.close()
                raise RuntimeError(f"the process did not join {self.path}")
            time.sleep(0.01)
        while pidns:
            kids = _children(self.popen.pid)
            if kids and _comm(kids[0]) == cmd[0][-15:]:
                self.pid = kids[0]
                break
            if time.monotonic() > deadline:
                self.close()
                raise RuntimeError("the command did not start in its pid namespace")
            time.sleep(0.02)

    def close(self) -> None:
        if self.popen.poll() is None:
            self.popen.kill()
            self.popen.wait()
        for pid in _cgroup_pids(self.path):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + 10
        for d in reversed(self._made):
            while os.path.isdir(d):
                try:
                    os.rmdir(d)
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.05)

    def __enter__(self) -> "CgroupProcess":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _v2_path_or_none(pid: int) -> str | None:
    try:
        return cgroup_v2_path(pid)
    except (OSError, RuntimeError):
        return None


def _children(pid: int) -> list[int]:
    out: list[int] = []
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            text = pathlib.Path(f"/proc/{pid}/task/{tid}/children").read_text()
            out += [int(x) for x in text.split()]
    except OSError:
        pass
    return out


def _cgroup_pids(path: str) -> list[int]:
    try:
        return [int(x) for x in pathlib.Path(path, "cgroup.procs").read_text().split()]
    except OSError:
        return []


# -- async tests ------------------------------------------------------------------------------


def vpid_of(pid: int) -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid")


def process_event(pid: int, cg: int | None = None, evt_type: str = "execve") -> "Event":
    """What the eBPF source and the process enricher hand over for a real process."""
    from syswarden.core.event import Event, Process

    cg = cgroup_id(pid) if cg is None else cg
    evt = Event(evt_type, ts=time.time_ns(), tid=pid, pid=pid)
    evt.cgroup_id = cg
    comm = open(f"/proc/{pid}/comm").read().strip()
    evt.proc = Process(pid, vpid=vpid_of(pid), comm=comm, cgroup_id=cg)
    return evt


async def in_thread(fn: Callable, *args: Any, **kw: Any) -> Any:
    """Run a blocking helper (the docker CLI) off the trio loop, so that background tasks (an
    enricher following Docker's events) keep running meanwhile."""
    import trio

    return await trio.to_thread.run_sync(functools.partial(fn, *args, **kw))


async def eventually(cond: Callable[[], bool], guard: float = 60.0) -> None:
    """Poll ``cond`` until it holds; ``guard`` only stops a hung test (not a timing check)."""
    import trio

    with trio.fail_after(guard):
        while not cond():
            await trio.sleep(0.05)


# -- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dockerd() -> None:
    ensure_dockerd()


@pytest.fixture(scope="session")
def docker_images(dockerd: None) -> None:
    ensure_images()


@pytest.fixture
def containers(docker_images: None) -> Iterator[Containers]:
    with Containers() as running:
        yield running
