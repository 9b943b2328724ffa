"""Hostile rules input: start-up cost of big legal lists, and the cost of refusing bombs.

Each case writes a rules file, then loads and compiles it (``load_rules`` + ``RuleEngine`` +
the open prefilter, what the agent does at start-up) in a fresh child process, and prints the
wall time, the child's peak RSS (``resource.getrusage``) and the outcome.  Cases are a table
(:data:`CASES`: name -> function writing the file); add one by adding a row.

    .venv/bin/python bench/bench_hostile.py [CASE ...]
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Callable

RULE = "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"


def big_list(n: int) -> Callable[[str], None]:
    def write(path: str) -> None:
        with open(path, "w") as f:
            f.write("- list: names\n  items: [" + ", ".join(f"p{i}" for i in range(n)) + "]\n")
            f.write("- list: paths\n  items: [" +
                    ", ".join(f"/srv/d{i}" for i in range(n)) + "]\n")
            f.write(RULE.format(name="n", cond="evt.type = execve and proc.name in (names)"))
            f.write(RULE.format(name="f", cond="evt.type = openat and fd.name in (paths)"))
            f.write(RULE.format(name="p", cond="evt.type = openat and fd.name pmatch (paths)"))
    return write


def doubling(first: str, nth: Callable[[int], str], depth: int, cond: str
             ) -> Callable[[str], None]:
    """Items 1..depth each naming the one before several times, and a rule using the last."""
    def write(path: str) -> None:
        with open(path, "w") as f:
            f.write(first + "".join(nth(k) for k in range(1, depth + 1)))
            f.write(RULE.format(name="r", cond=cond))
    return write


list_bomb = doubling("- list: l0\n  items: [a, b, c, d, e, f, g, h, i, j]\n",
                     lambda k: f"- list: l{k}\n  items: [{', '.join([f'l{k - 1}'] * 10)}]\n",
                     8, "evt.type = execve and proc.name in (l8)")
macro_bomb = doubling("- macro: m0\n  condition: proc.name = a\n",
                      lambda k: f"- macro: m{k}\n  condition: (m{k - 1} or m{k - 1})\n",
                      30, "evt.type = execve and m30")


CASES: dict[str, Callable[[str], None]] = {
    "list 1k items": big_list(1_000),
    "list 10k items": big_list(10_000),
    "list 20k items": big_list(20_000),
    "list 100k items": big_list(100_000),
    "list nesting bomb (9 lists x 10 names)": list_bomb,
    "macro bomb (31 macros, each twice)": macro_bomb,
}

CHILD = r"""
import json, resource, sys, time
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.rules.engine import RuleEngine, load_rules
from syswarden.core.rules.prefilter import open_prefilter
reg = make_plugin_manager({}).fields()
t = time.perf_counter()
try:
    result, rules, _ = load_rules([sys.argv[1]], reg)
    if result.errors:
        outcome = "refused: " + str(result.errors[0]).splitlines()[0]
    else:
        open_prefilter(RuleEngine(rules))
        outcome = "loaded"
except Exception as exc:
    outcome = f"{type(exc).__name__}: {exc}"[:200]
print(json.dumps({"s": time.perf_counter() - t, "outcome": outcome,
                  "rss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss}))
"""


def run(name: str, write: Callable[[str], None]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "rules.yaml")
        write(path)
        size = os.path.getsize(path)
        done = subprocess.run([sys.executable, "-c", CHILD, path], capture_output=True,
                              text=True, timeout=3600)
    if done.returncode != 0:
        print(f"{name:<42} {size:>10,} B  child failed: {done.stderr.strip()[-200:]}")
        return
    r = json.loads(done.stdout)
    print(f"{name:<42} {size:>10,} B  {r['s']:8.2f} s  {r['rss'] / 1024:8.1f} MB  "
          f"{r['outcome'][:110]}")


def main() -> None:
    wanted = sys.argv[1:] or list(CASES)
    print(f"machine: {platform.machine()}, {os.cpu_count()} cpus, Python "
          f"{platform.python_version()}; load+compile+prefilter in a fresh process")
    print(f"{'case':<42} {'file':>12}  {'time':>10}  {'peak RSS':>11}  outcome")
    for name in wanted:
        run(name, CASES[name])


if __name__ == "__main__":
    main()
