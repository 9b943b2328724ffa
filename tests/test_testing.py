"""syswarden/testing.py, the helpers the project's tests and plugin authors share; and the
"Testing your plugin" example of docs/plugins.md, run with pytest as a plugin author runs it."""

from __future__ import annotations

import ipaddress
import os
import re
import signal
import subprocess
import sys

import pytest
import trio

from syswarden.core.alert import Priority
from syswarden.core.errors import SourceError
from syswarden.core.outputs import OutputSettings
from syswarden.core.protocols import Filter
from syswarden.testing import (DrivenOutput, ListSource, RecordingOutput, base_config,
                               make_agent, make_alert, make_event, read_field)
from tests.helpers.paths import REPO

DOC = REPO / "docs" / "plugins.md"


def doc_block(marker: str) -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    [block] = [b for b in blocks if marker in b]
    return block


def test_the_documented_plugin_test_passes_with_pytest(tmp_path):
    (tmp_path / "csv_output.py").write_text(doc_block("def syswarden_make_outputs"))
    (tmp_path / "test_csv_output.py").write_text(doc_block('"""test_csv_output.py'))
    out = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                          "--rootdir", str(tmp_path), "test_csv_output.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "2 passed" in out.stdout


def test_an_event_comes_with_its_process_tree_fd_and_container():
    e = make_event("openat", name="/etc/shadow", proc="cat", parent="bash", uid=1000,
                   cmdline=["/etc/shadow"], mounts=["/data"])
    assert (e.type, e.args["name"], e.args["fd"], e.res) == ("openat", "/etc/shadow", 3, 3)
    assert [p.comm for p in (e.proc, *e.proc.ancestors())] == ["cat", "bash", "sshd"]
    assert e.proc.uid == 1000 and e.proc.parent.parent.uid == 0
    assert (e.fd.num, e.fd.type, e.fd.name) == (3, "file", "/etc/shadow")
    assert e.container is e.proc.container and e.proc.container_id == e.container.id
    assert [m.dest for m in e.container.mounts] == ["/data"]
    assert read_field("proc.cmdline", e) == "cat /etc/shadow"
    assert read_field("proc.aname", e, 2) == "sshd"
    assert read_field("container.mount.dest", e, 0) == "/data"
    assert read_field("container.name", e) == "web"
    sock = make_event("connect", sip="10.0.0.2", sport=443)
    assert sock.fd.type == "ipv4" and sock.fd.sip == ipaddress.ip_address("10.0.0.2")
    assert read_field("fd.sport", sock) == 443 and sock.container is None
    with pytest.raises(KeyError, match="no.such"):
        read_field("no.such", sock)


def test_alerts_are_numbered_unless_told():
    a, b = make_alert(), make_alert()
    assert b.output_fields["seq"] == a.output_fields["seq"] + 1
    c = make_alert(7, rule="R", priority=Priority.ERROR, extra="x")
    assert (c.rule, c.priority, c.output_fields["seq"], c.output_fields["extra"]) == \
        ("R", Priority.ERROR, 7, "x")


class EveryOpen(Filter):
    """An alert per open, naming the event's number."""

    name = "every-open"

    def event_types(self):
        return {"openat"}

    def check(self, event):
        return [make_alert(event.num, rule="open")]


async def test_a_list_source_sends_its_events_in_batches_then_ends(tmp_path):
    source, recorded = ListSource([make_event() for _ in range(5)], batch_size=2), \
        RecordingOutput()
    agent = make_agent(tmp_path, source, EveryOpen(), recorded)
    assert [s.name for s in agent.sources] == ["list"]
    assert agent.event_types() == {"openat"}
    assert await agent.run() == 0
    assert source.sent == 5 and agent.metrics.get("events.in") == 5
    assert [a.output_fields["seq"] for a in recorded.alerts] == [1, 2, 3, 4, 5]
    assert recorded.rules == ["open"] * 5


async def test_a_waiting_list_source_runs_until_the_stop(tmp_path):
    recorded = RecordingOutput(settings=OutputSettings(min_priority=Priority.WARNING))
    agent = make_agent(tmp_path, ListSource([make_event()], wait=True), EveryOpen(), recorded)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        while agent.metrics.get("events.judged") < 1:
            await trio.sleep(0.01)
        agent.emit_internal_alert("about the agent", {})     # Critical: over the threshold
        os.kill(os.getpid(), signal.SIGUSR1)
        with trio.fail_after(10):
            while not recorded.reopened:
                await trio.sleep(0.01)
        agent.request_stop()
    assert recorded.rules == ["Falco internal: syscall event drop"]  # the Notice one is not
    assert recorded.reopened == 1


def test_without_a_source_the_agent_is_refused(tmp_path):
    with pytest.raises(SourceError):
        make_agent(tmp_path, RecordingOutput())


async def test_a_driven_output_counts_as_the_agent_does():
    recorded = RecordingOutput(settings=OutputSettings(queue_size=2))
    driven = DrivenOutput(recorded, base_config())
    async with trio.open_nursery() as nursery:
        driven.offer([make_alert(i) for i in range(3)])         # before it reads: 2 fit
        await nursery.start(driven.run)
        await driven.stop()
    assert [a.output_fields["seq"] for a in recorded.alerts] == [0, 1]
    assert driven.metrics.get("outputs.recording.queued") == 2
    assert driven.metrics.get("outputs.recording.dropped") == 1


async def test_a_plugin_installed_as_an_entry_point_and_given_is_registered_once(
        tmp_path, monkeypatch):
    """A plugin author's own plugin is installed in their environment: giving it again to
    make_agent registers it once, and its output is built once."""
    (tmp_path / "sw_given_plugin.py").write_text(
        "from syswarden.core.hookspecs import hookimpl\n"
        "from syswarden.testing import RecordingOutput\n"
        "OUTPUT = RecordingOutput('given')\n"
        "@hookimpl\n"
        "def syswarden_make_outputs(ctx):\n"
        "    return OUTPUT\n")
    info = tmp_path / "sw_given_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sw-given-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[syswarden]\ngiven = sw_given_plugin\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import sw_given_plugin  # noqa: PLC0415

    agent = make_agent(tmp_path, ListSource([make_event()]), EveryOpen(), sw_given_plugin)
    assert [o.name for o in agent.outputs] == ["given"]
    assert await agent.run() == 0
    assert sw_given_plugin.OUTPUT.rules == ["open"]
