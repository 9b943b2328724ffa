"""The plugin's hooks: its config section, its fields, its factory (through the real plugin
manager and config loader)."""

from __future__ import annotations

import pytest

from syswarden.core.config import load_config
from syswarden.core.errors import ConfigError
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.protocols import PluginContext
from syswarden.plugins.enrichers import docker as plugin
from syswarden.plugins.enrichers.docker.enricher import DockerEnricher


def _config(tmp_path, text: str) -> dict:
    path = tmp_path / "syswarden.yaml"
    path.write_text(text)
    return load_config(str(path), schemas=make_plugin_manager().schemas())


def test_config_section_defaults_and_values(tmp_path) -> None:
    cfg = _config(tmp_path, "docker:\n  socket: /run/podman/podman.sock\n  lookup_wait: 0.5\n")
    assert cfg["docker"]["socket"] == "/run/podman/podman.sock"
    assert cfg["docker"]["lookup_wait"] == 0.5 and cfg["docker"]["enabled"] is True
    enricher = plugin.syswarden_make_enrichers(PluginContext(cfg, Metrics(), None))
    assert isinstance(enricher, DockerEnricher)
    assert enricher.socket == "/run/podman/podman.sock" and enricher.cache.lookup_wait == 0.5


def test_disabled_makes_no_enricher(tmp_path) -> None:
    cfg = _config(tmp_path, "docker:\n  enabled: false\n")
    assert plugin.syswarden_make_enrichers(PluginContext(cfg, Metrics(), None)) is None


def test_no_enricher_for_a_replay(tmp_path) -> None:
    cfg = _config(tmp_path, "")
    ctx = PluginContext(cfg, Metrics(), None, replay_file=str(tmp_path / "capture.scap"))
    assert plugin.syswarden_make_enrichers(ctx) is None


def test_bad_config_is_located(tmp_path) -> None:
    with pytest.raises(ConfigError, match="docker.sockets"):
        _config(tmp_path, "docker:\n  sockets: /x\n")
    with pytest.raises(ConfigError, match="docker.lookup_wait must be between 0 and 60, not -1"):
        _config(tmp_path, "docker:\n  lookup_wait: -1\n")


def test_fields_registered_by_the_plugin_manager() -> None:
    reg = make_plugin_manager().fields()
    for name in ("container.id", "container.mount.dest", "container.info", "k8s.ns.name"):
        assert reg.get(name) is not None and reg.get(name).provider == "docker"
