"""The plugin manager: built-ins, a plugin from entry-point metadata, one from a config path,
disabled plugins, and the field registry they declare."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from syswarden.core.config import load_config, rules_paths
from syswarden.core.errors import PluginError
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import BUILTIN_PLUGINS, make_plugin_manager
from syswarden.core.protocols import PluginContext

PLUGIN_SOURCE = textwrap.dedent('''
    from syswarden.core.fields import Field, FieldType, define
    from syswarden.core.hookspecs import hookimpl

    def _answer(evt):
        return 42

    FIELDS = define("{name}", [Field("{name}.answer", FieldType.UINT64, "Always 42", _answer)])

    class Out:
        name = "{name}-out"
        async def run(self, alerts, *, task_status):
            task_status.started()

    @hookimpl
    def syswarden_fields():
        return FIELDS

    @hookimpl
    def syswarden_make_outputs(ctx):
        return Out()
''')


def outputs_of(plugins) -> list[str]:
    config = load_config(None, (), plugins.schemas())
    ctx = PluginContext(config, Metrics(), plugins.fields())
    return [o.name for o in plugins.make("output", ctx)]


@pytest.fixture
def entry_point_plugin(tmp_path, monkeypatch):
    """A real installed distribution (a dist-info on sys.path) with a `syswarden` entry point."""
    (tmp_path / "sw_ep_plugin.py").write_text(PLUGIN_SOURCE.format(name="epplug"))
    info = tmp_path / "sw_ep_plugin-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sw-ep-plugin\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text("[syswarden]\nepplug = sw_ep_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def test_builtins_are_registered_in_their_fixed_order():
    plugins = make_plugin_manager({})
    names = [r.name for r in plugins.records if r.origin == "built-in"]
    assert names == [name for name, _, _ in BUILTIN_PLUGINS]
    assert names == ["ebpf", "replay", "process", "docker", "rules",
                     "stdout", "file", "syslog", "program", "webhook"]


def test_a_plugin_from_entry_point_metadata_is_found(entry_point_plugin):
    plugins = make_plugin_manager({})
    record = next(r for r in plugins.records if r.name == "epplug")
    assert record.origin == "entry point (sw-ep-plugin 1.2.3)"
    assert record.kinds == ["output"]
    assert plugins.fields().get("epplug.answer") is not None
    assert outputs_of(plugins)[-1] == "epplug-out"


def test_a_plugin_from_a_config_path_is_loaded(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN_SOURCE.format(name="pathplug"))
    plugins = make_plugin_manager({"plugins": [str(path)]})
    record = next(r for r in plugins.records if r.name == "my_plugin")
    assert record.origin == "config path" and record.kinds == ["output"]
    assert "pathplug-out" in outputs_of(plugins)


def test_a_plugin_from_a_module_path_is_loaded(tmp_path, monkeypatch):
    (tmp_path / "dotted_plugin.py").write_text(PLUGIN_SOURCE.format(name="dotplug"))
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins = make_plugin_manager({"plugins": [{"name": "dotted", "module": "dotted_plugin"}]})
    assert "dotted" in [r.name for r in plugins.records]


def test_a_disabled_plugin_builds_nothing_but_its_fields_still_parse(tmp_path):
    path = tmp_path / "my_plugin.py"
    path.write_text(PLUGIN_SOURCE.format(name="offplug"))
    plugins = make_plugin_manager({"plugins": [str(path)], "disabled_plugins": ["my_plugin"]})
    record = next(r for r in plugins.records if r.name == "my_plugin")
    assert record.disabled and record.status == "disabled"
    assert "offplug-out" not in outputs_of(plugins)
    assert plugins.fields().get("offplug.answer") is not None


def test_a_missing_plugin_path_is_a_plugin_error(tmp_path):
    with pytest.raises(PluginError, match="plugin file not found"):
        make_plugin_manager({"plugins": [str(tmp_path / "nope.py")]})


def test_a_plugin_with_an_unknown_hook_is_refused(tmp_path):
    path = tmp_path / "bad_plugin.py"
    path.write_text("from syswarden.core.hookspecs import hookimpl\n"
                    "@hookimpl\ndef syswarden_make_widgets(ctx):\n    return None\n")
    with pytest.raises(PluginError, match="unknown hook"):
        make_plugin_manager({"plugins": [str(path)]})


def test_falco_shared_library_plugins_are_skipped_with_a_warning(caplog, tmp_path):
    plugins = make_plugin_manager({"plugins": [{"name": "k8saudit",
                                                "library_path": "libk8saudit.so"}]})
    assert "k8saudit" not in [r.name for r in plugins.records]
    # the config honours Falco's plugin entries: the warning comes once the rules are known
    path = tmp_path / "falco.yaml"
    path.write_text("plugins:\n  - name: k8saudit\n    library_path: libk8saudit.so\n")
    config = load_config(str(path), (), plugins.schemas())
    rules_paths(config)
    assert "Falco shared-library plugins are not supported" in caplog.text


def test_list_plugins_shows_builtins_and_an_entry_point_plugin(entry_point_plugin):
    env_path = f"{entry_point_plugin}"
    out = subprocess.run([sys.executable, "-m", "syswarden.core.cli", "--list-plugins"],
                         capture_output=True, text=True, env={"PYTHONPATH": env_path,
                                                              "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].split() == ["NAME", "KIND", "ORIGIN", "STATUS"]
    for name, kind, _ in BUILTIN_PLUGINS:
        assert any(line.split()[:3] == [name, kind, "built-in"] for line in lines), name
    assert any(line.startswith("epplug") and "entry point (sw-ep-plugin 1.2.3)" in line
               for line in lines)
