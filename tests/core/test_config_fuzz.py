"""The config loader fuzzed: whatever the file holds, it loads or raises the project's own error.

Random bytes, random YAML-ish text and random nested structures dumped to YAML (with the real
keys, so values reach the schema checks and the plugins' own validation) go through what the
CLI runs: :func:`load_config` then every plugin's ``syswarden_validate_config``.
"""

from __future__ import annotations

import math

import yaml
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from syswarden.core.config import Section, load_config
from syswarden.core.errors import SyswardenError
from syswarden.core.plugins import make_plugin_manager

PLUGINS = make_plugin_manager({})
SCHEMAS = PLUGINS.schemas()
FUZZ = settings(max_examples=120, deadline=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


def _names(sections: dict) -> list[str]:
    out: set[str] = set()
    for section in sections.values():
        section = section.values or section if isinstance(section, Section) else section
        for name, key in section.keys.items():
            out.add(name)
            if isinstance(key.type, Section):
                out |= set(_names({name: key.type}))
    return sorted(out)


KEYS = sorted(set(_names(SCHEMAS)) | set(SCHEMAS))


def _load(path) -> None:
    try:
        config = load_config(str(path), (), SCHEMAS)
        PLUGINS.validate_config(config)
    except SyswardenError:
        pass


def _write(tmp_path_factory, data: bytes):
    path = tmp_path_factory.mktemp("fuzz") / "syswarden.yaml"
    path.write_bytes(data)
    return path


@FUZZ
@given(data=st.binary(max_size=400))
def test_random_bytes(tmp_path_factory, data):
    _load(_write(tmp_path_factory, data))


TOKENS = (list("[]{}:,-&*!|>'\"#%@ .0123456789eE+_ax\xff\u2028")
          + [".nan", "-.inf", "9" * 4400, "&a ", "*a", "<<: ", "!!int ", "!!binary ",
             "!!timestamp ", "2001-13-45", "udp://[::1", "tcp://h:99999", "[", "{", "- "])
LINE = st.tuples(st.sampled_from(["", "  ", "    ", "- ", "  - "]),
                 st.sampled_from(KEYS) | st.sampled_from(TOKENS),
                 st.sampled_from([": ", ":", " ", ""]),
                 st.lists(st.sampled_from(TOKENS), max_size=4).map("".join)).map("".join)
YAMLISH = st.lists(LINE, max_size=12).map("\n".join)


@FUZZ
@given(text=YAMLISH)
@example(text="ebpf:\n  max_args: " + "9" * 4400)
@example(text="plugins: &a [*a]")
@example(text="log_level: 2001-13-45")
@example(text="log_level: !!int ''")
@example(text="log_level: !!bool maybe")
@example(text="log_level: !!timestamp now")
@example(text="plugins: " + "[" * 3000)
def test_random_yamlish_text(tmp_path_factory, text):
    _load(_write(tmp_path_factory, text.encode()))


SCALARS = (st.none() | st.booleans() | st.integers() | st.integers(-10 ** 60, 10 ** 60)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=20)
           | st.sampled_from(["udp://[::1", "udp://127.0.0.1:99999999", "tcp://h:0", "{{ x }}",
                              "{{ ''.__class__ }}", "jira", "template", "redmine", "-1"]))
TREES = st.recursive(SCALARS, lambda children: st.lists(children, max_size=4)
                     | st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=6), children,
                                       max_size=5), max_leaves=25)


@FUZZ
@given(tree=st.dictionaries(st.sampled_from(KEYS), TREES, max_size=6))
def test_random_structures_dumped_to_yaml(tmp_path_factory, tree):
    assert all(isinstance(k, str) for k in tree)
    text = yaml.safe_dump(tree, allow_unicode=True)
    _load(_write(tmp_path_factory, text.encode("utf-8", "surrogatepass")))


def test_the_fuzz_reaches_the_schema_checks(tmp_path):
    """A control: a structure of the kind generated above does reach a value check."""
    path = tmp_path / "syswarden.yaml"
    path.write_text(yaml.safe_dump({"outputs": {"rate": math.nan}}))
    try:
        load_config(str(path), (), SCHEMAS)
    except SyswardenError as exc:
        assert "finite" in exc.message
    else:
        raise AssertionError("NaN accepted")
