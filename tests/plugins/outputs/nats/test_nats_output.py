"""The nats output against a real 3-node JetStream cluster on 127.0.0.1 (started once for the
module): agents of every kind publish each alert exactly once; the stream's leader killed
mid-flow loses and doubles nothing; the whole cluster down and back gets the spooled alerts in
order; an agent SIGKILLed with alerts spooled delivers them at its next start; bad input is
refused at start (exit 2) or counted and logged while running."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest
import yaml

from syswarden.core.capture import CaptureWriter
from syswarden.core.event import Event, Process
from syswarden.plugins.outputs.nats.output import alert_subject, subject_token
from syswarden.testing import SYSWARDEN, NatsCluster, make_alert, nats_cluster
from tests.helpers.nats import (alerts_by_host, kit_config, spooled, start_agent, stop,
                                wait_until)
from tests.helpers.nats_jwt import Operator
from tests.helpers.paths import REPO

STREAM = "SYSWARDEN_ALERTS"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with nats_cluster(tmp_path_factory.mktemp("nats")) as c:
        yield c


@pytest.fixture
def fresh_stream(cluster):
    """Each test starts with no alerts stream (the output creates it, R3)."""
    async def drop(js):
        try:
            await js.delete_stream(STREAM)
        except Exception:
            pass
    for i in range(cluster.size):
        if cluster.procs[i] is None:
            cluster.start(i)
    cluster.call(drop)
    return cluster


def count_in_stream(cluster: NatsCluster) -> int:
    async def n(js):
        try:
            return (await js.stream_info(STREAM)).state.messages
        except Exception:
            return 0
    return cluster.call(n)


def test_subjects():
    alert = make_alert(1)
    alert.hostname = "web.1 prod"
    assert alert_subject("sw", alert) == f"sw.alerts.web_1_prod.{alert.priority.name.lower()}"
    assert subject_token("") == "_"


def _replay_capture(path, n: int) -> None:
    parent = Process(100, comm="bash", exe="/bin/bash", container_id="host")
    with CaptureWriter(str(path)) as w:
        for i in range(n):
            proc = Process(1000 + i, ppid=100, comm=f"natsp{i}", exe=f"/bin/natsp{i}",
                           container_id="host")
            proc.parent = parent
            evt = Event("execve", ts=1_800_000_000_000_000_000 + i, tid=proc.pid, pid=proc.pid,
                        num=i + 1)
            evt.proc = proc
            w.write(evt)


RULES = """
- rule: NATS test exec
  desc: a replayed exec of natsp*
  condition: evt.type = execve and proc.name startswith natsp
  output: "exec of %proc.name"
  priority: WARNING
- rule: NATS test open
  desc: a live open of the test's marker files
  condition: evt.type in (open, openat) and fd.name startswith /tmp/natslive-
  output: "open of %fd.name"
  priority: NOTICE
