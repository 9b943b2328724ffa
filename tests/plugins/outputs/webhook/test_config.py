"""Output config through the real loader: Falco's falco.yaml as is; webhook_outputs entries
validated with file and line; one output object per enabled webhook."""

from __future__ import annotations

import textwrap

import pytest

from syswarden.core.config import load_config, peek_plugin_keys
from syswarden.core.errors import ConfigError
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.protocols import PluginContext
from syswarden.testing import refused_at_start

OUTPUT_PLUGINS = ("stdout", "file", "syslog", "program", "webhook")


def outputs_for(path: str):
    plugins = make_plugin_manager(peek_plugin_keys(path))
    config = load_config(path, (), plugins.schemas())
    errors = plugins.validate_config(config)
    if errors:
        raise ConfigError("; ".join(errors))
    ctx = PluginContext(config, Metrics(), plugins.fields())
    made = []
    for name in OUTPUT_PLUGINS:     # only the output plugins: no kernel source is built here
        record = next(r for r in plugins.records if r.name == name)
        made += [o for o in _as_list(record.plugin.syswarden_make_outputs(ctx))]
    return config, made


def _as_list(value):
    return [] if value is None else value if isinstance(value, list) else [value]


def test_the_seed_falco_yaml_loads_unchanged(compat):
    config, outputs = outputs_for(str(compat / "seed-rules" / "falco.yaml"))
    assert [o.name for o in outputs] == ["stdout", "file"]
    assert outputs[1].filename == "/var/log/falco_events.log"
    assert config["program_output"]["program"].startswith("mail -s")
    assert config["http_output"]["enabled"] is False


def test_webhook_outputs_build_one_output_each(tmp_path, monkeypatch):
    monkeypatch.setenv("RM_KEY", "k")
    path = tmp_path / "c.yaml"
    path.write_text(textwrap.dedent(f"""
        stdout_output: {{enabled: false}}
        http_output:
          enabled: true
          url: http://127.0.0.1:2801/falco
          queue_file: {tmp_path}/http.db
        webhook_outputs:
          tickets:
            preset: redmine
            url: http://127.0.0.1:3000
            queue_file: {tmp_path}/t.db
            min_priority: error
            redmine: {{project: ci, api_key: "${{RM_KEY}}"}}
          routing:
            preset: alertmanager
            url: http://127.0.0.1:9093
            queue_file: {tmp_path}/a.db
          later:
            enabled: false
            url: http://127.0.0.1:1
    """))
    _, outputs = outputs_for(str(path))
    assert [o.name for o in outputs] == ["http", "tickets", "routing"]
    tickets = outputs[1]
    assert tickets.preset.name == "redmine" and tickets.dedup_window == 3600
    assert tickets.preset.headers == {"X-Redmine-API-Key": "k"}
    assert tickets.settings.min_priority.label == "Error"


def test_an_unknown_key_in_a_webhook_names_file_and_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("webhook_outputs:\n  tickets:\n    url: http://x\n    retries_max: 3\n")
    with pytest.raises(ConfigError) as info:
        outputs_for(str(path))
    text = str(info.value)
    assert f"{path}:4" in text and "retries_max" in text and "retry_max" in text


def test_a_template_the_sandbox_refuses_is_located_at_load(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("webhook_outputs:\n  tickets:\n    url: http://x\n    preset: template\n"
                    f"    queue_file: {tmp_path / 'q'}\n"
                    "    template:\n      body: '{{ rule.__class__ | tojson }}'\n")
    with pytest.raises(ConfigError) as info:
        outputs_for(str(path))
    assert str(info.value).startswith(f"{path}:7:13 (webhook_outputs.tickets.template.body): "
                                      "webhook 'tickets': template body: the sandbox refuses")
    assert f"{path}:7:" in refused_at_start("-c", str(path))


def test_a_bad_redmine_priority_is_located(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("http_output:\n  enabled: true\n  url: http://x\n  preset: redmine\n"
                    f"  queue_file: {tmp_path / 'q'}\n"
                    "  redmine:\n    project: p\n    priorities:\n      nosuch: 3\n")
    with pytest.raises(ConfigError) as info:
        outputs_for(str(path))
    assert str(info.value).startswith(f"{path}:9:")
    assert "unknown priority 'nosuch'" in str(info.value)


def test_a_webhook_named_like_a_builtin_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("webhook_outputs:\n  file:\n    url: http://x\n")
    with pytest.raises(ConfigError, match="taken by a built-in output"):
        outputs_for(str(path))


def test_a_bad_preset_value_is_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("http_output:\n  enabled: true\n  url: http://x\n  preset: jira\n")
    with pytest.raises(ConfigError, match="preset must be one of"):
        outputs_for(str(path))


def test_max_in_flight_below_one_is_refused_with_its_line(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("webhook_outputs:\n  siem:\n    url: http://x\n    max_in_flight: 0\n")
    with pytest.raises(ConfigError, match=r"c\.yaml:4.*max_in_flight.*between 1 and 256"):
        outputs_for(str(path))


def test_two_webhooks_on_one_queue_file_are_refused(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"webhook_outputs:\n  a: {{url: 'http://x', queue_file: {tmp_path}/q}}\n"
                    f"  b: {{url: 'http://y', queue_file: {tmp_path}/q}}\n")
    with pytest.raises(ConfigError, match="'a' and 'b' use the same queue_file"):
        outputs_for(str(path))


FALCO_OUTPUT_SECTIONS = """
file_output: {enabled: false, keep_alive: false, filename: ./events.txt}
http_output:
  enabled: false
  url: ""
  user_agent: "falcosecurity/falco"
  insecure: false
  ca_cert: ""
  ca_bundle: ""
  ca_path: "/etc/falco/certs/"
  mtls: false
  client_cert: "/etc/falco/certs/client/client.crt"
  client_key: "/etc/falco/certs/client/client.key"
  echo: false
  compress_uploads: false
  keep_alive: false
  max_consecutive_timeouts: 5
program_output: {enabled: false, keep_alive: false, program: "jq '{text: .output}'"}
stdout_output: {enabled: true}
syslog_output: {enabled: false}
"""


def test_falcos_own_output_sections_load(tmp_path):
    path = tmp_path / "falco.yaml"
    path.write_text(FALCO_OUTPUT_SECTIONS)
    config, outputs = outputs_for(str(path))
    assert [o.name for o in outputs] == ["stdout"]
    assert config["http_output"]["user_agent"] == "falcosecurity/falco"


def test_a_missing_ca_cert_fails_at_start(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"http_output: {{enabled: true, url: 'https://x', "
                    f"ca_cert: {tmp_path}/none.pem}}\n")
    with pytest.raises(ConfigError, match="TLS set-up failed"):
        outputs_for(str(path))
