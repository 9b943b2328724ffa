"""The replay source: batches from a capture file, malformed lines counted, end of file; and
replays through the whole pipeline (in-process and through the CLI)."""

from __future__ import annotations

import collections
import gzip
import json
import logging
import pathlib
import subprocess
import zlib

import pytest
import trio
import yaml

from syswarden.core.agent import Agent
from syswarden.core.capture import CaptureError, CaptureWriter, Decoder, header_record
from syswarden.core.config import load_config
from syswarden.core.event import Event, Process
from syswarden.core.fields import FieldRegistry
from syswarden.core.metrics import Metrics
from syswarden.core.plugins import make_plugin_manager
from syswarden.core.protocols import PluginContext
from syswarden.plugins.sources import replay
from syswarden.plugins.sources.replay import ReplaySource


def _ctx(replay_file=None, batch_size=4) -> PluginContext:
    config = {"pipeline": {"batch_size": batch_size}}
    return PluginContext(config, Metrics(), FieldRegistry(), replay_file=replay_file)


def _write_capture(path, n: int) -> None:
    parent = Process(100, comm="bash", exe="bash", container_id="host")
    with CaptureWriter(str(path)) as w:
        for i in range(n):
            proc = Process(1000 + i, ppid=100, comm=f"p{i}", container_id="host")
            proc.parent = parent
            evt = Event("execve", ts=1_800_000_000_000_000_000 + i, tid=proc.pid, pid=proc.pid,
                        num=i + 1)
            evt.proc = proc
            w.write(evt)


async def _collect(source: ReplaySource) -> list[list[Event]]:
    send, recv = trio.open_memory_channel[list[Event]](2)
    batches: list[list[Event]] = []
    async with trio.open_nursery() as nursery:
        async def consume():
            async with recv:
                async for batch in recv:
                    batches.append(batch)
        async def produce(task_status=trio.TASK_STATUS_IGNORED):
            async with send:
                await source.run(send, task_status=task_status)
        nursery.start_soon(consume)
        await nursery.start(produce)
    return batches


def test_no_replay_file_no_source():
    assert replay.syswarden_make_sources(_ctx()) is None


async def test_replays_every_event_in_batches_and_returns_at_end_of_file(tmp_path):
    path = tmp_path / "cap.jsonl"
    _write_capture(path, 10)
    ctx = _ctx(str(path), batch_size=4)
    source = replay.syswarden_make_sources(ctx)
    assert isinstance(source, ReplaySource)
    batches = await _collect(source)
    assert [len(b) for b in batches] == [4, 4, 2]
    events = [e for b in batches for e in b]
    assert [e.num for e in events] == list(range(1, 11))
    assert [e.proc.comm for e in events] == [f"p{i}" for i in range(10)]
    # one parent object shared by all, as the process table would have it
    assert len({id(e.proc.parent) for e in events}) == 1
    assert ctx.metrics.get(replay.MALFORMED) == 0


async def test_malformed_lines_are_counted_logged_with_line_numbers_and_skipped(tmp_path, caplog):
    path = tmp_path / "cap.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(header_record()) + "\n")
        fh.write(json.dumps({"type": "openat", "fd": {"name": "/etc/passwd"}}) + "\n")
        fh.write("garbage\n")
        fh.write(json.dumps({"type": "openat", "proc": {"pid": "x"}}) + "\n")
        fh.write("\n")
        fh.write(json.dumps({"type": "execve"}) + "\n")
    # a line that is not UTF-8
    raw = gzip.decompress(path.read_bytes()) + b'{"type": "open", "fd": {"name": "\xff"}}\n'
    path.write_bytes(gzip.compress(raw))
    ctx = _ctx(str(path))
    caplog.set_level(logging.WARNING, "syswarden.replay")
    batches = await _collect(replay.syswarden_make_sources(ctx))
    assert [e.type for b in batches for e in b] == ["openat", "execve"]
    assert ctx.metrics.get(replay.MALFORMED) == 3
    assert ctx.metrics.drops() == {replay.MALFORMED: 3}
    for lineno in (3, 4, 7):
        assert f"cap.jsonl.gz:{lineno}: malformed capture line skipped" in caplog.text


def test_unreadable_file_fails_at_start_up(tmp_path):
    with pytest.raises(CaptureError, match="cannot read capture"):
        replay.syswarden_make_sources(_ctx(str(tmp_path / "none.jsonl")))


def test_newer_format_fails_at_start_up(tmp_path):
    path = tmp_path / "new.jsonl"
    path.write_text("\n" + json.dumps({"syswarden_capture": 7}) + "\n")
    with pytest.raises(CaptureError, match="version 7"):
        replay.syswarden_make_sources(_ctx(str(path)))


