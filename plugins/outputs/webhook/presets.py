"""What a webhook sends: one request per alert, shaped for its receiver.

A preset turns an alert into a :class:`Request` (method, path, body, content type) and, for
receivers that keep tickets, a repeat into a note on the ticket created first:

``falco``         Falco's JSON alert (with ``uuid``) to the URL as is: what Falcosidekick and
                  tools built for Falco's ``http_output`` accept.  Text when ``json_output: false``.
``alertmanager``  ``POST <url>/api/v2/alerts``: labels alertname, rule, priority, hostname,
                  container, source; annotations summary, output, uuid.
``redmine``       ``POST <url>/issues.json`` with ``X-Redmine-API-Key``: subject from the rule
                  and the key fields, description from the output and the fields, priority
                  mapped; repeats become a note ``PUT <url>/issues/<id>.json``.
``template``      a Jinja2 template (sandboxed) over the alert: built-in ones for Jira, GitHub
                  issues, Slack and PagerDuty, or your own (see docs/outputs.md); with
                  ``notes`` repeats become comments on the ticket (Jira, GitHub, any tracker).
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from syswarden.core.alert import Alert, Priority, format_text, to_json_dict
from syswarden.core.errors import ConfigError, Location
from syswarden.core.escape import escape_text
from syswarden.core.outputs import AlertFormatter
from syswarden.core.yamlmarks import read_text

from .templates import BUILTIN_NOTES, BUILTIN_TEMPLATES

if TYPE_CHECKING:
    import jinja2


@dataclass
class Request:
    method: str
    path: str                 # appended to the output's url ("" for the url itself)
    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)


def key_values(alert: Alert, key_fields: list[str]) -> list[tuple[str, str]]:
    """The key fields' values (``<NA>`` when missing), in the configured order."""
    return [(f, str(alert.output_fields.get(f, "<NA>"))) for f in key_fields]


def container_label(alert: Alert) -> str:
    fields = alert.output_fields
    for name in ("container.name", "container.id"):
        value = fields.get(name)
        if value not in (None, "", "<NA>"):
            return str(value)
    return "host"


class Preset:
    """The default: Falco's alert as the body; no tickets, so no notes."""

    name = "falco"
    keeps_tickets = False
    default_dedup_window = 0.0

    def __init__(self, section: dict[str, Any], formatter: AlertFormatter) -> None:
        self.section = section
        self.formatter = formatter
        self.key_fields: list[str] = list(section.get("key_fields") or [])
        self.method = (section.get("method") or "POST").upper()

    def request(self, alert: Alert) -> Request:
        ctype = "application/json" if self.formatter.json_output else "text/plain"
        return Request(self.method, "", self.formatter(alert).encode(), ctype)

    def repeat_request(self, ref: str, alert: Alert, count: int, total: int) -> Request | None:
        return None

    def ref_from_response(self, body: bytes) -> str | None:
        return None


class AlertmanagerPreset(Preset):
    name = "alertmanager"

    def request(self, alert: Alert) -> Request:
        labels = {
            "alertname": alert.rule,
            "rule": alert.rule,
            "priority": alert.priority.label,
            "hostname": alert.hostname,
            "container": container_label(alert),
            "source": alert.source,
        }
        extra = (self.section.get("alertmanager") or {}).get("labels") or {}
        labels.update({k: str(v) for k, v in extra.items()})
        annotations = {
            "summary": f"{alert.priority.label}: {alert.rule}",
            "output": format_text(alert),
            "uuid": alert.uuid,
            "fields": json.dumps(alert.output_fields, default=str, sort_keys=True),
        }
        doc = [{"labels": labels, "annotations": annotations,
                "startsAt": to_json_dict(alert)["time"]}]
        return Request("POST", "/api/v2/alerts", json.dumps(doc).encode())


#: Falco priority -> Redmine's default priority ids (1 Low, 2 Normal, 3 High, 4 Urgent,
#: 5 Immediate); override per priority with ``redmine.priorities``.
REDMINE_PRIORITIES = {
    Priority.EMERGENCY: 5, Priority.ALERT: 5, Priority.CRITICAL: 4, Priority.ERROR: 3,
    Priority.WARNING: 3, Priority.NOTICE: 2, Priority.INFORMATIONAL: 1, Priority.DEBUG: 1,
}


