"""The agent's start-up: launch to ready, and where the time goes.  Prints figures.

The live agent (eBPF source) is launched ``--rounds`` times with (a) the default rules and
(b) Falco's three rule files together, after one launch not counted (a warm machine: files in
the page cache, the kernel headers read once, Python's bytecode cached: the launches may write
it, whatever PYTHONDONTWRITEBYTECODE says); the seconds from the launch to its readiness
line (``syswarden ready``), medians, and the phases the agent logs: its ``start-up:`` line
(rules compiled, the sources built (the kernel's BTF read, the program's compile started), the
enrichers built, whose process table reads every process of ``/proc``, the sources started:
the wait for the program) and its eBPF source's ``program built in`` line (the loader helper's
own phases: bcc imported, the program compiled, its programs loaded (the kernel's verifier),
its hooks attached, which run beside the rest of the start-up).  Each rule set is launched with
the compiled program kept between starts (``ebpf.program_cache``, in a folder of this run's,
which the launch not counted fills: a warm machine) and compiled at every start
(``ebpf.program_cache=""``: a first start, or a new ruleset).  What is left is the interpreter, the imports and the config.  The
``/proc`` scan is also timed alone, in this process.  The issue's target: <= 2 s.  Beside the
wall-clock time, the CPU seconds the agent and the loader helper it waited for had used when it
was ready: on a machine shared with other work the work done is a steadier figure.

``--against DIR`` launches another version of the code beside this one, round after round in
the same run (a folder holding a ``syswarden`` package, run with this checkout's virtualenv:
``mkdir -p /tmp/base/syswarden && git archive main | tar -x -C /tmp/base/syswarden``, plus the
generated ``plugins/enrichers/containers/stubs`` copied in): before and after, side by side.

    .venv/bin/python bench/bench_startup.py [--rounds 5] [--no-falco] [--shared DIR] [--quick]
                                            [--against DIR]
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import Agent, add_shared_option, falco_rules_files, machine, median

TARGET_S = 2.0

#: rows printed: label, how to get the seconds from one launch's figures
PHASES = (("rules compiled (filters)", "filters"),
          ("sources built (BTF, compile started)", "sources"),
          ("enrichers built (/proc scan)", "enrichers"),
          ("outputs built and started", "outputs"),
          ("webserver listening", "webserver"),
          ("enricher services started", "services started"),
          ("sources started (program waited)", "sources started"),
          ("  eBPF helper: bcc import", "import"),
          ("  eBPF helper: compile", "compile"),
          ("  eBPF helper: load (the verifier)", "load"),
          ("  eBPF helper: attach", "attach"),
          ("interpreter, imports, config", "other"))

#: the eBPF source's line: today's (the helper's phases, then how long the start-up waited)
BUILT = re.compile(r"built in [\d.]+ s \(waited for [\d.]+ s\): [a-z ]+, bcc import ([\d.]+) s, "
                   r"compile ([\d.]+) s, load ([\d.]+) s, attach ([\d.]+) s")
#: and the one before the program was kept (an --against version), whose compile included
#: the load
BUILT_BEFORE = re.compile(r"built in ([\d.]+) s(?: \(waited for ([\d.]+) s\))?: bcc import "
                          r"([\d.]+) s, compile and load ([\d.]+) s, attach ([\d.]+) s")


def launch(rules: list[str], extra: tuple[str, ...] = (),
           env: dict[str, str] | None = None) -> dict[str, float]:
    """One launch to ready; its phases in seconds (``total``: launch to ready).  ``extra``:
    more arguments (``-o webserver.enabled=true``); ``env``: the agent's environment."""
    args = ["-o", "pipeline.stats_interval=0", *extra]
    for r in rules:
        args += ["-r", r]
    agent = Agent(args, timeout=120, env=env)
    try:
        got = {"total": agent.ready_s, "cpu": agent.ready_cpu_s}
        # the start-up line follows the ready line: wait for it
        while not agent.line("start-up:") and agent.proc.poll() is None:
            time.sleep(0.05)
        startup = agent.line("start-up:").split("start-up:", 1)[1]
        got.update((k.strip(), float(v)) for k, v in re.findall(r"([a-z ]+) ([\d.]+) s",
                                                                startup))
        line = agent.line("program built in")
        if m := BUILT.search(line):
            got.update(zip(("import", "compile", "load", "attach"), map(float, m.groups())))
        elif m := BUILT_BEFORE.search(line):
            got.update(zip(("import", "compile", "attach"), map(float, m.groups()[2:])))
    finally:
        agent.stop()
    got["outputs"] = got.get("outputs", 0.0) + got.pop("outputs started", 0.0)
    spent = sum(got.get(k, 0.0) for k in ("filters", "enrichers", "sources", "outputs",
                                          "webserver", "services started", "sources started"))
    got["other"] = got["total"] - spent
    return got


