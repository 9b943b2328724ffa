"""``-V``: Falco's report per file, text and JSON, and the exit code."""

from __future__ import annotations

import io
import json
import textwrap

from syswarden.core.rules.validate import validate

GOOD = """
- macro: spawned_process
  condition: evt.type = execve
- rule: Shell
  desc: d
  condition: spawned_process and proc.name = bash
  output: shell %proc.name
  priority: notice
"""

BAD = """
- rule: Broken
  desc: d
  condition: spawned_process and proc.nme = bash
  output: x
  priority: notice
- rule: Loud
  desc: d
  condition: spawned_process
  output: x
  priority: deafening
"""


def files(tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text(textwrap.dedent(GOOD))
    bad = tmp_path / "bad.yaml"
    bad.write_text(textwrap.dedent(BAD))
    return str(good), str(bad)


def test_valid_file_is_ok(tmp_path, reg):
    good, _ = files(tmp_path)
    out = io.StringIO()
    assert validate([good], reg, False, out) == 0
    assert out.getvalue() == f"{good}: Ok\n"


def test_invalid_file_text_report(tmp_path, reg):
    good, bad = files(tmp_path)
    out = io.StringIO()
    assert validate([good, bad], reg, False, out) == 1
    text = out.getvalue()
    assert text.splitlines()[0] == f"{good}: Ok"
    assert f"{bad}: Invalid\n2 Errors:\n" in text
    assert f"In rule 'Broken': ({bad}:4:34)\n------\n" \
           "spawned_process and proc.nme = bash\n                    ^\n------\n" \
           "LOAD_ERR_COMPILE_CONDITION (Error compiling condition): unknown field 'proc.nme'" \
        in text
    assert f"In rule 'Loud': ({bad}:11:13)\n------\n  priority: deafening\n" \
           "            ^\n------\nLOAD_ERR_YAML_VALIDATE" in text


def test_json_report(tmp_path, reg):
    good, bad = files(tmp_path)
    out = io.StringIO()
    assert validate([good, bad], reg, True, out) == 1
    doc = json.loads(out.getvalue())
    results = doc["falco_load_results"]
    assert [(r["name"], r["successful"]) for r in results] == [(good, True), (bad, False)]
    err = results[1]["errors"][0]
    assert err["code"] == "LOAD_ERR_COMPILE_CONDITION"
    assert err["message"] == "unknown field 'proc.nme'"
    pos = err["context"]["locations"][-1]
    assert (pos["item_type"], pos["item_name"], pos["position"]["line"],
            pos["position"]["column"]) == ("rule", "Broken", 4, 34)


def test_warnings_are_reported_and_do_not_fail(tmp_path, reg):
    p = tmp_path / "w.yaml"
    p.write_text("- macro: unused\n  condition: proc.name = x\n")
    out = io.StringIO()
    assert validate([str(p)], reg, False, out) == 0
    text = out.getvalue()
    assert text.startswith(f"{p}: Ok, with warnings\n1 Warnings:\n")
    assert "LOAD_UNUSED_MACRO (Unused macro): macro not referenced by any rule" in text


def test_compat_files_validate(compat, real_registry):
    paths = [str(compat / "falco-rules" / n) for n in
             ("falco_rules.yaml", "falco-incubating_rules.yaml", "falco-sandbox_rules.yaml")]
    out = io.StringIO()
    assert validate(paths, real_registry, False, out) == 0, out.getvalue()
    assert [line.split(": ")[1] for line in out.getvalue().splitlines()
            if line.startswith(tuple(paths))] == ["Ok", "Ok", "Ok"]


def test_the_cli_validates(tmp_path):
    """``syswarden -V``: exit code and report through the real command line."""
    import subprocess
    import sys
    good, bad = files(tmp_path)
    cmd = [sys.executable, "-m", "syswarden.core.cli"]
    ok = subprocess.run([*cmd, "-V", good], capture_output=True, text=True, timeout=60)
    assert (ok.returncode, ok.stdout) == (0, f"{good}: Ok\n")
    ko = subprocess.run([*cmd, "-V", good, "-V", bad], capture_output=True, text=True,
                        timeout=60)
    assert ko.returncode == 1
    assert f"{bad}: Invalid" in ko.stdout and "unknown field 'proc.nme'" in ko.stdout
    js = subprocess.run([*cmd, "-o", "json_output=true", "-V", bad], capture_output=True,
                        text=True, timeout=60)
    assert js.returncode == 1
    assert json.loads(js.stdout)["falco_load_results"][0]["successful"] is False


def test_falco_codes_of_the_language_warnings(tmp_path, reg):
    p = tmp_path / "w.yaml"
    p.write_text(textwrap.dedent("""
        - rule: R
          desc: d
          condition: evt.type = openat and proc.name = proc.pname and fd.name regex '/etc.*'
          output: x
          priority: notice
          exceptions:
            - name: e
              fields: [proc.name]
              values: [[a]]
            - name: e
              fields: [proc.name]
              values: [[b]]
        - rule: R
          exceptions:
            - name: e
          override:
            exceptions: append
        """))
    out = io.StringIO()
    assert validate([str(p)], reg, False, out) == 0
    text = out.getvalue()
    assert text.count("LOAD_COMPILE_CONDITION (Warning in rule condition)") == 2
    assert "LOAD_EXCEPTION_NAME_NOT_UNIQUE" in text and "LOAD_APPEND_NO_VALUES" in text