class RedminePreset(Preset):
    name = "redmine"
    keeps_tickets = True
    default_dedup_window = 3600.0

    def __init__(self, section: dict[str, Any], formatter: AlertFormatter) -> None:
        super().__init__(section, formatter)
        opts = section.get("redmine") or {}
        self.project = opts.get("project")
        if not self.project:
            raise ConfigError(f"webhook {section.get('name')!r}: redmine.project is required")
        self.tracker_id = opts.get("tracker_id")
        self.priorities = dict(REDMINE_PRIORITIES)
        for name, pid in (opts.get("priorities") or {}).items():
            try:
                self.priorities[Priority.parse(name)] = int(pid)
            except (ValueError, TypeError) as exc:
                raise ConfigError(f"webhook {section.get('name')!r}: redmine.priorities."
                                  f"{name}: {exc} (a priority name -> an integer id)",
                                  Location(item=f"redmine.priorities.{name}")) from None
        self.headers = {"X-Redmine-API-Key": opts["api_key"]} if opts.get("api_key") else {}

    def subject(self, alert: Alert) -> str:
        keys = ", ".join(f"{k}={escape_text(v)}" for k, v in key_values(alert, self.key_fields))
        text = f"[{alert.priority.label}] {alert.rule}" + (f" ({keys})" if keys else "")
        return text if len(text) <= 255 else text[:254] + "…"

    def description(self, alert: Alert) -> str:
        lines = [format_text(alert), "", "Fields:"]
        lines += [f"* {k}: {escape_text(str(v))}" for k, v in sorted(alert.output_fields.items())]
        lines += ["", f"Host: {alert.hostname}", f"Source: {alert.source}",
                  f"Tags: {', '.join(sorted(alert.tags)) or '-'}", f"Alert id: {alert.uuid}"]
        return "\n".join(lines)

    def request(self, alert: Alert) -> Request:
        issue: dict[str, Any] = {
            "project_id": self.project,
            "subject": self.subject(alert),
            "description": self.description(alert),
            "priority_id": self.priorities[alert.priority],
        }
        if self.tracker_id:
            issue["tracker_id"] = self.tracker_id
        return Request("POST", "/issues.json", json.dumps({"issue": issue}).encode(),
                       headers=self.headers)

    def repeat_request(self, ref: str, alert: Alert, count: int, total: int) -> Request | None:
        note = (f"Repeated {count} more time{'s' if count != 1 else ''} "
                f"({total} in the de-duplication window so far). Latest:\n{format_text(alert)}"
                f"\nAlert id: {alert.uuid}")
        body = json.dumps({"issue": {"notes": note}}).encode()
        return Request("PUT", f"/issues/{ref}.json", body, headers=self.headers)

    def ref_from_response(self, body: bytes) -> str | None:
        try:
            return str(json.loads(body)["issue"]["id"])
        except (ValueError, KeyError, TypeError):
            return None


@functools.cache
def _sandbox() -> type:
    """The sandbox class (jinja2 is imported when a template preset is first built: starting
    an agent without one needs it not)."""
    from jinja2.exceptions import SecurityError  # noqa: PLC0415
    from jinja2.sandbox import SandboxedEnvironment  # noqa: PLC0415

    class Sandbox(SandboxedEnvironment):
        """Jinja's sandbox, refusing an unsafe attribute where it is read: Jinja's own
        returns an undefined value that raises only when printed, so ``{{ x.__class__ |
        tojson }}`` failed as a TypeError of the filter instead of naming the refusal."""

        def unsafe_undefined(self, obj: Any, attribute: str) -> jinja2.Undefined:
            raise SecurityError(f"access to attribute {attribute!r} of "
                                f"{type(obj).__name__!r} object is unsafe")

    return Sandbox


