"""The enricher: state first, then evt.proc / evt.fd, only where missing; the plugin hooks."""

from __future__ import annotations

import os

from syswarden.core.event import Event, ExecFacts, FdInfo, ForkFacts, Process
from syswarden.core.metrics import Metrics
from syswarden.core.protocols import Enricher, PluginContext
from syswarden.plugins.enrichers import process as plugin
from syswarden.plugins.enrichers.process.enricher import ProcessEnricher


def enricher_with(*procs):
    e = ProcessEnricher(snapshot=False)
    for p in procs:
        e.table.procs[p.pid] = p
    return e


def test_execve_event_shows_the_new_image_and_its_parent():
    sh = Process(500, comm="bash", cwd="/root", uid=0, user="root")
    en = enricher_with(sh)
    f = Event("clone", tid=500, pid=500, res=501)
    f.kernel = ForkFacts(child_tid=501, is_thread=False)
    en.enrich(f)
    assert f.proc is sh
    x = Event("execve", tid=501, pid=501, res=0,
              args={"res": 0, "exe": "nc", "args": ["-l", "4444"], "comm": "nc"})
    x.kernel = ExecFacts(exepath="/bin/nc.openbsd", argv=["nc", "-l", "4444"], uid=0, gid=0)
    en.enrich(x)
    assert x.proc.comm == "nc" and x.proc.parent is sh and x.proc.cmdline == "nc -l 4444"
    assert x.args["ptid"] == 500 and x.args["cwd"] == "/root"


def test_a_replayed_event_passes_through_unchanged():
    en = enricher_with()
    carried = Process(42, comm="from-capture")
    fd = FdInfo(3, "file", "/captured")
    ev = Event("openat", tid=42, pid=42, res=3, args={"fd": 3, "dirfd": -100, "name": "x"})
    ev.proc, ev.fd = carried, fd
    en.enrich(ev)
    assert ev.proc is carried and ev.fd is fd and ev.args["name"] == "x"
    assert 42 not in en.table.procs


def test_a_replayed_event_without_fd_gets_one_from_its_args():
    en = enricher_with()
    ev = Event("openat", tid=42, pid=42, res=3, args={"fd": 3, "dirfd": -100, "name": "f"})
    ev.proc = Process(42, cwd="/data")
    en.enrich(ev)
    assert ev.fd.name == "/data/f"


def test_setuid_changes_the_user():
    p = Process(600, uid=0, user="root", live=True)     # a process of this machine
    en = enricher_with(p)
    ev = Event("setuid", tid=600, pid=600, res=0, args={"res": 0, "uid": 65534})
    en.enrich(ev)
    assert ev.proc.uid == 65534 and ev.proc.user == "nobody"
    assert en.table.procs[600] is ev.proc and p.uid == 0   # a new version; the old one stays


def test_plugin_hooks():
    schema = plugin.syswarden_config_schema()["process"]
    cfg = {"process": schema.defaults()}
    assert schema.keys["max_entries"].min == 16 and schema.keys["exit_grace"].min == 0
    ctx = PluginContext(config=cfg, metrics=Metrics(), fields=None, replay_file="x.jsonl")
    en = plugin.syswarden_make_enrichers(ctx)
    assert isinstance(en, Enricher) and len(en.table) == 0   # no /proc snapshot on replay
    live = plugin.syswarden_make_enrichers(PluginContext(cfg, Metrics(), None))
    assert os.getpid() in live.table.procs
    assert {d.name for d in plugin.syswarden_fields()} >= {"proc.name", "fd.name", "user.name"}


def test_events_keep_the_process_as_it_was_when_later_events_change_it():
    # one batch: unshare, then the exec of `true` by the same process, then a setuid; the
    # batch is enriched whole before any event of it is judged
    un = Process(600, comm="unshare", exe="unshare", args=["--uts", "true"], uid=0,
                 user="root")
    en = enricher_with(un)
    first = Event("unshare", tid=600, pid=600, res=0, args={"flags": 0x04000000})
    x = Event("execve", tid=600, pid=600, res=0,
              args={"res": 0, "exe": "true", "args": [], "comm": "true"})
    x.kernel = ExecFacts(exepath="/bin/true", argv=["true"], uid=0, gid=0)
    su = Event("setuid", tid=600, pid=600, res=0, args={"uid": 65534})
    for ev in (first, x, su):
        en.enrich(ev)
    assert (first.proc.comm, first.proc.cmdline, first.proc.uid) == \
        ("unshare", "unshare --uts true", 0)
    assert (x.proc.comm, x.proc.uid) == ("true", 0)
    assert (su.proc.comm, su.proc.uid) == ("true", 65534)
    assert en.table.procs[600] is su.proc


def test_the_state_gauges_count_the_tables_when_read():
    metrics = Metrics()
    en = ProcessEnricher(metrics, snapshot=False)
    sh = Process(700, comm="sh")
    en.table.procs[700] = sh
    ev = Event("openat", tid=700, pid=700, res=5, args={"fd": 5, "dirfd": -100, "name": "/a"})
    en.enrich(ev)
    t = Event("clone", tid=700, pid=700, res=701)
    t.kernel = ForkFacts(child_tid=701, is_thread=True)
    en.enrich(t)
    snap = metrics.snapshot()
    assert (snap["state.processes"], snap["state.threads"], snap["state.fds"]) == (1, 1, 1)
    en.enrich(Event("close", tid=700, pid=700, res=0, args={"fd": 5}))
    assert metrics.snapshot()["state.fds"] == 0      # counted again at each read
