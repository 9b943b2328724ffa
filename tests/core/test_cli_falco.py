"""Falco's command line: the flags Falco has, as Falco behaves (issue 15), and what a rules file
needs that syswarden does not have (a plugin, an event source) refused as Falco refuses it."""

from __future__ import annotations

import io
import json
import os
import re
import stat
import subprocess
import textwrap

import pytest
import yaml
from syswarden.core import info
from syswarden.core.plugins import make_plugin_manager
from syswarden.testing import SYSWARDEN as CLI
from syswarden.testing import refused_at_start, running_agent

from .test_cli import kit_config

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
    return subprocess.run([*CLI, *args], capture_output=True, text=True, timeout=timeout,
                          check=False)


def test_a_rules_file_needing_a_missing_plugin_stops_the_start(tmp_path):
    rules = tmp_path / "k8s_audit_rules.yaml"
    rules.write_text(K8S_AUDIT_RULES)
    out = run("-r", str(rules), "--dry-run")
    assert out.returncode == 2, out.stdout
    assert f"{rules}:3:5: plugin requirement not satisfied, must load one of: " \
           "k8saudit (>= 0.7.0), k8saudit-eks (>= 0.4.0)" in out.stderr
    assert "the file's rule 'Disallowed K8s User' needs it" in out.stderr
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


@pytest.mark.parametrize("off", ["container.enabled=false", "disabled_plugins=[container]"])
def test_the_container_requirement_is_unmet_with_the_container_enrichment_off(compat, off):
    falco_rules = str(compat / "falco-rules" / "falco_rules.yaml")
    err = refused_at_start("-r", falco_rules, "-o", off)
    assert f"{falco_rules}:31:7: plugin requirement not satisfied, must load one of: " \
           "container (>= 0.4.0); the container enrichment, which stands for it, is off" in err
    assert err.count("plugin requirement not satisfied") == 1
    out = run("-V", falco_rules, "-o", off)
    assert out.returncode == 1 and f"{falco_rules}: Invalid" in out.stdout
    assert "LOAD_ERR_VALIDATE (Error in item): plugin requirement not satisfied" in out.stdout


# -- rules: -l RULE, -L ------------------------------------------------------------------------

RULES = textwrap.dedent("""\
    - list: shells
      items: [bash, sh]
    - macro: spawned
      condition: evt.type = execve
    - rule: Shell spawned
      desc: a shell was spawned by something that should never run one, which is a long
        description that Falco wraps at its second column
      condition: spawned and proc.name in (shells)
      output: shell (proc=%proc.name)
      priority: WARNING
      tags: [shell]
      exceptions:
        - name: known_parents
          fields: proc.pname
          values: [sshd]
    - rule: Other
      desc: another rule
      condition: evt.type = openat
      output: open
      priority: INFO
    """)


def rules_file(tmp_path) -> str:
    path = tmp_path / "rules.yaml"
    path.write_text(RULES)
    return str(path)


def test_describe_one_rule_in_falcos_two_columns(tmp_path):
    out = run("-r", rules_file(tmp_path), "-l", "Shell spawned")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == f"{'Rule':<50} Description" and lines[1].startswith("----" + " " * 46)
    assert lines[2].startswith(f"{'Shell spawned':<50} a shell was spawned")
    assert lines[3].startswith(" " * 51) and "Other" not in out.stdout
    assert max(len(line) for line in lines) <= 110


def test_describe_a_rule_that_is_not_loaded():
    out = run("-l", "No such rule")
    assert out.returncode == 2
    assert 'Rule "No such rule" is not loaded' in out.stderr and "Traceback" not in out.stderr


def test_list_rules_as_json_with_json_output(tmp_path):
    out = run("-r", rules_file(tmp_path), "-L", "-o", "json_output=true")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    shell, other = doc["rules"]
    assert shell["info"] == {
        "name": "Shell spawned", "condition": "spawned and proc.name in (shells)",
        "priority": "Warning", "output": "shell (proc=%proc.name)",
        "description": "a shell was spawned by something that should never run one, which is "
                       "a long description that Falco wraps at its second column",
        "enabled": True, "source": "syscall", "capture": False, "capture_duration": 0,
        "tags": ["shell"]}
    assert shell["details"]["events"] == ["execve"]
    assert shell["details"]["exception_names"] == ["known_parents"]
    assert 'not (proc.pname in ("sshd"))' in shell["details"]["condition_compiled"]
    assert other["info"]["priority"] == "Informational"
    assert doc["macros"] == [{"info": {"name": "spawned", "condition": "evt.type = execve"},
                              "details": {"used": True, "macros": [], "lists": [],
                                          "condition_operators": ["="],
                                          "condition_fields": ["evt.type"],
                                          "events": ["execve"],
                                          "condition_compiled": "evt.type = execve",
                                          "plugins": []}}]
    assert doc["lists"] == [{"info": {"name": "shells", "items": ["bash", "sh"]},
                             "details": {"used": True, "lists": [],
                                         "items_compiled": ["bash", "sh"], "plugins": []}}]
    assert doc["required_engine_version"] == "0.0.0" and doc["required_plugin_versions"] == []
    one = json.loads(run("-r", rules_file(tmp_path), "-l", "Other",
                         "-o", "json_output=true").stdout)
    assert [r["info"]["name"] for r in one["rules"]] == ["Other"] and "macros" not in one


