"""Rules files: items, append/override, exceptions, and errors that name file and line."""

from __future__ import annotations

import textwrap

import pytest
from syswarden.core.alert import Priority
from syswarden.core.errors import RuleError
from syswarden.core.rules.engine import RuleEngine, load_rules
from syswarden.core.rules.loader import Loader, exception_text


def write(tmp_path, name, text, *more):
    p = tmp_path / name
    p.write_text(textwrap.dedent(text).lstrip() + "".join(textwrap.dedent(m) for m in more))
    return str(p)


BASE = """
- list: shell_binaries
  items: [bash, sh]

- macro: spawned_process
  condition: evt.type in (execve, execveat) and evt.dir = <

- rule: Shell spawned
  desc: a shell was spawned
  condition: spawned_process and proc.name in (shell_binaries)
  output: "Shell (proc=%proc.name parent=%proc.pname)"
  priority: WARNING
  tags: [shell, mitre_execution]
"""


def test_base_file_loads(tmp_path, reg, ev):
    f = write(tmp_path, "base.yaml", BASE)
    eng = RuleEngine.load([f], reg)
    [rule] = eng.rules()
    assert (rule.name, rule.priority, rule.tags) == ("Shell spawned", Priority.WARNING,
                                                     ["shell", "mitre_execution"])
    assert eng.check(ev("execve", proc="sh", res=0))[0].output == "Shell (proc=sh parent=bash)"
    assert eng.check(ev("execve", proc="cat", res=0)) == []
    assert eng.event_types() == {"execve", "execveat"}


@pytest.mark.parametrize("text, line, col, item, message", [
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  priority: INFO\n",
     1, 3, "rule 'R'", "rule has no 'output'"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: LOUD\n",
     5, 13, "rule 'R'", "unknown priority 'LOUD'"),
    ("- rule: R\n  desc: d\n  condition: proc.nam = x\n  output: o\n  priority: info\n",
     3, 14, "rule 'R'", "unknown field 'proc.nam'"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x and\n  output: o\n  priority: info\n",
     3, 31, "rule 'R'", "unexpected end of condition"),
    ("- rule: R\n  desc: d\n  condition: >\n    proc.name = x and\n    nope\n"
     "  output: o\n  priority: info\n", 4, 19, "rule 'R'", "undefined macro 'nope'"),
    ("- rule: R\n  desc: d\n  condition: 'proc.name = x and fd.num = abc'\n  output: o\n"
     "  priority: info\n", 3, 42, "rule 'R'", "'abc' is not a number"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: \"%proc.nme\"\n"
     "  priority: info\n", 4, 12, "rule 'R'", "unknown field 'proc.nme' in output"),
    ("- macro: m\n  condition: proc.name =\n- rule: R\n  desc: d\n  condition: m\n"
     "  output: o\n  priority: info\n", 2, 25, "macro 'm'", "expected a value"),
    ("- list: l\n  items: [a, b]\n  append: true\n", 1, 9, "list 'l'",
     "no list by that name is defined before"),
    ("- macro: m\n  condition: proc.name = x\n  append: true\n", 1, 10, "macro 'm'",
     "no macro by that name is defined before"),
    ("- rule: R\n  condition: and proc.name = x\n  append: true\n", 1, 9, "rule 'R'",
     "no rule by that name is defined before"),
    ("- list: l\n  items: notalist\n", 2, 10, "list 'l'", "list items must be a list"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: info\n"
     "  enabled: maybe\n", 6, 12, "rule 'R'", "'enabled' must be true or false"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: info\n"
     "  exceptions:\n    - name: e\n      fields: [proc.name, fd.name]\n"
     "      values: [[a]]\n", 9, 16, "rule 'R'", "must be a list of 2 values"),
    ("- rule: R\n  desc: d\n  condition: proc.name = x\n  output: o\n  priority: info\n"
     "- rule: R\n  priority: debug\n  override:\n    priority: append\n", 9, 15, "rule 'R'",
     "key 'priority' cannot be overridden with append"),
    ("- rule: [R]\n", 1, 9, None, "rule name must be a non-empty string"),
    ("rule: R\n", 1, 1, None, "a rules file must be a list of items"),
    ("- rule: R\n  desc: [unclosed\n", 3, 1, None, "invalid YAML"),
])
def test_load_errors_name_file_line_and_item(tmp_path, reg, text, line, col, item, message):
    f = write(tmp_path, "bad.yaml", text)
    with pytest.raises(RuleError) as info:
        RuleEngine.load([f], reg)
    err = info.value
    assert message in err.message
    loc = err.location
    assert (loc.file, loc.line, loc.col, loc.item) == (f, line, col, item)


