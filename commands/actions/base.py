"""What every action of the event generator is built from: the run it performs in (a private
temporary directory, the container if any), the shell helpers, and the test host (a network
namespace of its own, reached over a veth pair)."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Sequence, TypeVar

T = TypeVar("T")

#: a Python every user can run (the actions that drop to another uid run it): the system's
PYTHON = "/usr/bin/python3" if os.access("/usr/bin/python3", os.X_OK) else sys.executable


class SkipAction(Exception):
    """The action cannot run here (it needs a container, or a tool that is missing)."""


@dataclass
class Run:
    """What an action runs with: a private temp dir, and the container if any."""

    tmp: str
    container: str | None = None
    image: str = "nginx:latest"

    def token(self) -> str:
        return f"syswarden-gen-{secrets.token_hex(4)}"

    def copy_binary(self, src: str, name: str) -> str:
        """``src`` copied into the temp dir as ``name``: a process of that name."""
        path = os.path.join(self.tmp, name)
        shutil.copy2(src, path)
        return path

    def named(self, name: str, program: str = "true") -> str:
        """A copy of ``program`` (a command on the PATH) named ``name``."""
        return self.copy_binary(shutil.which(program) or f"/bin/{program}", name)

    def in_container(self, script: str) -> None:
        """``script`` run by ``sh -c`` in the container (``docker exec``); whatever the
        script's own status, a failure of docker itself is an error."""
        if not self.container:
            raise SkipAction("needs --container NAME")
        exec_in(self.container, "sh", "-c", f"{script}\nexit 0")


def sh(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, **kw)


@contextlib.contextmanager
def removed(*paths: str) -> Iterator[None]:
    """Remove ``paths`` (files, links or empty directories) when the block ends."""
    try:
        yield
    finally:
        for path in paths:
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)


def write_and_remove(path: str) -> None:
    with removed(path):
        with open(path, "w") as fh:
            fh.write("syswarden event generator\n")


#: The generator's own test host: a network namespace it creates, reached over a veth pair, on
#: addresses of the benchmarking range (RFC 2544, neither loopback nor RFC 1918), so a program
#: connects to a "remote" host that exists only on this machine and is removed afterwards.
TEST_HOST_NET = ("198.18.0.1", "198.18.0.2", 30)

#: the test host's default server: accepts one connection and reads what comes
ACCEPT_ONE = ("import socket; s = socket.socket(); "
              "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
              "s.bind(('{there}', {port})); s.listen(4); print('up', flush=True); "
              "c, _ = s.accept(); c.recv(64)")