DETAILED = textwrap.dedent("""\
    - required_engine_version: 0.26.0
    - required_plugin_versions:
      - name: container
        version: 0.2.0
        alternatives: [{name: other, version: 1.0.0}]
    - list: shells
      items: [bash, sh]
    - list: all_shells
      items: [shells, zsh]
    - macro: spawned
      condition: evt.type = execve and proc.pname exists
    - macro: in_container
      condition: container.id != host
    - rule: Shell spawned
      desc: a shell
      condition: spawned and proc.name in (all_shells) and in_container
      output: shell (proc=%proc.name parent=%proc.aname[1])
      priority: WARNING
      exceptions:
        - {name: known_parents, fields: proc.pname, values: [sshd]}
        - name: pairs
          fields: [proc.name, fd.name]
          comps: [=, startswith]
          values: [[bash, /tmp]]
    """)


def test_list_rules_as_json_has_falcos_details(tmp_path):
    rules = tmp_path / "detailed.yaml"
    rules.write_text(DETAILED)
    out = run("-r", str(rules), "-L", "-o", "json_output=true",
              "-o", "append_output[0].extra_fields=[proc.pid, {who: 'u=%user.name'}]")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert doc["required_engine_version"] == "0.26.0"
    assert doc["required_plugin_versions"] == [{"name": "container", "version": "0.2.0",
                                                "alternatives": [{"name": "other",
                                                                  "version": "1.0.0"}]}]
    details = doc["rules"][0]["details"]
    assert details["macros"] == ["in_container", "spawned"]      # as written: not expanded
    assert details["lists"] == ["all_shells"]
    # macros expanded, exceptions in
    assert details["condition_fields"] == ["container.id", "evt.type", "fd.name", "proc.name",
                                           "proc.pname"]
    assert details["condition_operators"] == ["!=", "=", "exists", "in", "startswith"]
    assert details["extra_output_formatted_fields"] == {"who": "u=%user.name"}
    assert details["output_fields"] == ["proc.pid", "who", "proc.name", "proc.aname[1]"]
    assert details["exception_fields"] == ["fd.name", "proc.name", "proc.pname"]
    assert details["exception_names"] == ["known_parents", "pairs"]
    assert details["exception_operators"] == ["=", "in", "startswith"]
    assert details["plugins"] == ["container"]                   # container.id, via a macro
    macros = {m["info"]["name"]: m["details"] for m in doc["macros"]}
    assert macros["spawned"]["condition_fields"] == ["evt.type", "proc.pname"]
    assert macros["spawned"]["events"] == ["execve"] and macros["in_container"]["plugins"] == []
    lists = {ld["info"]["name"]: ld for ld in doc["lists"]}
    assert lists["all_shells"]["info"]["items"] == ["zsh"]
    assert lists["all_shells"]["details"] == {"used": True, "lists": ["shells"],
                                              "items_compiled": ["bash", "sh", "zsh"],
                                              "plugins": []}
    one = json.loads(run("-r", str(rules), "-l", "Shell spawned",
                         "-o", "json_output=true").stdout)
    assert one["rules"][0]["details"]["condition_fields"] == details["condition_fields"]
    assert "required_engine_version" not in one


# -- fields and events -------------------------------------------------------------------------

def test_list_fields_of_a_source_names_only():
    out = run("--list", "syscall", "-N")
    assert out.returncode == 0
    names = out.stdout.split()
    assert "proc.name" in names and "container.id" in names and "evt.type" in names
    assert all(" " not in line for line in out.stdout.splitlines())


