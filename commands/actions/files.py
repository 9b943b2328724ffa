"""Falco's file rules: sensitive files read, files written where they should not be, links,
renames and removals, and the same below a container's root.

Every file is temporary (``syswarden-gen-<random>``) and removed afterwards; a sensitive file is
only read or linked to, never changed.  Writes to system directories happen in the container
(``--container``), except the few the default actions already do on the host."""

from __future__ import annotations

import os
import shutil

from .base import FalcoAction, Run, exec_in, removed, sh, write_and_remove


def read_shadow_untrusted(run: Run) -> None:
    sh(run.named("sw-untrusted-reader", "cat"), "/etc/shadow")


def read_shadow_after_startup(run: Run) -> None:
    # a web server running for more than 5 s reads /etc/shadow (bash named nginx, its own read)
    nginx = run.named("nginx", "bash")
    sh(nginx, "-c", "sleep 5.3; read -r line < /etc/shadow; true")


def directory_traversal_read(run: Run) -> None:
    sh(run.named("sw-app", "cat"), "/etc/../etc/../etc/hostname")


def search_private_keys(run: Run) -> None:
    sh("grep", "-rl", "BEGIN RSA PRIVATE", run.tmp)


def find_aws_credentials(run: Run) -> None:
    sh("grep", "-rl", "aws_secret_access_key", run.tmp)


def clear_log_file(run: Run) -> None:
    path = f"/var/log/{run.token()}.log"
    with removed(path):
        with open(path, "w") as fh:
            fh.write("a line to be cleared\n")
        sh("sh", "-c", f": > {path}")


def shred_file(run: Run) -> None:
    path = os.path.join(run.tmp, run.token())
    with open(path, "w") as fh:
        fh.write("data to destroy\n")
    sh("shred", "-u", path)


def symlink_over_shadow(run: Run) -> None:
    sh("ln", "-s", "/etc/shadow", os.path.join(run.tmp, run.token()))


def hardlink_over_shadow(run: Run) -> None:
    link = os.path.join(run.tmp, run.token())
    with removed(link):
        sh("ln", "/etc/shadow", link)


def shell_config(run: Run) -> None:
    bashrc = os.path.join(run.tmp, ".bashrc")
    with removed(bashrc):
        sh("touch", bashrc)
        sh(run.named("sw-reader", "cat"), bashrc)


def remove_shell_history(run: Run) -> None:
    history = os.path.join(run.tmp, ".bash_history")
    open(history, "w").close()
    sh("rm", "-f", history)


def create_file_below_dev(run: Run) -> None:
    write_and_remove(f"/dev/{run.token()}")


def set_setuid_bit(run: Run) -> None:
    path = os.path.join(run.tmp, run.token())
    open(path, "w").close()
    sh("chmod", "u+s", path)


def write_below_binary_dir(run: Run) -> None:
    write_and_remove(f"/bin/{run.token()}")


def write_below_etc(run: Run) -> None:
    write_and_remove(f"/etc/{run.token()}")


def rename_below_binary_dir(run: Run) -> None:
    old, new = f"/bin/{run.token()}", f"/bin/{run.token()}"
    with removed(old, new):
        open(old, "w").close()
        sh("mv", old, new)


def mkdir_below_binary_dir(run: Run) -> None:
    path = f"/bin/{run.token()}"
    with removed(path):
        sh("mkdir", path)


def mkdir_hidden(run: Run) -> None:
    sh("mkdir", os.path.join(run.tmp, f".{run.token()}"))


def sshd_reads_liblzma(run: Run) -> None:
    lib = os.path.join(run.tmp, "liblzma.so.5.6.1")
    shutil.copy2("/etc/hostname", lib)
    sh(run.named("sshd", "cat"), lib)


# -- in the container -----------------------------------------------------------------------

def container_ssh_keys(run: Run) -> None:
    run.in_container("mkdir -p /root/.ssh && echo 'ssh-ed25519 AAAA sw-gen' >> "
                     "/root/.ssh/authorized_keys && cat /root/.ssh/authorized_keys >/dev/null; "
                     "rm -f /root/.ssh/authorized_keys")


def container_system_writes(run: Run) -> None:
    run.in_container("touch /sw-gen-root /lib/sw-gen-lib; rm -f /sw-gen-root /lib/sw-gen-lib; "
                     "mkdir -p /var/lib/rpm /etc/apt/sources.list.d; "
                     "touch /var/lib/rpm/sw-gen /etc/apt/sources.list.d/sw-gen.list; "
                     "rm -f /var/lib/rpm/sw-gen /etc/apt/sources.list.d/sw-gen.list")


def container_read_environ(run: Run) -> None:
    run.in_container("cat /proc/1/environ >/dev/null")


def container_tar_read(run: Run) -> None:
    run.in_container("cp /bin/busybox /tmp/tar && echo data > /tmp/sw-gen-data")
    exec_in(run.container, "/tmp/tar", "-cf", "/dev/null", "/tmp/sw-gen-data")
    run.in_container("rm -f /tmp/tar /tmp/sw-gen-data")


