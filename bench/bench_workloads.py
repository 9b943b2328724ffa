"""What monitoring costs real workloads, side by side in one run.  Prints figures.

Four workloads (bench/workloads.py), each set up once in its own temporary folder:

1. a database: Debian's PostgreSQL on 127.0.0.1 under pgbench (TPS, p99 transaction latency);
2. a web server: Debian's nginx serving a small file on 127.0.0.1 under wrk (requests/s);
3. the same web server, a new connection per request (``Connection: close``, as ``ab``
   without keep-alive: a socket, a connect and an accept per request);
4. a build: a C build of a few hundred generated files with ``make -j2`` (seconds).

are run with nothing monitoring, with the agent and (a) its default rules, (b) Falco's three
rule files together (read from ../shared/compat/falco-rules/), and with auditd recording every
exit of the syscalls each rule set follows (auditd's nearest equivalent: it cannot judge a
condition, so it records them all).  Each round runs every monitor in turn (the order rotated
from round to round, so a drift of the machine spreads over all of them), each running every
workload; the figures are medians over the rounds and the ratios say how much slower each
workload ran than with nothing monitoring (for a rate: none / monitored; for a duration or a
latency: monitored / none).  Each workload also reports what one operation (a request, a
transaction, the build) cost the whole machine in CPU time, steal excluded (``machine CPU``:
the server, the client, the kernel's BPF programs and the agent together): on a shared host,
whose noise moves rates by tens of percent from run to run, that ratio is the steadier one.  The agent's alerts and any drop it counted are printed per run.

Missing packages (postgresql, nginx, wrk, auditd, build-essential) are installed with apt-get.
Everything started is stopped afterwards, whatever happens (auditd: rules deleted,
``never,task`` set, auditing disabled, the daemon stopped).

    .venv/bin/python bench/bench_workloads.py [--rounds 5] [--seconds 20] [--files 300]
        [--only postgres,nginx,nginx-conn,build] [--no-falco] [--no-auditd] [--shared DIR] [--quick]

``--quick``: one round of a few seconds per workload, a check that everything works (its
figures are noise).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import sys
import time
from collections.abc import Callable, Iterator

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (
    Agent,
    add_shared_option,
    auditd,
    ensure_packages,
    falco_rules_files,
    machine,
    median,
    rule_syscalls,
)
from workloads import PACKAGES, CBuild, Nginx, NginxConnections, Postgres, Workload

#: the issue's targets: slowdown ratios not to exceed, by figure (prefix)
TARGETS = {"pgbench": 1.03, "nginx": 1.03, "make": 1.10}

Monitor = Callable[[], contextlib.AbstractContextManager]


@contextlib.contextmanager
def nothing() -> Iterator[None]:
    yield


def agent_monitor(rules: list[str], runs: list[str], label: str) -> Monitor:
    @contextlib.contextmanager
    def run() -> Iterator[None]:
        args = ["-o", "pipeline.stats_interval=0"]
        for r in rules:
            args += ["-r", r]
        agent = Agent(args)
        t0 = time.monotonic()
        try:
            time.sleep(1)
            yield
        finally:
            rss = agent.rss_kb()
            agent.stop()
            took = time.monotonic() - t0
            exit_line = agent.line("counters at exit")
            counted = dict(re.findall(r"(alerts\.total|drops\.[\w.]+)=(\d+)", exit_line))
            # what leaves the kernel: the events received, the opens and socket calls the
            # kernel kept (per second of the agent's run)
            kernel = dict(re.findall(r"(events\.in|ebpf\.opens_filtered|ebpf\.sockets_filtered)"
                                     r"=(\d+)", exit_line))
            rates = ", ".join(f"{what} {int(kernel.get(k, 0)) / took:,.0f}/s" for k, what in (
                ("events.in", "received"), ("ebpf.opens_filtered", "opens kept"),
                ("ebpf.sockets_filtered", "socket calls kept")))
            runs.append(f"{label}: agent RSS {rss // 1024} MB, over {took:.1f} s {rates}, "
                        + (", ".join(f"{k} {v}" for k, v in counted.items()) or "no alert"))
    return run


def auditd_monitor(syscalls: list[str], runs: list[str], label: str) -> Monitor:
    @contextlib.contextmanager
    def run() -> Iterator[None]:
        with auditd(syscalls) as known:
            yield
        runs.append(f"{label}: auditd recorded the exits of {len(known)} syscalls")
    return run


def ratio(base: float, got: float, better: str) -> float:
    return base / got if better == "higher" else got / base


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=20,
                    help="seconds of pgbench and of wrk per run")
    ap.add_argument("--files", type=int, default=300, help="C files in the build")
    ap.add_argument("--only", default="postgres,nginx,nginx-conn,build",
                    help="the workloads to run, comma-separated")
    ap.add_argument("--no-falco", action="store_true", help="no (b): the default rules only")
    ap.add_argument("--no-auditd", action="store_true")
    ap.add_argument("--quick", action="store_true",
                    help="one round, 3 s per workload, 40 files: checks that it all works")
    add_shared_option(ap)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (the agent loads eBPF; the servers run as their own users)")
    if opts.quick:
        opts.rounds, opts.seconds, opts.files = 1, 3, 40
    only = [w for w in opts.only.split(",") if w]
    unknown = set(only) - set(PACKAGES)
    if unknown:
        sys.exit(f"--only: unknown workload {', '.join(sorted(unknown))} "
                 f"(allowed: {', '.join(PACKAGES)})")
    ensure_packages([p for w in only for p in PACKAGES[w]]
                    + ([] if opts.no_auditd else ["auditd"]))
    falco = [] if opts.no_falco else falco_rules_files(opts.shared)

    runs: list[str] = []
    monitors: dict[str, Monitor] = {"none": nothing,
                                    "agent (a)": agent_monitor([], runs, "agent (a)")}
    if falco:
        monitors["agent (b)"] = agent_monitor(falco, runs, "agent (b)")
    if not opts.no_auditd:
        monitors["auditd (a)"] = auditd_monitor(rule_syscalls([]), runs, "auditd (a)")
        if falco:
            monitors["auditd (b)"] = auditd_monitor(rule_syscalls(falco), runs, "auditd (b)")

    makers: dict[str, Callable[[], Workload]] = {
        "postgres": lambda: Postgres(opts.quick, opts.seconds),
        "nginx": lambda: Nginx(opts.quick, opts.seconds),
        "nginx-conn": lambda: NginxConnections(opts.quick, opts.seconds),
        "build": lambda: CBuild(opts.quick, opts.files)}
    print(f"machine: {machine()}")
    print(f"{opts.rounds} round(s); (a) default rules, (b) Falco's "
          f"{len(falco)} rule files together" + ("; QUICK: figures are noise" if opts.quick
                                                  else ""))
    results: dict[str, dict[str, list[float]]] = {m: {} for m in monitors}
    better: dict[str, str] = {}
    with contextlib.ExitStack() as stack:
        loads = [stack.enter_context(makers[w]()) for w in only]
        for w in loads:
            print(f"  {w.name}: {w.describe()}")
            w.run()                                     # warm-up, not counted
        names = list(monitors)
        for rnd in range(opts.rounds):
            order = names[rnd % len(names):] + names[:rnd % len(names)]
            for mon in order:
                with monitors[mon]():
                    for w in loads:
                        for fig, (value, how) in w.run().items():
                            results[mon].setdefault(fig, []).append(value)
                            better[fig] = how
            print(f"  round {rnd + 1}/{opts.rounds} done", flush=True)
    for line in runs:
        print(f"  {line}")
    print_tables(results, better)
    return 0


def print_tables(results: dict[str, dict[str, list[float]]], better: dict[str, str]) -> None:
    cols = [m for m in results if m != "none"]
    base = {fig: median(v) for fig, v in results["none"].items()}
    width = max(len(f) for f in better) + 2
    print(f"\n{'medians':<{width}}" + "".join(f"{m:>13}" for m in results))
    for fig in better:
        print(f"{fig:<{width}}" + "".join(f"{median(results[m].get(fig, [])):>13.2f}"
                                          for m in results))
    print(f"\n{'slowdown (x none)':<{width}}" + "".join(f"{m:>13}" for m in cols)
          + f"{'target':>9}")
    for fig, how in better.items():
        target = next((t for prefix, t in TARGETS.items() if fig.startswith(prefix)), None)
        cells = "".join(f"{ratio(base[fig], median(results[m].get(fig, [])), how):>12.3f}x"
                        for m in cols)
        print(f"{fig:<{width}}{cells}" + (f"{'<= ' + format(target, '.2f'):>9}" if target
                                           else ""))


if __name__ == "__main__":
    sys.exit(main())
