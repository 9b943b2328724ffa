"""Falco's event-type inference and folding, on conditions."""

from __future__ import annotations

import pytest
from syswarden.core.rules import ast
from syswarden.core.rules.compiler import Compiler, Origin
from syswarden.core.rules.typesets import ALL, NONE, TypeSet, fold, mentioned_types, type_sets


def resolve(reg, text, macros=None):
    from syswarden.core.rules.parser import parse
    from syswarden.core.rules.resolved import MacroDef
    defs = {n: MacroDef(n, parse(t), Origin(t)) for n, t in (macros or {}).items()}
    return Compiler(reg, {}, defs).resolve_text(text, Origin(text))


@pytest.mark.parametrize("condition, names, complement", [
    ("evt.type = open", {"open"}, False),
    ("evt.type in (open, openat)", {"open", "openat"}, False),
    ("evt.type in (open, openat) and not evt.type = open", {"openat"}, False),
    ("evt.type = open or evt.type = execve", {"open", "execve"}, False),
    ("evt.type = open and evt.type = execve", set(), False),
    ("not evt.type = open", {"open"}, True),
    ("evt.type != open", {"open"}, True),
    ("evt.type != open and evt.type != close", {"open", "close"}, True),
    ("proc.name = x", set(), True),
    ("evt.type = open or proc.name = x", set(), True),
    ("evt.type = open and proc.name = x", {"open"}, False),
    ("not (evt.type = open and proc.name = x)", set(), True),      # may be false for any type
    ("not (evt.type = open or proc.name = x)", {"open"}, True),
    ("evt.type startswith open", set(), True),                     # not a type restriction
    ("tolower(evt.type) = open", set(), True),
    ("m1 and proc.name = x", {"execve", "execveat"}, False),      # through a macro
])
def test_type_sets(reg, condition, names, complement):
    node = resolve(reg, condition, {"m1": "evt.type in (execve, execveat)"})
    may_true, _ = type_sets(node)
    assert (set(may_true.names), may_true.complement) == (names, complement)


def test_type_set_algebra():
    a, b = TypeSet(frozenset({"x", "y"})), TypeSet(frozenset({"y", "z"}))
    assert a.union(b) == TypeSet(frozenset({"x", "y", "z"}))
    assert a.intersect(b) == TypeSet(frozenset({"y"}))
    assert a.invert().intersect(b) == TypeSet(frozenset({"z"}))
    assert a.invert().union(b) == TypeSet(frozenset({"x"}), True)
    assert a.invert().union(b.invert()) == TypeSet(frozenset({"y"}), True)
    assert a.invert().intersect(b.invert()) == TypeSet(frozenset({"x", "y", "z"}), True)
    assert ALL.is_all and "anything" in ALL and "anything" not in NONE
    assert "x" in a and "x" not in a.invert() and "q" in a.invert()


@pytest.mark.parametrize("condition, evt_type, folded", [
    ("evt.type = open and proc.name = x", "open", "check"),
    ("evt.type = open and proc.name = x", "close", False),
    ("evt.type = open or proc.name = x", "open", True),
    ("evt.type = open or proc.name = x", "close", "check"),
    ("not evt.type = open", "open", False),
    ("not evt.type = open", None, True),                  # a type no rule names
    ("evt.type in (open) and evt.dir = <", "open", True),
])
def test_fold(reg, condition, evt_type, folded):
    node = fold(resolve(reg, condition), evt_type, {})
    if folded == "check":
        assert not isinstance(node, ast.Const)
    else:
        assert isinstance(node, ast.Const) and node.value is folded


def test_mentioned_types(reg):
    node = resolve(reg, "(evt.type = open or proc.name = x) and not evt.type in (close, dup)")
    assert mentioned_types(node) == {"open", "close", "dup"}
