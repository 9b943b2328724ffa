"""``syswarden event-generator``: suspicious actions, performed safely, each mapped to the rule it
must trigger in the default ruleset.

Every action works on temporary names (``syswarden-gen-<random>``) and undoes what it did; nothing
harmful is left behind.  A sensitive file is only read or linked to from a temporary directory,
never changed.  With ``--container NAME`` the actions that make sense inside a container run
there through ``docker exec`` (the container needs a shell, as the busybox images of the tests
have).  Each action is a small function that performs the real system calls: the agent sees what
an attacker's process would do.

``--list`` prints each action with the rule it expects.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Command


@dataclass(frozen=True)
class Action:
    name: str
    rule: str                      # the default rule it must trigger
    desc: str
    host: Callable[["Run"], None] | None
    container: str | None = None   # a shell command run in the container with --container
    #: a rule of Falco's stable ruleset that matches the same behaviour (for the comparison report)
    falco_rule: str | None = None


@dataclass
class Run:
    """What an action runs with: a private temp dir, and the container if any."""

    tmp: str
    container: str | None = None
    image: str = "nginx:latest"

    def token(self) -> str:
        return f"syswarden-gen-{secrets.token_hex(4)}"

    def copy_binary(self, src: str, name: str) -> str:
        path = os.path.join(self.tmp, name)
        shutil.copy2(src, path)
        return path


def _sh(*args: str, check: bool = False, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(args), check=check, stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL, **kw)


@contextlib.contextmanager
def _removed(*paths: str) -> Iterator[None]:
    try:
        yield
    finally:
        for path in paths:
            with contextlib.suppress(OSError):
                if os.path.isdir(path) and not os.path.islink(path):
                    os.rmdir(path)
                else:
                    os.unlink(path)


def _write_and_remove(path: str) -> None:
    with _removed(path):
        with open(path, "w") as fh:
            fh.write("syswarden event generator\n")


# -- host actions --------------------------------------------------------------------------------

def read_sensitive_file(run: Run) -> None:
    reader = run.copy_binary(shutil.which("cat") or "/bin/cat", "sw-untrusted-reader")
    _sh(reader, "/etc/shadow")


def write_below_binary_dir(run: Run) -> None:
    _write_and_remove(f"/bin/{run.token()}")


def write_below_etc(run: Run) -> None:
    _write_and_remove(f"/etc/{run.token()}")


def create_file_below_dev(run: Run) -> None:
    _write_and_remove(f"/dev/{run.token()}")


def db_spawns_shell(run: Run) -> None:
    mysqld = run.copy_binary(shutil.which("bash") or "/bin/bash", "mysqld")
    _sh(mysqld, "-c", "/bin/sh -c true; true")


def rename_below_binary_dir(run: Run) -> None:
    old, new = f"/bin/{run.token()}", f"/bin/{run.token()}"
    with _removed(old, new):
        open(old, "w").close()
        _sh("mv", old, new)


def remove_below_binary_dir(run: Run) -> None:
    path = f"/bin/{run.token()}"
    with _removed(path):
        open(path, "w").close()
        _sh("rm", "-f", path)


def mkdir_below_binary_dir(run: Run) -> None:
    path = f"/bin/{run.token()}"
    with _removed(path):
        _sh("mkdir", path)


def setns_non_runtime(run: Run) -> None:
    # join the namespace we are already in: a real setns(2), changing nothing
    code = ("import ctypes, os; libc = ctypes.CDLL(None, use_errno=True); "
            "fd = os.open('/proc/self/ns/uts', os.O_RDONLY); libc.setns(fd, 0)")
    _sh(sys.executable, "-c", code)


def unshare_non_runtime(run: Run) -> None:
    _sh("unshare", "--uts", "true")


#: The generator's own test host: a network namespace it creates, reached over a veth pair, on
#: addresses of the benchmarking range (RFC 2544), so a shell connects to a "remote" host that
#: exists only on this machine and is removed afterwards.
TEST_HOST_NET = ("198.18.0.1", "198.18.0.2", 30)


@contextlib.contextmanager
def _test_host(run: Run) -> Iterator[str]:
    """A network namespace with a TCP listener; yields its address (``ip:port``)."""
    ns = run.token()[-12:]
    here, there, prefix = TEST_HOST_NET
    veth = f"sw{ns[-8:]}"
    ip = ["ip", "netns", "exec", ns]
    try:
        _sh("ip", "netns", "add", ns, check=True)
        _sh("ip", "link", "add", f"{veth}a", "type", "veth", "peer", "name", f"{veth}b",
            check=True)
        _sh("ip", "link", "set", f"{veth}b", "netns", ns, check=True)
        _sh("ip", "addr", "add", f"{here}/{prefix}", "dev", f"{veth}a", check=True)
        _sh("ip", "link", "set", f"{veth}a", "up", check=True)
        _sh(*ip, "ip", "addr", "add", f"{there}/{prefix}", "dev", f"{veth}b", check=True)
        _sh(*ip, "ip", "link", "set", f"{veth}b", "up", check=True)
        listener = subprocess.Popen(
            [*ip, sys.executable, "-c",
             "import socket, sys; s = socket.socket(); "
             "s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); "
             f"s.bind(('{there}', 8443)); s.listen(4); print('up', flush=True); "
             "c, _ = s.accept(); c.recv(64)"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            listener.stdout.readline()
            yield f"{there}:8443"
        finally:
            listener.kill()
            listener.wait()
    finally:
        _sh("ip", "link", "del", f"{veth}a")
        _sh("ip", "netns", "del", ns)


def shell_outbound_connection(run: Run) -> None:
    with _test_host(run) as address:
        host, port = address.split(":")
        _sh("bash", "-c", f"exec 3<>/dev/tcp/{host}/{port}; echo hi >&3")


def set_setuid_bit(run: Run) -> None:
    path = os.path.join(run.tmp, run.token())
    open(path, "w").close()
    _sh("chmod", "u+s", path)


def symlink_over_shadow(run: Run) -> None:
    _sh("ln", "-s", "/etc/shadow", os.path.join(run.tmp, run.token()))


def hardlink_over_shadow(run: Run) -> None:
    link = os.path.join(run.tmp, run.token())
    with _removed(link):
        _sh("ln", "/etc/shadow", link)


def clear_log_file(run: Run) -> None:
    path = f"/var/log/{run.token()}.log"
    with _removed(path):
        with open(path, "w") as fh:
            fh.write("a line to be cleared\n")
        _sh("sh", "-c", f": > {path}")


def exec_from_dev_shm(run: Run) -> None:
    path = f"/dev/shm/{run.token()}"
    with _removed(path):
        shutil.copy2(shutil.which("true") or "/bin/true", path)
        _sh(path)


def exec_from_memfd(run: Run) -> None:
    code = ("import os, shutil; fd = os.memfd_create('sw-gen', 0); "
            "os.write(fd, open(shutil.which('true'), 'rb').read()); "
            "os.execve(fd, ['sw-memfd-true'], {})")
    _sh(sys.executable, "-c", code)


def kernel_module_load(run: Run) -> None:
    # finit_module on /dev/null: the kernel refuses it (nothing is loaded); the attempt is seen
    libc = ctypes.CDLL(None, use_errno=True)
    nr_finit_module = 313  # x86_64
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        libc.syscall(nr_finit_module, fd, b"", 0)
    finally:
        os.close(fd)


def ptrace_attach(run: Run) -> None:
    child = subprocess.Popen(["sleep", "5"])
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        ptrace_attach, ptrace_detach = 16, 17
        if libc.ptrace(ptrace_attach, child.pid, None, None) == 0:
            os.waitpid(child.pid, 0)
            libc.ptrace(ptrace_detach, child.pid, None, None)
    finally:
        child.kill()
        child.wait()


def _docker_run(run: Run, *flags: str) -> None:
    name = run.token()
    try:
        started = subprocess.run(["docker", "run", "-d", "--network", "none", "--name", name,
                                  *flags, run.image, "sleep", "30"],
                                 capture_output=True, text=True)
        if started.returncode != 0:
            reason = started.stderr.strip().splitlines()[0] if started.stderr.strip() else ""
            if "apply caps" in reason:
                raise SkipAction("dockerd cannot start this container on this machine "
                                 f"(capabilities missing from the bounding set): {reason}")
            raise RuntimeError(f"docker run failed: {reason}")
        # up long enough for a loaded agent to resolve its cgroup (gone once it is removed)
        time.sleep(2.0)
    finally:
        _sh("docker", "rm", "-f", name)


def sensitive_mount_container(run: Run) -> None:
    _docker_run(run, "-v", "/proc:/host/proc:ro")


def privileged_container(run: Run) -> None:
    _docker_run(run, "--privileged")


def terminal_shell_in_container(run: Run) -> None:
    if not run.container:
        raise SkipAction("needs --container NAME")
    _sh("script", "-qc", f"docker exec -it {run.container} sh -c 'exit 0'", "/dev/null")


def package_manager_in_container(run: Run) -> None:
    if not run.container:
        raise SkipAction("needs --container NAME")
    _sh("docker", "exec", run.container, "sh", "-c",
        "cp /bin/busybox /tmp/apt-get && /tmp/apt-get install curl; rm -f /tmp/apt-get")


class SkipAction(Exception):
    """The action cannot run here (it needs a container, or a tool that is missing)."""


ACTIONS: tuple[Action, ...] = (
    Action("read-sensitive-file", "Sensitive file read by an untrusted program",
           "an unknown program reads /etc/shadow", read_sensitive_file,
           "cp /bin/busybox /tmp/sw-reader && /tmp/sw-reader cat /etc/shadow >/dev/null; "
           "rm -f /tmp/sw-reader", "Read sensitive file untrusted"),
    Action("write-below-binary-dir", "Write below a binary directory",
           "a file created below /bin, then removed", write_below_binary_dir,
           "touch /bin/sw-gen-w && rm -f /bin/sw-gen-w", None),
    Action("write-below-etc", "Write below /etc", "a file created below /etc, then removed",
           write_below_etc, "touch /etc/sw-gen-w && rm -f /etc/sw-gen-w", None),
    Action("create-file-below-dev", "File created below /dev",
           "a regular file created below /dev, then removed", create_file_below_dev,
           "touch /dev/sw-gen-f && rm -f /dev/sw-gen-f", "Create files below dev"),
    Action("db-spawns-shell", "Database server spawned a process",
           "a process named mysqld runs a shell", db_spawns_shell,
           "cp /bin/busybox /tmp/mysqld && /tmp/mysqld sh -c 'sh -c true; true'; "
           "rm -f /tmp/mysqld", None),
    Action("rename-below-binary-dir", "Binary directory changed",
           "a file below /bin renamed, then removed", rename_below_binary_dir,
           "touch /bin/sw-gen-a && mv /bin/sw-gen-a /bin/sw-gen-b; rm -f /bin/sw-gen-b", None),
    Action("remove-below-binary-dir", "Binary directory changed", "a file below /bin removed",
           remove_below_binary_dir, None, None),
    Action("mkdir-below-binary-dir", "Binary directory changed", "a directory created below /bin",
           mkdir_below_binary_dir, "mkdir /bin/sw-gen-d && rmdir /bin/sw-gen-d", None),
    Action("setns-non-runtime", "Namespace changed by a non-runtime process",
           "setns(2) by a process that is not a container runtime", setns_non_runtime, None,
           None),
    Action("unshare-non-runtime", "Namespace changed by a non-runtime process",
           "unshare(2) by a process that is not a container runtime", unshare_non_runtime,
           None, None),
    Action("shell-outbound-connection", "Outbound connection from a shell",
           "bash connects out to a test host (a network namespace of its own)", shell_outbound_connection, None, None),
    Action("set-setuid-bit", "Setuid or setgid bit set", "chmod u+s on a temporary file",
           set_setuid_bit, "touch /tmp/sw-gen-s && chmod u+s /tmp/sw-gen-s; rm -f /tmp/sw-gen-s",
           "Set Setuid or Setgid bit"),
    Action("symlink-over-shadow", "Symlink created over a sensitive file",
           "a symlink to /etc/shadow in a temporary directory", symlink_over_shadow,
           "ln -s /etc/shadow /tmp/sw-gen-l; rm -f /tmp/sw-gen-l",
           "Create Symlink Over Sensitive Files"),
    Action("hardlink-over-shadow", "Hardlink created over a sensitive file",
           "a hard link to /etc/shadow in a temporary directory", hardlink_over_shadow, None,
           "Create Hardlink Over Sensitive Files"),
    Action("clear-log-file", "Log file truncated", "a log file below /var/log truncated",
           clear_log_file, None, "Clear Log Activities"),
    Action("exec-from-dev-shm", "Program executed from /dev/shm", "a binary run from /dev/shm",
           exec_from_dev_shm, None, "Execution from /dev/shm"),
    Action("exec-from-memfd", "Fileless execution from a memfd",
           "a binary run from a memfd (fileless)", exec_from_memfd, None,
           "Fileless execution via memfd_create"),
    Action("kernel-module-load", "Kernel module load attempted",
           "finit_module(2) on /dev/null (refused by the kernel)", kernel_module_load, None,
           "Linux Kernel Module Injection Detected"),
    Action("ptrace-attach", "Process attached with ptrace", "PTRACE_ATTACH to a child sleep process",
           ptrace_attach, None, "PTRACE attached to process"),
    Action("sensitive-mount-container", "Container started with a sensitive mount",
           "a container started with /proc mounted", sensitive_mount_container, None,
           "Launch Sensitive Mount Container"),
    Action("privileged-container", "Container started privileged",
           "a container started with --privileged", privileged_container, None,
           "Launch Privileged Container"),
    Action("terminal-shell-in-container", "Shell with a terminal in a container",
           "docker exec -it ... sh (needs --container)", terminal_shell_in_container, None,
           "Terminal shell in container"),
    Action("package-manager-in-container", "Package manager run in a container",
           "a package manager run in a container (needs --container)",
           package_manager_in_container, None, "Launch Package Management Process in Container"),
)


def by_name() -> dict[str, Action]:
    return {a.name: a for a in ACTIONS}


def run_actions(names: list[str], container: str | None = None,
                report: Callable[[str], None] = print) -> dict[str, str]:
    """Run the named actions (all when empty); return name -> "ok" | "skipped: why" | "failed: why"."""
    actions = by_name()
    unknown = [n for n in names if n not in actions]
    if unknown:
        raise KeyError(", ".join(unknown))
    results: dict[str, str] = {}
    with tempfile.TemporaryDirectory(prefix="syswarden-gen-") as tmp:
        run = Run(tmp, container)
        for action in [actions[n] for n in names] if names else ACTIONS:
            try:
                if container and action.container:
                    _sh("docker", "exec", container, "sh", "-c", action.container)
                elif action.host is not None:
                    action.host(run)
                results[action.name] = "ok"
            except SkipAction as exc:
                results[action.name] = f"skipped: {exc}"
            except Exception as exc:  # one action failing must not stop the others
                results[action.name] = f"failed: {type(exc).__name__}: {exc}"
            report(f"{action.name:<30} {results[action.name]:<10} expects: {action.rule}")
    return results


class EventGeneratorCommand(Command):
    name = "event-generator"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("actions", nargs="*", metavar="ACTION")
        parser.add_argument("--list", action="store_true", help="list the actions and exit")
        parser.add_argument("--container", metavar="NAME",
                            help="run the actions in a container")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        if args.list:
            for action in ACTIONS:
                print(f"{action.name:<30} {action.rule}\n    {action.desc}")
            return 0
        try:
            results = run_actions(args.actions, args.container)
        except KeyError as exc:
            print(f"syswarden event-generator: unknown action(s): {exc.args[0]} "
                  f"(see --list)", file=sys.stderr)
            return 2
        return 1 if any(r.startswith("failed") for r in results.values()) else 0


@hookimpl
def syswarden_commands() -> list[Command]:
    return [EventGeneratorCommand()]
