"""Rules files that would expand without bound are refused, located; big legal ones still work.

The bombs run in a child with its address space limited to 1 GiB (RLIMIT_AS), so that a
regression fails on a MemoryError instead of eating the machine.
"""

from __future__ import annotations

import resource
import subprocess
import sys

from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.prefilter import open_prefilter

AS_LIMIT = 1 << 30
RULE = "- rule: {name}\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"


def _validate(path) -> subprocess.CompletedProcess:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    return subprocess.run([sys.executable, "-m", "syswarden.core.cli", "-V", str(path)],
                          capture_output=True, text=True, preexec_fn=limit, timeout=600)


def _nested_lists(depth: int, leaves: list[str]) -> str:
    out = [f"- list: l0\n  items: [{', '.join(leaves)}]\n"]
    for k in range(1, depth + 1):
        out.append(f"- list: l{k}\n  items: [{', '.join([f'l{k - 1}'] * 10)}]\n")
    return "".join(out)


def _doubling_macros(depth: int) -> str:
    out = ["- macro: m0\n  condition: proc.name = a\n"]
    for k in range(1, depth + 1):
        out.append(f"- macro: m{k}\n  condition: (m{k - 1} or m{k - 1})\n")
    return "".join(out)


def test_a_list_nesting_bomb_is_refused_at_the_list(tmp_path):
    p = tmp_path / "nest.yaml"
    p.write_text(_nested_lists(8, list("abcdefghij")) +
                 RULE.format(name="r", cond="evt.type = execve and proc.name in (l8)"))
    assert len(p.read_bytes()) < 700           # a billion items once flattened
    done = _validate(p)
    assert done.returncode == 1, done.stderr
    assert "MemoryError" not in done.stderr
    # l6 is the first to flatten past 1,000,000 items (10,000,000); line 13 is its item
    assert f"In list 'l6': ({p}:13:3)" in done.stdout
    assert "list 'l6' flattens (the lists it names substituted) to 10,000,000 items, over " \
           "the limit of 1,000,000" in done.stdout


def test_a_macro_bomb_is_refused_at_the_macro(tmp_path):
    p = tmp_path / "macros.yaml"
    p.write_text(_doubling_macros(30) + RULE.format(name="r", cond="evt.type = execve and m30"))
    done = _validate(p)
    assert done.returncode == 1, done.stderr
    assert "MemoryError" not in done.stderr
    # m14 is the first over 20,000 nodes once inlined: 2**15 - 1
    assert "macro 'm14' expands (the macros it uses inlined) to 32,767 nodes, over the " \
           "limit of 20,000" in done.stdout
    assert f"In macro 'm14': ({p}:" in done.stdout


def test_macros_nested_too_deep_are_refused(tmp_path, reg):
    p = tmp_path / "deep.yaml"
    chain = "".join(f"- macro: d{k}\n  condition: d{k - 1}\n" for k in range(1, 80))
    p.write_text("- macro: d0\n  condition: proc.name = a\n" + chain +
                 RULE.format(name="r", cond="evt.type = execve and d79"))
    done = _validate(p)
    assert done.returncode == 1
    assert "macros nested more than 64 deep" in done.stdout


def test_an_over_large_condition_is_refused_at_the_rule(tmp_path, reg):
    p = tmp_path / "big.yaml"
    # each use of m13 (16,383 nodes) is fine; the rule that uses it twice is not
    p.write_text(_doubling_macros(13) +
                 RULE.format(name="small", cond="evt.type = execve and m13") +
                 RULE.format(name="too big", cond="evt.type = execve and (m13 or m13)"))
    done = _validate(p)
    assert done.returncode == 1
    assert "the condition of rule 'too big' expands (its macros inlined) to 32,769 nodes, " \
           "over the limit of 20,000" in done.stdout
    assert "In rule 'too big'" in done.stdout
    assert "rule 'small'" not in done.stdout


def test_a_list_named_many_times_counts_its_items_once(tmp_path, reg, ev):
    p = tmp_path / "lit.yaml"
    uses = ", ".join(["l5"] * 11)      # Falco's flattening: 11 x 100,000 items, 10 distinct
    p.write_text(_nested_lists(5, list("abcdefghij")) +
                 RULE.format(name="r", cond=f"evt.type = execve and proc.name in ({uses})"))
    engine = RuleEngine.load([str(p)], reg)
    [rule] = engine.rules()
    assert len(rule.node.children[1].const) == 10
    assert [a.rule for a in engine.check(ev("execve", proc="j"))] == ["r"]
    assert engine.check(ev("execve", proc="k")) == []


def test_generated_code_over_budget_is_refused_at_the_rule(tmp_path, reg):
    p = tmp_path / "types.yaml"
    types = ", ".join(["open", "openat", "openat2", "execve", "connect", "accept", "bind",
                       "chmod", "unlink", "rename", "mkdir", "rmdir", "link"])
    p.write_text(_doubling_macros(13) +
                 RULE.format(name="wide", cond=f"evt.type in ({types}) and m13"))
    try:
        RuleEngine.load([str(p)], reg)
    except Exception as exc:
        assert "with rule 'wide', the code generated" in str(exc)
        assert f"{p}:" in str(exc)
    else:
        raise AssertionError("13 copies of a 16,383-node rule were generated")


def test_a_20000_item_list_loads_and_matches(tmp_path, reg, ev):
    n = 20_000
    p = tmp_path / "big.yaml"
    p.write_text(
        "- list: names\n  items: [" + ", ".join(f"p{i}" for i in range(n)) + "]\n"
        "- list: paths\n  items: [" + ", ".join(f"/srv/d{i}" for i in range(n)) + "]\n"
        + RULE.format(name="name", cond="evt.type = execve and proc.name in (names)")
        + RULE.format(name="pmatch", cond="evt.type = openat and fd.name pmatch (paths)")
        + RULE.format(name="write", cond="evt.type = openat and evt.is_open_write = true "
                                         "and fd.name in (paths)"))
    engine = RuleEngine.load([str(p)], reg, rule_matching="all")
    assert [a.rule for a in engine.check(ev("execve", proc=f"p{n - 1}"))] == ["name"]
    assert engine.check(ev("execve", proc="p20000")) == []
    assert [a.rule for a in engine.check(ev("openat", name="/srv/d19999/x"))] == ["pmatch"]
    assert [a.rule for a in engine.check(ev("openat", name="/srv/d7", args={"flags": 1}))] \
        == ["pmatch", "write"]
    assert engine.check(ev("openat", name="/srv/d20000")) == []
    # the prefilter gives up the paths (too many) but keeps what it can: opens for writing
    # or under a path (the pmatch rule) - never drops an open a rule matches
    pf = open_prefilter(engine)
    assert pf is None or pf.accepts(3, 1, "/srv/d7")
