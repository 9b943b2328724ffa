"""The plugin's hooks: its config section, its fields, its factory (through the real plugin
manager and config loader)."""

from __future__ import annotations

import logging

import pytest

from syswarden.core.config import load_config
from syswarden.core.errors import ConfigError
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.protocols import PluginContext
from syswarden.plugins.enrichers import containers as plugin
from syswarden.plugins.enrichers.containers.engine import (
    ENGINE_NAMES, EngineOptions, engine_class, present_sockets,
)
from syswarden.plugins.enrichers.containers.engines.docker import PodmanEngine
from syswarden.plugins.enrichers.containers.enricher import ContainerEnricher


def _config(tmp_path, text: str) -> dict:
    path = tmp_path / "syswarden.yaml"
    path.write_text(text)
    return load_config(str(path), schemas=make_plugin_manager().schemas())


def test_config_section_defaults_and_values(tmp_path) -> None:
    cfg = _config(tmp_path, "container:\n  lookup_wait: 0.5\n  engines:\n    podman:\n"
                  "      sockets: [/run/podman/podman.sock]\n    docker: {enabled: false}\n")
    section = cfg["container"]
    assert section["engines"]["podman"]["sockets"] == ["/run/podman/podman.sock"]
    assert section["lookup_wait"] == 0.5 and section["enabled"] is True
    assert section["engines"]["docker"] == {"enabled": False, "sockets": []}
    enricher = plugin.syswarden_make_enrichers(PluginContext(cfg, Metrics(), None))
    assert isinstance(enricher, ContainerEnricher)
    [engine] = enricher.engines                  # a configured socket: kept, even if missing
    assert isinstance(engine, PodmanEngine) and engine.socket == "/run/podman/podman.sock"
    assert enricher.cache.lookup_wait == 0.5


def test_usual_sockets_absent_turn_engines_off(tmp_path, caplog) -> None:
    """No socket configured: an engine is on only where one of its usual sockets exists, and
    each absent engine says so in one line."""
    caplog.set_level(logging.INFO, logger="syswarden.container")
    cfg = _config(tmp_path, "")
    engines = plugin.make_engines(cfg["container"], 1.0)
    for e in engines:
        assert present_sockets([e.socket]) == [e.socket]
    on = {e.name for e in engines}
    for name in ENGINE_NAMES:
        assert (name in on) == bool(present_sockets(engine_class(name).default_sockets))
    off = [r.getMessage() for r in caplog.records if "engine off" in r.getMessage()]
    assert len(off) == len(ENGINE_NAMES) - len(on)


def test_disabled_makes_no_enricher(tmp_path) -> None:
    cfg = _config(tmp_path, "container:\n  enabled: false\n")
    assert plugin.syswarden_make_enrichers(PluginContext(cfg, Metrics(), None)) is None


def test_no_enricher_for_a_replay(tmp_path) -> None:
    cfg = _config(tmp_path, "")
    ctx = PluginContext(cfg, Metrics(), None, replay_file=str(tmp_path / "capture.scap"))
    assert plugin.syswarden_make_enrichers(ctx) is None


def test_bad_config_is_located(tmp_path) -> None:
    with pytest.raises(ConfigError, match="container.socket"):
        _config(tmp_path, "container:\n  socket: /x\n")
    with pytest.raises(ConfigError, match="container.engines.podman.sockets must be a list"):
        _config(tmp_path, "container:\n  engines:\n    podman:\n      sockets: /x\n")
    with pytest.raises(ConfigError, match="container.engines.crio"):
        _config(tmp_path, "container:\n  engines:\n    crio: {enabled: true}\n")
    with pytest.raises(ConfigError,
                       match="container.lookup_wait must be between 0 and 60, not -1"):
        _config(tmp_path, "container:\n  lookup_wait: -1\n")


def test_fields_registered_by_the_plugin_manager() -> None:
    reg = make_plugin_manager().fields()
    for name in ("container.id", "container.mount.dest", "container.info", "k8s.ns.name"):
        assert reg.get(name) is not None and reg.get(name).provider == "container"