async def test_cancelled_replay_stops_cleanly(tmp_path):
    path = tmp_path / "cap.jsonl"
    _write_capture(path, 50)
    source = replay.syswarden_make_sources(_ctx(str(path), batch_size=5))
    send, recv = trio.open_memory_channel[list[Event]](0)
    got = []
    async with trio.open_nursery() as nursery:
        async with send:
            await nursery.start(source.run, send)
            async with recv:
                got.append(await recv.receive())
                nursery.cancel_scope.cancel()
    assert len(got[0]) == 5 and source.sent < 50


# ---------------------------------------------------------------------------------------------
# Through the full pipeline: replay -> process and docker enrichers -> rules -> file output
# ---------------------------------------------------------------------------------------------

REPO = pathlib.Path(__file__).resolve().parents[3]
RULE_TESTS = sorted((REPO / "rules" / "tests").glob("*.yaml"))


def _rule_test_capture(path, matching: str = "all") -> collections.Counter:
    """Every event of the default rules' tests run with ``rule_matching: <matching>`` in one
    capture; returns the alerts they expect (rule name -> count)."""
    expected: collections.Counter = collections.Counter()
    with CaptureWriter(str(path)) as w:
        for test in RULE_TESTS:
            doc = yaml.safe_load(test.read_text())
            if doc.get("rule_matching", "first") != matching:
                continue
            for case in doc["cases"]:
                decoder = Decoder()  # each case starts with an empty process table
                w.write_batch([decoder.decode(rec) for rec in case["events"]])
                expected.update(e if isinstance(e, str) else e["rule"]
                                for e in case["expect"])
    return expected


def _agent(tmp_path, capture, **extra) -> Agent:
    cfg = {"disabled_plugins": ["ebpf"], "rule_matching": "all", "json_output": True,
           "stdout_output": {"enabled": False},
           "file_output": {"enabled": True, "filename": str(tmp_path / "alerts.json")},
           "pipeline": {"stats_interval": 0, "batch_size": 16}, **extra}
    cfg_path = tmp_path / "config.yaml"
    cfg_path.write_text(json.dumps(cfg))
    plugins = make_plugin_manager(cfg)
    config = load_config(str(cfg_path), (), plugins.schemas())
    agent = Agent(config, plugins, config_path=str(cfg_path), replay_file=str(capture))
    agent.build()
    return agent


def _alerts(tmp_path) -> list[dict]:
    return [json.loads(line) for line in (tmp_path / "alerts.json").read_text().splitlines()]


async def test_replay_through_the_pipeline_gives_the_alerts_the_rule_tests_expect(tmp_path):
    capture = tmp_path / "cap.jsonl"
    expected = _rule_test_capture(capture)
    agent = _agent(tmp_path, capture)
    assert [s.name for s in agent.sources] == ["replay"]
    assert "process" in [e.name for e in agent.enrichers]  # docker stays off in a replay
    assert await agent.run() == 0   # the agent stops by itself at the end of the capture
    alerts = _alerts(tmp_path)
    assert collections.Counter(a["rule"] for a in alerts) == expected
    assert agent.metrics.get("events.judged") == sum(1 for _ in open(capture)) - 1
    assert agent.metrics.drops() == {}
    shadow = [a for a in alerts if a["rule"] == "Sensitive file read by an untrusted program"
              and a["output_fields"]["proc.name"] == "cat"]
    assert shadow[0]["output_fields"]["fd.name"] == "/etc/shadow"
    assert shadow[0]["output_fields"]["proc.pname"] == "bash"
    assert shadow[0]["priority"] == "Warning"
    web = [a for a in alerts if a["rule"] == "Shell with a terminal in a container"][0]
    assert "container=shop (id=aa11bb22cc33)" in web["output"]


async def test_replay_with_first_match_reports_the_specific_rules(tmp_path):
    capture = tmp_path / "cap.jsonl"
    expected = _rule_test_capture(capture, "first")
    assert expected  # rules/tests/first_match.yaml
    agent = _agent(tmp_path, capture, rule_matching="first")
    assert await agent.run() == 0
    assert collections.Counter(a["rule"] for a in _alerts(tmp_path)) == expected


