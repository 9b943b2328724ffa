"""``syswarden event-generator``: suspicious actions, performed safely, each mapped to the rule it
must trigger in the default ruleset.

Every action works on temporary names (``syswarden-gen-<random>``) and undoes what it did; nothing
harmful is left behind.  A sensitive file is only read or linked to from a temporary directory,
never changed.  With ``--container NAME`` the actions that make sense inside a container run
there through ``docker exec`` (the container needs a shell, as the busybox images of the tests
have).  Each action is a small function that performs the real system calls: the agent sees what
an attacker's process would do.

``--list`` prints each action with the rule it expects.  ``--falco`` gives the actions for the
rules of Falco's own files instead (``commands/actions``, one module per kind of behaviour), and
with ``--list`` the Falco rules none can trigger here, with the reason.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import sys
from dataclasses import dataclass
from typing import Any, Callable

from syswarden.commands.actions import FALCO_ACTIONS, UNREACHABLE, run_falco_actions
from syswarden.commands.actions.base import Run, docker_container, perform_each, removed, sh
from syswarden.commands.actions.files import (clear_log_file, create_file_below_dev,
                                              hardlink_over_shadow, mkdir_below_binary_dir,
                                              rename_below_binary_dir, set_setuid_bit,
                                              symlink_over_shadow, write_below_binary_dir,
                                              write_below_etc)
from syswarden.commands.actions.files import read_shadow_untrusted as read_sensitive_file
from syswarden.commands.actions.network import shell_outbound as shell_outbound_connection
from syswarden.commands.actions.processes import (db_spawns_shell, package_manager_in_container,
                                                  terminal_shell_in_container)
from syswarden.commands.actions.syscalls import (exec_from_dev_shm, exec_from_memfd,
                                                 ptrace_attach, setns_non_runtime)
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Command


@dataclass(frozen=True)
class Action:
    name: str
    rule: str                      # the default rule it must trigger
    desc: str
    host: Callable[[Run], None] | None
    container: str | None = None   # a shell command run in the container with --container
    #: a rule of Falco's stable ruleset that matches the same behaviour (for the comparison report)
    falco_rule: str | None = None


# -- host actions of the default ruleset (the others are shared with Falco's, commands/actions) --

def remove_below_binary_dir(run: Run) -> None:
    path = f"/bin/{run.token()}"
    with removed(path):
        open(path, "w").close()
        sh("rm", "-f", path)


def unshare_non_runtime(run: Run) -> None:
    sh("unshare", "--uts", "true")


def kernel_module_load(run: Run) -> None:
    # finit_module on /dev/null: the kernel refuses it (nothing is loaded); the attempt is seen
    libc = ctypes.CDLL(None, use_errno=True)
    nr_finit_module = 313  # x86_64
    fd = os.open("/dev/null", os.O_RDONLY)
    try:
        libc.syscall(nr_finit_module, fd, b"", 0)
    finally:
        os.close(fd)


def sensitive_mount_container(run: Run) -> None:
    with docker_container(run, "-v", "/proc:/host/proc:ro"):
        pass


def privileged_container(run: Run) -> None:
    with docker_container(run, "--privileged"):
        pass


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


def _perform(action: Action, run: Run) -> None:
    if run.container and action.container:
        sh("docker", "exec", run.container, "sh", "-c", action.container)
    elif action.host is not None:
        action.host(run)


def run_actions(names: list[str], container: str | None = None,
                report: Callable[[str], None] = print) -> dict[str, str]:
    """Run the named actions (all when empty); return name -> "ok" | "skipped: why" | "failed: why"."""
    actions = by_name()
    unknown = [n for n in names if n not in actions]
    if unknown:
        raise KeyError(", ".join(unknown))
    chosen = [actions[n] for n in names] if names else list(ACTIONS)
    return perform_each(chosen, container, _perform, lambda action: action.rule, report)


class EventGeneratorCommand(Command):
    name = "event-generator"

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        parser.add_argument("actions", nargs="*", metavar="ACTION")
        parser.add_argument("--list", action="store_true", help="list the actions and exit")
        parser.add_argument("--container", metavar="NAME",
                            help="run the actions in a container")
        parser.add_argument("--falco", action="store_true",
                            help="the actions for the rules of Falco's own files (stable, "
                                 "incubating, sandbox) instead of the default ruleset's")

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Any) -> int:
        if args.list and args.falco:
            for falco_action in FALCO_ACTIONS:
                print(f"{falco_action.name:<32} {'; '.join(falco_action.rules)}\n"
                      f"    {falco_action.desc}")
            print("\nFalco rules no action triggers here:")
            for rule, reason in UNREACHABLE.items():
                print(f"  {rule}\n    {reason}")
            return 0
        if args.list:
            for action in ACTIONS:
                print(f"{action.name:<30} {action.rule}\n    {action.desc}")
            return 0
        try:
            if args.falco:
                results = run_falco_actions(args.actions, args.container)
            else:
                results = run_actions(args.actions, args.container)
        except KeyError as exc:
            print(f"syswarden event-generator: unknown action(s): {exc.args[0]} "
                  f"(see --list)", file=sys.stderr)
            return 2
        return 1 if any(r.startswith("failed") for r in results.values()) else 0


@hookimpl
def syswarden_commands() -> list[Command]:
    return [EventGeneratorCommand()]
