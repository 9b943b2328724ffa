"""`syswarden test-rules`: test files, pass/fail per case, exit codes, located errors.

The rules under test are real rules compiled by the real engine; the events are short-form
capture records, as users write them.
"""

from __future__ import annotations

import io
import subprocess
import textwrap

import pytest

from syswarden.commands.ruletest import main
from syswarden.core.ruletest import RuleTestError, load_test_file

CONFIG = {"priority": "debug", "rule_matching": "first", "rules_file": []}

RULES = """
- macro: opened_for_read
  condition: (evt.type in (open, openat) and evt.is_open_read = true)
- list: secret_files
  items: [/etc/shadow, /etc/gshadow]
- rule: Secret read
  desc: a secret file is read
  condition: opened_for_read and fd.name in (secret_files) and not proc.name in (sshd)
  output: "Secret read (file=%fd.name proc=%proc.name cmd=%proc.cmdline)"
  priority: WARNING
  tags: [test]
- rule: Anything read
  desc: any file read, low priority
  condition: opened_for_read
  output: "Read %fd.name"
  priority: DEBUG
"""

SHADOW = ("{type: openat, proc: {name: cat, cmdline: 'cat /etc/shadow'}, "
          "fd: {name: /etc/shadow}, args: {flags: O_RDONLY}}")
SSHD = "{type: openat, proc: {name: sshd}, fd: {name: /etc/shadow}, args: {flags: O_RDONLY}}"