def test_verbose_list_says_each_fields_type_and_argument_as_falco():
    plain, verbose = run("--list", "syscall").stdout, run("--list", "syscall", "-v").stdout
    line = next(x for x in verbose.splitlines() if x.startswith("proc.name "))
    assert "(Type: CHARBUF) The process name" in line
    assert re.search(r"^fd\.sip +ipaddr +\(Type: IPADDR\) ", verbose, re.M)
    assert re.search(r"^proc\.aname\[index\] .*\(Type: CHARBUF\) \(Argument: INDEX, optional\) ",
                     verbose, re.M)
    assert "(Type: " not in plain and len(plain.splitlines()) == len(verbose.splitlines())


def test_list_fields_of_a_source_syswarden_does_not_have():
    out = run("--list", "k8s_audit")
    assert out.returncode == 2 and "unknown event source 'k8s_audit'" in out.stderr


def test_list_fields_as_json():
    doc = json.loads(run("--list", "--format", "json").stdout)
    fields = {f["name"]: f for cls in doc for f in cls["fields"]}
    assert fields["proc.name"]["type"] == "charbuf" and fields["proc.name"]["desc"]


def test_list_events_and_ignored_events():
    out = run("--list-events")
    assert out.returncode == 0
    assert "< execve(res, exe, args," in out.stdout and "> openat(dirfd, name, flags, mode)" \
        in out.stdout
    listed = io.StringIO()
    info.list_events(listed, "json")
    doc = json.loads(listed.getvalue())
    assert {"dir": ">", "name": "connect", "params": ["fd", "addr"]} in doc["syscall_events"]
    ignored = run("-i").stdout.splitlines()
    assert ignored[0] == "Ignored syscall(s):" and "- brk" in ignored
    assert "- execve" not in ignored


def test_markdown_and_format_together_are_refused():
    out = run("--list", "--markdown", "--format", "text")
    assert out.returncode == 2
    assert "Cannot specify both --markdown and --format options together" in out.stderr
    md = run("--list-events", "--markdown")
    assert md.returncode == 0 and "| `execve` |" in md.stdout and "deprecated" in md.stderr


# -- support, version, plugins -----------------------------------------------------------------

def test_support_has_falcos_keys_the_config_and_the_rules_files_contents(tmp_path):
    rules = rules_file(tmp_path)
    config = tmp_path / "config.yaml"
    config.write_text("buffered_outputs: true\npriority: notice\n")
    out = run("-c", str(config), "-r", rules, "--support", "-U")
    assert out.returncode == 0, out.stderr
    doc = json.loads(out.stdout)
    assert set(doc) >= {"version", "system_info", "cmdline", "config", "rules_files",
                        "engine_info"}
    assert doc["system_info"]["sysname"] == "Linux" and doc["system_info"]["machine"]
    assert doc["cmdline"].endswith("--support -U")
    config_seen = yaml.safe_load(doc["config"])
    assert config_seen["priority"] == "notice"
    assert config_seen["buffered_outputs"] is False         # -U overrides the file
    assert doc["rules_files"] == [{"name": rules, "variants": [{"content": RULES}]}]


def test_version_as_json_with_json_output():
    doc = json.loads(run("--version", "-o", "json_output=true").stdout)
    assert doc["engine_version"] == "0.57.0" and doc["syswarden_version"]


def test_plugin_info_of_falcos_container_plugin_and_an_unknown_one():
    enrichment = make_plugin_manager().fields().get("container.id").provider
    out = run("--plugin-info", "container")
    assert out.returncode == 0
    assert out.stdout.startswith(f"Name: {enrichment}\nDescription: ")
    assert "  - Field Extraction" in out.stdout and "Init config schema type: JSON" in out.stdout
    assert f'"{enrichment}": {{' in out.stdout
    missing = run("--plugin-info", "k8saudit")
    assert missing.returncode == 2
    assert "can't find plugin and print its info: k8saudit" in missing.stderr


def test_page_size():
    assert run("--page-size").stdout == \
        f"Your system page size is: {os.sysconf('SC_PAGE_SIZE')} bytes\n"


# -- sources -----------------------------------------------------------------------------------

@pytest.mark.parametrize("args, message", [
    (["--disable-source", "syscall"], "Must enable at least one event source"),
    (["--enable-source", "syscall", "--disable-source", "syscall"],
     "You can not mix --enable-source and --disable-source"),
    (["--enable-source", "k8s_audit"], "unknown event source 'k8s_audit'"),
    (["--disable-source", "okta"], "unknown event source 'okta'"),
])
def test_source_selection_is_checked_as_falco_checks_it(args, message):
    out = run(*args, "--dry-run")
    assert out.returncode == 2 and message in out.stderr


