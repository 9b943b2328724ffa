"""Agents for the NATS tests: the kit's counting source (tests/core/plugin_kit.py) or the real
sources, the nats output, a hostname of their own (a UTS namespace: ``unshare -u``)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import time
from collections.abc import Callable
from typing import Any

from syswarden.core.plugins import BUILTIN_PLUGINS
from syswarden.testing import SYSWARDEN

KIT = str(pathlib.Path(__file__).parents[1] / "core" / "plugin_kit.py")
#: every built-in plugin but the test kit's own (read from the registry: a renamed plugin cannot
#: be left enabled by a stale name)
NOT_KIT = [name for name, _, _ in BUILTIN_PLUGINS if name not in ("nats", "fleet")]


def kit_config(directory: pathlib.Path, name: str, servers: list[str], count: int, *,
               pace: float = 0.0, batch: int = 10, nats: dict | None = None,
               nats_output: dict | None = None, **extra: Any) -> str:
    """A config file for an agent named ``name`` whose kit source sends ``count`` events
    (each alerts once), ``batch`` at a time, ``pace`` seconds apart, to the nats output."""
    rules = directory / f"{name}-kit-rules.json"
    rules.write_text(json.dumps({"type": "kit"}))
    cfg: dict[str, Any] = {
        "plugins": [KIT], "disabled_plugins": NOT_KIT,
        "kit": {"rules": str(rules), "output": str(directory / f"{name}-kit.txt"),
                "count": count, "batch": batch, "pace": pace, "forever": True},
        "pipeline": {"stats_interval": 0, "shutdown_grace": 3},
        "nats": {"servers": servers, "connect_timeout": 1, "reconnect_wait": 0.2,
                 **(nats or {})},
        "nats_output": {"enabled": True, "queue_file": str(directory / f"{name}.sqlite3"),
                        "retry_max": 0.5, **(nats_output or {})},
    }
    cfg.update(extra)
    path = directory / f"{name}.yaml"
    path.write_text(json.dumps(cfg))
    return str(path)


def start_agent(*args: str, hostname: str | None = None, log: pathlib.Path | None = None
                ) -> subprocess.Popen:
    """``syswarden ARGS`` in the background, in a UTS namespace named ``hostname`` if given;
    its stderr into ``log``."""
    cmd = [*SYSWARDEN, *args]
    if hostname:
        cmd = ["unshare", "-u", "sh", "-c", f'hostname {hostname} && exec "$@"', "sh", *cmd]
    err = open(log, "ab") if log else subprocess.DEVNULL
    return subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=err)


def wait_until(predicate: Callable[[], Any], timeout: float, what: str,
               proc: subprocess.Popen | None = None) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"{what}: the agent exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not after {timeout} s")
        time.sleep(0.2)


def spooled(path: pathlib.Path) -> int:
    import sqlite3
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
            return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
    except sqlite3.Error:
        return 0


def alerts_by_host(messages: list) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for m in messages:
        doc = json.loads(m.data)
        assert m.headers["Nats-Msg-Id"] == doc["uuid"]
        out.setdefault(doc["hostname"], []).append(doc)
    return out


def stop(proc: subprocess.Popen, timeout: float = 20.0) -> int:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode
