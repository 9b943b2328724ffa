"""The agent's memory with Falco's rules, many processes and containers, under churn.  Prints
figures.

Sets up 5,000 live processes (children of one small C program, each waiting in ``pause()``)
and 50 containers (the tests' locally built busybox image, each running a shell that starts a
``sleep 1`` every second), then starts the agent with Falco's three rule files together (its
``/proc`` snapshot sees them all) while 100 short-lived processes a second are started on the
host (``/bin/true``, paced).  The agent's RSS is sampled every few seconds for ``--seconds``
(default 120; ``--seconds 3600`` for the issue's hour); printed: RSS once ready, at the end, the
largest, and its slope (least squares over the samples after the first minute, or after the
first quarter in shorter runs) in MB per hour; and a dozen rows while it samples, the RSS
beside the agent's table sizes (processes, their other threads, fds: its ``state.*`` gauges).
The issue's target: <= 150 MB, flat.

Everything is taken down afterwards, whatever happens (the processes killed, the containers
removed).  Needs dockerd (``make bench`` starts it; so does ``scripts/dockerd.sh``).

    .venv/bin/python bench/bench_memory.py [--seconds 120] [--processes 5000]
        [--containers 50] [--churn 100] [--shared DIR] [--quick]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import REPO, Agent, add_shared_option, compile_c, falco_rules_files, machine

sys.path.insert(0, REPO)                    # the tests' Docker helpers, as pytest imports them
from tests.helpers.docker import Containers, ensure_dockerd, ensure_images

TARGET_MB = 150

PROCS_C = r"""
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
/* procs hold N: N children waiting in pause(), then "ready" and wait too (killed by group).
   procs churn RATE: /bin/true started RATE times a second, each waited for, until killed. */
int main(int argc, char **argv) {
    long n = atol(argv[2]);
    if (argv[1][0] == 'h') {
        for (long i = 0; i < n; i++) {
            pid_t p = fork();
            if (p == 0) { for (;;) pause(); }
            if (p < 0) { perror("fork"); return 1; }
        }
        printf("ready\n"); fflush(stdout);
        for (;;) pause();
    }
    char *a[] = {"/bin/true", 0};
    struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
    for (long i = 0;; i++) {
        pid_t p; posix_spawn(&p, "/bin/true", 0, 0, a, environ); waitpid(p, 0, 0);
        long ns = t.tv_nsec + (i + 1) * (1000000000L / n);
        struct timespec due = {t.tv_sec + ns / 1000000000L, ns % 1000000000L};
        clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &due, 0);
    }
}
"""


@contextlib.contextmanager
def process_group(cmd: list[str], wait_line: bool = False) -> Iterator[None]:
    """A program in a session of its own, killed with all its children on leaving."""
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True, start_new_session=True)
    try:
        if wait_line and proc.stdout.readline().strip() != "ready":
            raise SystemExit(f"{cmd[0]} did not start its processes")
        yield
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def state_row(t: float, rss_kb: int, counters: dict[str, int]) -> str:
    """One row of the table printed while sampling: RSS and the agent's table sizes (its
    ``state.*`` gauges, from its last counters line)."""
    return (f"{t:6.0f} {rss_kb / 1024:7.1f} {counters.get('state.processes', 0):9} "
            f"{counters.get('state.threads', 0):8} {counters.get('state.fds', 0):7}")


def slope_mb_per_hour(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of (seconds, kB) in MB per hour."""
    n = len(samples)
    if n < 2:
        return float("nan")
    mt = sum(t for t, _ in samples) / n
    mr = sum(r for _, r in samples) / n
    var = sum((t - mt) ** 2 for t, _ in samples)
    cov = sum((t - mt) * (r - mr) for t, r in samples)
    return cov / var * 3600 / 1024 if var else float("nan")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=120, help="how long to sample (3600: the "
                    "issue's hour)")
    ap.add_argument("--processes", type=int, default=5000)
    ap.add_argument("--containers", type=int, default=50)
    ap.add_argument("--churn", type=int, default=100, help="short-lived processes a second")
    ap.add_argument("--quick", action="store_true",
                    help="20 s, 500 processes, 5 containers: checks that it all works")
    add_shared_option(ap)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (the agent loads eBPF)")
    if opts.quick:
        opts.seconds, opts.processes, opts.containers = 20, 500, 5
    falco = falco_rules_files(opts.shared)
    print(f"machine: {machine()}")
    ensure_dockerd()
    ensure_images()
    with tempfile.TemporaryDirectory() as tmp, contextlib.ExitStack() as stack:
        exe = compile_c(PROCS_C, tmp, "procs")
        stack.enter_context(process_group([exe, "hold", str(opts.processes)], wait_line=True))
        boxes = stack.enter_context(Containers())
        for _ in range(opts.containers):
            boxes.run("alpine:latest", "sh", "-c", "while :; do sleep 1; done")
        live = sum(1 for d in os.listdir("/proc") if d.isdigit())
        print(f"{opts.processes} held processes and {opts.containers} containers up "
              f"({live} processes in /proc); churn {opts.churn}/s; Falco's rules; "
              f"{opts.seconds:.0f} s" + ("; QUICK: figures are noise" if opts.quick else ""))
        stack.enter_context(process_group([exe, "churn", str(opts.churn)]))
        args = ["-o", "pipeline.stats_interval=5"]      # the table sizes, in its counters line
        for r in falco:
            args += ["-r", r]
        agent = Agent(args, timeout=120)
        stack.callback(agent.stop)
        t0 = time.monotonic()
        samples: list[tuple[float, int]] = []
        every = max(1.0, min(10.0, opts.seconds / 60))
        shown = -float("inf")
        print(f"{'s':>6} {'RSS MB':>7} {'processes':>9} {'threads':>8} {'fds':>7}")
        while (now := time.monotonic() - t0) < opts.seconds:
            samples.append((now, agent.rss_kb()))
            if now - shown >= opts.seconds / 12:       # a dozen rows: RSS beside the tables
                shown = now
                print(state_row(now, samples[-1][1], agent.counters()), flush=True)
            time.sleep(every)
        samples.append((time.monotonic() - t0, agent.rss_kb()))
        print(state_row(samples[-1][0], samples[-1][1], agent.counters()))
    skip = min(60.0, opts.seconds / 4)
    steady = [s for s in samples if s[0] >= skip]
    mb = [r / 1024 for _, r in samples]
    print(f"agent RSS: {mb[0]:.0f} MB once ready, {mb[-1]:.0f} MB after {samples[-1][0]:.0f} s, "
          f"at most {max(mb):.0f} MB (target <= {TARGET_MB} MB); slope after {skip:.0f} s: "
          f"{slope_mb_per_hour(steady):+.1f} MB/hour over {len(steady)} samples")
    exit_line = agent.line("counters at exit")
    print("agent at exit: " + (exit_line.split("counters at exit:", 1)[-1].strip()[:600]
                               or "no counters line"))
    return 0


if __name__ == "__main__":
    sys.exit(main())
