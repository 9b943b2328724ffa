"""Rule stage scaling: the cost per event as the rule set grows from 10 to 1,000 rules.

The rules are Falco's (stable + incubating + sandbox, from ../shared/compat, or
$SYSWARDEN_SHARED/compat), read and compiled by syswarden's own loader and compiler, and
cloned to reach N rules with Falco's shapes and event-type mix: round 0 is Falco's enabled
rules in load order, round k a clone of each (``<name> (clone k)``) whose condition, exceptions
included, is the original's with one more item, ``swbench-clone-k``, in each of its lists of
strings (``proc.name in (...)``, ``fd.name pmatch (...)``...).  A clone is therefore a distinct
rule of the same shape that no event of the mix tells apart from its original (no process or
file is named ``swbench-clone-k``): each event stops at the same check in every clone.  The N
rules are the first N of round 0, round 1, ... (N = 10: the first ten enabled Falco rules).

Macros: by default the clones use Falco's macros, as rules written against Falco's macros do
(a macro named by several rules of one event type is evaluated once per event);
``--distinct-macros`` also clones every macro a clone names (its lists grown the same way), so
that no two rounds share anything: the cost without the engine's macro sharing.

Each N is run over the mixed events of ``bench_rules.py`` (``--events``, default 50,000), with
the event-type index on and ``rule_matching: first``; best of ``--rounds`` runs (and of more,
until two seconds were spent on that N).  Prints, for each N, the cost per event, the rate,
and the ratio of the cost to N = 10's; asserts nothing.

    .venv/bin/python bench/bench_rules_scaling.py [--events N] [--rounds 3]
        [--sizes 10,30,100,300,1000] [--distinct-macros] [--shared DIR]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

from syswarden.core.fields import FieldRegistry
from syswarden.core.rules import ast
from syswarden.core.rules.compiler import Compiler
from syswarden.core.rules.engine import CompiledRule, RuleEngine, load_rules
from syswarden.core.rules.loader import LoadResult, RuleDef, rule_condition
from syswarden.core.rules.parser import parse
from syswarden.core.rules.resolved import MacroDef, Origin
from syswarden.core.rules.typesets import type_sets

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_rules import make_events, registry, run
from harness import add_shared_option, falco_rules_files, machine

SIZES = (10, 30, 100, 300, 1000)


class Cloner:
    """Falco's rules compiled, and clones of them compiled by the same compiler (so that a
    macro is one object for every rule that names it, as in a loaded rule set)."""

    def __init__(self, files: list[str], fields: FieldRegistry, distinct_macros: bool) -> None:
        result, compiled, _ = load_rules(files, fields)
        if result.errors:
            raise SystemExit(f"Falco's rules do not load: {result.errors[0]}")
        self.lists, _ = result.expanded_lists()
        self.macros = result.macros
        self.comp = Compiler(fields, self.lists, self.macros)
        self.distinct_macros = distinct_macros
        by_name = {r.name: r for r in compiled if r.enabled}
        #: (definition, compiled by the loader) of each enabled rule, in load order
        self.base: list[tuple[RuleDef, CompiledRule]] = [
            (rd, by_name[rd.name]) for rd in _rule_defs(result) if rd.name in by_name]
        self.grown = 0      # lists given an item, in the clones made so far
        self.in_macros = 0  # lists given an item in cloned macros (--distinct-macros)
        self.same = 0       # clones whose own condition has no list of strings to grow
        self.clones: dict[tuple[int, int], CompiledRule] = {}

    def rules(self, n: int) -> list[CompiledRule]:
        """The first ``n`` rules of round 0 (Falco's), round 1 (a clone of each), ..."""
        out: list[CompiledRule] = []
        k = 0
        while len(out) < n:
            for i, (rd, rule) in enumerate(self.base[:n - len(out)]):
                if k and (i, k) not in self.clones:
                    self.clones[i, k] = self.clone(rd, rule, k)
                out.append(self.clones[i, k] if k else rule)
            k += 1
        return out

    def clone(self, rd: RuleDef, rule: CompiledRule, k: int) -> CompiledRule:
        text = rule_condition(rd, self.lists)
        origin = Origin(text, rd.cond_location)
        before = self.grown
        varied = self._vary(parse(text, rd.cond_location), k, origin)
        self.same += self.grown == before
        node = self.comp.resolve(varied, origin)
        types, _ = type_sets(node)
        return dataclasses.replace(rule, name=f"{rule.name} (clone {k})", node=node,
                                   types=types, predicate=None)

    def _vary(self, node: ast.Node, k: int, origin: Origin) -> ast.Node:
        if isinstance(node, (ast.And, ast.Or)):
            return type(node)(tuple(self._vary(c, k, origin) for c in node.children), node.pos)
        if isinstance(node, ast.Not):
            return ast.Not(self._vary(node.child, k, origin), node.pos)
        if isinstance(node, ast.MacroRef) and self.distinct_macros:
            return ast.MacroRef(self._macro(node.name, k), node.pos)
        if isinstance(node, ast.Check) and isinstance(node.value, ast.ListLit):
            bound = self.comp.bind_field(node.field, origin)
            if bound.name != "evt.type" and bound.type.is_string:
                extra = ast.Literal(f"swbench-clone-{k}", node.value.pos, quoted=True)
                items = (*node.value.items, extra)
                self.grown += 1
                return dataclasses.replace(node, value=ast.ListLit(items, node.value.pos))
        return node

    def _macro(self, name: str, k: int) -> str:
        """The name of macro ``name``'s clone for round ``k`` (defined on first use)."""
        mdef = self.macros.get(name)
        if mdef is None:      # not a macro: the compiler says what it is
            return name
        clone = f"{name}__clone{k}"
        if clone not in self.macros:
            # defined before its body is varied: a macro that names itself stops here
            self.macros[clone] = MacroDef(clone, mdef.node, mdef.origin)
            grown = self.grown
            self.macros[clone].node = self._vary(mdef.node, k, mdef.origin)
            self.in_macros += self.grown - grown
            self.grown = grown
        return clone


def best_run(engine: RuleEngine, events: list, rounds: int, min_s: float = 2.0
             ) -> tuple[float, int]:
    """The best of ``rounds`` runs, and of more until ``min_s`` seconds were spent (a small
    rule set's run is short: one slow run must not be its figure)."""
    run(engine, events[:5000])   # warm up
    runs = []
    t0 = time.perf_counter()
    while len(runs) < rounds or time.perf_counter() - t0 < min_s:
        runs.append(run(engine, events))
    return min(runs)


def _rule_defs(result: LoadResult) -> list[RuleDef]:
    return [rd for rd in result.rules if rd.enabled and rd.source in ("syscall", "")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=50_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sizes", default=",".join(map(str, SIZES)),
                    help="the rule counts, comma separated (default: %(default)s)")
    ap.add_argument("--distinct-macros", action="store_true",
                    help="clone the macros too: no macro shared between rounds")
    add_shared_option(ap)
    opts = ap.parse_args()
    sizes = [int(s) for s in opts.sizes.split(",")]
    fields = registry()
    events = make_events(opts.events)
    cloner = Cloner(falco_rules_files(opts.shared), fields, opts.distinct_macros)
    print(f"{machine()}; python {sys.version.split()[0]}")
    macros = "cloned with the rules" if opts.distinct_macros else "shared (Falco's)"
    print(f"{len(events):,} mixed events; Falco's {len(cloner.base)} enabled rules, cloned; "
          f"macros {macros}; "
          f"index on, rule_matching first, best of {opts.rounds} runs or more (2 s)")
    print(f"{'rules':>6} {'build s':>8} {'us/event':>9} {'events/s':>10} "
          f"{'x N=' + str(sizes[0]):>7} {'alerts':>7}")
    first = 0.0
    for n in sizes:
        t0 = time.perf_counter()
        engine = RuleEngine(cloner.rules(n))
        build = time.perf_counter() - t0
        secs, alerts = best_run(engine, events, opts.rounds)
        cost = secs / len(events) * 1e6
        first = first or cost
        print(f"{len(engine.active_rules()):>6} {build:>8.2f} {cost:>9.2f} "
              f"{len(events) / secs:>10,.0f} {cost / first:>6.2f}x {alerts:>7}")
    print(f"{len(cloner.clones)} clones: lists grown by one item in their conditions "
          f"{cloner.grown}, in the macros cloned for them {cloner.in_macros}; "
          f"{cloner.same} clones have no list of strings of their own (the same condition "
          "as their original: a distinct rule all the same, nothing shares their checks)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