def write(tmp_path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def run(paths, config=CONFIG) -> tuple[int, str]:
    out = io.StringIO()
    code = main(list(paths), dict(config), out=out)
    return code, out.getvalue()


@pytest.fixture
def rules(tmp_path):
    return write(tmp_path, "rules.yaml", RULES)


def test_passing_cases_print_pass_and_exit_zero(tmp_path, rules):
    test = write(tmp_path, "t.yaml", f"""
        rules: [rules.yaml]
        priority: warning
        cases:
          - name: cat reads shadow
            events: [{SHADOW}]
            expect:
              - rule: Secret read
                priority: Warning
                output_fields: {{fd.name: /etc/shadow, proc.name: cat}}
                output_contains: "cmd=cat /etc/shadow"
          - name: sshd reads shadow
            events: [{SSHD}]
            expect: []
          - name: rule names alone
            events: [{SHADOW}, {SHADOW}]
            expect: [Secret read, Secret read]
    """)
    code, out = run([test])
    assert code == 0, out
    assert "  PASS  cat reads shadow" in out
    assert "  PASS  sshd reads shadow" in out
    assert out.strip().endswith("3 passed, 0 failed")


def test_failing_cases_say_what_was_expected_and_what_came(tmp_path, rules):
    test = write(tmp_path, "t.yaml", f"""
        rules: rules.yaml
        priority: warning
        cases:
          - name: expects silence but fires
            events: [{SHADOW}]
            expect: none
          - name: expects an alert that never comes
            events: [{SSHD}]
            expect: [Secret read]
          - name: wrong output field
            events: [{SHADOW}]
            expect:
              - rule: Secret read
                output_fields: {{proc.name: less}}
          - name: wrong priority
            events: [{SHADOW}]
            expect: [{{rule: Secret read, priority: critical}}]
          - name: passes
            events: [{SHADOW}]
            expect: [Secret read]
    """)
    code, out = run([test])
    assert code == 1
    assert out.count("  FAIL  ") == 4 and "  PASS  passes" in out
    assert "unexpected alert: Secret read (Warning): Secret read (file=/etc/shadow" in out
    assert "expected Secret read: not raised" in out
    assert "expected Secret read (proc.name=less): not raised (it fired with priority " \
           "Warning, fields {'proc.name': 'cat'}" in out
    assert "expected Secret read (priority Critical): not raised" in out
    assert f"  FAIL  expects silence but fires  ({test}:5)" in out  # the failing case's line
    assert out.strip().endswith("1 passed, 4 failed")


def test_rule_matching_all_and_allow_other_alerts(tmp_path, rules):
    test = write(tmp_path, "t.yaml", f"""
        rules: [rules.yaml]
        rule_matching: all
        cases:
          - name: both rules fire
            events: [{SHADOW}]
            expect: [Secret read, Anything read]
          - name: only one is named
            allow_other_alerts: true
            events: [{SHADOW}]
            expect: [Anything read]
          - name: only one is named, strict
            events: [{SHADOW}]
            expect: [Anything read]
    """)
    code, out = run([test])
    assert code == 1
    assert "  PASS  both rules fire" in out and "  PASS  only one is named\n" in out
    assert "  FAIL  only one is named, strict" in out


def test_first_match_and_priority_threshold_come_from_the_config(tmp_path, rules):
    test = write(tmp_path, "t.yaml", f"""
        rules: [rules.yaml]
        cases:
          - name: first matching rule only
            events: [{SHADOW}]
            expect: [Secret read]
          - name: debug rule below the threshold
            events: [{SSHD}]
            expect: []
    """)
    assert run([test], dict(CONFIG, priority="notice"))[0] == 0
    code, out = run([test], dict(CONFIG, priority="debug"))
    assert code == 1 and "unexpected alert: Anything read" in out


def test_default_rules_with_a_user_override(tmp_path):
    write(tmp_path, "local.yaml", """
        - macro: sw_user_known_sensitive_file_readers
          condition: (proc.name = backup-agent)
          override:
            condition: replace
    """)
    test = write(tmp_path, "t.yaml", """
        default_rules: true
        rules: [local.yaml]
        cases:
          - name: the backup agent may read shadow
            events:
              - {type: openat, proc: {name: backup-agent}, fd: {name: /etc/shadow}, args: {flags: O_RDONLY}}
            expect: []
          - name: cat still may not
            events:
              - {type: openat, proc: {name: cat}, fd: {name: /etc/shadow}, args: {flags: O_RDONLY}}
            expect: [Sensitive file read by an untrusted program]
    """)
    code, out = run([test])
    assert code == 0, out


def test_without_rules_the_default_ruleset_is_used(tmp_path):
    test = write(tmp_path, "t.yaml", f"""
        cases:
          - name: default rules judge
            events: [{SHADOW}]
            expect: [Sensitive file read by an untrusted program]
    """)
    assert run([test])[0] == 0


def test_a_rules_directory_loads_its_files_in_order(tmp_path):
    d = tmp_path / "rules.d"
    d.mkdir()
    (d / "10-base.yaml").write_text(RULES)
    (d / "20-local.yaml").write_text("- list: secret_files\n  items: [/etc/sudoers]\n"
                                     "  append: true\n")
    test = write(tmp_path, "t.yaml", """
        rules: [rules.d]
        cases:
          - name: the appended list item counts
            events:
              - {type: openat, proc: {name: cat}, fd: {name: /etc/sudoers}, args: {flags: O_RDONLY}}
            expect: [Secret read]
    """)
    code, out = run([test])
    assert code == 0, out


def test_a_malformed_event_fails_its_case_with_file_and_line(tmp_path, rules):
    test = write(tmp_path, "t.yaml", """
        rules: [rules.yaml]
        cases:
          - name: typo in an event
            events:
              - {type: openat, proc: {name: cat}}
              - {type: openat, proc: {nmae: cat}}
            expect: []
          - name: fine
            events: [{type: openat}]
            expect: []
    """)
    code, out = run([test])
    assert code == 1
    assert f"{test}:7:9 (case 'typo in an event', event 2): bad event: unknown key " \
           "proc.nmae" in out
    assert "  PASS  fine" in out


@pytest.mark.parametrize("body, message, line", [
    ("cases: []\n", "non-empty list of 'cases'", 1),
    ("rules: [rules.yaml]\ncase: []\n", "unknown key 'case'", 2),
    ("rules: [rules.yaml]\ncases:\n  - name: a\n    events: [{type: open}]\n",
     "needs 'expect'", 3),
    ("rules: [rules.yaml]\ncases:\n  - name: a\n    events: []\n    expect: []\n",
     "non-empty list of events", 3),
    ("rules: [rules.yaml]\ncases:\n  - name: a\n    events: [{type: open}]\n    expect: []\n"
     "    expcet: []\n", "unknown key 'expcet'", 6),
    ("rules: [rules.yaml]\ncases:\n  - name: a\n    events: [{type: open}]\n"
     "    expect: [{rul: x}]\n", "a rule name or a mapping with 'rule'", 5),
    ("rules: [rules.yaml]\npriority: loud\ncases: []\n", "unknown priority 'loud'", 2),
    ("cases:\n  - name: a\n    events: [{type: open}]\n    expect: []\n"
     "  - name: a\n    events: [{type: open}]\n    expect: []\n", "used twice", 5),
    ("cases: [\n", "invalid YAML", 2),
])
def test_bad_test_files_are_errors_with_file_and_line(tmp_path, rules, body, message, line):
    test = write(tmp_path, "t.yaml", body)
    with pytest.raises(RuleTestError, match=message) as info:
        load_test_file(test, CONFIG)
    assert info.value.location.file == test and info.value.location.line == line
    code, out = run([test])
    assert code == 2 and f"ERROR {test}:{line}" in out


def test_broken_rules_exit_two_and_other_files_still_run(tmp_path, rules):
    write(tmp_path, "broken.yaml", "- rule: X\n  condition: proc.name =\n  output: x\n"
                                   "  priority: INFO\n  desc: d\n")
    bad = write(tmp_path, "bad.yaml", "rules: [broken.yaml]\ncases:\n  - name: a\n"
                                      "    events: [{type: open}]\n    expect: []\n")
    good = write(tmp_path, "good.yaml", f"rules: [rules.yaml]\ncases:\n  - name: a\n"
                                        f"    events: [{SSHD}]\n    expect: [Anything read]\n")
    code, out = run([bad, good])
    assert code == 2
    assert f"ERROR {bad}: its rules cannot be loaded: {tmp_path}/broken.yaml:2:" in out
    assert "  PASS  a" in out
    assert "1 passed, 0 failed, 1 test file(s) could not be loaded" in out


def test_the_cli_subcommand(tmp_path, rules):
    """`syswarden test-rules` as a user runs it: exit code and output."""
    from syswarden.testing import SYSWARDEN  # noqa: PLC0415

    good = write(tmp_path, "good.yaml", f"rules: [rules.yaml]\ncases:\n  - name: ok\n"
                                        f"    events: [{SHADOW}]\n    expect: [Secret read]\n")
    bad = write(tmp_path, "bad.yaml", f"rules: [rules.yaml]\ncases:\n  - name: nope\n"
                                      f"    events: [{SHADOW}]\n    expect: []\n")
    ok = subprocess.run([*SYSWARDEN, "test-rules", good], capture_output=True, text=True,
                        timeout=120)
    assert ok.returncode == 0, ok.stderr
    assert "PASS  ok" in ok.stdout
    failed = subprocess.run([*SYSWARDEN, "test-rules", good, bad], capture_output=True,
                            text=True, timeout=120)
    assert failed.returncode == 1
    assert "FAIL  nope" in failed.stdout and "1 passed, 1 failed" in failed.stdout