def test_all_errors_are_collected(tmp_path, reg):
    f = write(tmp_path, "bad.yaml", """
        - rule: A
          desc: d
          condition: proc.nme = x
          output: o
          priority: info
        - rule: B
          desc: d
          condition: fd.num = x
          output: o
          priority: info
        """)
    result, rules, _ = load_rules([f], reg)
    assert [e.location.item for e in result.errors] == ["rule 'A'", "rule 'B'"]
    assert rules == []


def test_later_definitions_replace_earlier(tmp_path, reg, ev):
    a = write(tmp_path, "a.yaml", BASE)
    b = write(tmp_path, "b.yaml", """
        - list: shell_binaries
          items: [zsh]
        - rule: Shell spawned
          desc: replaced
          condition: spawned_process and proc.name in (shell_binaries)
          output: replaced %proc.name
          priority: ERROR
        """)
    eng = RuleEngine.load([a, b], reg)
    [rule] = eng.rules()
    assert (rule.desc, rule.priority) == ("replaced", Priority.ERROR)
    assert eng.check(ev("execve", proc="sh", res=0)) == []
    assert eng.check(ev("execve", proc="zsh", res=0))[0].output == "replaced zsh"


def test_append_to_list_macro_and_rule(tmp_path, reg, ev):
    a = write(tmp_path, "a.yaml", BASE)
    b = write(tmp_path, "b.yaml", """
        - list: shell_binaries
          items: [zsh]
          append: true
        - macro: spawned_process
          condition: and proc.pname != systemd
          append: true
        - rule: Shell spawned
          condition: and not user.uid = 0
          append: true
        """)
    eng = RuleEngine.load([a, b], reg)
    assert eng.check(ev("execve", proc="zsh", res=0))               # list appended
    assert eng.check(ev("execve", proc="sh", res=0))
    assert not eng.check(ev("execve", proc="sh", parent="systemd", res=0))   # macro appended
    assert not eng.check(ev("execve", proc="sh", uid=0, res=0))      # rule appended


def test_override_append_and_replace(tmp_path, reg, ev):
    a = write(tmp_path, "a.yaml", BASE)
    b = write(tmp_path, "b.yaml", """
        - list: shell_binaries
          items: [fish]
          override:
            items: replace
        - rule: Shell spawned
          condition: and user.uid != 0
          priority: CRITICAL
          tags: [extra]
          output: (uid=%user.uid)
          override:
            condition: append
            priority: replace
            tags: append
            output: append
        """)
    eng = RuleEngine.load([a, b], reg)
    [rule] = eng.rules()
    assert rule.priority is Priority.CRITICAL
    assert rule.tags == ["shell", "mitre_execution", "extra"]
    assert not eng.check(ev("execve", proc="sh", res=0))
    [alert] = eng.check(ev("execve", proc="fish", res=0))
    assert alert.output == "Shell (proc=fish parent=bash) (uid=1000)"
    assert not eng.check(ev("execve", proc="fish", uid=0, res=0))


