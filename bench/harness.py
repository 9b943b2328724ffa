"""What the live benchmarks share: the agent as a subprocess, auditd with equivalent rules,
Falco's rule files from ``../shared``, system packages installed when missing, C helpers
compiled, medians.

Imported by the scripts beside it (``sys.path`` holds the script's folder when one is run as
``python bench/NAME.py``).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
SYSWARDEN = [os.path.join(REPO, ".venv", "bin", "syswarden")]
if not os.path.exists(os.path.join(REPO, ".venv", "bin", "python")):   # another machine's venv
    # (the test guest, which shares this checkout): the running interpreter's
    SYSWARDEN = [sys.executable, "-m", "syswarden.core.cli"]

#: taskset prefixes (``--pin`` in bench_overhead.py): the measured program's and the agent's
PIN: dict[str, list[str]] = {"loop": [], "agent": []}

FALCO_RULES = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")


def machine() -> str:
    """One line saying what these figures were measured on."""
    model = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        model = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")),
                     "?")
    return f"{os.cpu_count()} cores ({model}), kernel {os.uname().release}, shared with other work"


# -- ../shared: Falco's rule files ------------------------------------------------------------


def add_shared_option(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--shared", metavar="DIR", default=os.environ.get("SYSWARDEN_SHARED"),
                    help="the shared folder holding compat/falco-rules/ (default: "
                    "$SYSWARDEN_SHARED, else ../shared beside the repository)")


def falco_rules_paths(shared: str | None = None) -> list[str]:
    """Where Falco's three rule files are: ``shared`` (default: $SYSWARDEN_SHARED, else
    ../shared beside the repository)/compat/falco-rules/."""
    base = shared or os.environ.get("SYSWARDEN_SHARED") or os.path.join(os.path.dirname(REPO),
                                                                         "shared")
    return [os.path.join(base, "compat", "falco-rules", name) for name in FALCO_RULES]


def falco_rules_files(shared: str | None = None) -> list[str]:
    """Falco's three rule files, read where they are (never copied into the project); a clear
    exit when they are not there."""
    files = falco_rules_paths(shared)
    missing = [f for f in files if not os.path.exists(f)]
    if missing:
        raise SystemExit(f"Falco's rule files are not there: {', '.join(missing)}\n"
                         "point at the shared folder with --shared DIR or SYSWARDEN_SHARED=DIR "
                         "(it holds compat/falco-rules/)")
    return files


def rule_syscalls(files: list[str]) -> list[str]:
    """The syscalls a rule set needs (the agent follows these), sorted."""
    from syswarden.core.config import default_rules_path
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.engine import RuleEngine

    engine = RuleEngine.load(files or [default_rules_path()], collect_fields())
    types = engine.event_types()
    if types is None:
        raise SystemExit("this rule set needs every event: no syscall list for auditd")
    return sorted(types)


# -- system packages --------------------------------------------------------------------------


def missing_packages(packages: Iterable[str]) -> list[str]:
    """The Debian packages not installed (as scripts/setup.sh's ``missing``)."""
    out = []
    for pkg in packages:
        res = subprocess.run(["dpkg-query", "-W", "-f=${Status}", pkg], capture_output=True,
                             text=True, check=False)
        if "ok installed" not in res.stdout:
            out.append(pkg)
    return out


def ensure_packages(packages: Iterable[str]) -> None:
    """Install with apt-get what is missing (without recommends)."""
    need = missing_packages(packages)
    if not need:
        return
    print(f"installing: {' '.join(need)}", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", *need],
                   check=True, env=env, stdout=subprocess.DEVNULL)


# -- C helpers --------------------------------------------------------------------------------


def compile_c(source: str, tmp: str, name: str, static: bool = False) -> str:
    """``source`` compiled with gcc -O2 into ``tmp/name``; returns the executable's path."""
    src = os.path.join(tmp, f"{name}.c")
    with open(src, "w") as f:
        f.write(source)
    exe = os.path.join(tmp, name)
    subprocess.run(["gcc", "-O2", *(["-static"] if static else []), "-o", exe, src], check=True)
    return exe


# -- figures ----------------------------------------------------------------------------------


def median(values: Iterable[float]) -> float:
    got = list(values)
    return statistics.median(got) if got else float("nan")


def rss_kb(pid: int) -> int:
    """VmRSS of a process, in kB (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_s(pid: int) -> float:
    """CPU seconds (user and system) of a process and of its children it has waited for (0
    once it is gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


# -- the agent --------------------------------------------------------------------------------


class Agent:
    """syswarden as a subprocess; stderr (logs) collected, stdout lines handed to a callback.
    ``ready_s``: seconds from launch to its readiness line; ``ready_cpu_s``: the CPU seconds it
    and the helpers it waited for had used then."""

    def __init__(self, args: list[str], on_line: Callable[[int, str], None] | None = None,
                 timeout: float = 60, env: dict[str, str] | None = None) -> None:
        t0 = time.perf_counter()
        self.proc = subprocess.Popen(PIN["agent"] + SYSWARDEN + args, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, bufsize=1, env=env)
        self.log: list[str] = []
        self.ready = threading.Event()
        self.ready_s = 0.0
        self.ready_cpu_s = 0.0
        self._t0 = t0
        self.on_line = on_line
        threading.Thread(target=self._read_err, daemon=True).start()
        threading.Thread(target=self._read_out, daemon=True).start()
        if not self.ready.wait(timeout):
            self.stop()
            raise SystemExit("the agent did not become ready:\n" + "".join(self.log[-20:]))

    def _read_err(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)
            if "syswarden ready" in line:
                self.ready_s = time.perf_counter() - self._t0
                self.ready_cpu_s = cpu_s(self.proc.pid)
                self.ready.set()

    def _read_out(self) -> None:
        for line in self.proc.stdout:
            if self.on_line is not None:
                self.on_line(time.time_ns(), line)

    def line(self, marker: str) -> str:
        """The first log line holding ``marker`` (empty if none)."""
        return next((ln for ln in self.log if marker in ln), "")

    def counters(self) -> dict[str, int]:
        """The last periodic counters line (stats_interval=1)."""
        for line in reversed(self.log):
            if "counters:" in line:
                return {k: int(v) for k, v in re.findall(r"([\w.]+)=(\d+)", line)}
        return {}

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# -- auditd -----------------------------------------------------------------------------------


def _auditctl(*args: str, check: bool = False) -> subprocess.CompletedProcess:
    return subprocess.run(["auditctl", *args], check=check, capture_output=True, text=True)


def audit_known(syscalls: Iterable[str]) -> list[str]:
    """The syscalls auditd knows by name on this architecture (``ausyscall --dump``)."""
    dump = subprocess.run(["ausyscall", "--dump"], capture_output=True, text=True,
                          check=False).stdout
    known = {ln.split()[1] for ln in dump.splitlines()[1:] if len(ln.split()) == 2}
    return [s for s in syscalls if s in known]


def audit_daemon_pid() -> int:
    """The pid of the audit daemon the kernel talks to (0: none)."""
    out = _auditctl("-s").stdout
    m = re.search(r"^pid (\d+)", out, re.MULTILINE)
    return int(m.group(1)) if m else 0


@contextlib.contextmanager
def auditd(syscalls: Iterable[str]) -> Iterator[list[str]]:
    """auditd running with one rule recording every exit of ``syscalls`` (those it knows:
    yielded).  The machine is restored afterwards: rules deleted, ``never,task`` set, auditing
    disabled, the daemon we started stopped (and waited for)."""
    ensure_packages(["auditd"])
    before = audit_daemon_pid()
    subprocess.run(["auditd"], check=False)
    deadline = time.monotonic() + 10
    while (pid := audit_daemon_pid()) in (0, before) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        _auditctl("-D")
        known = audit_known(syscalls)
        _auditctl("-a", "always,exit", "-F", "arch=b64",
                  *[a for s in known for a in ("-S", s)], check=True)
        _auditctl("-e", "1")
        yield known
    finally:
        _auditctl("-D")
        _auditctl("-a", "never,task")
        _auditctl("-e", "0")
        if pid and pid != before:                                   # the daemon we started
            with contextlib.suppress(OSError):
                os.kill(pid, 15)
            while audit_daemon_pid() == pid and time.monotonic() < deadline + 30:
                time.sleep(0.1)


def have_auditd() -> bool:
    return bool(shutil.which("auditctl") and shutil.which("auditd"))
