"""Falco's container-start rules: containers started with a sensitive mount or with powerful
capabilities, and what such a container can then do (read the host through the mount, write a
file named release_agent, try to load a kernel module, read a disk)."""

from __future__ import annotations

from .base import FalcoAction, Run, docker_container, exec_in

#: the disk name a capable container sees: the null device, mapped there (a real disk cannot be
#: opened in a container on these machines, and must not be written by a generator anyway)
DISK = "/dev/sdz"


def sensitive_mount_container(run: Run) -> None:
    with docker_container(run, "-v", "/proc:/host/proc:ro") as name:
        exec_in(name, "cat", "/host/proc/1/cmdline")


def capable_container(run: Run) -> None:
    flags = ["--cap-add", "SYS_ADMIN", "--cap-add", "SYS_MODULE",
             "--device", f"/dev/null:{DISK}:r"]
    with docker_container(run, *flags) as name:
        exec_in(name, "sh", "-c", "touch /tmp/release_agent; rm -f /tmp/release_agent")
        exec_in(name, "busybox", "insmod", "/etc/passwd", check=False)  # refused: no module
        exec_in(name, "head", "-c", "512", DISK)


ACTIONS: tuple[FalcoAction, ...] = (
    FalcoAction("sensitive-mount-container",
                ("Launch Sensitive Mount Container", "Container Access to Host Sensitive Paths"),
                "a container started with /proc mounted at /host/proc reads through it",
                sensitive_mount_container),
    FalcoAction("capable-container",
                ("Launch Excessively Capable Container",
                 "Detect release_agent File Container Escapes",
                 "Linux Kernel Module Injection Detected", "Privileged Container Device Access"),
                "a container started with CAP_SYS_ADMIN and CAP_SYS_MODULE, and the null device "
                "as /dev/sdz: it writes a file named release_agent, tries insmod, reads /dev/sdz",
                capable_container),
)
