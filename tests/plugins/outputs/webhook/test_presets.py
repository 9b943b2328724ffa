"""Presets against real receivers: Redmine tickets (with de-duplication), Alertmanager alerts,
and the Jinja2 templates (Jira, GitHub, Slack, PagerDuty, your own)."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import trio

from syswarden.core.alert import Priority
from syswarden.core.errors import ConfigError
from syswarden.core.outputs import AlertFormatter
from syswarden.plugins.outputs.webhook import WebhookOutput
from syswarden.plugins.outputs.webhook.presets import make_preset
from syswarden.testing import base_config, make_alert

from .helpers import hook


async def test_redmine_ticket_created_and_repeats_noted(redmine, drive, metrics, tmp_path,
                                                        monkeypatch):
    monkeypatch.setenv("SW_REDMINE_KEY", redmine.api_key)
    rule = f"Shell in container {uuid.uuid4().hex[:8]}"
    section = hook(redmine.url, tmp_path, preset="redmine", note_interval=0.2,
                   key_fields=["container.id", "proc.name"], timeout=10,
                   redmine={"project": redmine.project, "api_key": "${SW_REDMINE_KEY}",
                            "priorities": {}})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    same = [make_alert(i, rule=rule, priority=Priority.CRITICAL) for i in range(5)]
    other = make_alert(9, rule=rule, priority=Priority.WARNING, **{"container.id": "0badc0ffee00"})
    driven.offer(same + [other])
    await driven.stop()
    assert metrics.get("outputs.hook.sent") == 2
    tickets = {t["subject"]: t for t in redmine.issues() if rule in t["subject"]}
    assert set(tickets) == {
        f"[Critical] {rule} (container.id=4f1a2b3c4d5e, proc.name=bash)",
        f"[Warning] {rule} (container.id=0badc0ffee00, proc.name=bash)"}
    first = tickets[f"[Critical] {rule} (container.id=4f1a2b3c4d5e, proc.name=bash)"]
    assert first["priority"]["id"] == 4                       # Critical -> Urgent
    assert same[0].output in first["description"] and same[0].uuid in first["description"]
    assert "* proc.name: bash" in first["description"]
    journals = redmine.get(f"/issues/{first['id']}.json?include=journals")["issue"]["journals"]
    notes = [j["notes"] for j in journals if j.get("notes")]
    repeats = sum(int(m) for n in notes for m in re.findall(r"Repeated (\d+) more", n))
    assert repeats == 4 and notes
    assert same[4].uuid in notes[-1]
    assert metrics.get("outputs.hook.deduplicated") == 4


async def test_alertmanager_alerts_read_back(alertmanager, drive, metrics, tmp_path):
    rule = f"Write below etc {uuid.uuid4().hex[:8]}"
    section = hook(alertmanager.url, tmp_path, preset="alertmanager",
                   alertmanager={"labels": {"team": "secops"}})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    alert = make_alert(rule=rule, priority=Priority.ERROR, **{"container.name": "web-1"})
    driven.offer([alert])
    await driven.stop()
    assert metrics.get("outputs.hook.sent") == 1
    with trio.fail_after(10):
        while not (got := [a for a in alertmanager.alerts() if a["labels"].get("rule") == rule]):
            await trio.sleep(0.1)
    labels, annotations = got[0]["labels"], got[0]["annotations"]
    assert labels["alertname"] == rule and labels["priority"] == "Error"
    assert labels["hostname"] == alert.hostname and labels["container"] == "web-1"
    assert labels["team"] == "secops"
    assert annotations["uuid"] == alert.uuid and alert.output in annotations["output"]


@pytest.mark.parametrize("builtin,check", [
    ("jira", lambda d, a: d["fields"]["project"]["key"] == "SEC"
        and a.uuid in d["fields"]["description"]),
    ("github", lambda d, a: d["title"].startswith("[Critical] ") and a.output in d["body"]),
    ("slack", lambda d, a: a.rule in d["text"] and d["blocks"][0]["type"] == "section"),
    ("pagerduty", lambda d, a: d["routing_key"] == "R0UT1NG"
        and d["payload"]["severity"] == "critical"
        and d["payload"]["custom_details"]["uuid"] == a.uuid),
])
async def test_builtin_templates_posted(receiver, drive, metrics, tmp_path, builtin, check):
    section = hook(receiver.url, tmp_path, preset="template",
                   template={"builtin": builtin, "vars": {"project": "SEC",
                                                          "routing_key": "R0UT1NG"}})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    alert = make_alert(priority=Priority.CRITICAL)
    driven.offer([alert])
    await receiver.wait_for(1)
    await driven.stop()
    assert check(receiver.delivered[0].json(), alert)


async def test_own_template_and_a_failing_one(receiver, drive, metrics, tmp_path):
    body = '{"who": {{ fields["proc.name"] | tojson }}, "n": {{ fields["seq"] }}, ' \
           '"missing": {{ fields["nope"] | tojson }}}'
    section = hook(receiver.url, tmp_path, preset="template", method="PUT",
                   template={"body": body})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    driven.offer([make_alert(1, nope="x"), make_alert(2)])    # the second lacks 'nope'
    await driven.stop()
    assert [r.json() for r in receiver.delivered] == [{"who": "bash", "n": 1, "missing": "x"}]
    assert receiver.delivered[0].method == "PUT"
    assert metrics.get("outputs.hook.render.dropped") == 1


@pytest.mark.parametrize("body", [
    "{{ alert.__class__.__mro__[1].__subclasses__() }}",
    '{"x": {{ "".__class__ | tojson }}}',                      # a filter used to hide it
    '{"x": {{ "{0.__class__}".format(rule) | tojson }}}',
    '{"x": {{ (rule.upper).__self__ | tojson }}}',
])
def test_a_template_the_sandbox_refuses_fails_at_load(tmp_path, body):
    section = hook("http://x", tmp_path, preset="template", template={"body": body})
    with pytest.raises(ConfigError, match="template body: the sandbox refuses it: access to "
                                          "attribute '__"):
        make_preset(section, AlertFormatter(True))


def test_a_refusal_only_some_alerts_reach_fails_those_alerts(tmp_path):
    body = '{% if fields["proc.name"] == "bash" %}{{ rule.__class__ }}{% endif %}{}'
    section = hook("http://x", tmp_path, preset="template", template={"body": body})
    preset = make_preset(section, AlertFormatter(True))     # the sample alert does not reach it
    with pytest.raises(ValueError, match="template body: SecurityError"):
        preset.request(make_alert())


def test_template_syntax_error_is_a_config_error(tmp_path):
    section = hook("http://x", tmp_path, preset="template", template={"body": "{{ rule "})
    with pytest.raises(ConfigError, match="template body line 1"):
        make_preset(section, AlertFormatter(True))


def test_redmine_needs_a_project(tmp_path):
    with pytest.raises(ConfigError, match="redmine.project"):
        make_preset(hook("http://x", tmp_path, preset="redmine", redmine={}), AlertFormatter(True))


def test_redmine_subject_and_priority_map(tmp_path):
    section = hook("http://x", tmp_path, preset="redmine", key_fields=["proc.name", "fd.name"],
                   redmine={"project": "ci", "priorities": {"notice": 3}})
    preset = make_preset(section, AlertFormatter(True))
    req = preset.request(make_alert(priority=Priority.NOTICE))
    issue = json.loads(req.body)["issue"]
    assert issue["subject"] == "[Notice] Terminal shell in container (proc.name=bash, fd.name=<NA>)"
    assert issue["priority_id"] == 3 and issue["project_id"] == "ci"
    long = make_alert(**{"proc.name": "x" * 400})
    assert len(json.loads(preset.request(long).body)["issue"]["subject"]) == 255
    assert preset.ref_from_response(b'{"issue": {"id": 42}}') == "42"
    assert preset.ref_from_response(b"<html>") is None


async def test_redmine_dedup_survives_a_restart(redmine, drive, metrics, tmp_path):
    rule = f"Write below etc {uuid.uuid4().hex[:8]}"
    section = hook(redmine.url, tmp_path, preset="redmine", note_interval=0, timeout=10,
                   redmine={"project": redmine.project, "api_key": redmine.api_key,
                            "priorities": {}})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    driven.offer([make_alert(1, rule=rule, priority=Priority.ERROR)])
    await driven.stop()
    driven = await drive(WebhookOutput(base_config(), section, metrics))   # a new start
    driven.offer([make_alert(i, rule=rule, priority=Priority.ERROR) for i in (2, 3)])
    await driven.stop()
    [ticket] = [t for t in redmine.issues() if rule in t["subject"]]
    assert ticket["priority"]["id"] == 3                                   # Error -> High
    journals = redmine.get(f"/issues/{ticket['id']}.json?include=journals")["issue"]["journals"]
    notes = " ".join(j["notes"] for j in journals if j.get("notes"))
    assert sum(int(m) for m in re.findall(r"Repeated (\d+) more", notes)) == 2


@pytest.mark.parametrize("builtin,answer,ref", [("jira", b'{"id": "10001", "key": "SEC-7"}',
                                                 "SEC-7"),
                                                ("github", b'{"id": 99, "number": 12}', "12")])
async def test_ticket_templates_comment_repeats(receiver, drive, metrics, tmp_path, builtin,
                                                answer, ref):
    receiver.answer = answer
    section = hook(receiver.url + "/api/issues", tmp_path, preset="template", dedup_window=60,
                   note_interval=0,
                   template={"builtin": builtin, "notes": True, "vars": {"project": "SEC"}})
    driven = await drive(WebhookOutput(base_config(), section, metrics))
    alerts = [make_alert(i) for i in range(4)]                 # same rule and key fields
    driven.offer(alerts)
    await driven.stop()
    create, *comments = receiver.delivered
    assert create.path == "/api/issues" and create.json()
    suffix = "comment" if builtin == "jira" else "comments"
    assert {c.path for c in comments} == {f"/api/issues/{ref}/{suffix}"}
    counts = [int(m) for c in comments for m in re.findall(r"Repeated (\d+) more",
                                                            c.json()["body"])]
    assert sum(counts) == 3 and alerts[3].uuid in comments[-1].json()["body"]


def test_notes_need_their_three_keys(tmp_path):
    section = hook("http://x", tmp_path, preset="template",
                   template={"body": "{}", "notes": True, "ref_field": "id"})
    with pytest.raises(ConfigError, match="ref_field, repeat_path and repeat_body"):
        make_preset(section, AlertFormatter(True))


FORGED = "evil\n12:00:00.000000000: Critical forged\x1b[2K|x"
ESCAPED = "evil\\n12:00:00.000000000: Critical forged\\x1b[2K|x"


def forged_alert():
    """An alert whose proc.name forges a line; its output as the rule engine forms it."""
    alert = make_alert(**{"proc.name": FORGED})
    alert.output = f"A shell was spawned in a container (proc={ESCAPED})"
    return alert


@pytest.mark.parametrize("builtin,text", [
    ("jira", lambda d: d["fields"]["description"]),
    ("github", lambda d: d["body"]),
])
def test_builtin_templates_escape_raw_fields_in_their_text_lines(tmp_path, builtin, text):
    """A field value with a newline cannot add a line (a forged alert, a Markdown table row) to
    a ticket's description; the JSON around it is still JSON."""
    section = hook("http://x", tmp_path, preset="template",
                   template={"builtin": builtin, "vars": {"project": "SEC"}})
    preset = make_preset(section, AlertFormatter(True))
    described = text(json.loads(preset.request(forged_alert()).body))
    assert not any(line.startswith("12:00:00") for line in described.splitlines())
    assert "\x1b" not in described
    table_cell = ESCAPED.replace("|", "\\|")
    assert (f"* proc.name: {ESCAPED}" if builtin == "jira"
            else f"| proc.name | {table_cell} |") in described


def test_own_template_text_filter_and_tojson_keeps_raw(tmp_path):
    body = ('{"line": {{ ("proc=" ~ fields["proc.name"] | text) | tojson }}, '
            '"raw": {{ fields["proc.name"] | tojson }}}')
    preset = make_preset(hook("http://x", tmp_path, preset="template", template={"body": body}),
                         AlertFormatter(True))
    doc = json.loads(preset.request(forged_alert()).body)
    assert doc["line"] == f"proc={ESCAPED}"
    assert doc["raw"] == FORGED                    # JSON-escaped once, not text-escaped too


def test_redmine_escapes_raw_fields_in_subject_and_description(tmp_path):
    section = hook("http://x", tmp_path, preset="redmine", key_fields=["proc.name"],
                   redmine={"project": "ci"})
    preset = make_preset(section, AlertFormatter(True))
    issue = json.loads(preset.request(forged_alert()).body)["issue"]
    assert issue["subject"].endswith(f"(proc.name={ESCAPED})")
    assert f"* proc.name: {ESCAPED}" in issue["description"].splitlines()
    assert "\x1b" not in issue["description"]
