"""What the live agent costs a monitored machine, measured on this machine.  Prints figures.

1. Slowdown of four C loops with the agent running (default rules, the live eBPF source)
   against the same loop with nothing monitoring: open/close of /dev/null for reading (no
   default rule can match it: the rules' open prefilter keeps it in the kernel), fork+exec of
   /bin/true (posix_spawn + waitpid), an unmonitored syscall (getppid), and open/close of
   /dev/null for writing (every open sent to the agent and judged by the rules).  Medians of
   ``--rounds`` rounds, as ratios.  With ``--auditd``: the same against auditd with an openat
   and an execve rule (the machine is restored afterwards: rules deleted, ``auditctl -a
   never,task``, auditd stopped).
2. The highest rate of monitored events (opens for writing, at a fixed pace) the agent keeps
   with zero kernel drops, and with at most 10 drops per million, stepping the rate up
   (``--rates``); with ``--falco``, the agent judges them with Falco's three rule files
   instead of the default rules (read from ../shared/compat/falco-rules/, or ``--shared DIR``).
3. Detection latency at 10,000 events/s: one open in a hundred matches a rule whose output
   carries ``%evt.rawtime``; the time from the syscall to the alert line read from the agent's
   stdout, p50 and p99.
4. The agent's memory (VmRSS) after the runs.

Two controls say where the agent's cost comes from (``--controls``):

* kernel side only: the agent's BPF program for the default rules, loaded in this process with
  the arguments read from the saved registers (``regs``) and, as on kernels without them, from
  enter tracepoints (``enter``); the rings are emptied every millisecond without reading the
  records, so no CPU is spent decoding;
* a busy neighbour: no monitoring at all, a plain busy loop on the other CPU: what any busy
  process (an agent decoding a flood) costs the loop through the machine itself.

The machine has two cores and other work may run on them (other engineers' test suites during
development): the figures say what was measured, under whatever else was running.

    .venv/bin/python bench/bench_overhead.py [--rounds 6] [--pin] [--auditd] [--controls]
                                             [--skip-rate] [--skip-latency] [--attach-both]
                                             [--rates 25000,50000,...] [--falco] [--shared DIR]

Where the kernel runs fexit programs (not this one: the guest of ``scripts/vm``, Debian's own
kernel under emulation), the agent follows syscalls with them; ``--attach-both`` adds the agent
with tracepoints beside it, so both are measured in the same run::

    .venv/bin/python bench/bench_overhead.py --build-loops /tmp/loops
    scripts/vm/run.sh 'python bench/bench_overhead.py --loops /out/loops --attach-both \
                       --scale 0.1 --skip-rate --skip-latency'   (with /tmp/loops in $OUT)
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (PIN, Agent, add_shared_option, auditd, compile_c, falco_rules_files,
                     have_auditd)

LOOPS_C = r"""
#include <fcntl.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
extern char **environ;
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t);
                          return t.tv_sec + t.tv_nsec / 1e9; }
/* loops MODE N [RATE] [MARKER]: open | wopen | getppid | exec; RATE paces opens per second;
   with MARKER every 100th open opens MARKER<i> instead of /dev/null; wopen opens for writing */
int main(int argc, char **argv) {
    const char *mode = argv[1]; long n = atol(argv[2]);
    double rate = argc > 3 ? atof(argv[3]) : 0; const char *marker = argc > 4 ? argv[4] : 0;
    char path[512]; double t0 = now();
    if (!strcmp(mode, "open") || !strcmp(mode, "wopen")) {
        int how = !strcmp(mode, "wopen") ? O_WRONLY : O_RDONLY;
        for (long i = 0; i < n; i++) {
            const char *p = "/dev/null";
            if (marker && i % 100 == 0) { snprintf(path, sizeof path, "%s%ld", marker, i);
                                          p = path; }
            int fd = open(p, how); if (fd >= 0) close(fd);
            if (rate > 0) { double due = t0 + (i + 1) / rate; while (now() < due) {} }
        }
    } else if (!strcmp(mode, "getppid")) {
        for (long i = 0; i < n; i++) getppid();
    } else if (!strcmp(mode, "exec")) {
        char *a[] = {"/bin/true", 0};
        for (long i = 0; i < n; i++) { pid_t p; posix_spawn(&p, "/bin/true", 0, 0, a, environ);
                                       waitpid(p, 0, 0); }
    }
    printf("%.6f\n", now() - t0);
    return 0;
}
"""

LOOPS = (("open/close", ["open", "2000000"]), ("fork+exec", ["exec", "3000"]),
         ("getppid", ["getppid", "10000000"]), ("open(w)", ["wopen", "2000000"]))

LATENCY_RULES = """
- rule: bench latency marker
  desc: an open of the latency benchmark's marker files
  condition: evt.type in (open, openat) and fd.name startswith /tmp/swbench-lat-
  output: "swbench %evt.rawtime %fd.name"
  priority: WARNING
