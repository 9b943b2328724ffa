"""``--rule-schema``: generated from the keys the loader reads; Falco's own rules files pass
it, and what the loader refuses for a value's type the schema refuses too."""

from __future__ import annotations

import json
import pathlib
import subprocess
import textwrap

import jsonschema
import pytest
import yaml
from syswarden.core.config import default_rules_path
from syswarden.core.rules import loader, schema
from syswarden.core.rules.loader import Loader
from syswarden.core.rules.schema import rule_schema
from syswarden.testing import SYSWARDEN

VALIDATOR = jsonschema.Draft7Validator(rule_schema())


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft7Validator.check_schema(rule_schema())


@pytest.mark.parametrize("name", ["falco_rules.yaml", "falco-incubating_rules.yaml",
                                  "falco-sandbox_rules.yaml"])
def test_falcos_rules_files_pass(compat, name):
    doc = yaml.safe_load((compat / "falco-rules" / name).read_text())
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []


def test_the_packaged_rules_pass():
    doc = yaml.safe_load(pathlib.Path(default_rules_path()).read_text())
    assert [e.message for e in VALIDATOR.iter_errors(doc)] == []


RULE = "- rule: R\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n"


@pytest.mark.parametrize("text", [
    RULE + "  enabled: 'yes'\n",
    RULE.replace("INFO", "URGENT"),
    RULE + "  tags: shell\n",
    RULE + "  exceptions: {name: x}\n",
    RULE + "  exceptions:\n    - fields: [proc.name]\n",
    RULE + "  warn_evttypes: 1\n",
    RULE + "- rule: R\n  condition: and proc.name = x\n  override:\n    condition: merge\n",
    RULE + "- rule: R\n  priority: DEBUG\n  override:\n    priority: append\n",
    "- list: l\n  items: [{a: 1}]\n",
    "- list: l\n  items: a\n",
    "- macro: m\n  condition: [evt.type]\n",
    "- rule: [R]\n",
    "- just a string\n",
])
def test_what_the_loader_refuses_the_schema_refuses(tmp_path, text):
    path = tmp_path / "r.yaml"
    path.write_text(textwrap.dedent(text))
    assert Loader().load_files([str(path)]).errors, "the loader accepts it"
    assert not VALIDATOR.is_valid(yaml.safe_load(text))


def test_a_key_the_loader_reads_without_a_type_here_fails_the_generation(monkeypatch):
    monkeypatch.setattr(schema, "RULE_KEYS", loader.RULE_KEYS | {"new_key"})
    with pytest.raises(ValueError, match="new_key"):
        schema.rule_schema()


def test_rule_schema_flag_prints_it():
    out = subprocess.run([*SYSWARDEN, "--rule-schema"], capture_output=True, text=True, check=False,
                         timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == rule_schema()