class TemplatePreset(Preset):
    """A Jinja2 template over the alert, rendered in a sandbox with strict undefined names.

    With ``template.notes`` (and a de-duplication window) a repeat becomes a comment on the
    ticket the first alert created: the ticket's reference is read from the create answer
    (``ref_field``, e.g. Jira's ``key``), the comment is ``repeat_body`` sent to
    ``url + repeat_path`` (``{ref}`` replaced).  The jira and github built-ins know all three.
    """

    name = "template"

    def __init__(self, section: dict[str, Any], formatter: AlertFormatter) -> None:
        super().__init__(section, formatter)
        opts = section.get("template") or {}
        where_name = section.get("name")
        source, where, key = self._source(opts, where_name)
        import jinja2  # noqa: PLC0415

        self.env = _sandbox()(undefined=jinja2.StrictUndefined, autoescape=False,
                              keep_trailing_newline=True)
        self.env.filters["text"] = lambda value: escape_text(str(value))
        self.vars = dict(opts.get("vars") or {})
        self.template = self._compile(source, where, where_name, key)
        self.content_type = opts.get("content_type") or "application/json"
        self.where = where
        self.keeps_tickets = bool(opts.get("notes"))
        if self.keeps_tickets:
            known = BUILTIN_NOTES.get(opts.get("builtin") or "", {})
            self.ref_field = opts.get("ref_field") or known.get("ref_field")
            self.repeat_path = opts.get("repeat_path") or known.get("repeat_path")
            repeat_body = opts.get("repeat_body") or known.get("repeat_body")
            if not (self.ref_field and self.repeat_path and repeat_body):
                raise ConfigError(f"webhook {where_name!r}: template.notes needs ref_field, "
                                  "repeat_path and repeat_body (built in for jira and github)")
            key = "repeat_body" if opts.get("repeat_body") else "builtin"
            self.repeat_template = self._compile(repeat_body, "repeat_body", where_name, key,
                                                 {"count": 2, "total": 3, "ref": "SAMPLE-1"})

    def _compile(self, source: str, where: str, name: Any, key: str,
                 extra: dict[str, Any] | None = None) -> jinja2.Template:
        """Compile, then render once against a sample alert: what the sandbox refuses (an
        ``__class__``, an unsafe callable) is an error now, not a failure on every alert."""
        import jinja2  # noqa: PLC0415
        from jinja2.exceptions import SecurityError  # noqa: PLC0415

        located = Location(item=f"template.{key}")
        try:
            template = self.env.from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise ConfigError(f"webhook {name!r}: template {where} line {exc.lineno}: "
                              f"{exc.message}", located) from None
        try:
            template.render({**self.context(sample_alert()), **(extra or {})})
        except SecurityError as exc:
            raise ConfigError(f"webhook {name!r}: template {where}: the sandbox refuses it: "
                              f"{exc} (a template may read the alert's values, not Python "
                              "internals: names starting with _, unsafe callables)",
                              located) from None
        except Exception:  # noqa: BLE001 - the sample lacks what a real alert has: per alert
            pass
        return template

    @staticmethod
    def _source(opts: dict[str, Any], name: Any) -> tuple[str, str, str]:
        """(the template, where it is for messages, its config key)."""
        if opts.get("body"):
            return opts["body"], "body", "body"
        if opts.get("file"):
            try:
                return read_text(opts["file"], ConfigError, "template"), opts["file"], "file"
            except ConfigError as exc:
                raise ConfigError(f"webhook {name!r}: {exc}", Location(item="template.file")
                                  ) from None
        builtin = opts.get("builtin")
        if builtin in BUILTIN_TEMPLATES:
            return BUILTIN_TEMPLATES[builtin], f"builtin:{builtin}", "builtin"
        raise ConfigError(f"webhook {name!r}: template needs body, file or builtin (one of "
                          f"{', '.join(sorted(BUILTIN_TEMPLATES))}), not {builtin!r}",
                          Location(item="template"))

    def context(self, alert: Alert) -> dict[str, Any]:
        doc = to_json_dict(alert)
        return {
            "alert": doc, "rule": alert.rule, "priority": alert.priority.label,
            "severity": int(alert.priority), "output": format_text(alert),
            "message": alert.output, "fields": alert.output_fields, "tags": sorted(alert.tags),
            "hostname": alert.hostname, "source": alert.source, "uuid": alert.uuid,
            "time": doc["time"], "container": container_label(alert),
            "key": key_values(alert, self.key_fields), "vars": self.vars,
        }

    def _render(self, template: jinja2.Template, where: str, context: dict[str, Any]) -> bytes:
        """Raises ``ValueError`` when the template fails on this alert or renders bad JSON."""
        try:
            body = template.render(context)
        except Exception as exc:  # noqa: BLE001 - any failure of a user's template on one alert
            raise ValueError(f"template {where}: {type(exc).__name__}: {exc}") from None
        if "json" in self.content_type:
            try:
                json.loads(body)
            except ValueError as exc:
                raise ValueError(f"template {where} rendered invalid JSON: {exc}") from None
        return body.encode()

    def request(self, alert: Alert) -> Request:
        body = self._render(self.template, self.where, self.context(alert))
        return Request(self.method, "", body, self.content_type)

    def repeat_request(self, ref: str, alert: Alert, count: int, total: int) -> Request | None:
        if not self.keeps_tickets:
            return None
        context = {**self.context(alert), "count": count, "total": total, "ref": ref}
        body = self._render(self.repeat_template, "repeat_body", context)
        return Request("POST", self.repeat_path.replace("{ref}", ref), body, self.content_type)

    def ref_from_response(self, body: bytes) -> str | None:
        try:
            value = json.loads(body)
            for part in str(self.ref_field).split("."):
                value = value[part]
        except (ValueError, KeyError, TypeError, IndexError):
            return None
        return str(value)


class _AnyFields(dict):
    """The sample alert's output fields: every field a rule could print reads ``sample``."""

    def __missing__(self, key: str) -> str:
        return "sample"


def sample_alert() -> Alert:
    """The alert a template is rendered against once at load."""
    return Alert(rule="Sample rule", priority=Priority.WARNING, output="a sample alert",
                 time_ns=0, output_fields=_AnyFields({"proc.name": "sample"}),
                 tags=["sample"])


PRESETS: dict[str, type[Preset]] = {
    p.name: p for p in (Preset, AlertmanagerPreset, RedminePreset, TemplatePreset)}


def make_preset(section: dict[str, Any], formatter: AlertFormatter) -> Preset:
    name = section.get("preset") or "falco"
    if name not in PRESETS:
        raise ConfigError(f"webhook {section.get('name')!r}: unknown preset {name!r} "
                          f"(one of {', '.join(PRESETS)})")
    return PRESETS[name](section, formatter)
