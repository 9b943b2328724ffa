"""The fleet against a real 3-node JetStream cluster on 127.0.0.1 (started once for the module):
``rules push`` reaches every agent (live eBPF agents, each its own hostname) and the next
matching event raises the new rule's alert; a broken file is refused by the CLI; a broken
revision forced into the bucket leaves every agent on its rules and shows in ``fleet status``,
as does an agent that stopped (silent)."""

from __future__ import annotations

import json
import os
import subprocess
import time

import pytest
import yaml

from syswarden.plugins.fleet.heartbeat import node_flags
from syswarden.plugins.fleet.rules_source import Bundle
from syswarden.testing import SYSWARDEN, nats_cluster
from tests.helpers.nats import start_agent, stop, wait_until

RULE = """
- rule: Fleet test open {tag}
  desc: an open of the test's {tag} marker files
  condition: evt.type in (open, openat) and fd.name startswith /tmp/fleet-{tag}-
  output: "fleet {tag} open of %fd.name"
  priority: WARNING
"""
BROKEN = """
- rule: Fleet test broken
  desc: a field that does not exist
  condition: evt.type = openat and proc.nme = cat
  output: "never"
  priority: WARNING
"""


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with nats_cluster(tmp_path_factory.mktemp("nats")) as c:
        yield c


