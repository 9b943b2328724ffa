"""The Falco rules no action can trigger on these machines, replayed: for each, the event it
needs (hand-made, in the capture format's short form: ``falco_unreachable.yaml``) run through
Falco's files as a rule test (``syswarden test-rules``'s runner) must raise it.

Falco's files are read from the shared compat directory (``compat`` fixture); the stable file
loads first, then the rule's own file, then the rule's ``tuning`` if it has one (a rule Falco
ships disabled, an empty list or an always-true macro Falco means users to fill).  Rules match
with ``rule_matching: all``: the replay proves the rule matches its event, whatever rule
loaded before it matches too.  ``docs/falco-rules.md`` lists these rules with their reasons
and the counts, generated from ``commands/actions`` (checked here).
"""

from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from syswarden.commands.actions import UNREACHABLE
from syswarden.commands.actions.coverage import (BEGIN, DOC, END, FALCO_FILES, falco_rules,
                                                 render)
from syswarden.core.ruletest import Runner, load_test_file
from tests.helpers.paths import COMPAT, REPO

CASES = REPO / "tests" / "e2e" / "falco_unreachable.yaml"

def _labels() -> dict[str, str]:
    if not (COMPAT / "falco-rules").is_dir():
        return {}
    return {rule: label for label, entries in falco_rules(COMPAT / "falco-rules").items()
            for rule, _ in entries}


def _params():
    labels = _labels()
    for rule in UNREACHABLE:
        yield pytest.param(rule, id=f"{labels.get(rule, '?')}::{rule}")


@pytest.fixture(scope="module")
def runner() -> Runner:
    return Runner({})


@pytest.mark.parametrize("rule", list(_params()))
def test_unreachable_rule_fires_on_replay(rule, compat, tmp_path, runner):
    case = yaml.safe_load(CASES.read_text())[rule]
    label = _labels()[rule]
    rules = [str(compat / "falco-rules" / FALCO_FILES["stable"])]
    if label != "stable":
        rules.append(str(compat / "falco-rules" / FALCO_FILES[label]))
    if case.get("tuning"):
        (tmp_path / "tuning.yaml").write_text(case["tuning"])
        rules.append(str(tmp_path / "tuning.yaml"))
    test_file = tmp_path / "replay.yaml"
    test_file.write_text(json.dumps({
        "rules": rules, "rule_matching": "all", "hosts": case.get("hosts") or {},
        "cases": [{"name": rule, "events": case["events"], "expect": [rule],
                   "allow_other_alerts": True}]}))
    test = load_test_file(str(test_file), {})
    result = runner.run_case(runner.engine(test), test.cases[0])
    assert result.passed, "\n".join(result.problems)


def test_every_unreachable_rule_has_a_replay():
    assert set(yaml.safe_load(CASES.read_text())) == set(UNREACHABLE)


def test_every_falco_rule_is_live_or_replayed(compat):
    from syswarden.commands.actions import rule_actions

    every = {rule for entries in falco_rules(compat / "falco-rules").values()
             for rule, _ in entries}
    assert every == set(rule_actions()) | set(UNREACHABLE)
    assert not set(rule_actions()) & set(UNREACHABLE)


def test_docs_table_is_current(compat):
    text = DOC.read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    assert text[start:end].strip() == render(compat / "falco-rules").strip(), \
        f"{DOC} is stale: run python -m syswarden.commands.actions.coverage --write " \
        f"{compat / 'falco-rules'}"


def test_generator_lists_the_falco_actions_and_the_rules_it_cannot_trigger():
    from syswarden.commands.actions import FALCO_ACTIONS
    from syswarden.testing import SYSWARDEN

    out = subprocess.run([*SYSWARDEN, "event-generator", "--falco", "--list"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    for action in FALCO_ACTIONS:
        assert action.name in out.stdout and action.rules[0] in out.stdout
    for rule, reason in UNREACHABLE.items():
        assert rule in out.stdout and reason in out.stdout


def test_generator_refuses_an_unknown_falco_action():
    from syswarden.testing import SYSWARDEN

    out = subprocess.run([*SYSWARDEN, "event-generator", "--falco", "no-such-action"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2
    assert "unknown action(s): no-such-action" in out.stderr
