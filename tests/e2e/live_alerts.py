"""The live agent as the end-to-end tests run it: JSON alerts appended to a file, read back with
their times, so each alert can be matched to the time window of the action that caused it."""

from __future__ import annotations

import calendar
import json
import time

from syswarden.testing import running_agent

#: how far outside an action's time window an alert still counts as its own (ns)
SLACK_NS = 300_000_000


def alert_ns(alert: dict) -> int:
    stamp, _, frac = alert["time"].rstrip("Z").partition(".")
    secs = calendar.timegm(time.strptime(stamp, "%Y-%m-%dT%H:%M:%S"))
    return secs * 1_000_000_000 + int(frac.ljust(9, "0")[:9])


def json_agent(events, *rules: str):
    """The agent with ``rules`` (its default ruleset when none), its JSON alerts appended to
    ``events``."""
    # the kernel here has no module support: follow finit_module through raw_syscalls
    args = ["-o", "ebpf.raw_fallback=true", "-o", "json_output=true", "-o", "file_output.enabled=true",
            "-o", f"file_output.filename={events}", "-o", "stdout_output.enabled=false"]
    for r in rules:
        args += ["-r", r]
    return running_agent(*args)


def read_alerts(path) -> list[dict]:
    try:
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except FileNotFoundError:
        return []


def rules_in_window(alerts: list[dict], start: int, end: int, slack: int = SLACK_NS) -> set[str]:
    """The rules of the alerts whose time falls in [start, end] (ns), give or take ``slack``."""
    return {a["rule"] for a in alerts if start - slack <= alert_ns(a) <= end + slack}
