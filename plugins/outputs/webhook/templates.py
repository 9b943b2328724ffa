"""Built-in Jinja2 payload templates for the webhook's ``template`` preset.

Each renders one alert into the JSON a well-known receiver's API takes.  Names available in a
template: ``alert`` (Falco's JSON alert as a dict), ``rule``, ``priority`` (``Critical``),
``severity`` (0-7, syslog's), ``output`` (Falco's text line), ``message`` (the output without time
and priority), ``fields`` (output_fields), ``tags``, ``hostname``, ``source``, ``uuid``, ``time``
(RFC 3339), ``container`` (name, id or ``host``), ``key`` (the key fields as (name, value)
pairs) and ``vars`` (the output's ``template.vars``).  Use ``| tojson`` for every value put in
JSON, and ``| text`` for a raw value (``fields``) put in a text line: it escapes newlines and
terminal controls as the text output does.  docs/outputs.md shows a config for each.
"""

from __future__ import annotations

# Jira: POST https://JIRA/rest/api/2/issue ; vars: project (key), issue_type (default Bug)
JIRA = """\
{% set description %}{{ output }}

{% for name, value in fields | dictsort %}* {{ name }}: {{ value | text }}
{% endfor %}
Alert id: {{ uuid }}{% endset %}
{"fields": {
  "project": {"key": {{ vars.project | tojson }}},
  "issuetype": {"name": {{ vars.issue_type | default("Bug") | tojson }}},
  "summary": {{ ("[" ~ priority ~ "] " ~ rule ~ " on " ~ hostname)[:250] | tojson }},
  "description": {{ description | tojson }},
  "labels": {{ (["syswarden", priority | lower] + tags) | tojson }}
}}
"""

# GitHub issues: POST https://api.github.com/repos/OWNER/REPO/issues
# headers: Authorization: Bearer ${GITHUB_TOKEN}, Accept: application/vnd.github+json
GITHUB = """\
{% set body %}```
{{ output }}
```

| field | value |
|---|---|
{% for name, v in fields | dictsort %}| {{ name }} | {{ v | text | replace("|", "\\\\|") }} |
{% endfor %}
Alert id: `{{ uuid }}`{% endset %}
{"title": {{ ("[" ~ priority ~ "] " ~ rule ~ " on " ~ hostname)[:250] | tojson }},
 "body": {{ body | tojson }},
 "labels": {{ (vars.labels | default(["security"])) | tojson }}}
"""

# Slack incoming webhook: POST https://hooks.slack.com/services/...
SLACK = """\
{"text": {{ (":rotating_light: *" ~ priority ~ "* " ~ rule ~ " on `" ~ hostname ~ "`") | tojson }},
 "blocks": [
  {"type": "section", "text": {"type": "mrkdwn",
   "text": {{ ("*" ~ priority ~ "* " ~ rule ~ "\\n```" ~ message ~ "```") | tojson }}}},
  {"type": "context", "elements": [{"type": "mrkdwn",
   "text": {{ ("host " ~ hostname ~ " · container " ~ container ~ " · id " ~ uuid) | tojson }}}]}
 ]}
"""

# PagerDuty Events API v2: POST https://events.pagerduty.com/v2/enqueue ; vars: routing_key
PAGERDUTY = """\
{% set sev = {0: "critical", 1: "critical", 2: "critical", 3: "error", 4: "warning"} %}
{"routing_key": {{ vars.routing_key | tojson }},
 "event_action": "trigger",
 "dedup_key": {{ (rule ~ "|" ~ hostname ~ "|" ~ (key | map("join", "=") | join("|")))[:255]
                 | tojson }},
 "payload": {
   "summary": {{ (priority ~ ": " ~ rule ~ " on " ~ hostname)[:1024] | tojson }},
   "source": {{ hostname | tojson }},
   "severity": {{ sev.get(severity, "info") | tojson }},
   "timestamp": {{ time | tojson }},
   "component": {{ container | tojson }},
   "class": {{ rule | tojson }},
   "custom_details": {"output": {{ output | tojson }}, "fields": {{ fields | tojson }},
                      "uuid": {{ uuid | tojson }}}
 }}
"""

BUILTIN_TEMPLATES = {"jira": JIRA, "github": GITHUB, "slack": SLACK, "pagerduty": PAGERDUTY}

# Repeats as comments on the ticket (``template.notes: true``).  Extra names: ``count`` (repeats
# in this note), ``total`` (alerts in the window so far), ``ref`` (the ticket).
REPEAT_NOTE = """\
{"body": {{ ("Repeated " ~ count ~ " more time" ~ ("s" if count != 1 else "") ~ " (" ~ total
             ~ " in the de-duplication window so far). Latest:\\n" ~ output
             ~ "\\nAlert id: " ~ uuid) | tojson }}}
"""

BUILTIN_NOTES = {
    # Jira: the create answer has "key" (SEC-12); POST .../issue/SEC-12/comment
    "jira": {"ref_field": "key", "repeat_path": "/{ref}/comment", "repeat_body": REPEAT_NOTE},
    # GitHub: the create answer has "number"; POST .../issues/12/comments
    "github": {"ref_field": "number", "repeat_path": "/{ref}/comments",
               "repeat_body": REPEAT_NOTE},
}