"""


def _real_config(tmp_path, name: str, cluster: NatsCluster) -> str:
    cfg = {"nats": {"servers": cluster.urls},
           "nats_output": {"enabled": True, "queue_file": str(tmp_path / f"{name}.sqlite3")},
           "stdout_output": {"enabled": False},
           "pipeline": {"stats_interval": 0}}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return str(path)


def test_every_agent_every_alert_exactly_once(fresh_stream, tmp_path):
    """Three kit agents, a replay agent and a live (eBPF) agent, each its own hostname."""
    cluster = fresh_stream
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    capture = tmp_path / "natsp.swcap"
    _replay_capture(capture, 50)
    procs = [start_agent("-c", kit_config(tmp_path, f"kit{i}", cluster.urls, 300 + i),
                         hostname=f"kit-{i}", log=tmp_path / f"kit{i}.log") for i in range(3)]
    live = start_agent("-c", _real_config(tmp_path, "live", cluster), "-r", str(rules),
                       hostname="live-1", log=tmp_path / "live.log")
    replay = subprocess.run(["unshare", "-u", "sh", "-c", 'hostname replay-1 && exec "$@"',
                             "sh", *SYSWARDEN, "-c", _real_config(tmp_path, "replay", cluster),
                             "-r", str(rules), "-e", str(capture)],
                            capture_output=True, text=True, timeout=120)
    assert replay.returncode == 0, replay.stderr
    try:
        wait_until(lambda: "syswarden ready" in (tmp_path / "live.log").read_text(), 90,
                   "live agent ready", live)
        for i in range(20):
            with open(f"/tmp/natslive-{os.getpid()}-{i}", "w"):
                pass
        expected = 300 + 301 + 302 + 50 + 20
        wait_until(lambda: count_in_stream(cluster) >= expected, 60, "alerts in the stream")
        time.sleep(1)           # nothing more comes
    finally:
        for p in [*procs, live]:
            assert stop(p) == 0
        for i in range(20):
            os.unlink(f"/tmp/natslive-{os.getpid()}-{i}")
    msgs = cluster.messages(STREAM)
    by_host = alerts_by_host(msgs)
    uuids = [json.loads(m.data)["uuid"] for m in msgs]
    assert len(uuids) == len(set(uuids)) == expected
    for i in range(3):
        nums = [a["output_fields"]["evt.num"] for a in by_host[f"kit-{i}"]]
        assert sorted(nums) == list(range(1, 300 + i + 1))
    assert sorted(a["output"].split()[-1] for a in by_host["replay-1"]) == \
        sorted(f"natsp{i}" for i in range(50))
    assert len(by_host["live-1"]) == 20
    assert {m.subject for m in msgs if json.loads(m.data)["hostname"] == "live-1"} == \
        {"syswarden.alerts.live-1.notice"}


def test_leader_killed_mid_flow(fresh_stream, tmp_path):
    cluster = fresh_stream
    n = 3000
    proc = start_agent("-c", kit_config(tmp_path, "a", cluster.urls, n, pace=0.02),
                       hostname="flow-1", log=tmp_path / "a.log")
    try:
        wait_until(lambda: count_in_stream(cluster) > 300, 30, "first alerts", proc)
        leader = cluster.stream_leader(STREAM)
        cluster.kill(leader)
        wait_until(lambda: count_in_stream(cluster) >= n, 90, "every alert", proc)
        time.sleep(1)
    finally:
        assert stop(proc) == 0
        for i in range(cluster.size):
            if cluster.procs[i] is None:
                cluster.start(i)
    nums = [a["output_fields"]["evt.num"] for a in alerts_by_host(cluster.messages(STREAM))
            ["flow-1"]]
    assert sorted(nums) == list(range(1, n + 1))        # nothing lost, nothing twice


def test_cluster_down_then_back_spooled_in_order(fresh_stream, tmp_path):
    """All three servers down for 30 s while alerts keep coming (long enough for the client's
    reconnects and the output's back-off to reach their ceilings), then back: every alert, the
    spooled ones in order."""
    cluster = fresh_stream
    n = 600
    queue = tmp_path / "b.sqlite3"
    proc = start_agent("-c", kit_config(tmp_path, "b", cluster.urls, n, pace=0.05),
                       hostname="down-1", log=tmp_path / "b.log")
    try:
        wait_until(lambda: count_in_stream(cluster) > 50, 30, "first alerts", proc)
        for i in range(cluster.size):
            cluster.kill(i)
        down = time.monotonic()
        wait_until(lambda: spooled(queue) > 100, 30, "alerts spooled", proc)
        time.sleep(max(0.0, 30 - (time.monotonic() - down)))
        for i in range(cluster.size):
            cluster.start(i, wait=False)
        cluster.wait_ready()
        wait_until(lambda: count_in_stream(cluster) >= n, 90, "every alert", proc)
        time.sleep(1)
    finally:
        assert stop(proc) == 0
    nums = [a["output_fields"]["evt.num"] for a in alerts_by_host(cluster.messages(STREAM))
            ["down-1"]]
    assert sorted(nums) == list(range(1, n + 1))
    assert nums == sorted(nums), "the spooled alerts were not delivered in order"
    assert "alerts not published" in (tmp_path / "b.log").read_text()


def test_sigkill_with_alerts_spooled_then_restart(fresh_stream, tmp_path):
    cluster = fresh_stream
    queue = tmp_path / "c.sqlite3"
    nowhere = [f"nats://127.0.0.1:{cluster.ports[0] + 7}"]       # nothing listens there
    proc = start_agent("-c", kit_config(tmp_path, "c", nowhere, 200), hostname="kill-1",
                       log=tmp_path / "c1.log")
    wait_until(lambda: spooled(queue) >= 200, 30, "alerts spooled", proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    proc = start_agent("-c", kit_config(tmp_path, "c", cluster.urls, 0), hostname="kill-1",
                       log=tmp_path / "c2.log")
    try:
        wait_until(lambda: count_in_stream(cluster) >= 200, 30, "the spooled alerts", proc)
        wait_until(lambda: spooled(queue) == 0, 10, "the spool emptied", proc)
    finally:
        assert stop(proc) == 0
    nums = [a["output_fields"]["evt.num"] for a in alerts_by_host(cluster.messages(STREAM))
            ["kill-1"]]
    assert nums == list(range(1, 201))


# -- bad input ---------------------------------------------------------------------------------

def _refused(tmp_path, name: str, **kw) -> str:
    out = subprocess.run([*SYSWARDEN, "-c", kit_config(tmp_path, name, **kw)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


def test_bad_url_refused_at_start(tmp_path):
    err = _refused(tmp_path, "u", servers=["http://127.0.0.1:4222"], count=1)
    assert "nats.servers" in err and "not a NATS URL" in err
    err = _refused(tmp_path, "u2", servers=["nats://127.0.0.1:99999"], count=1)
    assert "nats.servers" in err


def test_missing_creds_file_refused_at_start(tmp_path, cluster):
    err = _refused(tmp_path, "m", servers=cluster.urls, count=1,
                   nats={"creds_file": str(tmp_path / "nope.creds")})
    assert "nats.creds_file" in err and "nope.creds" in err


def test_bad_credentials_refused_at_start(tmp_path):
    conf = 'authorization { user: sw, password: "right-secret" }'
    with nats_cluster(tmp_path / "auth", size=1, conf=conf,
                      auth={"user": "sw", "password": "right-secret"}) as auth:
        os.environ["SW_TEST_NATS_PASSWORD"] = "wrong-secret"
        try:
            err = _refused(tmp_path, "a", servers=auth.urls, count=1,
                           nats={"user": "sw", "password": "${SW_TEST_NATS_PASSWORD}"})
        finally:
            del os.environ["SW_TEST_NATS_PASSWORD"]
        assert "refused the credentials" in err
        assert "wrong-secret" not in err                # never logged
        (tmp_path / "pw").write_text("right-secret\n")
        proc = start_agent("-c", kit_config(tmp_path, "a2", auth.urls, 5,
                                            nats={"user": "sw",
                                                  "password_file": str(tmp_path / "pw")},
                                            nats_output={"replicas": 1}),
                           log=tmp_path / "a2.log")
        try:
            wait_until(lambda: spooled(tmp_path / "a2.sqlite3") == 0 and
                       "syswarden ready" in (tmp_path / "a2.log").read_text(), 20,
                       "delivered with the right password", proc)
        finally:
            assert stop(proc) == 0
        assert "outputs.nats.sent=5" in (tmp_path / "a2.log").read_text()


def test_missing_stream(fresh_stream, tmp_path):
    """Not created on demand: exit 2 at start; deleted while running: counted and logged
    failures, the alerts kept on disk."""
    cluster = fresh_stream
    err = _refused(tmp_path, "s", servers=cluster.urls, count=1,
                   nats_output={"create_stream": False})
    assert STREAM in err and "does not exist" in err
    queue = tmp_path / "s2.sqlite3"
    proc = start_agent("-c", kit_config(tmp_path, "s2", cluster.urls, 400, pace=0.05),
                       log=tmp_path / "s2.log")
    try:
        wait_until(lambda: count_in_stream(cluster) > 20, 30, "first alerts", proc)

        async def drop(js):
            await js.delete_stream(STREAM)
        cluster.call(drop)
        wait_until(lambda: spooled(queue) > 20
                   and "alerts not published" in (tmp_path / "s2.log").read_text(),
                   30, "alerts kept on disk, the failure logged", proc)
    finally:
        assert stop(proc) == 0
    log = (tmp_path / "s2.log").read_text()
    assert "alerts not published" in log
    failed = [w for w in log.split() if w.startswith("outputs.nats.failed=")]
    assert failed and int(failed[0].split("=")[1]) > 0, log[-2000:]


# -- the other credentials, and TLS -------------------------------------------------------------

def _delivered(tmp_path, name: str, urls: list[str], nats: dict) -> str:
    """An agent with these connection keys delivers its 5 alerts; its log."""
    proc = start_agent("-c", kit_config(tmp_path, name, urls, 5, nats=nats,
                                        nats_output={"replicas": 1}),
                       log=tmp_path / f"{name}.log")
    try:
        wait_until(lambda: "outputs.nats" in (tmp_path / f"{name}.log").read_text() or
                   (spooled(tmp_path / f"{name}.sqlite3") == 0 and
                    "syswarden ready" in (tmp_path / f"{name}.log").read_text()), 20,
                   f"{name}: delivered", proc)
    finally:
        assert stop(proc) == 0
    log = (tmp_path / f"{name}.log").read_text()
    assert "outputs.nats.sent=5" in log, log[-2000:]
    return log


def test_token_and_nkey_seed(tmp_path):
    import nkeys
    seed = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    user = nkeys.from_seed(bytearray(seed)).public_key.decode()
    (tmp_path / "user.nk").write_bytes(seed + b"\n")
    other = nkeys.encode_seed(os.urandom(32), nkeys.PREFIX_BYTE_USER)
    (tmp_path / "other.nk").write_bytes(other + b"\n")
    conf = f"authorization {{ users: [ {{ nkey: {user} }} ] }}"
    with nats_cluster(tmp_path / "nk", size=1, conf=conf,
                      auth={"nkeys_seed": str(tmp_path / "user.nk")}) as server:
        _delivered(tmp_path, "nk", server.urls, {"nkey_seed_file": str(tmp_path / "user.nk")})
        err = _refused(tmp_path, "nk2", servers=server.urls, count=1,
                       nats={"nkey_seed_file": str(tmp_path / "other.nk")})
        assert "refused the credentials" in err and other.decode() not in err
        (tmp_path / "bad.nk").write_text(other.decode()[:-4] + "\n")     # truncated
        err = _refused(tmp_path, "nk3", servers=server.urls, count=1,
                       nats={"nkey_seed_file": str(tmp_path / "bad.nk")})
        assert "nats.nkey_seed_file" in err and "does not hold an NKey seed" in err
        assert other.decode()[:-4] not in err
    (tmp_path / "token").write_text("t0ken-s3cret\n")
    with nats_cluster(tmp_path / "tok", size=1, conf='authorization { token: "t0ken-s3cret" }',
                      auth={"token": "t0ken-s3cret"}) as server:
        log = _delivered(tmp_path, "tok", server.urls, {"token_file": str(tmp_path / "token")})
        assert "t0ken-s3cret" not in log


def test_creds_file_decentralized_auth(tmp_path):
    """Operator mode (JWTs, a MEMORY resolver): an agent's .creds file publishes into a
    JetStream stream of its account; a .creds of a user the operator does not trust, one whose
    seed does not match its JWT, or a bare seed, is refused at start; no secret is logged."""
    op = Operator()
    creds, agent = op.creds(tmp_path / "agent.creds", "agent")
    reader, _ = op.creds(tmp_path / "siem.creds", "siem")
    with nats_cluster(tmp_path / "op", size=1, conf=op.conf,
                      auth={"user_credentials": str(reader)}) as server:
        log = _delivered(tmp_path, "cr", server.urls, {"creds_file": str(creds)})
        assert agent.seed.decode() not in log and "BEGIN" not in log
        alerts = alerts_by_host(server.messages(STREAM))
        assert [len(a) for a in alerts.values()] == [5]
        assert all(m.subject.startswith("syswarden.alerts.") for m in server.messages(STREAM))
        # a user of an account the operator never signed
        stranger = Operator()
        bad, bad_user = stranger.creds(tmp_path / "stranger.creds", "agent")
        err = _refused(tmp_path, "cr2", servers=server.urls, count=1,
                       nats={"creds_file": str(bad)})
        assert "refused the credentials" in err and bad_user.seed.decode() not in err
        # the right JWT with another user's seed: the nonce's signature does not match
        forged = tmp_path / "forged.creds"
        forged.write_text(creds.read_text().replace(agent.seed.decode(),
                                                    bad_user.seed.decode()))
        err = _refused(tmp_path, "cr3", servers=server.urls, count=1,
                       nats={"creds_file": str(forged)})
        assert "refused the credentials" in err and bad_user.seed.decode() not in err
        assert "BEGIN" not in err
        # an NKey seed alone where a .creds file belongs: refused before connecting, not
        # taken for an unreachable server (nats-py fails with a TypeError on every attempt)
        (tmp_path / "seed.creds").write_bytes(agent.seed + b"\n")
        err = _refused(tmp_path, "cr4", servers=server.urls, count=1,
                       nats={"creds_file": str(tmp_path / "seed.creds")})
        assert "nats.creds_file" in err and "is not a .creds file" in err
        assert "NATS USER JWT" in err and agent.seed.decode() not in err

def _certificates(d) -> tuple[str, str, str]:
    """A CA and a server certificate for 127.0.0.1 it signed: (ca, cert, key)."""
    def ssl_(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True)
    ssl_("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test CA",
         "-keyout", f"{d}/ca.key", "-out", f"{d}/ca.pem")
    ssl_("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", f"{d}/server.key", "-out", f"{d}/server.csr")
    (d / "ext").write_text("subjectAltName=IP:127.0.0.1\n")
    ssl_("x509", "-req", "-in", f"{d}/server.csr", "-CA", f"{d}/ca.pem", "-CAkey",
         f"{d}/ca.key", "-CAcreateserial", "-days", "2", "-extfile", f"{d}/ext",
         "-out", f"{d}/server.pem")
    return f"{d}/ca.pem", f"{d}/server.pem", f"{d}/server.key"


def test_tls_verified_by_default(tmp_path):
    import ssl
    ca, cert, key = _certificates(tmp_path)
    ctx = ssl.create_default_context(cafile=ca)
    with nats_cluster(tmp_path / "tls", size=1,
                      conf=f'tls {{ cert_file: "{cert}", key_file: "{key}" }}',
                      auth={"tls": ctx}) as server:
        urls = [u.replace("nats://", "tls://") for u in server.urls]
        err = _refused(tmp_path, "t1", servers=urls, count=1)      # the system's CAs only
        assert "nats.tls" in err and "certificate verify failed" in err.lower()
        _delivered(tmp_path, "t2", urls, {"tls": {"ca_file": ca}})


def test_the_documented_siem_reader_reads_the_stream(fresh_stream, tmp_path, capsys):
    """docs/fleet.md's consumer, run once against alerts an agent published."""
    import re
    cluster = fresh_stream
    proc = start_agent("-c", kit_config(tmp_path, "siem", cluster.urls, 3), hostname="siem-1",
                       log=tmp_path / "siem.log")
    try:
        wait_until(lambda: count_in_stream(cluster) >= 3, 30, "alerts in the stream", proc)
    finally:
        assert stop(proc) == 0
    doc = (REPO / "docs" / "fleet.md").read_text()
    [block] = [b for b in re.findall(r"```python\n(.*?)```", doc, re.S) if "pull_subscribe" in b]
    block = block.replace('servers=["nats://nats-1:4222"], user_credentials="siem.creds"',
                          f"servers={cluster.urls!r}")
    assert "while True:" in block and f"servers={cluster.urls!r}" in block
    exec(compile(block.replace("while True:", "for _ in range(1):"), "fleet.md", "exec"), {})
    assert capsys.readouterr().out.splitlines() == ["siem-1 Warning kit kit"] * 3