def test_enabled_toggle_and_priority_threshold(tmp_path, reg, ev):
    a = write(tmp_path, "a.yaml", BASE)
    off = write(tmp_path, "off.yaml", "- rule: Shell spawned\n  enabled: false\n")
    eng = RuleEngine.load([a, off], reg)
    assert eng.rules()[0].enabled is False
    assert eng.check(ev("execve", proc="sh", res=0)) == []
    assert eng.event_types() == set()
    on = write(tmp_path, "on.yaml", "- rule: Shell spawned\n  enabled: true\n")
    assert RuleEngine.load([a, off, on], reg).check(ev("execve", proc="sh", res=0))
    # priority: rules less severe than the threshold are not loaded
    assert RuleEngine.load([a], reg, min_priority=Priority.ERROR).active_rules() == []
    assert RuleEngine.load([a], reg, min_priority=Priority.WARNING).active_rules()


def test_exceptions_are_compiled_into_the_condition(tmp_path, reg, ev):
    f = write(tmp_path, "exc.yaml", """
        - list: trusted_parents
          items: [sshd, login]
        - rule: Read shadow
          desc: d
          condition: evt.type = openat and fd.name startswith /etc/shadow
          output: o
          priority: warning
          exceptions:
            - name: proc_parent
              fields: [proc.name, proc.pname]
              comps: [=, in]
              values:
                - [passwd, [bash, sh]]
                - [chage, trusted_parents]
            - name: names
              fields: proc.name
              comps: in
              values: [unix_chkpwd, "with space"]
            - name: empty
              fields: [proc.name]
        """)
    eng = RuleEngine.load([f], reg)
    hit = lambda **kw: bool(eng.check(ev("openat", name="/etc/shadow", args={"flags": 0}, **kw)))  # noqa: E731
    assert hit(proc="cat")
    assert not hit(proc="passwd", parent="bash")
    assert hit(proc="passwd", parent="cron")
    assert not hit(proc="chage", parent="sshd")
    assert hit(proc="chage", parent="bash")
    assert not hit(proc="unix_chkpwd")
    assert not hit(proc="with space")
    cond = eng.rules()[0].condition
    assert cond.startswith("(evt.type = openat and fd.name startswith /etc/shadow) and not (")
    assert '(proc.name = "passwd" and proc.pname in ("bash", "sh"))' in cond
    assert "proc.pname in (trusted_parents)" in cond


@pytest.mark.parametrize("fields, comps, message", [
    ("[proc.nam]", "[=]", "exception 'e': unknown field 'proc.nam'"),
    ("[proc.name]", "[like]", "exception 'e': 'like' is not a comparison operator"),
    ("[proc.name]", "[exists]", "exception 'e': 'exists' is not a comparison operator"),
    ("[proc.name]", "[[in]]", "exception 'e': '['in']' is not a comparison operator"),
    ("proc.name[", "in", "exception 'e': unknown field 'proc.name['"),
])
def test_exception_errors_point_at_the_exception(tmp_path, reg, fields, comps, message):
    f = write(tmp_path, "exc.yaml", f"""
        - rule: R
          desc: d
          condition: evt.type = openat
          output: o
          priority: warning
          exceptions:
            - name: e
              fields: {fields}
              comps: {comps}
              values: [[a]]
        """)
    with pytest.raises(RuleError) as info:
        RuleEngine.load([f], reg)
    assert info.value.message == message
    assert (info.value.location.line, info.value.location.item) == (7, "rule 'R'")


def test_exception_values_appended_by_name(tmp_path, reg, ev):
    f = write(tmp_path, "exc.yaml", """
        - rule: R
          desc: d
          condition: evt.type = openat
          output: o
          priority: warning
          exceptions:
            - name: procs
              fields: [proc.name]
              values: [[cat]]
        - rule: R
          exceptions:
            - name: procs
              values: [[less]]
          append: true
        """)
    eng = RuleEngine.load([f], reg)
    assert not eng.check(ev("openat", proc="cat", name="/x", args={"flags": 0}))
    assert not eng.check(ev("openat", proc="less", name="/x", args={"flags": 0}))
    assert eng.check(ev("openat", proc="more", name="/x", args={"flags": 0}))