def _config(tmp_path, cluster, name: str) -> str:
    cfg = {"nats": {"servers": cluster.urls, "connect_timeout": 1},
           "rules_source": {"kind": "nats", "dir": str(tmp_path / f"{name}-mirror"),
                            "poll_interval": "300ms"},
           "fleet": {"heartbeat_interval": "1s"},
           "stdout_output": {"enabled": False},
           "json_output": True,
           "file_output": {"enabled": True, "filename": str(tmp_path / f"{name}.json")},
           "pipeline": {"stats_interval": 0}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([*SYSWARDEN, *args], capture_output=True, text=True, timeout=60)


def fires(path, tag: str, marker: str, at_least: int = 1):
    """A predicate: the agent's alerts hold ``at_least`` of ``tag``'s rule for ``marker``; each
    call opens the marker file once more (the next matching event: an eBPF source rebuilds its
    program after a reload, an open before it is attached is not seen)."""
    def check() -> bool:
        with open(f"/tmp/fleet-{tag}-{marker}", "w"):
            pass
        return sum(f"fleet-{tag}-{marker}" in x["output"] for x in alerts(path)) >= at_least
    return check


def alerts(path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def heartbeats(cluster) -> dict[str, dict]:
    async def read(js):
        kv = await js.key_value("SYSWARDEN_FLEET")
        return {k: json.loads((await kv.get(k)).value) for k in await kv.keys()}
    try:
        return cluster.call(read)
    except Exception:
        return {}


def test_push_reaches_every_agent_and_broken_ones_do_not(cluster, tmp_path):
    files = {tag: tmp_path / f"{tag}.yaml" for tag in ("a", "b")}
    for tag, path in files.items():
        path.write_text(RULE.format(tag=tag))
    broken = tmp_path / "broken.yaml"
    broken.write_text(BROKEN)
    config = _config(tmp_path, cluster, "cli")

    pushed = cli("rules", "push", "-c", config, str(files["a"]))
    assert pushed.returncode == 0, pushed.stderr
    assert "pushed revision 1" in pushed.stdout

    names = ["fleet-1", "fleet-2"]
    agents = [start_agent("-c", _config(tmp_path, cluster, n), hostname=n,
                          log=tmp_path / f"{n}.log") for n in names]
    marker = f"{os.getpid()}-{time.monotonic_ns()}"
    try:
        for n, a in zip(names, agents):
            wait_until(lambda: "syswarden ready" in (tmp_path / f"{n}.log").read_text(), 90,
                       f"{n} ready", a)
        for n, a in zip(names, agents):
            wait_until(fires(tmp_path / f"{n}.json", "a", marker), 20,
                       f"{n}: revision 1's rule fires", a)

        # a new revision: every agent reloads, the new rule fires on the next event
        pushed = cli("rules", "push", "-c", config, str(files["a"]), str(files["b"]))
        assert pushed.returncode == 0, pushed.stderr
        assert "pushed revision 2" in pushed.stdout
        wait_until(lambda: all(h["rules"]["revision"] == 2 for h in heartbeats(cluster)
                               .values()) and len(heartbeats(cluster)) == 2, 20,
                   "every agent on revision 2")
        for n, a in zip(names, agents):
            wait_until(fires(tmp_path / f"{n}.json", "b", marker), 40,
                       f"{n}: revision 2's new rule fires", a)

        # the CLI refuses a broken file, as -V does, and publishes nothing
        refused = cli("rules", "push", "-c", config, str(files["a"]), str(broken))
        assert refused.returncode == 2
        assert "proc.nme" in refused.stdout + refused.stderr
        assert "refused" in refused.stderr

        # forced past the CLI: every agent keeps revision 2, and says so
        forced = Bundle([("broken.yaml", BROKEN)], "test", "now")

        async def force(js):
            kv = await js.key_value("SYSWARDEN_RULES")
            return await kv.put("rules", forced.encode())
        assert cluster.call(force) == 3
        wait_until(lambda: all(h["rules"]["error_revision"] == 3 for h in heartbeats(cluster)
                               .values()), 20, "every agent reports revision 3 refused")
        for n, a in zip(names, agents):
            seen = sum(f"fleet-b-{marker}" in x["output"] for x in alerts(tmp_path / f"{n}.json"))
            wait_until(fires(tmp_path / f"{n}.json", "b", marker, seen + 1), 20,
                       f"{n}: still on revision 2's rules", a)
            assert "revision 3 (pushed by test at now) does not load" in \
                (tmp_path / f"{n}.log").read_text()

        status = cli("fleet", "status", "-c", config)
        assert status.returncode == 0, status.stderr
        for n in names:
            line = next(x for x in status.stdout.splitlines() if x.startswith(n))
            assert "old-revision" in line and "rules-error" in line and " 2 " in line
        assert "revision 3 refused" in status.stdout and "proc.nme" in status.stdout

        history = cli("rules", "history", "-c", config)
        assert history.returncode == 0, history.stderr
        revs = [line.split()[0] for line in history.stdout.splitlines()[1:]]
        assert revs == ["1", "2", "3"]
        assert "a.yaml, b.yaml" in history.stdout

        # a node that stops is silent after fleet.silent_after heartbeats
        assert stop(agents[1]) == 0
        time.sleep(4)
        status = cli("fleet", "status", "-c", config)
        line = next(x for x in status.stdout.splitlines() if x.startswith("fleet-2"))
        assert "silent" in line
        line = next(x for x in status.stdout.splitlines() if x.startswith("fleet-1"))
        assert "silent" not in line
    finally:
        for a in agents:
            assert stop(a) == 0
        for tag in ("a", "b"):
            if os.path.exists(f"/tmp/fleet-{tag}-{marker}"):
                os.unlink(f"/tmp/fleet-{tag}-{marker}")


@pytest.mark.parametrize("doc, flags", [
    ({"time": 100, "drops": 0, "previous_drops": 0,
      "rules": {"source": "nats", "revision": 4}}, []),
    ({"time": 80, "drops": 0, "previous_drops": 0, "rules": {"source": "files"}}, ["silent"]),
    ({"time": 100, "drops": 7, "previous_drops": 3, "rules": {}}, ["dropping"]),
    ({"time": 100, "drops": 0, "previous_drops": 0,
      "rules": {"source": "nats", "revision": 3, "error": "x"}}, ["old-revision", "rules-error"]),
])
def test_node_flags(doc, flags):
    assert node_flags(doc, now=101, silent_after=15, latest=4) == flags


def test_no_rules_in_the_bucket_is_refused_at_start(cluster, tmp_path):
    cfg = yaml.safe_load(open(_config(tmp_path, cluster, "x")))
    cfg["rules_source"]["bucket"] = "NOT_THERE"
    (tmp_path / "x.yaml").write_text(yaml.safe_dump(cfg))
    out = subprocess.run([*SYSWARDEN, "-c", str(tmp_path / "x.yaml"), "--dry-run", "-e",
                          "/dev/null"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "NOT_THERE" in out.stderr and "Traceback" not in out.stderr
