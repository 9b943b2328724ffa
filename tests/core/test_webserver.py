"""The webserver of a running agent: a real Prometheus scrapes ``/metrics``; ``/healthz`` tells a
stuck stage from a moving one; the metrics snapshot; bad webserver settings refused (exit 2).

One agent (live eBPF source, the default rules) and one Prometheus (Debian's, its own config and
data directory on 127.0.0.1) serve the whole module.  The agent also loads ``gate.py``, an
enricher that holds its stage while a file exists: the stuck stage the health check must see (a
runtime that stops answering does this to the Docker enricher, which cannot be caused here
without stopping the machine's dockerd under the other tests).
"""

from __future__ import annotations

import json
import shutil
import socket
import ssl
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from syswarden.core.exposition import FAMILIES
from syswarden.core.webserver import parse_interval
from syswarden.testing import SYSWARDEN, running_agent

RULE = "Sensitive file read by an untrusted program"

GATE_PLUGIN = '''
import os
import trio
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Enricher

CLOSED = os.path.join(os.path.dirname(os.path.abspath(__file__)), "closed")


class Gate(Enricher):
    """Holds the enrich stage while the file ``closed`` exists beside this module."""

    name = "gate"

    def enrich(self, event):
        pass

    async def prepare(self, batch):
        while os.path.exists(CLOSED):
            await trio.sleep(0.05)


@hookimpl
def syswarden_make_enrichers(ctx):
    return Gate()
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def eventually(check, timeout: float = 20.0, every: float = 0.3):
    """``check()``'s first true value within ``timeout`` seconds; AssertionError otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not true after {timeout}s: {check.__doc__ or check}")
        time.sleep(every)


class Prometheus:
    """Debian's prometheus on 127.0.0.1, scraping ``target`` every second."""

    def __init__(self, directory: Path, target: str) -> None:
        self.port = free_port()
        conf = directory / "prometheus.yml"
        conf.write_text("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
                        "scrape_configs:\n  - job_name: syswarden\n"
                        f"    static_configs:\n      - targets: ['{target}']\n")
        self.log = open(directory / "prometheus.log", "w")
        self.proc = subprocess.Popen(
            ["prometheus", f"--config.file={conf}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT)
        self.url = f"http://127.0.0.1:{self.port}"

        def ready():
            assert self.proc.poll() is None, (directory / "prometheus.log").read_text()[-2000:]
            try:
                return httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200
            except httpx.HTTPError:
                return False
        eventually(ready, 30)

    def query(self, expr: str) -> list[dict]:
        r = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5)
        r.raise_for_status()
        return r.json()["data"]["result"]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """(agent, its base URL, Prometheus, the directory of the alerts and the gate)."""
    if shutil.which("prometheus") is None:
        pytest.fail("prometheus is not installed: run scripts/setup.sh")
    d = tmp_path_factory.mktemp("webserver")
    (d / "gate.py").write_text(GATE_PLUGIN)
    port = free_port()
    config = d / "syswarden.yaml"
    config.write_text(f"""\
json_output: true
stdout_output: {{enabled: false}}
file_output: {{enabled: true, filename: {d / 'alerts.json'}}}
plugins: [{d / 'gate.py'}]
webserver:
  enabled: true
  listen_address: 127.0.0.1
  listen_port: {port}
  prometheus_metrics_enabled: true
  healthz_stall_timeout: 1.5
metrics:
  enabled: true
  interval: 1s
  output_rule: true
  output_file: {d / 'metrics.jsonl'}
""")
    prom = Prometheus(d, f"127.0.0.1:{port}")
    try:
        with running_agent("-c", str(config)) as agent:
            yield agent, f"http://127.0.0.1:{port}", prom, d
    finally:
        prom.stop()


def value(result: list[dict]) -> float:
    return float(result[0]["value"][1])


@pytest.mark.root
def test_prometheus_scrapes_the_rule_match_of_an_alert_just_raised(served, tmp_path):
    agent, _, prom, d = served
    reader = tmp_path / "sw-untrusted-reader"
    shutil.copy2(shutil.which("cat"), reader)
    subprocess.run([str(reader), "/etc/shadow"], stdout=subprocess.DEVNULL, check=True)
    agent.wait_for_line(str(d / "alerts.json"), RULE)

    def matched():
        """Prometheus has the rule's match counter"""
        return prom.query(f'falcosecurity_falco_rules_matches_total{{rule_name="{RULE}"}}')
    series = eventually(matched)
    labels = series[0]["metric"]
    assert value(series) >= 1
    assert labels["priority"] == "4" and labels["source"] == "syscall"      # Warning, as Falco
    assert labels["tag_mitre_credential_access"] == "true"
    assert labels["tag_T1003_008"] == "true"
    assert labels["job"] == "syswarden"


@pytest.mark.root
def test_prometheus_sees_the_event_counter_grow_and_the_drop_counters(served):
    _, _, prom, _ = served

    def events():
        """Prometheus has falcosecurity_scap_n_evts_total"""
        return prom.query("falcosecurity_scap_n_evts_total")
    first = value(eventually(events))
    subprocess.run(["sh", "-c", "for i in 1 2 3 4 5; do /bin/true; done"], check=True)

    def grown():
        """falcosecurity_scap_n_evts_total grew"""
        return value(prom.query("falcosecurity_scap_n_evts_total")) > first
    eventually(grown)
    for family in ("falcosecurity_scap_n_drops_total",
                   "falcosecurity_falco_outputs_queue_num_drops_total",
                   "falcosecurity_scap_n_drops_full_threadtable_total"):
        result = prom.query(family)
        assert result and value(result) >= 0, family
    version = prom.query("falcosecurity_falco_version_info")
    assert version and version[0]["metric"]["version"]
    rules = prom.query("falcosecurity_falco_sha256_rules_files_info")
    assert rules[0]["metric"]["file_name"] == "default_rules.yaml"
    assert len(rules[0]["metric"]["sha256"]) == 64
    assert prom.query('syswarden_stage_queue_depth{stage="enrich"}')
    age = prom.query('syswarden_stage_event_age_seconds{stage="filter"}')
    assert age and 0 <= value(age) < 60          # live events: judged within a minute


@pytest.mark.root
def test_every_family_served_is_declared_and_falcos_are_all_there(served):
    _, url, _, _ = served
    text = httpx.get(f"{url}/metrics", timeout=5).text
    families = {line.split()[2].removesuffix("_total") for line in text.splitlines()
                if line.startswith("# TYPE")}
    served_falco = {f for f in families if f.startswith("falcosecurity_")}
    declared = {f.removesuffix("_total") for f in FAMILIES}
    assert served_falco <= declared
    assert not {f for f in families if not f.startswith(("falcosecurity_", "syswarden_"))}
    for always in ("falcosecurity_scap_n_evts", "falcosecurity_scap_n_drops",
                   "falcosecurity_falco_outputs_queue_num_drops",
                   "falcosecurity_falco_memory_rss_bytes", "falcosecurity_falco_cpu_usage_ratio"):
        assert always in families


def test_every_metric_family_is_in_the_operations_doc():
    doc = (Path(__file__).parents[2] / "docs" / "operations.md").read_text()
    assert [f for f in FAMILIES if f"`{f}`" not in doc] == []


@pytest.mark.root
def test_healthz_answers_503_naming_a_stage_that_stops_taking_events_then_200(served):
    _, url, _, d = served
    r = httpx.get(f"{url}/healthz", timeout=5)
    assert (r.status_code, r.json()) == (200, {"status": "ok"})
    gate = d / "closed"
    gate.touch()
    try:
        def stuck():
            """/healthz answers 503"""
            subprocess.run(["sh", "-c", "for i in 1 2 3 4 5 6 7 8; do /bin/true; done"],
                           check=True)
            r = httpx.get(f"{url}/healthz", timeout=5)
            return r if r.status_code == 503 else None
        r = eventually(stuck, 20)
        body = r.json()
        assert body["status"] == "unhealthy"
        problem = body["problems"][0]
        assert problem["stage"] == "enrich" and problem["reason"] == "not taking events"
        assert problem["waiting"] > 0
    finally:
        gate.unlink()

    def healthy():
        """/healthz answers 200 again"""
        return httpx.get(f"{url}/healthz", timeout=5).status_code == 200
    eventually(healthy, 20)


@pytest.mark.root
def test_the_metrics_snapshot_is_an_internal_alert_and_a_json_line(served):
    agent, _, _, d = served
    line = agent.wait_for_line(str(d / "alerts.json"), "Falco internal: metrics snapshot")
    alert = json.loads(line)
    assert alert["priority"] == "Informational" and alert["source"] == "internal"
    assert alert["output"].endswith("Falco metrics snapshot")
    fields = alert["output_fields"]
    assert fields["scap.n_evts"] >= 0 and fields["scap.n_drops"] >= 0
    assert fields["falco.version"] and fields["evt.source"] == "syscall"
    snapshots = [json.loads(x) for x in agent.lines(str(d / "metrics.jsonl"))]
    assert snapshots[0]["sample"] == 1
    assert "falco.memory_rss_mb" in snapshots[-1]["output_fields"]


def answer(url: str, **kw):
    """The response of GET ``url``, or None while nothing listens."""
    try:
        return httpx.get(url, timeout=2, **kw)
    except httpx.HTTPError:
        return None


def _refused(tmp_path: Path, yaml_text: str) -> str:
    """``syswarden -c CONFIG -e /dev/null`` must stop with exit code 2 and no traceback."""
    config = tmp_path / "syswarden.yaml"
    config.write_text(yaml_text)
    out = subprocess.run([*SYSWARDEN, "-c", str(config), "-e", "/dev/null"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def test_a_port_in_use_is_one_clear_error(tmp_path):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        err = _refused(tmp_path, "webserver:\n  enabled: true\n  listen_address: 127.0.0.1\n"
                       f"  listen_port: {port}\n")
    assert f"syswarden.yaml:4" in err and "webserver.listen_port" in err
    assert f"cannot listen on 127.0.0.1 port {port}: Address already in use" in err
    assert "choose another listen_port" in err


def test_a_bad_certificate_path_is_one_clear_error(tmp_path):
    err = _refused(tmp_path, "webserver:\n  enabled: true\n  listen_address: 127.0.0.1\n"
                   "  listen_port: 0\n  ssl_enabled: true\n"
                   f"  ssl_certificate: {tmp_path}/missing.pem\n")
    assert "syswarden.yaml:6" in err and "webserver.ssl_certificate" in err
    assert f"cannot load the webserver's certificate {tmp_path}/missing.pem" in err


@pytest.mark.parametrize("address", ["localhost:80", "300.1.1.1", "eth0"])
def test_a_bad_listen_address_is_one_clear_error(tmp_path, address):
    err = _refused(tmp_path, f"webserver:\n  enabled: true\n  listen_address: '{address}'\n")
    assert "syswarden.yaml:3" in err and "webserver.listen_address" in err
    assert "is not an IPv4 or IPv6 address" in err


def test_an_address_not_of_this_machine_is_one_clear_error(tmp_path):
    err = _refused(tmp_path, "webserver:\n  enabled: true\n  listen_address: 192.0.2.1\n")
    assert "syswarden.yaml:3" in err and "webserver.listen_address" in err
    assert "Cannot assign requested address" in err


@pytest.mark.root
def test_https_healthz_with_falcos_pem_and_no_metrics_unless_asked(tmp_path):
    key, cert, pem = tmp_path / "k.pem", tmp_path / "c.pem", tmp_path / "falco.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
                   check=True, capture_output=True)
    pem.write_text(key.read_text() + cert.read_text())     # one file, as Falco's
    port = free_port()
    ctx = ssl.create_default_context(cafile=str(cert))
    ctx.check_hostname = False
    with running_agent("-o", "webserver.enabled=true", "-o", "webserver.listen_address=127.0.0.1",
                       "-o", f"webserver.listen_port={port}", "-o", "webserver.ssl_enabled=true",
                       "-o", f"webserver.ssl_certificate={pem}",
                       "-o", "stdout_output.enabled=false"):
        url = f"https://127.0.0.1:{port}"
        r = eventually(lambda: answer(f"{url}/healthz", verify=ctx))
        assert (r.status_code, r.json()) == (200, {"status": "ok"})
        assert httpx.get(f"{url}/metrics", verify=ctx).status_code == 404   # metrics.enabled off
        assert httpx.get(f"{url}/nothing", verify=ctx).status_code == 404
        assert answer(f"http://127.0.0.1:{port}/healthz") is None            # TLS only


@pytest.mark.parametrize("text, seconds", [(5, 5.0), (0.5, 0.5), ("100ms", 0.1), ("15m", 900.0),
                                           ("1h", 3600.0), ("2d", 172800.0)])
def test_metrics_interval_reads_falcos_durations(text, seconds):
    assert parse_interval(text) == seconds


@pytest.mark.parametrize("text", ["1 hour", "h", "-1s", "1.5.2m"])
def test_metrics_interval_refuses_what_is_not_a_duration(text):
    with pytest.raises(ValueError, match="is not a duration"):
        parse_interval(text)


RULES = """
- rule: Any open
  desc: every open
  condition: evt.type = openat
  output: an open (fd.name=%fd.name)
  priority: WARNING
"""


async def test_healthz_names_an_output_failing_past_its_retries_and_a_stopped_source(tmp_path):
    """In process: a webhook whose receiver is gone gives each alert up after its one attempt
    (max_attempts: 1), and of two sources one ends while the agent runs."""
    import trio

    from syswarden.testing import ListSource, make_agent, make_event
    (tmp_path / "rules.yaml").write_text(RULES)
    port, dead = free_port(), free_port()
    agent = make_agent(
        tmp_path,
        ListSource([make_event("openat", name=f"/tmp/f{i}") for i in range(20)], wait=True),
        ListSource([], name="short"),
        builtins=("rules", "webhook"),
        config={"rules_file": [str(tmp_path / "rules.yaml")],
                "webserver": {"enabled": True, "listen_address": "127.0.0.1",
                              "listen_port": port, "healthz_stall_timeout": 5},
                "webhook_outputs": {"gone": {
                    "url": f"http://127.0.0.1:{dead}/", "max_attempts": 1, "timeout": 1,
                    "queue_file": str(tmp_path / "gone.db")}},
                "pipeline": {"stats_interval": 0, "shutdown_grace": 1}})
    body: dict = {}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        async with httpx.AsyncClient() as client:
            with trio.fail_after(30):
                while True:
                    await trio.sleep(0.3)
                    try:
                        r = await client.get(f"http://127.0.0.1:{port}/healthz")
                    except httpx.HTTPError:
                        continue
                    body = r.json()
                    stages = {p["stage"]: p["reason"] for p in body.get("problems", [])}
                    if r.status_code == 503 and any(s.startswith("output ") for s in stages):
                        break
        agent.request_stop()
    assert body["status"] == "unhealthy"
    assert stages["source short"] == "the source has stopped"
    (output,) = [s for s in stages if s.startswith("output ")]
    assert "gone" in output and stages[output] == "failing past its retries"
    assert agent.metrics.get(f"outputs.{output[len('output '):]}.expired.dropped") > 0


def test_falcos_own_webserver_and_metrics_sections_load_as_they_are(compat, tmp_path):
    import yaml as pyyaml

    from syswarden.core.config import load_config
    from syswarden.core.plugins import make_plugin_manager
    falco = pyyaml.safe_load((compat / "falco-config" / "falco.yaml").read_text())
    path = tmp_path / "falco-sections.yaml"
    path.write_text(pyyaml.safe_dump({k: falco[k] for k in ("webserver", "metrics")}))
    config = load_config(str(path), (), make_plugin_manager({}).schemas())
    assert config["webserver"]["listen_port"] == 8765
    assert config["webserver"]["enabled"] is True          # Falco's default, kept when set
    assert parse_interval(config["metrics"]["interval"]) == 3600.0
    assert config["metrics"]["include_empty_values"] is False


async def test_metrics_has_the_rule_engines_time_per_event_type(tmp_path):
    """In process: 1000 openat and 1000 execve events, interleaved, in batches of 3 (the last
    event of each, the one timed, of either type in turn); /metrics's text has both types'
    seconds and events, computed from the ``rules.eval_*`` counters."""
    from prometheus_client import CollectorRegistry, generate_latest
    from prometheus_client.parser import text_string_to_metric_families

    from syswarden.core.exposition import Figures, FiguresCollector
    from syswarden.testing import ListSource, make_agent, make_event
    (tmp_path / "rules.yaml").write_text(RULES)
    events = [make_event(t, name=f"/tmp/f{i}") for i in range(1000) for t in ("openat", "execve")]
    agent = make_agent(tmp_path, ListSource(events, batch_size=3), builtins=("rules",),
                       config={"rules_file": [str(tmp_path / "rules.yaml")],
                               "pipeline": {"stats_interval": 0}})
    assert await agent.run() == 0
    assert agent.metrics.get("events.judged") == 2000
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(Figures(agent)))
    text = generate_latest(registry).decode()
    got: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name.startswith("syswarden_rule_eval_"):
                got.setdefault(sample.name, {})[sample.labels["evt_type"]] = sample.value
    seconds = got["syswarden_rule_eval_seconds_total"]
    timed = got["syswarden_rule_eval_events_total"]
    assert set(seconds) == set(timed) == {"openat", "execve"}
    assert all(v > 0 for v in seconds.values()) and all(v > 0 for v in timed.values())
    assert sum(timed.values()) == 667                  # one per batch: 2000 / 3, rounded up
    assert timed["openat"] == agent.metrics.get("rules.eval_events.openat")
    assert seconds["execve"] == agent.metrics.get("rules.eval_ns.execve") / 1e9


def test_the_metrics_output_file_is_written_as_the_root_agent_writes_files(tmp_path):
    """metrics.output_file: mode 0600, and a planted link is refused, never followed."""
    from syswarden.core.errors import UnsafePathError
    from syswarden.core.webserver import _append

    path = tmp_path / "metrics.jsonl"
    _append(str(path), '{"sample": 1}')
    assert path.read_text() == '{"sample": 1}\n' and (path.stat().st_mode & 0o777) == 0o600
    target = tmp_path / "target"
    target.write_text("")
    (tmp_path / "planted").symlink_to(target)
    with pytest.raises(UnsafePathError):
        _append(str(tmp_path / "planted"), '{"sample": 2}')
    assert target.read_text() == ""
