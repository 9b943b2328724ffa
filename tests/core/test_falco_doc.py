"""docs/falco.md ("Coming from Falco") is generated from the code and covers every key of
Falco 0.44's falco.yaml and every flag of its command line; syswarden takes every such flag,
and docs/cli.md documents every flag syswarden has."""

from __future__ import annotations

import pathlib

import pytest
import yaml
from syswarden.core.cli import build_parser, installed_commands
from syswarden.core.config import ConfigError, load_config
from syswarden.core.falco_doc import FALCO_KEYS, FLAGS, _top_schema, render, status
from syswarden.core.plugins import make_plugin_manager

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"

#: Falco 0.44.1's flags: userspace/falco/app/options.cpp (falcosecurity/falco, tag 0.44.1),
#: options::define, every short and long name.
FALCO_FLAGS = {
    "-h", "--help", "-c", "--config-schema", "--rule-schema", "--disable-source", "--dry-run",
    "--enable-source", "-i", "-L", "-l", "--list", "--list-events", "--list-plugins", "-M",
    "--markdown", "--format", "-N", "-o", "--option", "--plugin-info", "-p", "--print", "-P",
    "--pidfile", "-r", "--support", "-U", "--unbuffered", "-V", "--validate", "-v",
    "--version", "--page-size",
}
#: documented in Falco 0.44.1's falco.yaml, in comments only, with an empty value of their type
FALCO_COMMENTED_KEYS = {"rules": [], "static_fields": {}}


def falco_yaml(compat) -> dict:
    return yaml.safe_load((compat / "falco-config" / "falco.yaml").read_text())


def dotted(mapping: dict, path: tuple = ()):
    for key, value in mapping.items():
        yield ".".join(path + (key,))
        if isinstance(value, dict):
            yield from dotted(value, path + (key,))


def test_docs_falco_md_is_current():
    assert (DOCS / "falco.md").read_text() == render(), \
        "docs/falco.md is stale: python -m syswarden.core.falco_doc > docs/falco.md"


def test_every_key_of_falcos_falco_yaml_is_listed(compat):
    assert set(FALCO_KEYS) == set(dotted(falco_yaml(compat))) | set(FALCO_COMMENTED_KEYS)
    text = (DOCS / "falco.md").read_text()
    for key in FALCO_KEYS:
        assert f"| `{key}` | " in text, key


def test_every_falco_flag_is_listed_and_taken():
    listed = {name.split(" ")[0] for flag, _ in FLAGS for name in flag.split(", ")}
    assert listed == FALCO_FLAGS
    parser = build_parser(installed_commands())
    taken = {s for action in parser._actions for s in action.option_strings}
    assert FALCO_FLAGS <= taken, sorted(FALCO_FLAGS - taken)


def test_every_syswarden_flag_is_in_docs_cli_md():
    text = (DOCS / "cli.md").read_text()
    parser = build_parser(installed_commands())
    for action in parser._actions:
        for flag in action.option_strings:
            assert f"`{flag}" in text or f", `{flag}" in text, flag


@pytest.mark.parametrize("key", sorted({k.split(".")[0] for k in FALCO_KEYS}))
def test_a_keys_status_is_what_the_loader_does(compat, tmp_path, key):
    """Falco's own value of each key (its whole mapping) loads exactly when the page says
    neither the key nor one under it is refused."""
    value = falco_yaml(compat).get(key, FALCO_COMMENTED_KEYS.get(key))
    path = tmp_path / "falco-key.yaml"
    path.write_text(yaml.safe_dump({key: value}))
    try:
        load_config(str(path), (), make_plugin_manager().schemas())
        loaded = True
    except ConfigError:
        loaded = False
    top = _top_schema()
    said = {k: status(k, top) for k in dotted({key: value})}
    refused = [k for k, text in said.items() if text.startswith("**refused**")]
    assert loaded == (not refused), said
