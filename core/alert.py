"""Alerts, their priorities, and Falco's two ways of printing them.

Text: ``17:13:24.357351845: Notice A shell was spawned ...`` (or ISO 8601 time).
JSON: ``{"hostname", "output", "output_fields", "priority", "rule", "source", "tags", "time"}``
with ``time`` in RFC 3339 UTC with nanoseconds, so tools built for Falco alerts accept ours.
Each alert also carries ``uuid``, a stable id receivers can de-duplicate on.
"""

from __future__ import annotations

import enum
import json
import os
import socket
import time
import uuid as _uuid
from dataclasses import dataclass, field
from typing import Any


class Priority(enum.IntEnum):
    """Falco's priorities; a lower value is more severe (syslog severities)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @classmethod
    def parse(cls, text: str) -> "Priority":
        """Any case; ``info`` is ``informational``.  Raises ValueError with the choices."""
        key = str(text).strip().upper()
        if key == "INFO":
            key = "INFORMATIONAL"
        try:
            return cls[key]
        except KeyError:
            choices = ", ".join(p.label for p in cls)
            raise ValueError(f"unknown priority {text!r} (one of: {choices})") from None

    @property
    def label(self) -> str:
        """As Falco prints it: ``Notice``, ``Informational``."""
        return self.name.capitalize()

    def at_least(self, threshold: "Priority") -> bool:
        """True when this priority is as severe as ``threshold`` or more."""
        return self <= threshold


#: The host's name in alerts: ``FALCO_HOSTNAME`` when set (as Falco: a DaemonSet gives it the
#: node's name, the pod's own hostname being the pod's), else the system's.
HOSTNAME = os.environ.get("FALCO_HOSTNAME") or socket.gethostname()


@dataclass
class Alert:
    rule: str
    priority: Priority
    output: str                       # the rendered output line, without time and priority,
    #                                   its field values escaped (core.escape): one text line
    time_ns: int                      # the event's time, ns since the epoch
    output_fields: dict[str, Any] = field(default_factory=dict)
    tags: list[str] = field(default_factory=list)
    source: str = "syscall"
    hostname: str = HOSTNAME
    uuid: str = field(default_factory=lambda: str(_uuid.uuid4()))


def format_time_text(ns: int, iso_8601: bool = False) -> str:
    """``HH:MM:SS.nnnnnnnnn`` in local time, or ISO 8601 in UTC like Falco's option."""
    secs, frac = divmod(ns, 1_000_000_000)
    if iso_8601:
        return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}+0000"
    return time.strftime("%H:%M:%S", time.localtime(secs)) + f".{frac:09d}"


def format_time_rfc3339(ns: int) -> str:
    secs, frac = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"


def format_text(alert: Alert, iso_8601: bool = False) -> str:
    """Falco's text line: ``<time>: <Priority> <output>``."""
    return f"{format_time_text(alert.time_ns, iso_8601)}: {alert.priority.label} {alert.output}"


def to_json_dict(alert: Alert, include_output: bool = True, include_tags: bool = True, *,
                 include_message: bool = False, include_output_fields: bool = True,
                 iso_8601: bool = False) -> dict:
    """Falco's JSON alert as a dict (key order as Falco writes it), plus ``uuid``.

    The ``json_include_*`` keys choose ``output`` (the text line, its time in ISO 8601 with
    ``time_format_iso_8601`` as Falco writes it), ``message`` (the output alone),
    ``output_fields`` and ``tags``; ``time`` is always RFC 3339 UTC."""
    doc: dict[str, Any] = {"hostname": alert.hostname}
    if include_output:
        doc["output"] = format_text(alert, iso_8601)
    if include_message:
        doc["message"] = alert.output
    if include_output_fields:
        doc["output_fields"] = alert.output_fields
    doc["priority"] = alert.priority.label
    doc["rule"] = alert.rule
    doc["source"] = alert.source
    if include_tags:
        doc["tags"] = sorted(alert.tags)
    doc["time"] = format_time_rfc3339(alert.time_ns)
    doc["uuid"] = alert.uuid
    return doc


def format_json(alert: Alert, include_output: bool = True, include_tags: bool = True,
                **options: bool) -> str:
    """:func:`to_json_dict` as one line of JSON."""
    return json.dumps(to_json_dict(alert, include_output, include_tags, **options), default=str)
