"""The webhook output plugin: Falco's ``http_output`` plus any number of ``webhook_outputs``.

``http_output`` keeps Falco's keys (``url``, ``user_agent``, ``insecure``, ``ca_cert``,
``ca_bundle``, ``ca_path``, ``mtls``, ``client_cert``, ``client_key``, ``echo``,
``compress_uploads``, ``keep_alive``) and adds ours (``preset``, ``method``, ``headers`` with
``${ENV}`` values, ``timeout``, retries, the on-disk queue, de-duplication, preset options).
``webhook_outputs`` maps more webhooks' names to mappings with the same keys.
See docs/outputs.md.  The pieces: :mod:`.output` (the output), :mod:`..spool` (the disk queue,
shared with the nats output),
:mod:`.backlog` (the disk queue and what it could not take), :mod:`.delivery` (HTTP and
retries), :mod:`.presets` and :mod:`.templates` (the payloads).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from syswarden.core import yamlmarks
from syswarden.core.config import MAX_QUEUE, MAX_SECONDS, Key, Section
from syswarden.core.errors import ConfigError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import output_keys
from syswarden.core.safe_files import mode_key

from .presets import PRESETS
from .templates import BUILTIN_TEMPLATES

if TYPE_CHECKING:
    from .output import WebhookOutput

__all__ = ["WebhookOutput", "webhook_section"]


def __getattr__(name: str) -> Any:
    """``WebhookOutput``, imported when first asked for: its module brings httpx, which an
    agent without a webhook does not need to start."""
    if name == "WebhookOutput":
        from .output import WebhookOutput  # noqa: PLC0415
        return WebhookOutput
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


RESERVED_NAMES = {"stdout", "file", "syslog", "program", "http"}


def webhook_section(enabled_default: bool) -> Section:
    """The keys of one webhook (``http_output`` and each ``webhook_outputs`` entry)."""
    keys = {
        "enabled": Key(bool, enabled_default, "deliver alerts to this webhook"),
        "name": Key(str, None, "the output's name in counters and logs (http_output: http)"),
        "url": Key(str, "", "the endpoint (presets: the receiver's base URL)"),
        "preset": Key(str, "falco", "the payload", choices=tuple(PRESETS)),
        "method": Key(str, "POST", "HTTP method (falco and template presets)",
                      choices=("post", "put", "patch")),
        "headers": Key(Section(open=True), doc="extra headers; ${ENV} in values is expanded"),
        "timeout": Key(float, 10.0, "seconds for a whole request", min=0.1, max=3600),
        "user_agent": Key(str, "syswarden", "User-Agent header"),
        "insecure": Key(bool, False, "skip TLS certificate verification"),
        "ca_cert": Key(str, "", "CA certificate file"),
        "ca_bundle": Key(str, "", "CA bundle file"),
        "ca_path": Key(str, "", "directory of CA certificates"),
        "mtls": Key(bool, False, "present client_cert/client_key (mutual TLS)"),
        "client_cert": Key(str, "", "client certificate (PEM)"),
        "client_key": Key(str, "", "client key (PEM)"),
        "echo": Key(bool, False, "print the receiver's answers on stdout"),
        "compress_uploads": Key(bool, False, "gzip request bodies"),
        "keep_alive": Key(bool, True, "reuse connections"),
        "max_consecutive_timeouts": Key(int, 5, "accepted for falco.yaml compatibility: here a "
                                        "timeout is retried like any failure (retry_*)", min=0),
        "queue_file": Key(str, "", "the on-disk queue (default /var/lib/syswarden/webhook-NAME"
                                   ".sqlite3)"),
        "queue_mode": mode_key("permissions of the queue and SQLite's side files; a "
                               "directory created for them gets the matching search bits"),
        "queue_max": Key(int, 100_000, "jobs kept on disk; beyond, the oldest are dropped",
                         min=1, max=10 * MAX_QUEUE),
        "retry_initial": Key(float, 0.5, "first retry delay, doubled each attempt (jittered)",
                             min=0.01, max=3600),
        "retry_max": Key(float, 60.0, "longest retry delay", min=0.01, max=MAX_SECONDS),
        "max_in_flight": Key(int, 4, "requests sent at once while the receiver answers (one "
                             "at a time while it fails); 1: delivered strictly in order",
                             min=1, max=256),
        "max_attempts": Key(int, 0, "attempts before an alert is given up; 0: never give up",
                            min=0, max=1_000_000),
        "dedup_window": Key(float, None, "seconds in which repeats of an alert are folded "
                                         "(0: off; default: redmine 3600, others 0)",
                            min=0, max=30 * MAX_SECONDS),
        "key_fields": Key(list, ["container.id", "proc.name"], "fields that, with the rule and "
                          "host, make two alerts the same (de-duplication, Redmine subject)",
                          items=str),
        "note_interval": Key(float, 60.0, "seconds between repeat notes on a ticket", min=0,
                             max=MAX_SECONDS),
        "redmine": Key(Section({
            "project": Key((str, int), None, "project identifier or id"),
            "api_key": Key(str, "", "X-Redmine-API-Key (${ENV} expanded)"),
            "tracker_id": Key(int, None, "tracker (default: the project's first)", min=1),
            "priorities": Key(Section(open=True), doc="Falco priority -> Redmine priority id"),
        }), doc="preset redmine"),
        "alertmanager": Key(Section({
            "labels": Key(Section(open=True), doc="extra labels on every alert"),
        }), doc="preset alertmanager"),
        "template": Key(Section({
            "builtin": Key(str, None, "a built-in template", choices=tuple(BUILTIN_TEMPLATES)),
            "body": Key(str, None, "an inline Jinja2 template"),
            "file": Key(str, None, "a Jinja2 template file"),
            "content_type": Key(str, "application/json", "Content-Type of the body"),
            "vars": Key(Section(open=True), doc="values the template reads as vars.NAME"),
            "notes": Key(bool, False, "repeats become comments on the ticket (needs "
                                      "dedup_window; built in for jira and github)"),
            "ref_field": Key(str, None, "the ticket's reference in the create answer (a.b)"),
            "repeat_path": Key(str, None, "appended to url for a comment; {ref} replaced"),
            "repeat_body": Key(str, None, "Jinja2 template of a comment (count, total, ref)"),
        }), doc="preset template"),
    }
    keys.update(output_keys())
    return Section(keys, doc="an HTTP output (Falco's http_output)")


def _entries(config: dict[str, Any]) -> list[tuple[tuple, dict[str, Any]]]:
    """The enabled webhooks, defaults filled in, each with its key path in the config:
    http_output first, then webhook_outputs."""
    out = []
    http = dict(config.get("http_output") or {})
    if http.get("enabled"):
        http["name"] = http.get("name") or "http"
        out.append((("http_output",), http))
    for name, item in (config.get("webhook_outputs") or {}).items():
        merged = dict(item)  # defaults filled in by the config loader
        merged["name"] = str(name)
        if merged.get("enabled"):
            out.append((("webhook_outputs", name), merged))
    return out


def _outputs(config: dict[str, Any], metrics: Any) -> list[WebhookOutput]:
    """One output per enabled webhook; an error of one gets the line of its entry in the config
    file (or of the key it names: ``template.body``)."""
    entries = _entries(config)
    if not entries:
        return []
    from .output import WebhookOutput  # noqa: PLC0415

    outputs = []
    for path, entry in entries:
        try:
            outputs.append(WebhookOutput(config, entry, metrics))
        except ConfigError as exc:
            if exc.location is not None and exc.location.file is not None:
                raise
            item = exc.location.item if exc.location is not None else None
            where = path + tuple(item.split(".") if item else ())
            raise ConfigError(exc.message, _marks(config).loc(where, ".".join(map(str, where))),
                              exc.hint) from None
    return outputs


def _marks(config: dict[str, Any]) -> yamlmarks.Marks:
    path = config.get("_config_file")
    try:
        return yamlmarks.load_file(path, ConfigError, "config file")[1]
    except (TypeError, ConfigError):
        marks = yamlmarks.Marks()
        marks.file = path
        return marks


def check_entries(config: dict[str, Any]) -> None:
    """What the schema cannot say of ``webhook_outputs`` entries; raise ConfigError."""
    for name, item in (config.get("webhook_outputs") or {}).items():
        path = ("webhook_outputs", name)
        problem = None
        if name in RESERVED_NAMES:
            problem = f"webhook_outputs.{name}: the name {name!r} is taken by a built-in output"
        elif item.get("name") not in (None, name):
            problem = f"webhook_outputs.{name}: name comes from the key; remove 'name'"
        if problem:
            raise ConfigError(problem, _marks(config).loc(path))


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return {
        "http_output": webhook_section(False),
        "webhook_outputs": Section(values=webhook_section(True),
                                   doc="more webhooks: name -> the keys of http_output "
                                       "(enabled by default)"),
    }


@hookimpl
def syswarden_validate_config(config: dict[str, Any]) -> list[str] | None:
    try:
        check_entries(config)
        _check_spools(_outputs(config, metrics=None))   # url, preset, ${ENV}, templates...
    except ConfigError as exc:
        return [str(exc)]
    return None


@hookimpl
def syswarden_make_outputs(ctx: Any) -> list[WebhookOutput] | None:
    check_entries(ctx.config)
    outputs = _outputs(ctx.config, ctx.metrics)
    _check_spools(outputs)
    return outputs or None


def _check_spools(outputs: list[WebhookOutput]) -> None:
    seen: dict[str, str] = {}
    for out in outputs:
        path = os.path.abspath(out.spool_path)
        if path in seen:
            raise ConfigError(f"webhooks {seen[path]!r} and {out.name!r} use the same "
                              f"queue_file {path}")
        seen[path] = out.name
