"""The rule loader against Falco's own tests (falcosecurity/falco
``unit_tests/engine/test_rule_loader.cpp``): each case is the behaviour one of them asserts,
written as our own table.  Where syswarden deliberately differs, docs/rules.md says so.

A case is a rules file, then either the error the load reports or what the loaded rule does
with events (the rule ``R`` alerts on ``hit`` events and not on ``miss`` ones).
"""

from __future__ import annotations

import textwrap

import pytest
from syswarden.core.rules.engine import RuleEngine, load_rules

RULE = """
- rule: R
  desc: d
  condition: {cond}
  output: "%proc.name"
  priority: INFO
"""


def load(tmp_path, reg, text):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return load_rules([str(path)], reg)


def errors(tmp_path, reg, text):
    result, _, _ = load(tmp_path, reg, text)
    return [e.message for e in result.errors]


def warnings(tmp_path, reg, text):
    result, _, _ = load(tmp_path, reg, text)
    return [w.message for w in result.warnings]


def alerts(tmp_path, reg, text, event):
    path = tmp_path / "rules.yaml"
    path.write_text(textwrap.dedent(text).lstrip())
    return [a.rule for a in RuleEngine.load([str(path)], reg).check(event)]


DEV = "evt.type = execve and proc.name in (dev_creation_binaries)"


# -- append and override before and after the definition -------------------------------------

@pytest.mark.parametrize("text, error", [
    # lists: append (or override append) needs an earlier list; override replace defines one
    ("- list: dev_creation_binaries\n  items: [csi-provisioner]\n  append: true\n"
     "- list: dev_creation_binaries\n  items: [blkid]\n", "no list by that name"),
    ("- list: dev_creation_binaries\n  items: [csi-provisioner]\n  override:\n"
     "    items: append\n- list: dev_creation_binaries\n  items: [blkid]\n",
     "no list by that name"),
    # macros likewise
    ("- macro: open_simple\n  condition: or evt.type = openat2\n  append: true\n",
     "no macro by that name"),
    ("- macro: open_simple\n  condition: or evt.type = openat2\n  override:\n"
     "    condition: append\n", "no macro by that name"),
    # rules: append or override (append or replace) needs an earlier rule
    ("- rule: R\n  condition: and proc.name = cat\n  append: true\n", "no rule by that name"),
    ("- rule: R\n  condition: and proc.name = cat\n  override:\n    condition: append\n",
     "no rule by that name"),
    ("- rule: R\n  condition: proc.name = cat\n  override:\n    condition: replace\n",
     "no rule by that name"),
])
def test_append_or_override_before_the_definition_is_an_error(tmp_path, reg, text, error):
    assert any(error in m for m in errors(tmp_path, reg, text))


def test_list_override_replace_before_the_definition_defines_it(tmp_path, reg, ev):
    text = ("- list: dev_creation_binaries\n  items: [csi-provisioner]\n  override:\n"
            "    items: replace\n- list: dev_creation_binaries\n  items: [blkid]\n"
            + RULE.format(cond=DEV))
    assert alerts(tmp_path, reg, text, ev("execve", proc="blkid", res=0)) == ["R"]
    assert alerts(tmp_path, reg, text, ev("execve", proc="csi-provisioner", res=0)) == []


def test_a_misspelled_override_key_is_ignored_and_the_list_redefined(tmp_path, reg, ev):
    text = ("- list: dev_creation_binaries\n  items: [csi-provisioner]\n"
            "  override_written_wrong:\n    items: append\n"
            "- list: dev_creation_binaries\n  items: [blkid]\n" + RULE.format(cond=DEV))
    assert any("unknown key 'override_written_wrong'" in w
               for w in warnings(tmp_path, reg, text))
    assert alerts(tmp_path, reg, text, ev("execve", proc="blkid", res=0)) == ["R"]
    assert alerts(tmp_path, reg, text, ev("execve", proc="csi-provisioner", res=0)) == []


