"""Narrowing (core/rules/narrow.py): the engine that narrows an event type's rules before
trying them raises exactly the alerts of the straightforward evaluation, each rule's own
condition compiled alone and tried in load order.

The rule sets are Falco's three files (all 93 rules enabled) and 1,000 rules cloned from
their shapes (:class:`syswarden.testing.RuleCloner`); the events are random but seeded,
built from the constants the rules' conditions name (process names, paths and prefixes,
command lines, containers, servers), so that many of them match a rule or nearly do.
Then small rule sets written for one corner each: a missing value, ``!=``, ``not in``, an
``or`` of values, a shared ``or``.
"""

from __future__ import annotations

import dataclasses
import random

import pytest

from syswarden.core.rules import narrow
from syswarden.core.rules.codegen import compile_node
from syswarden.core.rules.compiler import Compiler
from syswarden.core.rules.engine import CompiledRule, RuleEngine
from syswarden.core.rules.resolved import Origin, iter_checks
from syswarden.testing import RuleCloner, make_event
from tests.helpers.paths import COMPAT

FALCO = ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")

O_RDONLY, O_WRONLY, O_RDWR, O_CREAT, O_TRUNC = 0, 1, 2, 0o100, 0o1000


def reference(rules: list[CompiledRule], evt, first: bool) -> list[str]:
    """The rules ``evt`` matches, each condition compiled alone, tried in load order."""
    hits = []
    for r in rules:
        if not r.enabled:
            continue
        if r.predicate is None:
            r.predicate = compile_node(r.node)
        if r.predicate(evt):
            hits.append(r.name)
            if first:
                break
    return hits


def _strings(rules: list[CompiledRule]) -> dict[str, list[str]]:
    """The strings the rules compare each field with, by field name."""
    out: dict[str, set[str]] = {}
    seen: set[int] = set()
    for r in rules:
        for check in iter_checks(r.node, seen):
            values = check.const if isinstance(check.const, frozenset) else {check.const}
            out.setdefault(check.field.name, set()).update(
                v for v in values if isinstance(v, str))
    return {k: sorted(v) for k, v in out.items()}


def random_events(rules: list[CompiledRule], n: int, seed: int) -> list:
    rnd = random.Random(seed)
    s = _strings(rules)

    def pick(*fields: str, other: tuple[str, ...] = ()) -> str:
        pool = [v for f in fields for v in s.get(f, ())] + list(other)
        return rnd.choice(pool)

    types = sorted({t for r in rules for t in r.types.names}) + ["close", "read"]
    events = []
    for _ in range(n):
        t = rnd.choice(types)
        procs = ("proc.name", "proc.pname", "proc.aname")
        proc = pick(*procs, other=("bash", "cat", "nginx", "python3"))
        path = pick("fd.name", "fd.directory", "fd.filename", "evt.arg.name",
                    other=("/tmp/x", "/etc/passwd", "/root/.ssh/id_rsa"))
        if rnd.random() < 0.5:             # below a prefix, a directory
            path = path.rstrip("/") + "/" + rnd.choice(("a", "x.conf", ".ssh/id_rsa"))
        cmd = [pick("proc.cmdline", "proc.args", other=("-c", "ls"))
               for _ in range(rnd.randrange(3))]
        net = rnd.random() < 0.3
        flags = rnd.choice((O_RDONLY, O_WRONLY | O_CREAT, O_RDWR, O_WRONLY | O_TRUNC))
        e = make_event(
            t, proc=proc, parent=pick(*procs, other=("bash", "sshd", "runc")),
            grandparent=pick(*procs, other=("systemd", "containerd-shim")),
            name=None if net else path, cmdline=cmd, uid=rnd.choice((0, 1000)),
            args={"flags": flags, "res": rnd.choice((0, 3, -2)), "fd": 3},
            res=rnd.choice((0, 3, -13)),
            sip=rnd.choice(("169.254.169.254", "10.0.0.9", "8.8.8.8")) if net else None,
            sport=rnd.choice((22, 53, 443, 4444)) if net else None,
            container=rnd.choice((None, "abcdef123456")),
            env=rnd.choice(([], ["HTTP_PROXY=http://x"], ["GLIBC_TUNABLES=glibc.x=1"])))
        events.append(e)
    return events