def test_exception_text_forms():
    from syswarden.core.errors import Location
    from syswarden.core.rules.loader import Exception_
    e = Exception_("x", ["proc.name", "fd.name"], None, [["a b", "/etc"]], Location())
    assert exception_text(e, {}) == '(proc.name = "a b" and fd.name = "/etc")'
    e = Exception_("x", "proc.name", None, ["a", "b"], Location())
    assert exception_text(e, {}) == 'proc.name in ("a", "b")'
    e = Exception_("x", ["fd.name"], ["pmatch"], [[["/etc", "/usr"]]], Location())
    assert exception_text(e, {}) == '(fd.name pmatch ("/etc", "/usr"))'
    assert exception_text(Exception_("x", ["proc.name"], None, [], Location()), {}) is None


def test_plugin_requirements(tmp_path, reg):
    f = write(tmp_path, "req.yaml", """
        - required_engine_version: 0.50.0
        - required_plugin_versions:
          - name: container
            version: 0.2.0
          - name: k8saudit
            version: 0.7.0
            alternatives:
              - name: k8saudit-eks
                version: 0.4.0
        """, BASE)
    result, _, _ = load_rules([f], reg)
    [err] = result.errors                   # container is syswarden's container enrichment
    assert err.message.startswith("plugin requirement not satisfied, must load one of: "
                                  "k8saudit (>= 0.7.0), k8saudit-eks (>= 0.4.0)")
    assert (err.location.file, err.location.line) == (f, 5)
    with pytest.raises(RuleError, match="k8saudit"):
        RuleEngine.load([f], reg)


def test_a_container_plugin_requirement_is_satisfied(tmp_path, reg):
    f = write(tmp_path, "req.yaml", """
        - required_plugin_versions:
          - name: k8smeta
            version: 0.1.0
            alternatives:
              - name: container
                version: 0.4.0
        """, BASE)
    result, _, _ = load_rules([f], reg)
    assert result.errors == []


@pytest.mark.parametrize("version, problem", [
    ("0.57.0", None), ("0.31.0", None), (9, None),            # Falco's old integer: 0.9.0
    ("0.58.0", "require engine version 0.58.0"), ("1.0.0", "require engine version 1.0.0"),
    (60, "require engine version 60"), ("latest", "is not a version"),
])
def test_required_engine_version_is_checked(tmp_path, reg, version, problem):
    f = write(tmp_path, "v.yaml", f"""
        - rule: A
          desc: a
          condition: proc.name = x
          output: a
          priority: INFO
        - required_engine_version: {version}
        """)
    result, _rules, _warnings = load_rules([f], reg)
    if problem is None:
        assert not result.errors
        return
    [err] = result.errors
    assert problem in err.message
    assert err.location.file == f and err.location.line == 6


def test_warnings_unknown_key_unused_macro_and_all_types(tmp_path, reg):
    f = write(tmp_path, "w.yaml", """
        - macro: unused_macro
          condition: proc.name = x
        - list: unused_list
          items: [a]
        - rule: Everything
          desc: d
          condition: proc.name = nc
          output: o
          priority: notice
          colour: red
        """)
    eng = RuleEngine.load([f], reg)
    by_item = {(w.location.item, w.message.split(";")[0].split(" (")[0]) for w in eng.warnings}
    assert ("macro 'unused_macro'", "macro not referenced by any rule") in by_item
    assert ("list 'unused_list'", "list not referenced by any rule, macro or list") in by_item
    assert ("rule 'Everything'", "unknown key 'colour'") in by_item
    assert any("too many evt.type values" in w.message for w in eng.warnings)
    assert eng.event_types() is None


def test_macro_name_must_be_an_identifier(tmp_path, reg):
    f = write(tmp_path, "m.yaml", "- macro: my-macro\n  condition: proc.name = x\n")
    eng = RuleEngine.load([f], reg)
    [w] = [w for w in eng.warnings if "not an identifier" in w.message]
    assert (w.location.line, w.location.item) == (1, "macro 'my-macro'")


