"""The file output in the real agent: logrotate renames the file, SIGUSR1 (then SIGHUP) makes
the agent reopen it, and the alerts after the signal land in the new file.

Events come from a test source the test pushes into (push_source.py) and are judged by the
agent tests' kit filter (tests/core/plugin_kit.py: one alert per ``kit`` event)."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess

import pytest
import trio

from syswarden.core.agent import Agent
from syswarden.core.config import load_config
from syswarden.core.errors import UnsafePathError
from syswarden.core.event import Event
from syswarden.core.plugins import BUILTIN_PLUGINS, make_plugin_manager
from syswarden.testing import SYSWARDEN as CLI
from tests.helpers.users import as_nobody, root_secret, shared_dir, unchanged

HERE = pathlib.Path(__file__).parent
KIT = str(HERE.parents[1] / "core" / "plugin_kit.py")
PUSH = str(HERE / "push_source.py")


def make_agent(tmp_path, events: pathlib.Path) -> Agent:
    rules = tmp_path / "kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    cfg = {"plugins": [KIT, PUSH],
           "disabled_plugins": [n for n, _, _ in BUILTIN_PLUGINS if n != "file"],
           "kit": {"rules": str(rules), "output": str(tmp_path / "kit.txt"), "count": 0,
                   "forever": True},
           "file_output": {"enabled": True, "keep_alive": True, "filename": str(events)},
           "pipeline": {"stats_interval": 0, "shutdown_grace": 2}}
    path = tmp_path / "config.yaml"
    path.write_text(json.dumps(cfg))
    plugins = make_plugin_manager(cfg)
    agent = Agent(load_config(str(path), (), plugins.schemas()), plugins, config_path=str(path))
    agent.build()
    return agent


def nums(path: pathlib.Path) -> list[int]:
    if not path.exists():
        return []
    return [int(line.rsplit(" ", 1)[1]) for line in path.read_text().splitlines()]


async def wait_lines(path: pathlib.Path, n: int) -> None:
    with trio.fail_after(10):
        while len(nums(path)) < n:
            await trio.sleep(0.01)


async def test_logrotate_rename_then_sigusr1_then_sighup(tmp_path):
    events = tmp_path / "events.log"
    agent = make_agent(tmp_path, events)
    [source] = [s for s in agent.sources if s.name == "push-source"]
    [file_output] = [o for o in agent.outputs if o.name == "file"]

    async def signal_and_wait_for_reopen(signum: int) -> None:
        os.kill(os.getpid(), signum)
        with trio.fail_after(10):
            while not file_output._reopen:          # set by reopen(), cleared by the next write
                await trio.sleep(0.01)

    def push(first: int, last: int) -> None:
        source.push([Event("kit", ts=1_700_000_000_000_000_000 + n, num=n)
                     for n in range(first, last + 1)])

    async with trio.open_nursery() as nursery:
        nursery.start_soon(agent.run)
        await agent.ready.wait()
        push(1, 3)
        await wait_lines(events, 3)
        os.rename(events, tmp_path / "events.log.1")
        await signal_and_wait_for_reopen(signal.SIGUSR1)
        push(4, 5)
        await wait_lines(events, 2)
        os.rename(events, tmp_path / "events.log.2")
        await signal_and_wait_for_reopen(signal.SIGHUP)   # reload, then reopen
        push(6, 6)
        await wait_lines(events, 1)
        agent.request_stop()
    assert nums(tmp_path / "events.log.1") == [1, 2, 3]
    assert nums(tmp_path / "events.log.2") == [4, 5]
    assert nums(events) == [6]


def push_kit(agent: Agent, first: int, last: int) -> None:
    [source] = [s for s in agent.sources if s.name == "push-source"]
    source.push([Event("kit", ts=1_700_000_000_000_000_000 + n, num=n)
                 for n in range(first, last + 1)])


async def test_a_symlink_nobody_planted_stops_the_agent_at_start(tmp_path, caplog):
    """The alerts file in a shared sticky dir (like /tmp), a link to a root file planted at
    its name by nobody: the agent refuses to start and says why; the root file is untouched."""
    secret = root_secret(tmp_path / "shadow")
    with shared_dir() as shared:
        as_nobody(os.symlink, str(secret), str(shared / "events.log"))
        agent = make_agent(tmp_path, shared / "events.log")
        with trio.fail_after(30), pytest.raises(UnsafePathError) as refused:
            await agent.run()                      # without the check it runs on, writing
        # the same through the CLI: bad input, exit 2, the reason on stderr
        cli = subprocess.run([*CLI, "-e", "/dev/null", "-o", "file_output.enabled=true",
                              "-o", f"file_output.filename={shared / 'events.log'}"],
                             capture_output=True, text=True, timeout=120)
    message = f"{shared / 'events.log'}: refusing to write here: is a symbolic link"
    assert message in str(refused.value) and "hint: remove it" in str(refused.value)
    assert cli.returncode == 2 and message in cli.stderr and "Traceback" not in cli.stderr
    assert unchanged(secret)


async def test_a_symlink_planted_before_sigusr1_is_never_written_through(tmp_path, caplog):
    secret = root_secret(tmp_path / "shadow")
    with shared_dir() as shared:
        events = shared / "events.log"
        agent = make_agent(tmp_path, events)
        [file_output] = [o for o in agent.outputs if o.name == "file"]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(agent.run)
            await agent.ready.wait()
            push_kit(agent, 1, 2)
            await wait_lines(events, 2)
            os.rename(events, shared / "events.log.1")           # logrotate
            as_nobody(os.symlink, str(secret), str(events))
            os.kill(os.getpid(), signal.SIGUSR1)
            with trio.fail_after(10):
                while not file_output._reopen:
                    await trio.sleep(0.01)
            push_kit(agent, 3, 4)
            with trio.fail_after(10):
                while agent.metrics.get("outputs.file.failed") < 2:
                    await trio.sleep(0.01)
            agent.request_stop()
        assert nums(shared / "events.log.1") == [1, 2]
    assert unchanged(secret)
    assert "symbolic link (owned by uid 65534 (nobody)" in caplog.text
