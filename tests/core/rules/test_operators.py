"""The operator registry: every part of the rule language reads it, so adding an operator is
one declaration.  The walk-through of docs/plugins.md is run from the page itself; a list
operator and a punctuation one are added the same way; docs/operators.md must be current."""

from __future__ import annotations

import pathlib
import re
import textwrap

import pytest
from syswarden.core.errors import RuleError
from syswarden.core.rules import ast
from syswarden.core.rules.compiler import compile_condition
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.prefilter import open_prefilter
from syswarden.core.rules.operators import (OPERATORS, STRING_TYPES, Kind, Operator, as_text,
                                            takes_list)
from syswarden.core.rules.operators_doc import render
from syswarden.core.rules.parser import parse

DOCS = pathlib.Path(__file__).resolve().parents[3] / "docs"


def test_docs_operators_md_is_current():
    assert (DOCS / "operators.md").read_text() == render(), \
        "docs/operators.md is stale: python -m syswarden.core.rules.operators_doc > " \
        "docs/operators.md"


def test_every_spelling_is_read_by_the_lexer_as_its_kind():
    for op in OPERATORS:
        for spelling in op.spelled:
            value = {Kind.VALUE: " x", Kind.LIST: " (x, y)", Kind.UNARY: ""}[op.kind]
            node = parse(f"proc.name {spelling}{value}")
            assert isinstance(node, ast.Check) and node.op == spelling
            assert (node.value is None) == (op.kind is Kind.UNARY)
            assert isinstance(node.value, ast.ListLit) == (op.kind is Kind.LIST)


def test_the_registry_refuses_a_spelling_twice_and_odd_spellings():
    pred = lambda const, ftype: lambda v: True  # noqa: E731
    with pytest.raises(ValueError, match="declared twice"):
        OPERATORS.add(Operator("equals", Kind.VALUE, "d", pred, spellings=("==",)))
    for bad in ("two words", "a(", "9lives"):
        with pytest.raises(ValueError, match="identifier or punctuation"):
            OPERATORS.add(Operator(bad, Kind.VALUE, "d", pred))
    assert "equals" not in OPERATORS and "two words" not in OPERATORS


# ---------------------------------------------------------------------------------------------
# Adding operators, test-only
# ---------------------------------------------------------------------------------------------

