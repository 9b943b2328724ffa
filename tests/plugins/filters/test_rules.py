"""The ``rules`` filter plugin: built by its hook from the config, reloads safely."""

from __future__ import annotations

import textwrap

import pytest
from syswarden.core.config import default_rules_path, load_config
from syswarden.core.errors import RuleError
from syswarden.core.event import Event, FdInfo, Process
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import collect_fields
from syswarden.core.protocols import Filter, PluginContext
from syswarden.plugins.filters import rules as plugin

RULES_A = """
- rule: Shadow read
  desc: reading /etc/shadow
  condition: evt.type = openat and fd.name = /etc/shadow
  output: "shadow read by %proc.name"
  priority: WARNING
- rule: Debug everything in etc
  desc: noisy
  condition: evt.type = openat and fd.name startswith /etc/
  output: "etc %fd.name"
  priority: DEBUG
"""

RULES_B = """
- rule: Passwd read
  desc: reading /etc/passwd
  condition: evt.type in (open, openat) and fd.name = /etc/passwd
  output: "passwd read by %proc.name"
  priority: NOTICE
"""


@pytest.fixture(scope="module")
def fields():
    return collect_fields()


def ctx_for(tmp_path, fields, *overrides):
    cfg = tmp_path / "syswarden.yaml"
    if not cfg.exists():
        cfg.write_text("rules_file: []\n")
    config = load_config(str(cfg), overrides)
    return PluginContext(config, Metrics(), fields)


def rules_file(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text))
    return str(p)


def opening(path, proc="cat"):
    e = Event("openat", ts=1_700_000_000_000_000_000, tid=9, pid=9, res=3,
              args={"fd": 3, "dirfd": -100, "name": path, "flags": 0})
    e.num = 1
    e.proc = Process(9, comm=proc, container_id="host")
    e.fd = FdInfo(3, "file", path)
    return e


def test_built_by_its_hook_from_the_config(tmp_path, fields):
    a = rules_file(tmp_path, "a.yaml", RULES_A)
    ctx = ctx_for(tmp_path, fields, f"rules_file=[{a}]", "rule_matching=all")
    f = plugin.syswarden_make_filters(ctx)
    assert isinstance(f, Filter)
    assert [x.rule for x in f.check(opening("/etc/shadow"))] == ["Shadow read",
                                                                 "Debug everything in etc"]
    assert f.event_types() == {"openat"}
    assert list(f.describe()) == [("Shadow read", "reading /etc/shadow"),
                                  ("Debug everything in etc", "noisy")]


def test_priority_threshold_from_the_config(tmp_path, fields):
    a = rules_file(tmp_path, "a.yaml", RULES_A)
    f = plugin.syswarden_make_filters(ctx_for(tmp_path, fields, f"rules_file=[{a}]",
                                              "priority=notice", "rule_matching=all"))
    assert [x.rule for x in f.check(opening("/etc/shadow"))] == ["Shadow read"]


def test_empty_rules_file_means_the_default_ruleset(tmp_path, fields):
    f = plugin.syswarden_make_filters(ctx_for(tmp_path, fields))
    assert plugin.rules_files({"rules_file": []}) == [default_rules_path()]
    assert len(list(f.describe())) > 0


def test_reload_swaps_rules(tmp_path, fields):
    a = rules_file(tmp_path, "a.yaml", RULES_A)
    b = rules_file(tmp_path, "b.yaml", RULES_B)
    ctx = ctx_for(tmp_path, fields, f"rules_file=[{a}]")
    f = plugin.syswarden_make_filters(ctx)
    check = f.check            # what the agent resolves once at start-up
    f.reload(dict(ctx.config, rules_file=[b]))
    assert check(opening("/etc/shadow")) == []
    assert [x.rule for x in check(opening("/etc/passwd"))] == ["Passwd read"]
    assert f.check(opening("/etc/shadow")) == []
    assert [x.rule for x in f.check(opening("/etc/passwd"))] == ["Passwd read"]
    assert f.event_types() == {"open", "openat"}


def test_failed_reload_keeps_the_old_rules(tmp_path, fields):
    a = rules_file(tmp_path, "a.yaml", RULES_A)
    broken = rules_file(tmp_path, "broken.yaml", RULES_B.replace("fd.name =", "fd.nme ="))
    ctx = ctx_for(tmp_path, fields, f"rules_file=[{a}]")
    f = plugin.syswarden_make_filters(ctx)
    check = f.check
    with pytest.raises(RuleError) as info:
        f.reload(dict(ctx.config, rules_file=[broken]))
    assert [x.rule for x in check(opening("/etc/shadow"))] == ["Shadow read"]
    assert info.value.location.file == broken and info.value.location.line == 4
    assert [x.rule for x in f.check(opening("/etc/shadow"))] == ["Shadow read"]
    assert f.event_types() == {"openat"}


def test_broken_rules_at_start_raise(tmp_path, fields):
    broken = rules_file(tmp_path, "broken.yaml", "- rule: x\n  desc: d\n")
    with pytest.raises(RuleError, match="rule has no 'condition'"):
        plugin.syswarden_make_filters(ctx_for(tmp_path, fields, f"rules_file=[{broken}]"))


def test_evaluation_errors_are_counted(tmp_path, fields):
    """An event whose state breaks a reader (a plugin bug) is counted, not fatal."""
    a = rules_file(tmp_path, "a.yaml", RULES_A)
    ctx = ctx_for(tmp_path, fields, f"rules_file=[{a}]")
    f = plugin.syswarden_make_filters(ctx)
    e = opening("/etc/shadow")
    e.fd = object()          # not an FdInfo: fd.name's reader raises AttributeError
    assert f.check(e) == []
    assert ctx.metrics.get("rules.eval_errors") == 1