def proc_scan_s() -> tuple[int, float]:
    """The process table's /proc snapshot alone, in this process: (processes, seconds)."""
    from syswarden.plugins.enrichers.process.table import ProcessTable

    table = ProcessTable()
    t0 = time.perf_counter()
    n = table.snapshot()
    return n, time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--no-falco", action="store_true")
    ap.add_argument("--quick", action="store_true", help="one launch per rule set")
    ap.add_argument("--against", metavar="DIR",
                    help="also launch the syswarden package in DIR, alternately (before/after)")
    add_shared_option(ap)
    opts = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root (the agent loads eBPF)")
    rounds = 1 if opts.quick else opts.rounds
    sets = {"(a) default": []}
    if not opts.no_falco:
        sets["(b) Falco"] = falco_rules_files(opts.shared)
    # a warm machine has Python's bytecode cached: the warm-up launch writes it
    warm = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    kept_dir = tempfile.mkdtemp(prefix="sw-bench-kept-")
    # (the environment, the options) of each column: this version with its program kept and
    # compiled; the --against version as it starts
    versions: dict[str, tuple[dict[str, str], tuple[str, ...]]] = {
        "kept ": (warm, ("-o", f"ebpf.program_cache={kept_dir}")),
        "compiled ": (warm, ("-o", "ebpf.program_cache="))}
    if opts.against:
        if not os.path.isdir(os.path.join(opts.against, "syswarden")):
            sys.exit(f"{opts.against} holds no syswarden package")
        versions["against "] = (dict(warm, PYTHONPATH=opts.against), ())
    procs, scan = median_scan(rounds)
    print(f"machine: {machine()}; {procs} processes in /proc")
    print(f"median of {rounds} launch(es) after one not counted"
          + (f"; against: {opts.against}" if opts.against else "")
          + ("; QUICK: figures are noise" if opts.quick else ""))
    runs: dict[str, list[dict[str, float]]] = {}
    cols = [(label, version) for label in sets for version in versions]
    try:
        for label, rules in sets.items():
            for env, extra in versions.values():
                launch(rules, extra, env=env)                   # warm-up (keeps the program)
            for _ in range(rounds):
                for version, (env, extra) in versions.items():
                    runs.setdefault(version + label, []).append(launch(rules, extra, env=env))
    finally:
        shutil.rmtree(kept_dir, ignore_errors=True)
    names = [version + label for label, version in cols]
    width = max(14, *(len(n) + 2 for n in names))
    print(f"\n{'seconds':<38}" + "".join(f"{n:>{width}}" for n in names))
    print(f"{'launch to ready':<38}" + "".join(
        f"{median(r['total'] for r in runs[n]):>{width}.3f}" for n in names)
        + f"   (target <= {TARGET_S:.1f} s)")
    print(f"{'CPU to ready (agent and helper)':<38}" + "".join(
        f"{median(r['cpu'] for r in runs[n]):>{width}.3f}" for n in names))
    for name, key in PHASES:
        print(f"{name:<38}" + "".join(
            f"{median(r.get(key, 0.0) for r in runs[n]):>{width}.3f}" for n in names))
    print(f"{'the /proc scan alone (this process)':<38}{scan:>{width}.3f}")
    return 0


def median_scan(rounds: int) -> tuple[int, float]:
    """The /proc scan timed ``rounds`` times: (processes, median seconds)."""
    got = [proc_scan_s() for _ in range(max(1, rounds))]
    return got[-1][0], median(s for _, s in got)


if __name__ == "__main__":
    sys.exit(main())