@pytest.mark.parametrize("how", ["append: true", "override:\n    items: append"])
def test_list_append_after_the_definition(tmp_path, reg, ev, how):
    text = ("- list: dev_creation_binaries\n  items: [blkid]\n"
            f"- list: dev_creation_binaries\n  items: [csi-provisioner]\n  {how}\n"
            + RULE.format(cond=DEV))
    for name in ("blkid", "csi-provisioner"):
        assert alerts(tmp_path, reg, text, ev("execve", proc=name, res=0)) == ["R"]


def test_macro_override_replace_before_the_definition_defines_it(tmp_path, reg, ev):
    text = ("- macro: open_simple\n  condition: or evt.type = openat2\n  override:\n"
            "    condition: replace\n- macro: open_simple\n  condition: evt.type in (open,openat)\n"
            + RULE.format(cond="open_simple"))
    assert alerts(tmp_path, reg, text, ev("openat", name="/x")) == ["R"]
    assert alerts(tmp_path, reg, text, ev("openat2", name="/x")) == []


@pytest.mark.parametrize("how", ["append: true", "override:\n    condition: append"])
def test_macro_and_rule_append_after_the_definition(tmp_path, reg, ev, how):
    text = ("- macro: open_simple\n  condition: evt.type in (open,openat)\n"
            f"- macro: open_simple\n  condition: or evt.type = openat2\n  {how}\n"
            + RULE.format(cond="open_simple")
            + f"- rule: R\n  condition: and proc.name = cat\n  {how}\n")
    assert alerts(tmp_path, reg, text, ev("openat2", name="/x")) == ["R"]
    assert alerts(tmp_path, reg, text, ev("openat2", name="/x", proc="ls")) == []


# -- override keys ---------------------------------------------------------------------------

BASE = RULE.format(cond="evt.type = close") + "  enabled: false\n"


@pytest.mark.parametrize("amend, error", [
    ("  desc: x\n  condition: and proc.name = cat\n  priority: WARNING\n  override:\n"
     "    desc: replace\n    condition: append\n    priority: append\n",
     "'priority' cannot be overridden with append"),
    ("  condition: and proc.name = cat\n  append: true\n  override:\n    condition: append\n",
     "'append' and 'override' cannot be used together"),
    ("  desc: x\n  override:\n    desc: replace\n    condition: append\n",
     "override names 'condition' but the item has no 'condition'"),
    ("  desc: x\n  condition: and proc.name = cat\n  priority: WARNING\n  override:\n"
     "    desc: replace\n    condition: append\n", "unexpected key 'priority'"),
    ("  desc: x\n  condition: and proc.name = cat\n  override:\n    desc: replace\n"
     "    condition: append\n    enabled: replace\n",
     "override names 'enabled' but the item has no 'enabled'"),
])
def test_override_keys(tmp_path, reg, amend, error):
    found = errors(tmp_path, reg, BASE + "- rule: R\n" + amend)
    assert any(error in m for m in found), found


def test_override_replace_enabled_switches_the_rule_on(tmp_path, reg, ev):
    text = BASE + ("- rule: R\n  desc: x\n  condition: and proc.name = cat\n  enabled: true\n"
                   "  override:\n    desc: replace\n    condition: append\n    enabled: replace\n")
    assert alerts(tmp_path, reg, text, ev("close", args={"fd": 3}, res=0)) == ["R"]


def test_enabled_is_ignored_by_append(tmp_path, reg, ev):
    """Falco: 'enabled' in an item with 'append: true' does nothing (the rule stays off)."""
    text = BASE + "- rule: R\n  condition: and proc.name = cat\n  append: true\n  enabled: true\n"
    assert alerts(tmp_path, reg, text, ev("close", args={"fd": 3}, res=0)) == []
    assert any("'enabled' is ignored" in w for w in warnings(tmp_path, reg, text))


def test_a_standalone_enabled_switches_and_a_full_rule_rewrites(tmp_path, reg, ev):
    close = ev("close", args={"fd": 3}, res=0)
    assert alerts(tmp_path, reg, BASE + "- rule: R\n  enabled: true\n", close) == ["R"]
    rewrite = BASE + RULE.format(cond="proc.name = cat") + "  enabled: true\n"
    assert alerts(tmp_path, reg, rewrite, ev("openat", name="/x")) == ["R"]


# -- exceptions ------------------------------------------------------------------------------

EXC_BASE = RULE.format(cond="evt.type = openat")


