"""The default ruleset: every rule test passes, every rule has a firing and a benign case,
every rule is documented and tagged, and it loads beside Falco's own rules without a clash."""

from __future__ import annotations

import io
import pathlib
import re

import pytest
import yaml

from syswarden.core.config import default_rules_path
from syswarden.core.plugins import collect_fields
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.ruletest import load_test_file, main

REPO = pathlib.Path(__file__).resolve().parents[2]
TESTS = sorted((REPO / "rules" / "tests").glob("*.yaml"))
CONFIG = {"priority": "debug", "rule_matching": "first", "rules_file": []}
DEFAULT = pathlib.Path(default_rules_path())
ITEMS = yaml.safe_load(DEFAULT.read_text())
RULES = [i for i in ITEMS if "rule" in i]

#: The syscalls the default rules may need: the eBPF source's cost grows with this set.
EVENT_TYPE_BUDGET = {
    "execve", "execveat", "open", "openat", "openat2", "creat", "rename", "renameat",
    "renameat2", "unlink", "unlinkat", "rmdir", "mkdir", "mkdirat", "symlink", "symlinkat",
    "link", "linkat", "connect", "socket", "setns", "unshare", "ptrace", "init_module",
    "finit_module",
}


@pytest.fixture(scope="module")
def fields():
    return collect_fields()


def test_the_packaged_ruleset_is_this_file():
    assert DEFAULT == REPO / "rules" / "default_rules.yaml"


def test_every_rule_test_passes():
    out = io.StringIO()
    code = main([str(p) for p in TESTS], dict(CONFIG), out=out)
    assert code == 0, out.getvalue()
    assert " 0 failed" in out.getvalue()


def test_every_rule_has_a_firing_case_and_a_benign_case():
    fired: set[str] = set()
    benign: set[str] = set()
    for path in TESTS:
        test = load_test_file(str(path), CONFIG)
        assert test.rules == [str(DEFAULT)], f"{path} must test the default rules"
        for case in test.cases:
            expected = {e.rule for e in case.expected}
            fired |= expected
            benign |= set(case.covers) - expected
            assert not set(case.covers) & expected, f"{case.name}: covers what it expects"
    names = {r["rule"] for r in RULES}
    assert names - fired == set(), "rules without a case that fires them"
    assert names - benign == set(), "rules without a benign case"
    assert (fired | benign) - names == set(), "cases about rules that do not exist"


@pytest.mark.parametrize("rule", RULES, ids=lambda r: r["rule"])
def test_every_rule_is_documented_and_tagged(rule):
    assert len(rule["desc"].split()) >= 12
    assert rule["priority"] in ("EMERGENCY", "ALERT", "CRITICAL", "ERROR", "WARNING",
                                "NOTICE", "INFORMATIONAL", "DEBUG")
    assert "%proc.cmdline" in rule["output"] or "%proc.name" in rule["output"]
    assert "%container.info" in rule["output"]
    tags = rule["tags"]
    assert {"host", "container"} & set(tags)
    mitre = [t for t in tags if t.startswith("mitre_")]
    techniques = [t for t in tags if re.fullmatch(r"T\d{4}(\.\d{3})?", t)]
    assert mitre and techniques, "MITRE ATT&CK tactic and technique tags"


def test_rules_and_docs_agree():
    doc = (REPO / "docs" / "rules.md").read_text()
    for rule in RULES:
        assert f"### {rule['rule']}" in doc, f"docs/rules.md does not describe {rule['rule']!r}"


def test_loads_without_warnings_and_needs_few_syscalls(fields):
    engine = RuleEngine.load([str(DEFAULT)], fields)
    assert len(engine.rules()) == len(RULES)
    assert [str(w) for w in engine.warnings] == []
    types = engine.event_types()
    assert types is not None and types <= EVENT_TYPE_BUDGET, types - EVENT_TYPE_BUDGET


def test_no_name_clashes_with_falco_rules(compat):
    ours = {(k, i[k]) for i in ITEMS for k in ("rule", "macro", "list") if k in i}
    theirs = set()
    for path in [*(compat / "falco-rules").glob("*.yaml"),
                 *(compat / "seed-rules").glob("falco_rules*.yaml")]:
        for item in yaml.safe_load(path.read_text()) or []:
            theirs |= {(k, item[k]) for k in ("rule", "macro", "list") if k in item}
    assert ours & theirs == set()


def test_loads_beside_falco_rules(compat, fields):
    """A Falco user adds our rules to theirs: both sets load and keep their meaning."""
    files = [str(compat / "falco-rules" / "falco_rules.yaml"), str(DEFAULT)]
    engine = RuleEngine.load(files, fields)
    names = {r.name for r in engine.rules()}
    assert {r["rule"] for r in RULES} <= names
    assert "Terminal shell in container" in names


def test_the_tuning_examples_of_the_docs_load_and_their_test_passes(tmp_path):
    """The YAML blocks of docs/rules.md: the rule blocks form local.yaml, the test block
    tests them on top of the default rules."""
    doc = (REPO / "docs" / "rules.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", doc, re.S)
    rule_blocks = [b for b in blocks if "cases:" not in b]
    (test_block,) = [b for b in blocks if "cases:" in b]
    assert len(rule_blocks) >= 5
    (tmp_path / "local.yaml").write_text("\n".join(rule_blocks))
    (tmp_path / "local-tests.yaml").write_text(test_block)
    out = io.StringIO()
    code = main([str(tmp_path / "local-tests.yaml")], dict(CONFIG), out=out)
    assert code == 0, out.getvalue()
    # and the tuning has the effect the docs describe
    engine = RuleEngine.load([str(DEFAULT), str(tmp_path / "local.yaml")], collect_fields())
    rules = {r.name: r for r in engine.rules()}
    assert not rules["Network tool run in a container"].enabled
    assert rules["Write outside the data directories of a container"].priority.label == "Warning"
