"""Rule stage scaling: the cost per event as the rule set grows from 10 to 1,000 rules.

The rules are Falco's (stable + incubating + sandbox, from ../shared/compat, or
$SYSWARDEN_SHARED/compat), read and compiled by syswarden's own loader and compiler, and
cloned to reach N rules with Falco's shapes and event-type mix
(:class:`syswarden.testing.RuleCloner`): round 0 is Falco's enabled rules in load order,
round k a clone of each (``<name> (clone k)``) whose condition, exceptions included, is the
original's with one more item, ``swbench-clone-k``, in each of its lists of strings
(``proc.name in (...)``, ``fd.name pmatch (...)``...); a rule with no such list of its own
gets copies of the macros it names, grown the same way.  A clone is therefore a distinct rule
of the same shape that no event of the mix tells apart from its original (no process or file
is named ``swbench-clone-k``).  The N rules are the first N of round 0, round 1, ... (N = 10:
the first ten enabled Falco rules).

Macros: by default the clones use Falco's macros, as rules written against Falco's macros do
(but for a rule with no list of its own, above); ``--distinct-macros`` clones every macro a
clone names (its lists grown the same way).

Each N is run over the mixed events of ``bench_rules.py`` (``--events``, default 50,000), with
the event-type index on and ``rule_matching: first``; best of ``--rounds`` runs (and of more,
until two seconds were spent on that N), in CPU time of the process (on a shared machine it
moves less than the wall time), with the engine as it runs (narrowing on) and, runs
alternating, the reference (narrowing off: each rule of the event's type tried in turn, the
engine as it was before narrowing).  Prints, for each N, the cost per event, the rate, the
ratio of the cost to N = 10's; then the rule stage's rate with Falco's enabled rules and with
all 93 enabled.  Asserts nothing.

    .venv/bin/python bench/bench_rules_scaling.py [--events N] [--rounds 3]
        [--sizes 10,30,100,300,1000] [--distinct-macros] [--no-reference] [--shared DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from syswarden.core.rules.engine import RuleEngine
from syswarden.testing import RuleCloner

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rules import make_events, registry, run
from harness import add_shared_option, falco_rules_files, machine

SIZES = (10, 30, 100, 300, 1000)


def best_runs(engines: list[RuleEngine], events: list, rounds: int, min_s: float = 2.0
              ) -> list[tuple[float, int]]:
    """Each engine's best of ``rounds`` runs, and of more until ``min_s`` seconds were spent
    (a small rule set's run is short: one slow run must not be its figure); the engines'
    runs alternate, so that a load that comes and goes weighs on each alike."""
    for engine in engines:
        run(engine, events[:5000])   # warm up
    runs: list[list[tuple[float, int]]] = [[] for _ in engines]
    t0 = time.perf_counter()
    while len(runs[0]) < rounds or time.perf_counter() - t0 < min_s * len(engines):
        for engine, out in zip(engines, runs, strict=True):
            # CPU time of the process: on a shared machine it moves less than the wall time
            out.append(run(engine, events, time.process_time))
    return [min(r) for r in runs]


def measure(rules: list, events: list, rounds: int, reference: bool
            ) -> tuple[int, float, list[tuple[float, int]]]:
    """(rules checked, build seconds of the narrowed engine, [(seconds, alerts)] of it and,
    with ``reference``, of the engine that tries each rule in turn)."""
    t0 = time.perf_counter()
    engines = [RuleEngine(rules)]
    build = time.perf_counter() - t0
    if reference:
        engines.append(RuleEngine(rules, narrow=False))
    return len(engines[0].active_rules()), build, best_runs(engines, events, rounds)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="the rule counts, comma separated (default: %(default)s)")
    ap.add_argument("--distinct-macros", action="store_true",
                    help="clone the macros too: no macro shared between rounds")
    ap.add_argument("--no-reference", action="store_true",
                    help="skip the reference runs (narrowing off: each rule tried in turn)")
    add_shared_option(ap)
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    fields = registry()
    events = make_events(opts.events)
    files = falco_rules_files(opts.shared)
    cloner = RuleCloner(files, fields, opts.distinct_macros)
    print(f"{machine()}; python {sys.version.split()[0]}")
    macros = "cloned with the rules" if opts.distinct_macros else \
        "Falco's (cloned only for a rule with no list of its own)"
    print(f"{len(events):,} mixed events; Falco's {len(cloner.base)} enabled rules, cloned; "
          f"macros {macros}; index on, rule_matching first, best of {opts.rounds} runs or "
          "more (2 s); 'reference': narrowing off, each rule tried in turn, the same run")
    ref = "" if opts.no_reference else f" {'reference':>10} {'ref x':>7}"
    print(f"{'rules':>6} {'build s':>8} {'us/event':>9} {'events/s':>10} "
          f"{'x N=' + str(sizes[0]):>7}{ref} {'alerts':>7}")
    first = first_ref = 0.0
    for n in sizes:
        active, build, figures = measure(cloner.rules(n), events, opts.rounds,
                                         not opts.no_reference)
        (secs, alerts), *ref = figures
        cost = secs / len(events) * 1e6
        first = first or cost
        line = (f"{active:>6} {build:>8.2f} {cost:>9.2f} {1e6 / cost:>10,.0f} "
                f"{cost / first:>6.2f}x")
        if ref:
            cost_ref = ref[0][0] / len(events) * 1e6
            first_ref = first_ref or cost_ref
            line += f" {cost_ref:>10.2f} {cost_ref / first_ref:>6.2f}x"
            if ref[0][1] != alerts:
                line += f"  (reference alerts {ref[0][1]}: DIFFERENT)"
        print(f"{line} {alerts:>7}")
    print(f"{len(cloner.clones)} clones: lists grown by one item in their own conditions "
          f"{cloner.grown}, in the macros cloned for them {cloner.in_macros}; {cloner.same} "
          "clones with no list of strings to grow, even in their macros (the original's "
          "condition under another name)")

    # the rule stage's rate with Falco's three files: the rules they enable, and all 93
    base = [rule for _, rule in cloner.base]
    every = [dataclasses.replace(r, enabled=True, predicate=None) for r in cloner.all_rules]
    for label, rules in ((f"Falco's {len(base)} enabled rules", base),
                         (f"all {len(every)} of Falco's rules enabled", every)):
        _, _, ((secs, alerts), *ref) = measure(rules, events, opts.rounds,
                                               not opts.no_reference)
        line = (f"rule stage, {label}: {len(events) / secs:,.0f} events/s "
                f"({secs / len(events) * 1e6:.2f} us/event")
        if ref:
            line += (f"; reference {len(events) / ref[0][0]:,.0f} events/s, "
                     f"{ref[0][0] / len(events) * 1e6:.2f} us/event")
        print(line + f"), {alerts} alerts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