def exc_rule(exceptions: str) -> str:
    return EXC_BASE + "  exceptions:\n" + textwrap.indent(textwrap.dedent(exceptions), "    ")


def test_appended_exception_needs_only_values_a_replacing_one_needs_fields(tmp_path, reg):
    text = exc_rule("""\
        - name: e
          fields: proc.name
          comps: in
          values: [cat]
        """) + ("- rule: R\n  exceptions:\n    - name: e\n      values: [echo]\n"
                "  override:\n    exceptions: append\n")
    assert errors(tmp_path, reg, text) == []
    text += "- rule: R\n  exceptions:\n    - name: e\n      values: [id]\n" \
            "  override:\n    exceptions: replace\n"
    assert any("exception 'e': no 'fields'" in m for m in errors(tmp_path, reg, text))


def test_exception_condition_quotes_a_value_with_blanks(tmp_path, reg, ev):
    text = RULE.format(cond="proc.cmdline contains curl or proc.cmdline contains wget") + \
        "  exceptions:\n    - name: e\n      fields: [proc.cmdline]\n      comps: [contains]\n" \
        "      values:\n        - [curl 127.0.0.1]\n"
    _, [rule], _ = load(tmp_path, reg, text)
    assert rule.condition == ('(proc.cmdline contains curl or proc.cmdline contains wget) and '
                              'not ((proc.cmdline contains "curl 127.0.0.1"))')


def test_exception_warnings(tmp_path, reg):
    first = exc_rule("""\
        - name: e
          fields: [proc.cmdline]
          comps: [contains]
          values: [[curl 127.0.0.1]]
        """)
    no_values = first + "- rule: R\n  exceptions:\n    - name: e\n      value: curl 1.1.1.1\n" \
        "  append: true\n"
    assert any("appending to exception 'e' with no values" in w
               for w in warnings(tmp_path, reg, no_values))
    twice = exc_rule("""\
        - name: e
          fields: [proc.cmdline]
          values: [[a]]
        - name: e
          fields: [proc.cmdline]
          comps: [endswith]
          values: [[a]]
        """)
    assert any("multiple definitions of exception 'e'" in w for w in warnings(tmp_path, reg, twice))


@pytest.mark.parametrize("value, proc, parent, excepted", [
    ("proc.pname", "proc.pname", "bash", True),         # a bare field name is a constant
    ("proc.pname", "bash", "bash", False),
    ('"proc.pname"', "proc.pname", "bash", True),
    ("toupper(proc.pname)", "CAT", "cat", True),         # a transformer reads the field
    ('"toupper(proc.pname)"', "CAT", "cat", True),
    ("toupper(proc.pname)", "cat", "cat", False),
    ('"toupper( proc.pname)"', "toupper( proc.pname)", "x", True),   # a blank: a constant
    ('"toupper( proc.pname)"', "CAT", "cat", False),
])
def test_exception_values_that_look_like_fields(tmp_path, reg, ev, value, proc, parent,
                                                 excepted):
    text = exc_rule(f"""\
        - name: e
          fields: [proc.name]
          comps: [=]
          values:
            - [{value}]
        """)
    got = alerts(tmp_path, reg, text, ev("openat", name="/x", proc=proc, parent=parent))
    assert got == ([] if excepted else ["R"])


@pytest.mark.parametrize("field", ["tolower(proc.name)", '"tolower(proc.name)"',
                                   '"tolower( proc.name)"'])
def test_exception_fields_may_be_transformed(tmp_path, reg, ev, field):
    text = exc_rule(f"""\
        - name: e
          fields: [{field}]
          comps: [=]
          values: [[test]]
        """)
    assert alerts(tmp_path, reg, text, ev("openat", name="/x", proc="TeSt")) == []
    assert alerts(tmp_path, reg, text, ev("openat", name="/x", proc="cat")) == ["R"]