@contextlib.contextmanager
def _linked_host(run: Run, net: tuple[str, str, int], port: int, server: str,
                 near: list[str], near_ns: str | None) -> Iterator[str]:
    """A test host: a network namespace of its own serving ``server`` (Python, formatted with
    ``here``, ``there`` and ``port``; it prints a line when ready) on ``net``'s far address,
    linked by a veth pair to the near end (moved to ``near_ns`` when given, and configured by
    ``near``, the command prefix that enters it).  Yields the far address; deleting the test
    host's namespace removes the pair, both ends."""
    ns = run.token()[-12:]
    here, there, prefix = net
    veth = f"sw{ns[-8:]}"
    ip = ["ip", "netns", "exec", ns]
    try:
        sh("ip", "netns", "add", ns, check=True)
        sh("ip", "link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b", check=True)
        if near_ns is not None:
            sh("ip", "link", "set", f"{veth}a", "netns", near_ns, check=True)
        sh("ip", "link", "set", f"{veth}b", "netns", ns, check=True)
        sh(*near, "ip", "addr", "add", f"{here}/{prefix}", "dev", f"{veth}a", check=True)
        sh(*near, "ip", "link", "set", f"{veth}a", "up", check=True)
        sh(*ip, "ip", "addr", "add", f"{there}/{prefix}", "dev", f"{veth}b", check=True)
        sh(*ip, "ip", "link", "set", f"{veth}b", "up", check=True)
        sh(*ip, "ip", "link", "set", "lo", "up")
        listener = subprocess.Popen(
            [*ip, sys.executable, "-c", server.format(there=there, port=port, here=here)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            listener.stdout.readline()
            yield there
        finally:
            listener.kill()
            listener.wait()
    finally:
        sh("ip", "netns", "del", ns)


def test_host(run: Run, port: int = 8443, server: str = ACCEPT_ONE,
              net: tuple[str, str, int] = TEST_HOST_NET) -> contextlib.AbstractContextManager[str]:
    """A test host on ``net`` (this machine's end, the test host's, prefix length) serving
    ``server`` on ``port``, linked to this machine; ``with`` it gives its address."""
    return _linked_host(run, net, port, server, near=[], near_ns=None)


def container_link(run: Run, net: tuple[str, str, int], port: int,
                   server: str = ACCEPT_ONE) -> contextlib.AbstractContextManager[str]:
    """A test host linked to the container's network namespace alone (``net``: the container's
    address, the test host's, prefix length); ``with`` it gives the test host's address.
    Nothing is added to this machine's own namespace."""
    if not run.container:
        raise SkipAction("needs --container NAME")
    pid = subprocess.run(["docker", "inspect", "-f", "{{.State.Pid}}", run.container],
                         capture_output=True, text=True, check=True).stdout.strip()
    if pid in ("", "0"):
        raise RuntimeError(f"container {run.container} is not running")
    return _linked_host(run, net, port, server, near=["nsenter", "-t", pid, "-n"],
                        near_ns=pid)


@contextlib.contextmanager
def docker_container(run: Run, *flags: str, command: tuple[str, ...] = ("sleep", "30")
                     ) -> Iterator[str]:
    """A container of ``run.image`` started with ``flags`` (always ``--network none``), up long
    enough for a loaded agent to resolve its cgroup; yields its name, removed afterwards."""
    name = run.token()
    try:
        started = subprocess.run(["docker", "run", "-d", "--network", "none", "--name", name,
                                  *flags, run.image, *command], capture_output=True, text=True)
        if started.returncode != 0:
            reason = started.stderr.strip().splitlines()[0] if started.stderr.strip() else ""
            if "apply caps" in reason:
                raise SkipAction("dockerd cannot start this container on this machine "
                                 f"(capabilities missing from the bounding set): {reason}")
            raise RuntimeError(f"docker run failed: {reason}")
        time.sleep(2.0)
        yield name
    finally:
        sh("docker", "rm", "-f", name)


def exec_in(name: str, *command: str, check: bool = True) -> None:
    """``docker exec NAME COMMAND...``; with ``check``, a non-zero status is an error."""
    done = subprocess.run(["docker", "exec", name, *command], stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE, text=True)
    if check and done.returncode != 0:
        raise RuntimeError(f"docker exec {' '.join(command)} failed ({done.returncode}): "
                           f"{done.stderr.strip()[-300:]}")


HostAction = Callable[[Run], None]


def perform_each(actions: Sequence[T], container: str | None,
                 perform: Callable[[T, Run], None], expects: Callable[[T], str],
                 report: Callable[[str], None] = print,
                 before: Callable[[T], None] | None = None,
                 after: Callable[[T, str], None] | None = None) -> dict[str, str]:
    """Run each action (anything with a ``name``) in order through ``perform``, in one private
    temporary directory; return name -> "ok" | "skipped: why" | "failed: why".  ``report``
    gets a line per action (with what it ``expects``); ``before`` and ``after`` are called
    around each."""
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="syswarden-gen-") as tmp:
        os.chmod(tmp, 0o755)   # an action run as another user reaches its programs
        run = Run(tmp, container)
        for action in actions:
            name = action.name  # type: ignore[attr-defined]
            if before:
                before(action)
            try:
                perform(action, run)
                results[name] = "ok"
            except SkipAction as exc:
                results[name] = f"skipped: {exc}"
            except Exception as exc:  # one action failing must not stop the others
                results[name] = f"failed: {type(exc).__name__}: {exc}"
            if after:
                after(action, results[name])
            report(f"{name:<32} {results[name]:<10} expects: {expects(action)}")
    return results


@dataclass(frozen=True)
class FalcoAction:
    """An action that triggers rules of Falco's own files (stable, incubating, sandbox)."""

    name: str
    rules: tuple[str, ...]     # the Falco rules it must trigger, by name
    desc: str
    perform: HostAction