@pytest.fixture(scope="module")
def falco(real_registry):
    if not COMPAT.is_dir():
        pytest.fail(f"compat rule files not found at {COMPAT} (set SYSWARDEN_SHARED)")
    return RuleCloner([str(COMPAT / "falco-rules" / f) for f in FALCO], real_registry)


@pytest.fixture
def narrow_small(monkeypatch):
    """Narrow an event type's rules from 12 of them (more of Falco's event types than
    with :data:`~narrow.NARROW_MIN`)."""
    monkeypatch.setattr(narrow, "NARROW_MIN", 12)


@pytest.mark.parametrize("size", [93, 1000])
@pytest.mark.parametrize("mode", ["first", "all"])
def test_narrowed_engine_matches_the_straightforward_evaluation(falco, size, mode,
                                                                 monkeypatch):
    if size == 93:
        monkeypatch.setattr(narrow, "NARROW_MIN", 12)
        rules = [dataclasses.replace(r, enabled=True, predicate=None) for r in falco.all_rules]
    else:
        rules = falco.rules(size)
    engine = RuleEngine(rules, rule_matching=mode)
    assert any("m = " in src for src in engine.sources.values())   # it narrows
    events = random_events(rules, 1500 if size == 93 else 600, seed=size)
    matched = set()
    for e in events:
        got = [a.rule for a in engine.check(e)]
        assert got == reference(rules, e, mode == "first"), e
        matched.update(got)
    assert engine.errors == 0
    # the events reach the rules: many rules raise (with "first", a clone never does: its
    # original comes first)
    assert len(matched) >= (100 if (size, mode) == (1000, "all") else 10)


# ---------------------------------------------------------------------------------------------
# One corner each, every condition written twice (rules that share it: narrowed)
# ---------------------------------------------------------------------------------------------

CORNERS = [
    # a missing value (no fd) against "=", "!=", "not in" and "not !="
    "fd.name = /etc/passwd",
    "fd.name != /etc/passwd",
    "not fd.name in (/etc/passwd, /tmp/y) and container.id != host",
    "not fd.name != /etc/passwd",
    # an or of values of one field, through a macro-like nesting
    "(proc.name = sudo or proc.name in (sudoedit, su)) and proc.pname exists",
    "not (proc.name in (cat, ls) or proc.pname = sshd)",
    # an or of values of two fields (one of them missing at times)
    "(fd.name in (/etc/passwd, /tmp/y) or proc.name in (ls, su)) and proc.pname = sshd",
    "not (not fd.name in (/root/x) and not proc.name = vim)",
    "(not fd.name != /etc/passwd or proc.name = su) and proc.pname = sshd",
    # a shared or, and the same check written in two rules
    "(fd.name startswith /etc or fd.name startswith /root) and proc.name = cat",
    "(fd.name startswith /etc or fd.name startswith /root) and not proc.name = cat",
    "fd.name startswith /etc and proc.name in (cat, vim)",
]


def _rules(reg, texts: list[str]) -> list[CompiledRule]:
    comp = Compiler(reg, {}, {})
    out = []
    for i, text in enumerate(texts):
        node = comp.resolve_text(text, Origin(text))
        out.append(CompiledRule(f"r{i}", "", 4, [], True, "syscall", text, "", node=node))
    return out


@pytest.mark.parametrize("mode", ["first", "all"])
def test_corners(reg, mode, narrow_small):
    texts = [*CORNERS, *CORNERS]            # every shape needed twice
    rules = _rules(reg, texts)
    engine = RuleEngine(rules, rule_matching=mode, use_index=False)
    assert "m = " in engine.sources["*"]
    rnd = random.Random(3)
    for _ in range(400):
        e = make_event("openat", name=rnd.choice(("/etc/passwd", "/root/x", "/tmp/y", None)),
                       proc=rnd.choice(("cat", "ls", "sudo", "su", "vim", "bash")),
                       parent=rnd.choice(("sshd", "bash")),
                       container=rnd.choice((None, "abcdef123456", "123456abcdef")))
        assert [a.rule for a in engine.check(e)] == reference(rules, e, mode == "first"), e