@pytest.mark.parametrize("exception, error", [
    ("- name: e\n  values: [[a]]\n", "no 'fields'"),
    ("- name: e\n  fields: proc.name\n  comps: =\n  values: [a]\n",
     "with a single field, comps must be a list operator"),
    ("- name: e\n  fields: proc.name\n  comps: [in]\n  values: [a]\n",
     "fields and comps must both be strings"),
    ("- name: e\n  fields: proc.name\n  values: [[a]]\n", "value 1 must be a string"),
    ("- name: e\n  fields: [proc.name]\n  comps: [=, =]\n  values: [[a]]\n",
     "comps must be a list as long as fields"),
    ("- name: e\n  fields: [proc.name]\n  values: [[[a, b]]]\n",
     "compared with '=', which takes one value, not a list"),
    ("- name: e\n  fields: [proc.name]\n  values: [[{a: 1}]]\n", "must be a string or a list"),
])
def test_malformed_exceptions_are_located_errors(tmp_path, reg, exception, error):
    found = errors(tmp_path, reg, exc_rule(exception))
    assert any(error in m for m in found), found


def test_single_field_exception_with_list_comparators(tmp_path, reg, ev):
    text = exc_rule("""\
        - name: e
          fields: fd.name
          comps: pmatch
          values: [/etc, /usr]
        """)
    assert alerts(tmp_path, reg, text, ev("openat", name="/etc/x/y")) == []
    assert alerts(tmp_path, reg, text, ev("openat", name="/tmp/x")) == ["R"]


# -- macros see the macros defined before them; lists are substituted as text ----------------

def test_a_macro_using_a_later_macro_is_an_undefined_macro(tmp_path, reg, ev):
    later = ("- macro: a\n  condition: b and proc.name = cat\n"
             "- macro: b\n  condition: evt.type = openat\n" + RULE.format(cond="a"))
    assert any("undefined macro 'b'" in m for m in errors(tmp_path, reg, later))
    earlier = ("- macro: b\n  condition: evt.type = openat\n"
               "- macro: a\n  condition: b and proc.name = cat\n" + RULE.format(cond="a"))
    assert alerts(tmp_path, reg, earlier, ev("openat", name="/x")) == ["R"]
    # a rule sees every macro, even one defined after it
    after = RULE.format(cond="a") + earlier.split("- rule:")[0]
    assert alerts(tmp_path, reg, after, ev("openat", name="/x")) == ["R"]
    # appended to after b is defined, a sees b
    appended = ("- macro: a\n  condition: proc.name = cat\n"
                "- macro: b\n  condition: evt.type = openat\n"
                "- macro: a\n  condition: and b\n  append: true\n" + RULE.format(cond="a"))
    assert alerts(tmp_path, reg, appended, ev("openat", name="/x")) == ["R"]


def test_a_list_name_is_substituted_where_a_value_stands(tmp_path, reg, ev):
    one = "- list: editors\n  items: [vi]\n" + RULE.format(cond="proc.name = editors")
    assert alerts(tmp_path, reg, one, ev("openat", name="/x", proc="vi")) == ["R"]
    quoted = "- list: editors\n  items: [vi]\n" + RULE.format(cond="proc.name = 'editors'")
    assert alerts(tmp_path, reg, quoted, ev("openat", name="/x", proc="editors")) == ["R"]
    two = "- list: editors\n  items: [vi, nano]\n" + RULE.format(cond="proc.name = editors")
    assert any("'editors' is a list of 2 items" in m for m in errors(tmp_path, reg, two))


@pytest.mark.parametrize("amend", [
    "  warn_evttypes: false\n  override:\n    warn_evttypes: replace\n",
    "  capture: true\n  override:\n    capture: replace\n",
    "  tags: [network]\n  override:\n    tags: replace\n",
])
def test_override_replace_of_other_keys(tmp_path, reg, amend):
    assert errors(tmp_path, reg, RULE.format(cond="evt.type = close") + "- rule: R\n" + amend) == []


def test_unknown_keys_are_warned(tmp_path, reg):
    text = ("- list: my_list\n  items: [cat, bash]\n  priority: INFO\n"
            "- macro: my_macro\n  condition: evt.type = close\n  typo_field: x\n"
            + RULE.format(cond="my_macro and proc.name in (my_list)") + "  typo_field: x\n")
    found = warnings(tmp_path, reg, text)
    assert sum("unknown key 'typo_field'" in w for w in found) == 2
    assert any("unknown key 'priority'" in w for w in found)
