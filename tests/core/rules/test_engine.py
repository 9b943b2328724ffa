"""The engine: the event-type index, rule matching, and Falco's own rule files."""

from __future__ import annotations

import random
import textwrap

import pytest
from syswarden.core.alert import Priority
from syswarden.core.errors import RuleError
from syswarden.core.event import Event
from syswarden.core.fields import Field, FieldRegistry, FieldType, define
from syswarden.core.rules.engine import RuleEngine, load_rules

RULES = """
- macro: open_read
  condition: evt.type in (open, openat, openat2) and evt.is_open_read = true
- rule: Read shadow
  desc: d
  condition: open_read and fd.name = /etc/shadow
  output: "shadow read by %proc.name (file=%fd.name)"
  priority: WARNING
  tags: [filesystem]
- rule: Read below etc
  desc: d
  condition: open_read and fd.name startswith /etc/
  output: "etc read by %proc.name"
  priority: NOTICE
- rule: Not an exec
  desc: d
  condition: not evt.type = execve and proc.name = evil
  output: "evil %evt.type"
  priority: ERROR
- rule: Exec
  desc: d
  condition: evt.type = execve and proc.name = evil
  output: "evil exec"
  priority: CRITICAL
"""


@pytest.fixture
def rules_file(tmp_path):
    p = tmp_path / "rules.yaml"
    p.write_text(textwrap.dedent(RULES))
    return str(p)


def names(alerts):
    return [a.rule for a in alerts]


def test_first_match_and_all(rules_file, reg, ev):
    shadow = ev("openat", name="/etc/shadow", args={"flags": 0})
    first = RuleEngine.load([rules_file], reg)
    every = RuleEngine.load([rules_file], reg, rule_matching="all")
    assert names(first.check(shadow)) == ["Read shadow"]
    assert names(every.check(shadow)) == ["Read shadow", "Read below etc"]
    [alert] = first.check(shadow)
    assert alert.priority is Priority.WARNING
    assert alert.output == "shadow read by cat (file=/etc/shadow)"
    assert alert.output_fields == {"proc.name": "cat", "fd.name": "/etc/shadow"}
    assert alert.tags == ["filesystem"]
    assert alert.time_ns == shadow.ts and alert.source == "syscall"


def test_bad_rule_matching(rules_file, reg):
    with pytest.raises(RuleError, match="rule_matching"):
        RuleEngine.load([rules_file], reg, rule_matching="some")


def test_index_by_event_type(rules_file, reg, ev):
    eng = RuleEngine.load([rules_file], reg, rule_matching="all")
    # 'not evt.type = execve' matches every type but execve: the engine needs every event
    assert eng.event_types() is None
    assert names(eng.check(ev("connect", proc="evil", res=0))) == ["Not an exec"]
    assert names(eng.check(ev("execve", proc="evil", res=0))) == ["Exec"]
    assert names(eng.check(ev("openat", proc="evil", name="/etc/x", args={"flags": 0}))) == \
        ["Read below etc", "Not an exec"]
    # the index holds only what can match: execve's function has one rule
    assert eng.sources["execve"].count("    if ") == 1
    assert eng.sources["openat"].count("    if ") == 3
    assert "evt.type" not in eng.sources["openat"]     # decided when the index was built


def test_event_types_of_restricted_rules(tmp_path, reg):
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent(RULES).split("- rule: Not an exec")[0])
    eng = RuleEngine.load([str(p)], reg)
    assert eng.event_types() == {"open", "openat", "openat2"}


def test_index_on_and_off_agree(rules_file, reg, ev):
    on = RuleEngine.load([rules_file], reg, rule_matching="all")
    off = RuleEngine.load([rules_file], reg, rule_matching="all", use_index=False)
    rnd = random.Random(3)
    for _ in range(300):
        t = rnd.choice(["open", "openat", "execve", "connect", "close"])
        e = ev(t, proc=rnd.choice(["cat", "evil"]),
               name=rnd.choice(["/etc/shadow", "/etc/hosts", "/tmp/x"]),
               args={"flags": rnd.choice([0, 1, 2])})
        assert names(on.check(e)) == names(off.check(e))


def test_a_failing_reader_is_counted_and_other_rules_still_run(tmp_path, reg, ev):
    def _boom(e):
        raise RuntimeError("plugin bug")

    broken = define("broken", [Field("proc.broken", FieldType.STRING, "raises: a plugin bug",
                                     _boom)])
    registry = FieldRegistry(list(reg) + broken)
    p = tmp_path / "r.yaml"
    p.write_text(textwrap.dedent("""
        - rule: Uses broken
          desc: d
          condition: evt.type = openat and proc.broken = x
          output: o
          priority: notice
        - rule: Fine
          desc: d
          condition: evt.type = openat and proc.name = cat
          output: fine
          priority: notice
        """))
    eng = RuleEngine.load([str(p)], registry)
    assert names(eng.check(ev("openat", name="/x", args={"flags": 0}))) == ["Fine"]
    assert eng.errors == 1