"""


def build_loops(tmp: str, static: bool = False) -> str:
    return compile_c(LOOPS_C, tmp, "loops", static)


def run_loop(exe: str, args: list[str]) -> float:
    out = subprocess.run([*PIN["loop"], exe, *args], capture_output=True, text=True,
                         check=True).stdout
    return float(out.strip())


SCALE = [1.0]   # --scale: the loops' iteration counts multiplied by this


def measure(exe: str, rounds: int) -> dict[str, float]:
    out = {}
    for name, (mode, n) in LOOPS:
        args = [mode, str(max(1, int(int(n) * SCALE[0])))]
        out[name] = statistics.median(run_loop(exe, args) for _ in range(rounds))
    return out


def with_agent(exe: str, rounds: int, args: list[str]) -> tuple[dict[str, float], int, str]:
    """The loops with the agent running (default rules); its RSS after them, and how it
    attached (its log line)."""
    agent = Agent(["-o", "pipeline.stats_interval=0", *args])
    try:
        time.sleep(2)
        got = measure(exe, rounds)
        rss = agent.rss_kb()
    finally:
        agent.stop()
    hooks = next((line.split("ebpf: ", 1)[1].strip() for line in agent.log
                  if "hooks attached" in line), "?")
    return got, rss, hooks


def auditd_measure(exe: str, rounds: int) -> dict[str, float] | None:
    if not have_auditd():
        print("auditd: not installed (apt-get install auditd), skipped")
        return None
    with auditd(("openat", "execve")):
        got = measure(exe, rounds)
    print("auditd: rules deleted, never,task set, auditing disabled, daemon stopped")
    return got


def kernel_side(exe: str, rounds: int, args_from: str,
                attach: str = "tracepoint") -> dict[str, float]:
    """The loops with only the kernel side of the agent: its program for the default rules
    loaded here, the rings emptied every millisecond without reading a record."""
    from syswarden.core.config import default_rules_path
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.engine import RuleEngine
    from syswarden.core.rules.prefilter import open_prefilter
    from syswarden.plugins.sources.ebpf.source import EbpfSource

    engine = RuleEngine.load([default_rules_path()], collect_fields())
    src = EbpfSource({"args_from": args_from, "attach": attach}, engine.event_types(), os.getpid(),
                     open_prefilter=open_prefilter(engine))
    src.load()
    done = threading.Event()

    def skip() -> None:
        while not done.wait(0.001):
            for ring in src.rings:
                ring.skip()

    cpus = os.sched_getaffinity(0)
    if PIN["agent"]:
        os.sched_setaffinity(0, {0})        # this process stands for the agent: CPU 0
    skipper = threading.Thread(target=skip, daemon=True)
    skipper.start()
    try:
        return measure(exe, rounds)
    finally:
        done.set()
        skipper.join()
        src.close()
        os.sched_setaffinity(0, cpus)


def busy_neighbour(exe: str, rounds: int) -> dict[str, float]:
    """The loops, nothing monitoring, while a busy loop runs on another CPU."""
    cpu = ["taskset", "-c", "0"] if PIN["loop"] else []
    spin = subprocess.Popen([*cpu, sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.5)
        return measure(exe, rounds)
    finally:
        spin.kill()
        spin.wait()


RATES = (25_000, 50_000, 75_000, 100_000, 125_000, 150_000, 200_000)


def sustained_rate(exe: str, rates: list[int], rules: list[str]) -> None:
    """The ramp of part 2; ``rules``: the agent's rules files (none: its default rules).

    The loop opens /dev/null for writing.  The default rules judge every such open; no rule of
    Falco's can match one (``open_write`` wants a regular file), so the kernel would keep them
    all: with Falco's files the open prefilter is turned off, and every open goes through the
    whole pipeline to be judged by their rules, as the events they must judge do."""
    print("sustained rate, " + (f"Falco's {len(rules)} rule files (ebpf.open_prefilter=false: "
                                "every open sent)" if rules else "default rules") + ":")
    sent = ["-o", "ebpf.open_prefilter=false"] if rules else []
    agent = Agent(["-o", "pipeline.stats_interval=1", *sent,
                   *[a for f in rules for a in ("-r", f)]])
    try:
        zero = best = 0
        clean = True
        for rate in rates:
            time.sleep(2.5)
            before = agent.counters()
            run_loop(exe, ["wopen", str(rate * 4), str(rate)])  # 4 seconds at this pace
            time.sleep(2.5)
            after = agent.counters()
            by_kind = {k[len("drops.kernel."):]: after.get(k, 0) - before.get(k, 0)
                       for k in after if k.startswith("drops.kernel.")}
            by_kind = {k: n for k, n in by_kind.items() if n}
            drops = sum(by_kind.values())
            events = after.get("events.in", 0) - before.get("events.in", 0)
            ppm = drops * 1e6 / max(1, events + drops)
            retries = after.get("ebpf.ring_retries", 0) - before.get("ebpf.ring_retries", 0)
            room = after.get("ebpf.drops_with_room", 0) - before.get("ebpf.drops_with_room", 0)
            if drops:
                by_kind["of which with room in the ring"] = room
            print(f"  {rate:>7} opens/s for 4 s: events in {events:>8}, kernel drops {drops} "
                  f"({ppm:.1f} per million)"
                  + (f": {', '.join(f'{k} {n}' for k, n in by_kind.items())}" if drops else "")
                  + (f"; ring outputs retried {retries}" if retries else ""))
            clean = clean and drops == 0
            if clean:
                zero = rate
            if ppm <= 10:
                best = rate
            elif ppm > 1000:
                break
        print(f"highest rate with zero drops: {zero} events/s; with at most 10 drops per "
              f"million: {best} events/s (agent RSS {agent.rss_kb() // 1024} MB)")
        for line in agent.log:
            if "the reader is" in line or "caught up" in line:
                print("  agent: " + line.split("ebpf: ", 1)[-1].strip())
    finally:
        agent.stop()


def latency(exe: str, tmp: str) -> None:
    rules = os.path.join(tmp, "latency_rules.yaml")
    with open(rules, "w") as f:
        f.write(LATENCY_RULES)
    lat: list[int] = []

    def on_line(t_read: int, line: str) -> None:
        m = re.search(r"swbench (\d+) ", line)
        if m:
            lat.append(t_read - int(m.group(1)))

    agent = Agent(["-r", rules, "-o", "outputs.rate=0"], on_line=on_line)
    try:
        time.sleep(1)
        run_loop(exe, ["wopen", "100000", "10000", "/tmp/swbench-lat-"])  # 10 s at 10k/s
        time.sleep(2)
        rss = agent.rss_kb()
    finally:
        agent.stop()
    if not lat:
        print("latency: no alert read")
        return
    lat.sort()
    p50, p99 = lat[len(lat) // 2], lat[int(len(lat) * 0.99)]
    print(f"latency at 10,000 events/s ({len(lat)} alerts, 1 in 100 events): "
          f"p50 {p50 / 1e6:.2f} ms, p99 {p99 / 1e6:.2f} ms, max {lat[-1] / 1e6:.2f} ms "
          f"(agent RSS {rss // 1024} MB)")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--auditd", action="store_true")
    ap.add_argument("--controls", action="store_true",
                    help="also the kernel side alone (arguments from registers and from enter) "
                    "and a busy neighbour with no monitoring")
    ap.add_argument("--skip-loops", action="store_true")
    ap.add_argument("--skip-rate", action="store_true")
    ap.add_argument("--skip-latency", action="store_true")
    ap.add_argument("--rates", default=",".join(map(str, RATES)),
                    help="the sustained-rate steps, events/s, comma separated (default: "
                    "%(default)s)")
    ap.add_argument("--falco", action="store_true",
                    help="the sustained rate with Falco's three rule files, not the default "
                    "rules")
    add_shared_option(ap)
    ap.add_argument("--attach-both", action="store_true",
                    help="also the agent with ebpf.attach=tracepoint (where the default is "
                    "fentry: a kernel that runs fexit programs)")
    ap.add_argument("--scale", type=float, default=1.0,
                    help="multiply the loops' iteration counts (0.1 under emulation)")
    ap.add_argument("--loops", metavar="EXE", help="a loops binary built elsewhere (with "
                    "--build-loops: a machine without a compiler)")
    ap.add_argument("--build-loops", metavar="EXE", help="build the loops, static, and exit")
    ap.add_argument("--pin", action="store_true",
                    help="run the loops on CPU 1 and the agent on CPU 0 (taskset), so that the "
                    "figures show the monitoring cost, not the two sharing one core")
    opts = ap.parse_args()
    SCALE[0] = opts.scale
    if opts.build_loops:
        with tempfile.TemporaryDirectory() as tmp:
            shutil.copy(build_loops(tmp, static=True), opts.build_loops)
        return
    if opts.pin:
        PIN["loop"], PIN["agent"] = ["taskset", "-c", "1"], ["taskset", "-c", "0"]
    if os.geteuid() != 0:
        sys.exit("needs root (the agent loads eBPF)")
    with tempfile.TemporaryDirectory() as tmp:
        exe = opts.loops or build_loops(tmp)
        print(f"loops: {', '.join(f'{n} ({a[1]})' for n, a in LOOPS)}; "
              f"median of {opts.rounds} rounds; {os.cpu_count()} cores, shared"
              + ("; loops pinned to CPU 1, agent to CPU 0" if opts.pin else ""))
        if not opts.skip_loops:
            base = measure(exe, opts.rounds)
            agent, rss, hooks = with_agent(exe, opts.rounds, [])
            print(f"agent: {hooks}")
            columns = {}
            if opts.attach_both:
                columns["agent:tracepoint"], _, tp_hooks = with_agent(
                    exe, opts.rounds, ["-o", "ebpf.attach=tracepoint"])
                print(f"agent:tracepoint: {tp_hooks}")
            base2 = measure(exe, opts.rounds)       # the baseline again: the machine may drift
            base = {k: min(base[k], base2[k]) for k in base}
            audit = auditd_measure(exe, opts.rounds) if opts.auditd else None
            if audit:
                columns["auditd"] = audit
            if opts.controls:
                if opts.attach_both:
                    columns["kernel:fentry"] = kernel_side(exe, opts.rounds, "regs", "fentry")
                columns["kernel:regs"] = kernel_side(exe, opts.rounds, "regs")
                columns["kernel:enter"] = kernel_side(exe, opts.rounds, "enter")
                columns["busy cpu"] = busy_neighbour(exe, opts.rounds)
            print(f"{'loop':<12}{'none (s)':>10}{'agent (s)':>11}{'ratio':>8}"
                  + "".join(f"{c:>18}" for c in columns))
            for name, _ in LOOPS:
                line = (f"{name:<12}{base[name]:>10.3f}{agent[name]:>11.3f}"
                        f"{agent[name] / base[name]:>7.2f}x")
                line += "".join(f"{col[name] / base[name]:>17.2f}x" for col in columns.values())
                print(line)
            print(f"agent RSS after the loops (default rules): {rss // 1024} MB")
        if not opts.skip_rate:
            sustained_rate(exe, [int(r) for r in opts.rates.split(",")],
                           falco_rules_files(opts.shared) if opts.falco else [])
        if not opts.skip_latency:
            latency(exe, tmp)
        for f in os.listdir("/tmp"):
            if f.startswith("swbench-lat-"):
                os.unlink(os.path.join("/tmp", f))


if __name__ == "__main__":
    main()