async def test_malformed_lines_in_a_replay_are_counted_and_the_rest_judged(tmp_path):
    capture = tmp_path / "cap.jsonl"
    lines = [json.dumps({"type": "openat", "proc": {"name": "cat"},
                         "fd": {"name": "/etc/shadow"}, "args": {"flags": "O_RDONLY"}}),
             "{oops", json.dumps({"type": "openat", "args": {"flags": "O_NOPE"}}),
             json.dumps({"type": "openat", "proc": {"name": "less"},
                         "fd": {"name": "/etc/gshadow"}, "args": {"flags": "O_RDONLY"}})]
    capture.write_text("\n".join(lines) + "\n")
    agent = _agent(tmp_path, capture)
    assert await agent.run() == 0
    assert [a["output_fields"]["proc.name"] for a in _alerts(tmp_path)] == ["cat", "less"]
    assert agent.metrics.drops() == {replay.MALFORMED: 2}


def test_the_cli_replays_a_capture(tmp_path):
    """`syswarden -e FILE` as a user runs it: alerts on stdout as Falco's JSON, exit 0."""
    from syswarden.testing import SYSWARDEN  # noqa: PLC0415

    capture = tmp_path / "cap.jsonl"
    expected = _rule_test_capture(capture)
    proc = subprocess.run([*SYSWARDEN, "-e", str(capture), "-o", "json_output=true",
                           "-o", "rule_matching=all", "-o", "disabled_plugins=[ebpf]"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    alerts = [json.loads(line) for line in proc.stdout.splitlines()]
    assert collections.Counter(a["rule"] for a in alerts) == expected
    assert "syswarden ready" in proc.stderr


def test_the_cli_refuses_an_unreadable_capture(tmp_path):
    from syswarden.testing import SYSWARDEN  # noqa: PLC0415

    proc = subprocess.run([*SYSWARDEN, "-e", str(tmp_path / "missing.jsonl")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 3
    assert "missing.jsonl: cannot read capture" in proc.stderr


# ---------------------------------------------------------------------------------------------
# Damaged captures: every good line judged, every bad one counted, exit code 4
# ---------------------------------------------------------------------------------------------

def _shadow_read(name: str) -> bytes:
    return json.dumps({"type": "openat", "proc": {"name": name}, "fd": {"name": "/etc/shadow"},
                       "args": {"flags": "O_RDONLY"}}).encode()


HOSTILE = [
    json.dumps({"type": "openat", "container": {"id": "c1", "image": 5}}).encode(),
    b'{"type": "openat", "args": {"a": ' + b"[" * 100_000 + b"]" * 100_000 + b"}}",
    b'{"type": "openat", "fd": {"name": "\xff"}}',   # not UTF-8
    json.dumps(["not", "an", "object"]).encode(),
]


async def test_hostile_lines_in_a_replay_are_counted_and_every_good_line_judged(tmp_path):
    capture = tmp_path / "cap.jsonl"
    lines = [_shadow_read("cat0")]
    for i, bad in enumerate(HOSTILE, 1):
        lines += [bad, _shadow_read(f"cat{i}")]
    capture.write_bytes(b"\n".join(lines) + b"\n")
    agent = _agent(tmp_path, capture)
    assert await agent.run() == 0   # the agent ran to the end; the CLI makes it 4
    assert [a["output_fields"]["proc.name"] for a in _alerts(tmp_path)] == \
        [f"cat{i}" for i in range(len(HOSTILE) + 1)]
    assert agent.metrics.drops() == {replay.MALFORMED: len(HOSTILE)}


async def test_only_the_first_malformed_lines_are_logged_and_all_are_counted(tmp_path, caplog):
    path = tmp_path / "cap.jsonl"
    path.write_text("{bad\n" * 50 + '{"type": "execve"}\n')
    ctx = _ctx(str(path))
    caplog.set_level(logging.WARNING, "syswarden.replay")
    batches = await _collect(replay.syswarden_make_sources(ctx))
    assert [e.type for b in batches for e in b] == ["execve"]
    assert ctx.metrics.get(replay.MALFORMED) == 50
    logged = [r.getMessage() for r in caplog.records if "malformed capture line" in r.getMessage()]
    assert logged == [f"{path}:{n}: malformed capture line skipped: not JSON: Expecting "
                      "property name enclosed in double quotes: line 1 column 2 (char 1)"
                      for n in range(1, replay.LOGGED_LINES + 1)]
    assert "further malformed lines are counted" in caplog.text


def _repeated_rule_test_capture(tmp_path, copies: int = 20) -> list[bytes]:
    """The lines (header first) of the rule tests' capture, its events repeated ``copies``
    times: big enough for a .gz to be damaged in its middle."""
    one = tmp_path / "one.jsonl"
    _rule_test_capture(one)
    header, *events = one.read_bytes().splitlines(keepends=True)
    return [header, *events * copies]


def _damage(packed: bytes, how: str) -> bytes:
    mid = len(packed) // 2
    return packed[:mid] if how == "truncated" else packed[:mid] + b"\xff" * 64 + packed[mid + 64:]


@pytest.mark.parametrize("how", ["truncated", "corrupt"])
async def test_a_damaged_gz_replays_every_complete_line_before_the_damage(tmp_path, how):
    lines = _repeated_rule_test_capture(tmp_path)
    packed = gzip.compress(b"".join(lines))
    damaged = tmp_path / f"{how}.jsonl.gz"
    damaged.write_bytes(_damage(packed, how))
    # the complete lines before the damaged offset, by zlib alone
    readable = zlib.decompressobj(zlib.MAX_WBITS | 16).decompress(
        packed[:len(packed) // 2]).count(b"\n")
    assert 100 < readable < len(lines)
    out = tmp_path / "damaged"
    out.mkdir()
    agent = _agent(out, damaged)
    assert await agent.run() == 0
    judged = agent.metrics.get("events.judged")
    assert judged >= readable - 1  # every event line before the damage (the header is none)
    if how == "truncated":
        assert judged == readable - 1
    assert agent.metrics.drops() == {replay.UNREADABLE: 1}
    # the alerts are those of the undamaged file's first lines, as many as were judged
    prefix = tmp_path / "prefix.jsonl"
    prefix.write_bytes(b"".join(lines[:judged + 1]))
    ref = tmp_path / "prefix"
    ref.mkdir()
    assert await _agent(ref, prefix).run() == 0
    got = collections.Counter(a["rule"] for a in _alerts(out))
    assert got == collections.Counter(a["rule"] for a in _alerts(ref))
    assert sum(got.values()) > 100


def test_the_cli_exits_4_for_a_damaged_capture_after_replaying_what_it_could(tmp_path):
    from syswarden.testing import SYSWARDEN  # noqa: PLC0415

    lines = _repeated_rule_test_capture(tmp_path, copies=10)
    damaged = tmp_path / "cut.jsonl.gz"
    damaged.write_bytes(_damage(gzip.compress(b"".join(lines)), "truncated"))
    malformed = tmp_path / "bad.jsonl"
    malformed.write_bytes(b"".join(lines[:30]) + b"{oops\n" + b"".join(lines[30:40]))
    cmd = [*SYSWARDEN, "-o", "json_output=true", "-o", "disabled_plugins=[ebpf]"]
    cut = subprocess.run([*cmd, "-e", str(damaged)], capture_output=True, text=True, timeout=120)
    assert cut.returncode == 4, cut.stderr
    assert len(cut.stdout.splitlines()) > 10   # the alerts of the readable part
    assert f"{damaged}: damaged capture: the end of the file could not be read" in cut.stderr
    assert "cannot read the capture from this line on: the compressed stream stops" in cut.stderr
    bad = subprocess.run([*cmd, "-e", str(malformed)], capture_output=True, text=True,
                         timeout=120)
    assert bad.returncode == 4, bad.stderr
    assert f"{malformed}:31: malformed capture line skipped: not JSON" in bad.stderr
    assert f"{malformed}: damaged capture: 1 malformed line(s) skipped" in bad.stderr


async def test_a_replay_never_reads_the_local_proc(tmp_path):
    """A capture's process whose pid is alive here (this test's own) keeps what the capture
    says: the lazy /proc fields are unknown, and its fd is not looked up in the local /proc."""
    import os
    me = os.getpid()
    (tmp_path / "rules.yaml").write_text(
        "- rule: Lazy\n  desc: x\n  condition: evt.type = fchmod\n  priority: WARNING\n"
        "  output: vm=%proc.vmrss caps=%thread.cap_permitted cg=%thread.cgroups "
        "ino=%proc.exe_ino home=%user.homedir fd=%fd.name n=%proc.nthreads "
        "exe=%proc.exe_ino.mtime user=%user.name\n")
    capture = tmp_path / "cap.jsonl"
    proc = Process(me, ppid=1, comm="python", container_id="host", uid=0)
    with CaptureWriter(str(capture)) as w:
        evt = Event("fchmod", ts=1_800_000_000_000_000_000, tid=me, pid=me, num=1,
                    args={"fd": 0, "mode": 0o644})
        evt.proc = proc
        w.write(evt)
    agent = _agent(tmp_path, capture, rules_file=[str(tmp_path / "rules.yaml")])
    assert await agent.run() == 0
    [alert] = _alerts(tmp_path)
    fields = alert["output_fields"]
    for name in ("proc.vmrss", "thread.cap_permitted", "thread.cgroups", "proc.exe_ino",
                 "user.homedir", "fd.name", "proc.nthreads", "proc.exe_ino.mtime"):
        assert fields[name] is None, (name, fields[name])
    assert fields["user.name"] is None     # the capture did not say; not the local passwd's