def walkthrough_source() -> str:
    text = (DOCS / "plugins.md").read_text()
    section = text[text.index("## Adding an operator"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def rules_file(tmp_path):
    """Writes a rules file, returns its path."""
    def write(text: str) -> str:
        path = tmp_path / f"rules{len(list(tmp_path.iterdir()))}.yaml"
        path.write_text(textwrap.dedent(text))
        return str(path)
    return write


@pytest.fixture
def added():
    """Operators added by a test, removed after it."""
    names: list[str] = []
    yield names
    for name in names:
        OPERATORS.remove(name)


@pytest.fixture
def iendswith(added):
    exec(compile(walkthrough_source(), "docs/plugins.md", "exec"), {})
    added.append("iendswith")
    return OPERATORS["iendswith"]


RULES = """
- rule: Script
  desc: d
  condition: evt.type = execve and proc.cmdline {op} .SH
  output: "script %proc.cmdline"
  priority: WARNING
  exceptions:
    - name: shells
      fields: [proc.name, proc.pname]
      comps: [{op}, {op}]
      values:
        - [ZSH, SSHD]
"""


def test_the_docs_walkthrough_adds_an_operator_everywhere(iendswith, reg, ev, rules_file):
    # the lexer and the parser
    assert parse("proc.name iendswith .SH") == \
        ast.Check(ast.FieldRef("proc.name", None, 0), "iendswith", ast.Literal(".SH", 20), 0)
    # the compiler: conversion, predicate, val(), type checks
    script = ev("execve", proc="bash", cmdline=["x.sh"])
    assert compile_condition("proc.cmdline iendswith .SH", reg)(script)
    assert not compile_condition("proc.cmdline iendswith .py", reg)(script)
    assert compile_condition("proc.aname iendswith SHD", reg)(script)        # any ancestor
    assert compile_condition("proc.name iendswith val(proc.pname)", reg)(script)
    assert not compile_condition("proc.name iendswith val(proc.cmdline)", reg)(script)
    with pytest.raises(RuleError) as info:
        compile_condition("fd.num iendswith 3", reg)
    assert info.value.reason == "operator 'iendswith' cannot be used with fd.num (int64)"
    # code generation inlines it; the engine and a rule's exceptions take it
    engine = RuleEngine.load([rules_file(RULES.format(op="iendswith"))], reg)
    assert ".lower().endswith(" in engine.sources["execve"]
    assert [a.rule for a in engine.check(script)] == ["Script"]
    from_bash = ev("execve", proc="bash", parent="sshd", cmdline=["x.sh"])
    from_zsh = ev("execve", proc="zsh", parent="sshd", cmdline=["x.sh"])   # the exception
    assert [a.rule for a in engine.check(from_bash)] == ["Script"]
    assert engine.check(from_zsh) == []
    # the prefilters: it says nothing of the value, so a rule's opens are all sent
    opens = RuleEngine.load([rules_file(
        "- rule: so\n  desc: d\n  condition: evt.type = openat and fd.name iendswith .SO\n"
        "  output: o\n  priority: WARNING\n")], reg)
    assert open_prefilter(opens) is None
    # the docs' table
    assert "| `iendswith` | a value | string, charbuf | yes | yes |" in render()


def test_an_operator_removed_is_no_longer_read():
    exec(compile(walkthrough_source(), "docs/plugins.md", "exec"), {})
    assert isinstance(parse("proc.name iendswith x"), ast.Check)
    OPERATORS.remove("iendswith")
    with pytest.raises(RuleError, match="expected an operator, found 'iendswith'"):
        parse("proc.name iendswith x")


def test_a_list_operator_and_a_punctuation_one(added, reg, ev, rules_file):
    OPERATORS.add(Operator(
        "startswithany", Kind.LIST, "the value starts with an item of the list",
        lambda const, ftype: lambda v: str(v).startswith(const),
        types=STRING_TYPES, const=as_text, gather=lambda consts, ftype: tuple(consts)))
    OPERATORS.add(Operator(
        "=~", Kind.VALUE, "the value contains a match of the regular expression",
        lambda const, ftype: lambda v: const(str(v)) is not None,
        types=STRING_TYPES, const=lambda text, ftype, field: re.compile(text).search))
    added += ["startswithany", "=~"]
    etc = ev("openat", name="/etc/shadow", args={"flags": 0})
    assert compile_condition("fd.name startswithany (/usr, /etc)", reg)(etc)
    assert compile_condition("fd.name startswithany (shells)", reg,
                             lists={"shells": ["/bin", "/etc/sh"]})(etc)
    assert compile_condition("fd.name =~ sha?dow", reg)(etc)
    assert compile_condition("not fd.name =~ ^/usr", reg)(etc)
    with pytest.raises(RuleError, match="val\\(\\) cannot be used with '=~'"):   # no pair
        compile_condition("fd.name =~ val(proc.name)", reg)
    assert takes_list("startswithany") and not takes_list("=~")
    # exceptions: a list operator's values are a list; a unary operator is no comparator
    rules = textwrap.dedent("""
        - rule: Etc
          desc: d
          condition: evt.type = openat and fd.name =~ ^/etc
          output: "etc %fd.name"
          priority: WARNING
          exceptions:
            - name: readers
              fields: [proc.name, fd.name]
              comps: [=~, startswithany]
              values:
                - [^c, [/etc/sh, /etc/pa]]
        """)
    engine = RuleEngine.load([rules_file(rules)], reg)
    assert engine.check(etc) == []                                     # cat, /etc/shadow
    assert [a.rule for a in engine.check(
        ev("openat", name="/etc/hosts", args={"flags": 0}))] == ["Etc"]
    with pytest.raises(RuleError, match="'exists' is not a comparison operator"):
        RuleEngine.load([rules_file(rules.replace("[=~, startswithany]", "[=~, exists]"))],
                        reg)

