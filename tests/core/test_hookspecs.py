"""Every hook is documented where it is declared: when it is called, each parameter, the result."""

from __future__ import annotations

import inspect

import pytest

from syswarden.core import hookspecs

SPECS = [fn for name, fn in vars(hookspecs).items()
         if name.startswith("syswarden_") and callable(fn)]


def test_there_are_hooks_for_every_kind_of_plugin():
    names = {fn.__name__ for fn in SPECS}
    assert {"syswarden_make_sources", "syswarden_make_enrichers", "syswarden_make_filters",
            "syswarden_make_outputs", "syswarden_fields", "syswarden_config_schema",
            "syswarden_validate_config", "syswarden_commands"} <= names


@pytest.mark.parametrize("spec", SPECS, ids=lambda fn: fn.__name__)
def test_each_hook_is_documented(spec):
    doc = inspect.getdoc(spec) or ""
    assert len(doc.splitlines()) >= 3, f"{spec.__name__} needs a docstring saying when it is called"
    assert "called" in doc.lower(), f"{spec.__name__}: say when it is called"
    for param in inspect.signature(spec).parameters:
        assert f":param {param}:" in doc, f"{spec.__name__}: document parameter {param}"
    assert ":return:" in doc, f"{spec.__name__}: document what it returns"


def test_each_hook_is_a_pluggy_spec():
    for spec in SPECS:
        assert hasattr(spec, "syswarden_spec"), spec.__name__
