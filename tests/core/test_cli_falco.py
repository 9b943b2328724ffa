"""Falco's command line: the flags Falco has, as Falco behaves (issue 15), and what a rules file
needs that syswarden does not have (a plugin, an event source) refused as Falco refuses it."""

from __future__ import annotations

import subprocess
import textwrap

from syswarden.testing import SYSWARDEN as CLI

#: A rules file of a Falco plugin's shape (the k8saudit plugin's rules: a plugin requirement with
#: alternatives, rules of the plugin's source), written here: Falco's own are not in compat.
K8S_AUDIT_RULES = textwrap.dedent("""\
    - required_engine_version: 15
    - required_plugin_versions:
      - name: k8saudit
        version: 0.7.0
        alternatives:
          - name: k8saudit-eks
            version: 0.4.0
    - rule: Disallowed K8s User
      desc: a user outside the allowed set made an API call
      condition: ka.auth.decision = allow and not ka.user.name in (admin)
      output: K8s operation by user outside allowed set (user=%ka.user.name)
      priority: WARNING
      source: k8s_audit
    """)


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout)


def test_a_rules_file_needing_a_missing_plugin_stops_the_start(tmp_path):
    rules = tmp_path / "k8s_audit_rules.yaml"
    rules.write_text(K8S_AUDIT_RULES)
    out = run("-r", str(rules), "--dry-run")
    assert out.returncode == 2, out.stdout
    assert f"{rules}:3:5: plugin requirement not satisfied, must load one of: " \
           "k8saudit (>= 0.7.0), k8saudit-eks (>= 0.4.0)" in out.stderr
    assert "dry run ok" not in out.stdout and "Traceback" not in out.stderr


def test_validate_names_the_file_the_rule_and_what_is_missing(tmp_path):
    rules = tmp_path / "k8s_audit_rules.yaml"
    rules.write_text(K8S_AUDIT_RULES)
    out = run("-V", str(rules))
    assert out.returncode == 1
    assert f"{rules}: Invalid" in out.stdout
    assert "2 Errors:" in out.stdout
    assert "must load one of: k8saudit (>= 0.7.0), k8saudit-eks (>= 0.4.0)" in out.stdout
    assert f"In rule 'Disallowed K8s User': ({rules}:13:" in out.stdout
    assert "rule needs the event source 'k8s_audit', which is not loaded" in out.stdout


def test_a_rule_of_another_source_alone_stops_the_start(tmp_path):
    rules = tmp_path / "okta.yaml"
    rules.write_text("- rule: Okta login\n  desc: d\n  condition: okta.evt.type = x\n"
                     "  output: o\n  priority: NOTICE\n  source: okta\n")
    out = run("-r", str(rules), "--dry-run")
    assert out.returncode == 2
    assert f"{rules}:6:11 (rule 'Okta login'): rule needs the event source 'okta'" in out.stderr


def test_falcos_rules_need_only_the_container_plugin_which_syswarden_has(compat):
    files = [str(compat / "falco-rules" / n) for n in
             ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")]
    out = run(*[a for f in files for a in ("-V", f)])
    assert out.returncode == 0, out.stdout
    assert all(f"{f}: Ok" in out.stdout for f in files)
