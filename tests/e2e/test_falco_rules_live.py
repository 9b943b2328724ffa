"""Falco's own rule files proven live: one agent runs Falco's stable, incubating and sandbox
files unmodified, the event generator's Falco actions (``event-generator --falco``) run one
after the other, and each rule an action names must fire inside that action's time window.

Rules Falco ships disabled are switched on by a small file of our own loaded after Falco's (as
Falco's docs tell users to); Falco's files themselves are read from the shared compat directory,
never copied.  A rule whose action is written but whose alert syswarden cannot raise yet
(``AWAITING``) is a strict xfail: it turns into a failure the day the missing piece lands, to be
un-marked.  The rules no action can trigger here are replayed from hand-made events
(``test_falco_rules_replay.py``).
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field

import pytest

from syswarden.commands.actions import (AWAITING, FALCO_ACTIONS, RACES, rule_actions,
                                        run_falco_actions)
from syswarden.commands.actions.coverage import FALCO_FILES, falco_rules
from syswarden.commands.actions.network import K8S_API_NAME, K8S_API_NET
from syswarden.testing import hosts_entry
from tests.e2e.live_alerts import alert_ns, json_agent, read_alerts, rules_in_window
from tests.helpers.docker import Containers, docker_images, dockerd  # noqa: F401
from tests.helpers.paths import COMPAT

pytestmark = [pytest.mark.root, pytest.mark.docker, pytest.mark.slow]

#: an alert's time is its event's (the kernel's clock, on the wall clock's epoch): it falls
#: inside the window of the action that caused it; the slack only absorbs the epoch's sampling
SLACK_NS = 100_000_000
#: the pause between two actions, so that no window reaches into the next
GAP_S = 0.25


@dataclass
class LiveRun:
    results: dict[str, str] = field(default_factory=dict)             # action -> ok | ...
    windows: dict[str, tuple[int, int]] = field(default_factory=dict)  # action -> (start, end)
    alerts: dict[str, list[dict]] = field(default_factory=dict)        # file label -> alerts


def enable_overlay(directory, path) -> None:
    """A rules file switching on the rules Falco ships disabled that an action triggers."""
    covered = rule_actions()
    lines = []
    for entries in falco_rules(directory).values():
        for rule, enabled in entries:
            if not enabled and rule in covered:
                lines += [f"- rule: {rule}", "  enabled: true", "  override:",
                          "    enabled: replace", ""]
    path.write_text("\n".join(lines))


def agent_rules(directory, overlay) -> dict[str, list[str]]:
    """File label -> the rules files its agent loads: the stable file alone, or the stable file
    then the incubating or the sandbox one (their macros and lists come from the stable file),
    as Falco's users load them.  Rules match first-come (Falco's default ``rule_matching:
    first``), so an action proves a rule only if no rule loaded before it takes its event."""
    stable = str(directory / FALCO_FILES["stable"])
    return {label: [stable] if label == "stable" else [stable, str(directory / name)]
            for label, name in FALCO_FILES.items()} | \
        {"sandbox": [stable, str(directory / FALCO_FILES["sandbox"]), str(overlay)]}


@pytest.fixture(scope="module")
def live(tmp_path_factory, docker_images) -> LiveRun:  # noqa: F811
    # the compat fixture's directory, for the whole module (that fixture is per test)
    if not COMPAT.is_dir():
        pytest.fail(f"compat rule files not found at {COMPAT} (set SYSWARDEN_SHARED)")
    tmp = tmp_path_factory.mktemp("falco-live")
    falco_dir = COMPAT / "falco-rules"
    enable_overlay(falco_dir, tmp / "enable.yaml")
    files = agent_rules(falco_dir, tmp / "enable.yaml")
    paths = {label: tmp / f"{label}.json" for label in files}
    labels = {rule: label for label, entries in falco_rules(falco_dir).items()
              for rule, _ in entries}
    expected = {(labels[r], r) for r in rule_actions() if r not in AWAITING}
    out = LiveRun()
    starts: dict[str, int] = {}

    def before(action) -> None:
        starts[action.name] = time.time_ns()

    def after(action, result) -> None:
        out.windows[action.name] = (starts[action.name], time.time_ns())
        time.sleep(GAP_S)

    def seen() -> set[tuple[str, str]]:
        return {(label, a["rule"]) for label, path in paths.items() for a in read_alerts(path)}

    # this machine names the Kubernetes API server's address, as a cluster's node does,
    # before the agents start (their lookups of the name find it at once)
    with hosts_entry(K8S_API_NET[1], K8S_API_NAME), Containers() as boxes, \
            contextlib.ExitStack() as agents:
        box = boxes.run("nginx:latest")
        for label, rules in files.items():
            agents.enter_context(json_agent(paths[label], *rules))
        out.results = run_falco_actions([], box.name, report=lambda _line: None,
                                        before=before, after=after)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not expected <= seen():
            time.sleep(0.5)
        time.sleep(1)
    out.alerts = {label: read_alerts(path) for label, path in paths.items()}
    return out


def _params():
    labels = {rule: label for label, entries in falco_rules(COMPAT / "falco-rules").items()
              for rule, _ in entries} if (COMPAT / "falco-rules").is_dir() else {}
    for rule in rule_actions():
        marks = [pytest.mark.xfail(strict=rule not in RACES,
                                   reason=f"waits for {AWAITING[rule]}")] \
            if rule in AWAITING else []
        yield pytest.param(rule, id=f"{labels.get(rule, '?')}::{rule}", marks=marks)


@pytest.mark.parametrize("rule", list(_params()))
def test_rule_fires_live(live, rule, request):
    label = request.node.callspec.id.split("::")[0]
    alerts = live.alerts[label]
    for action in rule_actions()[rule]:
        result = live.results.get(action.name)
        assert result == "ok", f"{action.name}: {result}"
        fired = rules_in_window(alerts, *live.windows[action.name], slack=SLACK_NS)
        start, end = live.windows[action.name]
        elsewhere = [f"{(alert_ns(a) - start) / 1e9:+.2f}s" for a in alerts
                     if a["rule"] == rule]
        assert rule in fired, (f"{rule!r} did not fire for action {action.name!r} "
                               f"({(end - start) / 1e9:.2f}s long); in its window: "
                               f"{sorted(fired) or 'nothing'}; this rule's alerts, from the "
                               f"window's start: {elsewhere or 'none'}")


def test_every_action_is_run(live):
    assert set(live.results) == {a.name for a in FALCO_ACTIONS}
