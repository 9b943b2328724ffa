"""The event generator against the live agent: every action raises the rule it expects.

Two agents watch the same run: one with our default rules (each action must raise its rule, in
the time window of that action) and one with Falco's stable ruleset
(../shared/compat/falco-rules/falco_rules.yaml), whose hits are reported for comparison.
"""

from __future__ import annotations

import time

import pytest

from syswarden.commands.event_generator import ACTIONS, run_actions
from tests.e2e.live_alerts import SLACK_NS, alert_ns, json_agent, read_alerts
from tests.helpers.docker import containers, docker_images, dockerd  # noqa: F401
from tests.helpers.paths import COMPAT

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

#: runc cannot start a --privileged container where CAP_SYS_RESOURCE is not in the bounding set
#: (these machines): the generator then says "skipped" with the reason
MAY_SKIP = {"privileged-container"}
NEEDS_CONTAINER = {"terminal-shell-in-container", "package-manager-in-container"}


def test_every_action_raises_its_rule(tmp_path, containers):  # noqa: F811
    ours, falcos = tmp_path / "ours.json", tmp_path / "falco.json"
    box = containers.run("nginx:latest")
    windows: dict[str, tuple[int, int, str]] = {}
    with json_agent(ours), \
            json_agent(falcos, str(COMPAT / "falco-rules" / "falco_rules.yaml")):
        for action in ACTIONS:
            start = time.time_ns()
            result = run_actions([action.name], box.name if action.name in NEEDS_CONTAINER
                                 else None, report=lambda _line: None)[action.name]
            windows[action.name] = (start, time.time_ns(), result)
            time.sleep(0.6)  # keeps the actions' time windows apart
        expected = {a.rule for a in ACTIONS}
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and \
                not expected <= {a["rule"] for a in read_alerts(ours)}:
            time.sleep(0.5)
        time.sleep(1)

    alerts, falco_alerts = read_alerts(ours), read_alerts(falcos)
    slack = SLACK_NS
    missed, report = [], []
    for action in ACTIONS:
        start, end, result = windows[action.name]
        if result.startswith("skipped") and action.name in MAY_SKIP:
            report.append(f"{action.name:<30} {result}")
            continue
        assert result == "ok", f"{action.name}: {result}"
        hits = {a["rule"] for a in alerts if start - slack <= alert_ns(a) <= end + slack}
        falco_hits = sorted({a["rule"] for a in falco_alerts
                             if start - slack <= alert_ns(a) <= end + slack})
        if action.rule not in hits:
            missed.append(action.name)
        report.append(f"{action.name:<30} ours: {'yes' if action.rule in hits else 'NO ':<4}"
                      f" falco stable: {', '.join(falco_hits) or '-'}")
    print("\n" + "\n".join(report))
    assert not missed, f"actions whose rule did not fire: {missed}\n" + "\n".join(report)