def test_warn_evttypes_false_silences_the_warning(tmp_path, reg):
    f = write(tmp_path, "w.yaml", """
        - rule: Everything
          desc: d
          condition: proc.name = nc
          output: o
          priority: notice
          warn_evttypes: false
        """)
    assert not any("evt.type" in w.message for w in RuleEngine.load([f], reg).warnings)


def test_skip_if_unknown_filter(tmp_path, reg):
    f = write(tmp_path, "s.yaml", """
        - rule: Future field
          desc: d
          condition: evt.type = openat and proc.future_field = x
          output: o
          priority: notice
          skip-if-unknown-filter: true
        """, BASE)
    eng = RuleEngine.load([f], reg)
    assert [r.name for r in eng.rules()] == ["Shell spawned"]
    assert any("skip-if-unknown-filter" in w.message for w in eng.warnings)


def test_a_rule_of_a_source_syswarden_does_not_have_is_an_error(tmp_path, reg):
    f = write(tmp_path, "k.yaml", """
        - rule: K8s thing
          desc: d
          condition: ka.verb = create
          output: o
          priority: notice
          source: k8s_audit
        - rule: K8s thing
          append: true
          condition: and ka.user.name = x
        """, BASE)
    result, rules, _ = load_rules([f], reg)
    [err] = result.errors                   # the append found the rule: one error, located
    assert "rule needs the event source 'k8s_audit', which is not loaded" in err.message
    assert (err.location.file, err.location.line, err.location.item) == \
        (f, 6, "rule 'K8s thing'")
    assert [r.name for r in rules] == ["Shell spawned"]
    with pytest.raises(RuleError, match="event source 'k8s_audit'"):
        RuleEngine.load([f], reg)


def test_directory_loads_yaml_files_in_order(tmp_path, reg):
    d = tmp_path / "rules.d"
    d.mkdir()
    write(d, "10-base.yaml", BASE)
    write(d, "20-more.yaml", "- list: shell_binaries\n  items: [ksh]\n  append: true\n")
    (d / "notes.txt").write_text("not rules")
    result = Loader().load_files([str(d)])
    assert result.errors == []
    assert result.files == [str(d / "10-base.yaml"), str(d / "20-more.yaml")]
    assert result.lists["shell_binaries"].items == ["bash", "sh", "ksh"]


def test_unreadable_file(tmp_path, reg):
    with pytest.raises(RuleError, match="cannot read rules file") as info:
        RuleEngine.load([str(tmp_path / "missing.yaml")], reg)
    assert info.value.location.file == str(tmp_path / "missing.yaml")


# ---------------------------------------------------------------------------------------------
# Fuzz: any YAML document loads or reports RuleErrors, never raises anything else
# ---------------------------------------------------------------------------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3),
                     st.sampled_from(["x", "proc.name = x", "evt.type = openat", "info",
                                      "append", "replace", "m", "l", "r", "(", "%proc.name",
                                      "proc.name", "=", "in", "[a]"]))
_values = st.recursive(_scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3),
    st.dictionaries(st.sampled_from(["name", "fields", "comps", "values", "condition",
                                     "items", "append", "output", "priority"]), inner,
                    max_size=3)), max_leaves=8)
_keys = st.sampled_from(["rule", "macro", "list", "desc", "condition", "output", "priority",
                         "tags", "enabled", "exceptions", "append", "override", "items",
                         "source", "required_engine_version", "required_plugin_versions",
                         "warn_evttypes", "skip-if-unknown-filter"])
_items = st.lists(st.dictionaries(_keys, _values, max_size=6), max_size=5)


@settings(max_examples=300, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(doc=_items)
def test_fuzz_rules_documents(tmp_path, reg, doc):
    import yaml
    p = tmp_path / "fuzz.yaml"
    p.write_text(yaml.safe_dump(doc))
    result, rules, warnings = load_rules([str(p)], reg)
    assert all(isinstance(e, RuleError) for e in result.errors + warnings)
    if not result.errors:
        RuleEngine(rules)