def test_rules_list_and_describe(rules_file, reg):
    eng = RuleEngine.load([rules_file], reg, min_priority=Priority.WARNING)
    assert [r.name for r in eng.rules()] == ["Read shadow", "Read below etc", "Not an exec",
                                             "Exec"]
    assert [r.name for r in eng.active_rules()] == ["Read shadow", "Not an exec", "Exec"]
    assert all(r.desc == "d" and r.source == "syscall" for r in eng.rules())


def test_check_event_without_state(rules_file, reg):
    eng = RuleEngine.load([rules_file], reg)
    assert eng.check(Event("openat", args={"flags": 0})) == []
    assert eng.check(Event("bogus_type")) == []


# ---------------------------------------------------------------------------------------------
# Falco's rule files load unmodified, with the real field registry
# ---------------------------------------------------------------------------------------------

FALCO = ["falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml"]
SEED = ["falco_rules.yaml", "falco_rules_3.yaml", "falco_rules_4.yaml", "falco_rules_5.yaml"]


def _assert_loads(paths, registry):
    result, rules, _ = load_rules([str(p) for p in paths], registry)
    assert [str(e) for e in result.errors] == []
    assert rules
    return result, rules


@pytest.mark.parametrize("name", FALCO)
def test_each_falco_file_loads(compat, real_registry, name):
    _assert_loads([compat / "falco-rules" / name], real_registry)


def test_falco_files_together(compat, real_registry, ev):
    paths = [compat / "falco-rules" / n for n in FALCO]
    result, rules = _assert_loads(paths, real_registry)
    eng = RuleEngine(rules)
    types = eng.event_types()
    assert types is not None and {"execve", "openat", "connect"} <= types
    assert not any("too many evt.type" in w.message for w in result.warnings)


@pytest.mark.parametrize("name", SEED)
def test_each_seed_file_loads(compat, real_registry, name):
    _assert_loads([compat / "seed-rules" / name], real_registry)


def test_falco_rule_fires_on_a_matching_event(compat, real_registry):
    """Falco's 'Read sensitive file untrusted' on a real-looking event."""
    from syswarden.core.event import FdInfo, Process
    result, rules = _assert_loads([compat / "falco-rules" / "falco_rules.yaml"], real_registry)
    eng = RuleEngine(rules)
    shell = Process(50, comm="bash", exe="/usr/bin/bash", exepath="/usr/bin/bash",
                    container_id="host", uid=1000, user="alice")
    p = Process(51, comm="cat", exe="/usr/bin/cat", exepath="/usr/bin/cat", parent=shell,
                ppid=50, container_id="host", uid=1000, user="alice", args=["/etc/shadow"])
    e = Event("openat", ts=1_700_000_000_000_000_000, tid=51, pid=51, res=3,
              args={"fd": 3, "dirfd": -100, "name": "/etc/shadow", "flags": 0o2000000,
                    "mode": 0})
    e.proc = p
    e.fd = FdInfo(3, "file", "/etc/shadow")
    alerts = eng.check(e)
    assert [a.rule for a in alerts] == ["Read sensitive file untrusted"]
    assert "/etc/shadow" in alerts[0].output


# ---------------------------------------------------------------------------------------------
# The index never changes an answer: random conditions, index on and off
# ---------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from syswarden.core.rules.compiler import Compiler, Origin  # noqa: E402
from syswarden.core.rules.engine import CompiledRule  # noqa: E402
from syswarden.core.rules.typesets import type_sets  # noqa: E402

_TYPES = ["open", "openat", "execve", "connect", "close"]
_atoms = st.sampled_from([
    "evt.type = openat", "evt.type != openat", "evt.type in (open, openat)",
    "evt.type in (execve, connect)", "evt.type = close", "proc.name = cat", "proc.name = evil",
    "fd.name startswith /etc", "evt.is_open_read = true", "evt.type intersects (open, close)",
    "evt.type startswith op",
])
_conds = st.recursive(_atoms, lambda inner: st.one_of(
    st.tuples(inner, st.sampled_from(["and", "or"]), inner).map(lambda t: f"({' '.join(t)})"),
    inner.map(lambda c: f"not {c}")), max_leaves=6)


@settings(max_examples=200, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(st.lists(_conds, min_size=1, max_size=4))
def test_index_never_changes_an_answer(reg, ev, conditions):
    comp = Compiler(reg)
    rules = []
    for i, text in enumerate(conditions):
        node = comp.resolve_text(text, Origin(text))
        rules.append(CompiledRule(f"r{i}", "", Priority.NOTICE, [], True, "syscall", text,
                                  "o", None, node, type_sets(node)[0],
                                  lambda e: ("o", {})))
    on = RuleEngine(rules, rule_matching="all")
    off = RuleEngine(rules, rule_matching="all", use_index=False)
    first = RuleEngine(rules)
    types = on.event_types()
    for t in _TYPES + ["bogus"]:
        for proc in ("cat", "evil"):
            e = ev(t, proc=proc, name="/etc/x", args={"flags": 0})
            got = names(on.check(e))
            assert got == names(off.check(e)), (t, proc)
            assert names(first.check(e)) == got[:1]
            if got and types is not None:
                assert t in types          # a type that can match is one the source attaches
