"""docs/config.md is generated from the schemas: it must be current."""

from __future__ import annotations

import pathlib

from syswarden.core.config_doc import render

DOC = pathlib.Path(__file__).resolve().parents[2] / "docs" / "config.md"


def test_docs_config_md_is_current():
    assert DOC.read_text() == render(), \
        "docs/config.md is stale: python -m syswarden.core.config_doc > docs/config.md"


def test_every_key_of_the_seed_falco_yaml_is_documented(compat):
    import yaml
    seed = yaml.safe_load((compat / "seed-rules" / "falco.yaml").read_text())
    text = DOC.read_text()
    for key in seed:
        assert f"`{key}" in text, key
