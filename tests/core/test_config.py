"""Config loading: good files, each kind of bad file, overrides."""

from __future__ import annotations

import pytest

from syswarden.core.config import Key, Section, load_config, parse_override
from syswarden.core.errors import ConfigError
from syswarden.core.plugins import make_plugin_manager

OUTPUTS = {"stdout_output": Section({"enabled": Key(bool, True)}),
           "file_output": Section({"enabled": Key(bool, False), "keep_alive": Key(bool, False),
                                   "filename": Key(str, "")})}


def write(tmp_path, text: str) -> str:
    path = tmp_path / "syswarden.yaml"
    path.write_text(text)
    return str(path)


def test_the_default_config_loads_with_the_builtin_plugins():
    plugins = make_plugin_manager({})
    config = load_config(None, (), plugins.schemas())
    assert config["json_output"] is False
    assert config["pipeline"]["batch_size"] == 256
    assert config["stdout_output"]["enabled"] is True


def test_the_seed_falco_yaml_loads_unmodified(compat):
    plugins = make_plugin_manager({})
    config = load_config(str(compat / "seed-rules" / "falco.yaml"), (), plugins.schemas())
    assert config["rules_file"] == ["/etc/falco/falco_rules.yaml"]
    assert config["file_output"] == {**config["file_output"], "enabled": True,
                                     "filename": "/var/log/falco_events.log"}
    assert config["outputs"]["rate"] == 1 and config["outputs"]["max_burst"] == 1000


def test_a_mistyped_key_is_located_with_a_suggestion(tmp_path):
    path = write(tmp_path, "json_output: false\n\nstdout_ouptut:\n  enabled: true\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, (), OUTPUTS)
    err = info.value
    assert err.location.file == path and err.location.line == 3
    assert "unknown config key 'stdout_ouptut'" in str(err)
    assert err.hint == "did you mean stdout_output?"


def test_a_mistyped_nested_key_names_its_path(tmp_path):
    path = write(tmp_path, "file_output:\n  enabled: true\n  filname: /tmp/x\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, (), OUTPUTS)
    assert info.value.location.line == 3
    assert "file_output.filname" in str(info.value)
    assert info.value.hint == "did you mean filename?"


@pytest.mark.parametrize("text, line, expected", [
    ("json_output: maybe\n", 1, "json_output must be a boolean (true/false), not 'maybe'"),
    ("outputs:\n  rate: fast\n", 2, "outputs.rate must be a number, not 'fast'"),
    ("outputs:\n  max_burst: 1.5\n", 2, "outputs.max_burst must be an integer"),
    ("rules_file: 3\n", 1, "rules_file must be a string or a list"),
    ("priority: loud\n", 1, "priority must be one of"),
    ("pipeline: 3\n", 1, "pipeline must be a mapping"),
])
def test_a_wrong_type_names_the_expected_type(tmp_path, text, line, expected):
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path, (), OUTPUTS)
    assert expected in str(info.value)
    assert info.value.location.line == line


def test_bad_yaml_is_reported_with_its_line(tmp_path):
    path = write(tmp_path, "json_output: true\noutputs:\n  rate: [1, 2\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, (), OUTPUTS)
    assert "invalid YAML" in str(info.value)
    assert info.value.location.file == path and info.value.location.line >= 3


def test_a_missing_file_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="cannot read config file"):
        load_config(str(tmp_path / "nope.yaml"), (), OUTPUTS)


def test_overrides_are_typed_like_yaml_scalars(tmp_path):
    path = write(tmp_path, "json_output: false\n")
    config = load_config(path, ("json_output=true", "outputs.rate=2", "file_output.filename=/x",
                                "rules_file=[a.yaml, b.yaml]"), OUTPUTS)
    assert config["json_output"] is True
    assert config["outputs"]["rate"] == 2
    assert config["file_output"]["filename"] == "/x"
    assert config["rules_file"] == ["a.yaml", "b.yaml"]


@pytest.mark.parametrize("override, message", [
    ("json_outptu=true", "unknown config key 'json_outptu'"),
    ("json_output=sure", "json_output must be a boolean"),
    ("novalue", "is not key.path=value"),
])
def test_bad_overrides_are_errors(tmp_path, override, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, "{}\n"), (override,), OUTPUTS)


def test_falco_keys_without_meaning_here_are_accepted_with_a_warning(tmp_path, caplog):
    path = write(tmp_path, "grpc:\n  enabled: false\njson_output: true\n")
    config = load_config(path, (), OUTPUTS)
    assert config["json_output"] is True
    assert "'grpc' has no meaning in syswarden" in caplog.text


def test_parse_override_splits_the_path():
    assert parse_override("a.b.c= 5") == (["a", "b", "c"], 5)


def test_a_values_section_validates_each_named_entry_with_its_line(tmp_path):
    hooks = Section(values=Section({"url": Key(str, ""), "enabled": Key(bool, True)}))
    path = write(tmp_path, "hooks:\n  ticketing:\n    url: http://x\n  chat:\n    ulr: http://y\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, (), {"hooks": hooks})
    assert "hooks.chat.ulr" in str(info.value) and info.value.location.line == 5
    assert info.value.hint == "did you mean url?"
    good = write(tmp_path, "hooks:\n  ticketing:\n    url: http://x\n")
    assert load_config(good, (), {"hooks": hooks})["hooks"] == {
        "ticketing": {"url": "http://x", "enabled": True}}


def test_a_number_below_its_minimum_is_located(tmp_path):
    path = write(tmp_path, "pipeline:\n  batch_size: 0\n")
    with pytest.raises(ConfigError) as info:
        load_config(path, (), OUTPUTS)
    assert "pipeline.batch_size must be between 1 and 65536, not 0" in str(info.value)
    assert info.value.location.line == 2