def test_containerd_leaves_pods_to_the_cri_on_a_shared_socket(tmp_path) -> None:
    cfg = _config(tmp_path, "container:\n  engines:\n    docker: {enabled: false}\n"
                  "    podman: {enabled: false}\n"
                  "    cri: {sockets: [/run/containerd/containerd.sock]}\n"
                  "    containerd: {sockets: [/run/containerd/containerd.sock, /run/k3s.sock]}\n")
    engines = plugin.make_engines(cfg["container"], 1.0)
    assert [(e.name, e.socket) for e in engines] == [
        ("cri", "/run/containerd/containerd.sock"),
        ("containerd", "/run/containerd/containerd.sock"), ("containerd", "/run/k3s.sock")]
    assert [e.cri_managed for e in engines[1:]] == [False, True]


def test_usual_sockets_found_once(tmp_path) -> None:
    """Real sockets: a glob finds them, a second path to the same socket is not a second
    engine, a regular file is not a socket."""
    import socket as sk

    socks = []
    for user in ("1000", "1001"):
        d = tmp_path / "user" / user
        d.mkdir(parents=True)
        s = sk.socket(sk.AF_UNIX)
        s.bind(str(d / "podman.sock"))
        socks.append(s)
    (tmp_path / "link").symlink_to(tmp_path / "user" / "1000")
    (tmp_path / "file.sock").write_text("")
    try:
        found = present_sockets([str(tmp_path / "user/*/podman.sock"),
                                 str(tmp_path / "link/podman.sock"), str(tmp_path / "file.sock"),
                                 str(tmp_path / "absent.sock")])
        assert found == [str(tmp_path / "user/1000/podman.sock"),
                         str(tmp_path / "user/1001/podman.sock")]
    finally:
        for s in socks:
            s.close()


def test_falco_plugin_keys_reach_every_engine(tmp_path) -> None:
    """Falco's ``label_max_len``, ``with_size`` and ``hooks``, in this section or in the Falco
    container plugin's ``init_config``, are what every engine is made with."""
    cfg = _config(tmp_path, "container:\n  label_max_len: 12\n  with_size: true\n"
                  "  hooks: [start]\n  engines:\n    podman: {sockets: [/x/podman.sock]}\n"
                  "    docker: {sockets: [/x/docker.sock]}\n"
                  "    cri: {sockets: [/x/cri.sock]}\n    containerd: {sockets: [/x/c.sock]}\n")
    engines = plugin.make_engines(cfg["container"], 1.0)
    assert len(engines) == 4
    for e in engines:
        assert e.options == EngineOptions(label_max_len=12, with_size=True,
                                          hooks=frozenset({"start"}))
        assert e.hooked("start") and not e.hooked("create")
    defaults = plugin.engine_options(_config(tmp_path, "")["container"])
    assert defaults == EngineOptions(100, False, frozenset({"create", "start"}))
    falco = tmp_path / "falco.yaml"
    falco.write_text("plugins:\n  - name: container\n    library_path: libcontainer.so\n"
                     "    init_config:\n      label_max_len: 7\n      hooks: []\n"
                     "load_plugins: [container]\n")
    section = load_config(str(falco), schemas=make_plugin_manager().schemas())["container"]
    assert plugin.engine_options(section) == EngineOptions(7, False, frozenset())


@pytest.mark.parametrize("init, message", [
    ("hooks: [create, stop]", "init_config.hooks): ['stop']: the hooks are create, start"),
    ("hooks: start", "init_config.hooks): 'start'"),
    ("label_max_len: -1", "init_config.label_max_len): -1 is not a length"),
    ("label_max_len: long", "init_config.label_max_len): 'long' is not a length"),
    ("with_size: 1", "init_config.with_size): 1 is not true or false"),
])
def test_falco_plugin_keys_refused_with_one_clear_error(tmp_path, init, message) -> None:
    """A value Falco's container plugin would refuse (its schema) stops syswarden too: exit 2,
    one error naming the key and what it may be."""
    import subprocess

    from syswarden.testing import SYSWARDEN

    falco = tmp_path / "falco.yaml"
    falco.write_text("plugins:\n  - name: container\n    library_path: libcontainer.so\n"
                     f"    init_config:\n      {init}\nload_plugins: [container]\n"
                     "rules_files: []\n")
    out = subprocess.run([*SYSWARDEN, "-c", str(falco), "--dry-run"],
                         capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 2, out.stderr
    assert message in out.stderr
    # the same in syswarden's own section: the schema's located error
    with pytest.raises(ConfigError, match="container.hooks") as info:
        _config(tmp_path, "container:\n  hooks: [create, stop]\n")
    assert info.value.location.line == 2
