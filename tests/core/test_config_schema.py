"""``--config-schema``: generated from the Section/Key definitions, it accepts exactly the
configs :func:`load_config` accepts (bar what a key's ``check`` refuses, which a schema cannot
say), key by key, so the two cannot drift apart."""

from __future__ import annotations

import json
import pathlib
import subprocess

import jsonschema
import pytest
import yaml
from syswarden.core.config import (
    CORE_SCHEMA,
    ConfigError,
    Key,
    Section,
    default_config_path,
    load_config,
)
from syswarden.core.config_schema import config_schema
from syswarden.core.plugins import make_plugin_manager
from syswarden.testing import SYSWARDEN

SCHEMAS = make_plugin_manager().schemas()
SCHEMA = config_schema(SCHEMAS)
VALIDATOR = jsonschema.Draft7Validator(SCHEMA)
#: keys the loader also checks against other keys or tables (a syscall name, a plugin entry
#: named elsewhere, a file the kind needs): a value may pass the schema and be refused at load
CROSS_CHECKED = {"engine.kind", "load_plugins", "base_syscalls.custom_set"}
SAMPLES = [True, False, 0, 1, -1, 5, 2.5, 70000, 10**8, "x", "info", "ALL", "0600", [], ["a"],
           [1], {}, {"a": 1}, None]


def leaves(section: Section, path: tuple = ()):
    """(path, Key) of every key, a ``values`` section's entries under the name ``entry``."""
    if section.values is not None:
        yield from leaves(section.values, path + ("entry",))
        return
    for name, key in section.keys.items():
        if isinstance(key.type, Section):
            yield path + (name,), key
            yield from leaves(key.type, path + (name,))
        else:
            yield path + (name,), key


def nested(path: tuple, value) -> dict:
    for name in reversed(path):
        value = {name: value}
    return value


def loads(tmp_path, doc) -> bool:
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(doc))
    try:
        load_config(str(path), (), SCHEMAS)
    except ConfigError:
        return False
    return True


def has_check(key: Key) -> bool:
    """Whether a check the schema cannot say applies to the key's value or one inside it."""
    inner = [t for t in (key.type, key.items,
                         *(key.type if isinstance(key.type, tuple) else ()),
                         *(key.items if isinstance(key.items, tuple) else ()))
             if isinstance(t, Section)]
    return key.check is not None or any(
        getattr(t, "check", None) is not None or any(has_check(k) for k in t.keys.values())
        or (t.values is not None and any(has_check(k) for k in t.values.keys.values()))
        for t in inner)


def test_the_schema_is_a_valid_json_schema():
    jsonschema.Draft7Validator.check_schema(SCHEMA)


TOP = Section({**CORE_SCHEMA, **{name: Key(section) for name, section in SCHEMAS.items()}})
KEYS = list(leaves(TOP))


@pytest.mark.parametrize("path, key", KEYS, ids=[".".join(p) for p, _ in KEYS])
def test_the_schema_accepts_what_the_loader_accepts(tmp_path, path, key):
    values = SAMPLES + [key.default] + list(key.choices or ()) + \
        [c.upper() for c in key.choices or ()]
    for value in values:
        doc = nested(path, value)
        loaded, valid = loads(tmp_path, doc), VALIDATOR.is_valid(doc)
        if not has_check(key) and ".".join(path) not in CROSS_CHECKED:
            assert loaded == valid, f"{'.'.join(path)}={value!r}: loader {loaded}, " \
                                    f"schema {valid}"
        else:               # what check refuses, the schema cannot say
            assert valid or not loaded, f"{'.'.join(path)}={value!r}: refused by the schema"


def test_an_unknown_key_is_refused_by_both(tmp_path):
    for doc in ({"no_such_key": 1}, {"outputs": {"rat": 1}}, {"stdout_output": {"x": 1}}):
        assert not loads(tmp_path, doc) and not VALIDATOR.is_valid(doc)


@pytest.mark.parametrize("name", ["default", "seed", "falco 0.44"])
def test_whole_configs_get_the_same_verdict(compat, name):
    path = {"default": default_config_path(),
            "seed": str(compat / "seed-rules" / "falco.yaml"),
            "falco 0.44": str(compat / "falco-config" / "falco.yaml")}[name]
    doc = yaml.safe_load(pathlib.Path(path).read_text())
    try:
        load_config(path, (), SCHEMAS)
        loaded = True
    except ConfigError:
        loaded = False
    assert VALIDATOR.is_valid(doc) == loaded
    if name != "falco 0.44":
        assert loaded


def test_config_schema_flag_prints_it():
    out = subprocess.run([*SYSWARDEN, "--config-schema"], capture_output=True, text=True, check=False,
                         timeout=60)
    assert out.returncode == 0 and json.loads(out.stdout) == json.loads(json.dumps(SCHEMA))