def container_drift(run: Run) -> None:
    run.in_container("touch /tmp/sw-gen-x && chmod +x /tmp/sw-gen-x; "
                     "cp /bin/busybox /tmp/sw-gen-drift; rm -f /tmp/sw-gen-x /tmp/sw-gen-drift")


def container_write_through_proc_fd(run: Run) -> None:
    run.in_container("exec 3>/tmp/sw-gen-fd; echo x > /proc/self/fd/3; rm -f /tmp/sw-gen-fd")


ACTIONS: tuple[FalcoAction, ...] = (
    FalcoAction("read-shadow-untrusted", ("Read sensitive file untrusted",),
                "an unknown program reads /etc/shadow", read_shadow_untrusted),
    FalcoAction("read-shadow-after-startup", ("Read sensitive file trusted after startup",),
                "a program named nginx reads /etc/shadow 5 s after it started",
                read_shadow_after_startup),
    FalcoAction("directory-traversal-read", ("Directory traversal monitored file read",),
                "a program reads /etc/../etc/../etc/hostname", directory_traversal_read),
    FalcoAction("search-private-keys", ("Search Private Keys or Passwords",),
                "grep for 'BEGIN RSA PRIVATE' in a temporary directory", search_private_keys),
    FalcoAction("find-aws-credentials", ("Find AWS Credentials",),
                "grep for aws_secret_access_key in a temporary directory", find_aws_credentials),
    FalcoAction("clear-log-file", ("Clear Log Activities",),
                "a log file below /var/log truncated, then removed", clear_log_file),
    FalcoAction("shred-file", ("Remove Bulk Data from Disk",), "shred a temporary file",
                shred_file),
    FalcoAction("symlink-over-shadow", ("Create Symlink Over Sensitive Files",),
                "a symlink to /etc/shadow in a temporary directory", symlink_over_shadow),
    FalcoAction("hardlink-over-shadow", ("Create Hardlink Over Sensitive Files",),
                "a hard link to /etc/shadow in a temporary directory", hardlink_over_shadow),
    FalcoAction("shell-config",
                ("Modify Shell Configuration File", "Read Shell Configuration File"),
                "a temporary .bashrc written by touch and read by another program",
                shell_config),
    FalcoAction("remove-shell-history", ("Delete or rename shell history",),
                "a temporary .bash_history removed", remove_shell_history),
    FalcoAction("create-file-below-dev", ("Create files below dev",),
                "a regular file created below /dev, then removed", create_file_below_dev),
    FalcoAction("set-setuid-bit", ("Set Setuid or Setgid bit",), "chmod u+s on a temporary file",
                set_setuid_bit),
    FalcoAction("write-below-binary-dir", ("Write below binary dir",),
                "a file created below /bin, then removed", write_below_binary_dir),
    FalcoAction("write-below-etc", ("Write below etc",),
                "a file created below /etc, then removed", write_below_etc),
    FalcoAction("rename-below-binary-dir", ("Modify binary dirs",),
                "a file below /bin renamed, then removed", rename_below_binary_dir),
    FalcoAction("mkdir-below-binary-dir", ("Mkdir binary dirs",),
                "a directory created below /bin, then removed", mkdir_below_binary_dir),
    FalcoAction("mkdir-hidden", ("Create Hidden Files or Directories",),
                "a hidden directory created in a temporary directory", mkdir_hidden),
    FalcoAction("sshd-reads-liblzma", ("Backdoored library loaded into SSHD (CVE-2024-3094)",),
                "a program named sshd reads a file named liblzma.so.5.6.1", sshd_reads_liblzma),
    FalcoAction("container-ssh-keys",
                ("Adding ssh keys to authorized_keys", "Read ssh information"),
                "in the container: a key added to /root/.ssh/authorized_keys, read, removed",
                container_ssh_keys),
    FalcoAction("container-system-writes",
                ("Write below root", "Write below monitored dir", "Write below rpm database",
                 "Update Package Repository"),
                "in the container: files created below /, /lib, /var/lib/rpm, "
                "/etc/apt/sources.list.d, then removed", container_system_writes),
    FalcoAction("container-read-environ", ("Read environment variable from /proc files",),
                "in the container: cat /proc/1/environ", container_read_environ),
    FalcoAction("container-tar-read", ("Exfiltrating Artifacts via Kubernetes Control Plane",),
                "in the container: tar run by docker exec reads a file", container_tar_read),
    FalcoAction("container-drift",
                ("Container Drift Detected (chmod)", "Container Drift Detected (open+create)"),
                "in the container: chmod +x on a new file, an executable copied",
                container_drift),
    FalcoAction("container-write-through-proc-fd", ("Modify Container Entrypoint",),
                "in the container: a file written through /proc/self/fd/N",
                container_write_through_proc_fd),
)