def test_enabling_the_syscall_source_runs_and_a_replay_ignores_the_selection():
    assert run("--enable-source", "syscall", "--dry-run").returncode == 0
    out = run("--disable-source", "syscall", "-e", "/dev/null", "--dry-run")
    assert out.returncode == 0, out.stderr


# -- the pidfile, -v ---------------------------------------------------------------------------

def test_pidfile_holds_the_agents_pid_while_it_runs(tmp_path):
    pidfile = tmp_path / "run" / "syswarden.pid"
    pidfile.parent.mkdir()
    with running_agent("-c", kit_config(tmp_path, count=3, forever=True),
                       "-P", str(pidfile)) as agent:
        assert pidfile.read_text() == f"{agent.proc.pid}\n"
        assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert not pidfile.exists()


def test_a_pidfile_through_a_planted_link_is_refused(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep\n")
    link = tmp_path / "syswarden.pid"
    link.symlink_to(target)
    out = run("-c", kit_config(tmp_path, count=3), "-P", str(link))
    assert out.returncode == 2 and str(link) in out.stderr and "Traceback" not in out.stderr
    assert target.read_text() == "keep\n"


def test_verbose_prints_falcos_counts_when_the_agent_stops(tmp_path):
    out = run("-c", kit_config(tmp_path, count=10, forever=True), "-M", "0.5", "-v")
    assert out.returncode == 0, out.stderr
    assert re.search(r"Elapsed time: [0-9.]+, Captured Events: 10, [0-9.]+ eps", out.stderr)


def test_print_appends_an_append_output_entry_and_pc_does_nothing():
    def appended(*args: str) -> list:
        out = run(*args, "--support")
        assert "The -p/--print option is deprecated" in out.stderr
        return yaml.safe_load(json.loads(out.stdout)["config"]).get("append_output") or []
    assert {"extra_output": "cpu=%evt.cpu"} in appended("-p", "cpu=%evt.cpu")
    assert {"extra_output": "c"} not in appended("-pc")


def test_print_outlives_a_reload(tmp_path):
    """``-p`` is an override: the reload that SIGHUP or watch_config_files asks for applies it
    again, as it applies ``-o``."""
    import trio
    from syswarden.core import cli
    from syswarden.core.agent import Agent
    from syswarden.testing import make_event
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: Exec\n  desc: d\n  condition: evt.type = execve\n"
                     "  output: exec %evt.type\n  priority: WARNING\n")
    config = tmp_path / "falco.yaml"
    config.write_text(f"rules_files: [{rules}]\nappend_output: []\n")
    args = cli.build_parser(cli.installed_commands()).parse_args(
        ["-c", str(config), "-p", "extra=%evt.type: 'quoted' #x"])
    args.overrides.extend(cli._print_additional(args.print_additional))
    loaded, plugins = cli.load(args)
    agent = Agent(loaded, plugins, config_path=args.config, overrides=tuple(args.overrides))
    agent.build(["filters"])

    def output() -> str:
        alert, = agent.filters[0].check(make_event("execve", proc="true"))
        return alert.output
    assert output() == "exec execve extra=execve: 'quoted' #x"
    config.write_text(f"rules_files: [{rules}]\nappend_output:\n  - extra_output: more\n")
    assert trio.run(agent.reload) is True
    assert output() == "exec execve more extra=execve: 'quoted' #x"


def test_validate_with_describe_as_falco(tmp_path):
    rules = rules_file(tmp_path)
    out = run("-V", rules, "-l", "Other")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith(f"{rules}: Ok")
    assert f"\n{'Other':<50} another rule" in out.stdout and "Shell spawned " not in out.stdout
    doc = json.loads(run("-V", rules, "-L", "-o", "json_output=true").stdout)
    assert doc["falco_load_results"][0]["successful"] is True
    assert [r["info"]["name"] for r in doc["falco_describe_results"]["rules"]] == \
        ["Shell spawned", "Other"]


def test_print_appends_its_format_to_every_alert(tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text("- rule: Exec\n  desc: d\n  condition: evt.type = execve\n"
                     "  output: exec %evt.type\n  priority: WARNING\n")
    capture = tmp_path / "capture.jsonl"
    capture.write_text(json.dumps({"type": "execve", "proc": {"cmdline": "/usr/bin/true"}}) + "\n")
    common = ("-e", str(capture), "-r", str(rules), "-o", "append_output=[]")
    out = run(*common, "-p", "extra=%evt.type")
    assert out.returncode == 0, out.stderr
    assert out.stdout.rstrip().endswith("Warning exec execve extra=execve")
    assert run(*common, "-pc").stdout.rstrip().endswith("Warning exec execve")
