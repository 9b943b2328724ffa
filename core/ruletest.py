"""Rule test files: unit tests for rules, before they are deployed (``syswarden test-rules``).

A test file names the rules it tests and lists cases; each case is a few events in the capture
format (the short form is fine, ``docs/capture-format.md``) and the alerts they must raise, or
silence::

    rules: [my_rules.yaml]          # relative to this file; default: the configured rules_file,
                                    # else syswarden's default ruleset
    default_rules: true             # load the default ruleset before `rules` (for overrides)
    rule_matching: first            # optional; default: the config's
    priority: debug                 # optional minimum rule priority; default: the config's
    hosts:                          # optional: the names fd.*ip.name comparisons resolve,
      kubernetes.default.svc.cluster.local: [10.96.0.1]   # the only answers (no lookups)
    cases:
      - name: cat reads /etc/shadow
        events:
          - {type: openat, proc: {name: cat, cmdline: cat /etc/shadow},
             fd: {name: /etc/shadow}, args: {flags: O_RDONLY}}
        expect:
          - rule: Read sensitive file untrusted
            priority: Warning               # optional
            output_fields: {fd.name: /etc/shadow, proc.name: cat}   # optional, a subset
            output_contains: /etc/shadow    # optional, a substring of the output line
      - name: sha256sum reads a binary
        events: [...]
        expect: []                          # silence (also: expect: none)
        covers: Read sensitive file untrusted   # optional: the rule a silent case is about

An expected alert may be written as just the rule name.  A case passes when the alerts its
events raise are exactly the expected ones (order free); ``allow_other_alerts: true`` on a case
only requires the expected ones.  Each case starts with an empty process table.

:func:`load_test_file` reads a file (a :class:`RuleTestError` names the file and line of a
mistake); a :class:`Runner` loads each ruleset once and runs the cases against it;
``syswarden test-rules`` (``commands/ruletest.py``) prints what they give.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from typing import Any, Iterable

from . import yamlmarks
from .alert import Alert, Priority
from .capture import CaptureError, Decoder, record_to_event
from .config import default_rules_path
from .dns import NameResolver
from .errors import Location, RuleError

_FILE_KEYS = {"rules", "default_rules", "rule_matching", "priority", "hosts", "cases"}
_CASE_KEYS = {"name", "covers", "events", "expect", "allow_other_alerts"}
_EXPECT_KEYS = {"rule", "priority", "output_fields", "output_contains"}


class RuleTestError(RuleError):
    """A test file that cannot be read: bad YAML, an unknown key, a malformed event."""


@dataclass
class Expected:
    rule: str
    priority: Priority | None = None
    output_fields: dict[str, Any] = field(default_factory=dict)
    output_contains: str | None = None

    def matches(self, alert: Alert) -> bool:
        if alert.rule != self.rule:
            return False
        if self.priority is not None and alert.priority != self.priority:
            return False
        if self.output_contains is not None and self.output_contains not in alert.output:
            return False
        return all(key in alert.output_fields and _same(want, alert.output_fields[key])
                   for key, want in self.output_fields.items())

    def __str__(self) -> str:
        extra = [f"priority {self.priority.label}"] if self.priority is not None else []
        extra += [f"{k}={v}" for k, v in self.output_fields.items()]
        if self.output_contains is not None:
            extra.append(f"output contains {self.output_contains!r}")
        return self.rule + (f" ({', '.join(extra)})" if extra else "")


def _same(want: Any, got: Any) -> bool:
    """An expected output field against the alert's value (typed or rendered text)."""
    if want is None:
        return got is None or got == "<NA>"
    if isinstance(want, bool) or isinstance(got, bool):
        return str(want).lower() == str(got).lower()
    return want == got or str(want) == str(got)


@dataclass
class Case:
    name: str
    location: Location
    records: list[tuple[Any, Location]]
    expected: list[Expected]
    allow_other_alerts: bool = False
    #: rules this case is about besides those it expects (a benign case names its rule here)
    covers: list[str] = field(default_factory=list)


@dataclass
class RuleTestFile:
    path: str
    rules: list[str]
    rule_matching: str
    priority: Priority
    cases: list[Case]
    #: name -> its addresses: the answers of the name fields' comparisons (``syswarden.core.
    #: dns``); a name not here resolves to nothing (a rule test never asks the machine)
    hosts: dict[str, list[str]] = field(default_factory=dict)


@dataclass
class CaseResult:
    case: Case
    passed: bool
    alerts: list[Alert]
    problems: list[str]


# ---------------------------------------------------------------------------------------------
# Reading test files
# ---------------------------------------------------------------------------------------------


def _check_keys(value: dict, allowed: set[str], marks: yamlmarks.Marks, path: tuple,
                what: str) -> None:
    for key in value:
        if key not in allowed:
            raise RuleTestError(f"unknown key {key!r} in {what} (known: "
                                f"{', '.join(sorted(allowed))})",
                                marks.loc(path + (key, "__key__")))


def expand_rules_paths(paths: Iterable[str]) -> list[str]:
    """Files as given; a directory stands for its ``*.yaml``/``*.yml`` files, sorted (Falco)."""
    out: list[str] = []
    for p in paths:
        if os.path.isdir(p):
            out += sorted(os.path.join(p, n) for n in os.listdir(p)
                          if n.endswith((".yaml", ".yml")) and
                          os.path.isfile(os.path.join(p, n)))
        else:
            out.append(p)
    return out


def load_test_file(path: str, config: dict[str, Any]) -> RuleTestFile:
    data, marks = yamlmarks.load_file(path, RuleTestError, "test file")
    if not isinstance(data, dict):
        raise RuleTestError("a rule test file is a mapping with 'cases'", marks.loc(()))
    _check_keys(data, _FILE_KEYS, marks, (), "the test file")
    base = os.path.dirname(os.path.abspath(path))

    rules = data.get("rules")
    if rules is None:
        files = list(config.get("rules_file") or []) or [default_rules_path()]
    else:
        if isinstance(rules, str):
            rules = [rules]
        if not isinstance(rules, list) or not all(isinstance(r, str) for r in rules):
            raise RuleTestError("rules must be a path or a list of paths", marks.loc(("rules",)))
        files = [os.path.join(base, r) for r in rules]
        if data.get("default_rules"):
            files.insert(0, default_rules_path())
    files = expand_rules_paths(files)

    matching = str(data.get("rule_matching", config.get("rule_matching", "first"))).lower()
    if matching not in ("first", "all"):
        raise RuleTestError("rule_matching must be first or all", marks.loc(("rule_matching",)))
    try:
        priority = Priority.parse(data.get("priority", config.get("priority", "debug")))
    except ValueError as exc:
        raise RuleTestError(str(exc), marks.loc(("priority",))) from None

    hosts = _load_hosts(data.get("hosts") or {}, marks)
    raw_cases = data.get("cases")
    if not isinstance(raw_cases, list) or not raw_cases:
        raise RuleTestError("a rule test file needs a non-empty list of 'cases'",
                            marks.loc(("cases",)))
    cases = [_load_case(c, i, marks) for i, c in enumerate(raw_cases)]
    names = [c.name for c in cases]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise RuleTestError(f"case name {name!r} is used twice", cases[i].location)
    return RuleTestFile(path, files, matching, priority, cases, hosts)


def _load_hosts(raw: Any, marks: yamlmarks.Marks) -> dict[str, list[str]]:
    """``hosts``: name -> an address or a list of them, each an IP address."""
    if not isinstance(raw, dict):
        raise RuleTestError("hosts must be a mapping of name to addresses",
                            marks.loc(("hosts",)))
    out: dict[str, list[str]] = {}
    for name, addrs in raw.items():
        addrs = [addrs] if isinstance(addrs, str) else addrs
        where = marks.loc(("hosts", name))
        if not isinstance(addrs, list) or not addrs:
            raise RuleTestError(f"hosts: {name!r} needs an address or a list of them", where)
        for a in addrs:
            try:
                ipaddress.ip_address(str(a))
            except ValueError:
                raise RuleTestError(f"hosts: {name!r}: {a!r} is not an IP address",
                                    where) from None
        out[str(name)] = [str(a) for a in addrs]
    return out


def _load_case(raw: Any, i: int, marks: yamlmarks.Marks) -> Case:
    path = ("cases", i)
    loc = marks.loc(path)
    if not isinstance(raw, dict):
        raise RuleTestError("a case is a mapping with name, events and expect", loc)
    _check_keys(raw, _CASE_KEYS, marks, path, "a case")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip():
        raise RuleTestError("a case needs a name", loc)
    loc = marks.loc(path, f"case {name!r}")
    events = raw.get("events")
    if not isinstance(events, list) or not events:
        raise RuleTestError("a case needs a non-empty list of events", loc)
    records = [(e, marks.loc(path + ("events", j), f"case {name!r}, event {j + 1}"))
               for j, e in enumerate(events)]
    if "expect" not in raw:
        raise RuleTestError("a case needs 'expect': the alerts expected, or [] for silence",
                            loc)
    expect = raw["expect"]
    if expect is None or (isinstance(expect, str) and expect.lower() in ("none", "silence")):
        expect = []
    if not isinstance(expect, list):
        raise RuleTestError("expect must be a list of alerts (or [] for silence)",
                            marks.loc(path + ("expect",), f"case {name!r}"))
    expected = [_load_expected(x, path + ("expect", j), marks, name)
                for j, x in enumerate(expect)]
    others = raw.get("allow_other_alerts", False)
    if not isinstance(others, bool):
        raise RuleTestError("allow_other_alerts must be true or false", loc)
    covers = raw.get("covers", [])
    if isinstance(covers, str):
        covers = [covers]
    if not isinstance(covers, list) or not all(isinstance(c, str) for c in covers):
        raise RuleTestError("covers must be a rule name or a list of them", loc)
    return Case(name, loc, records, expected, others, covers)


def _load_expected(x: Any, path: tuple, marks: yamlmarks.Marks, case: str) -> Expected:
    loc = marks.loc(path, f"case {case!r}")
    if isinstance(x, str):
        return Expected(x)
    if not isinstance(x, dict) or not isinstance(x.get("rule"), str):
        raise RuleTestError("an expected alert is a rule name or a mapping with 'rule'", loc)
    _check_keys(x, _EXPECT_KEYS, marks, path, "an expected alert")
    prio = None
    if x.get("priority") is not None:
        try:
            prio = Priority.parse(x["priority"])
        except ValueError as exc:
            raise RuleTestError(str(exc), loc) from None
    fields = x.get("output_fields") or {}
    if not isinstance(fields, dict):
        raise RuleTestError("output_fields must be a mapping of field to value", loc)
    contains = x.get("output_contains")
    if contains is not None and not isinstance(contains, str):
        raise RuleTestError("output_contains must be a string", loc)
    return Expected(x["rule"], prio, {str(k): v for k, v in fields.items()}, contains)


# ---------------------------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------------------------


class Runner:
    """Loads each ruleset once (by files, priority, matching) and runs cases against it."""

    def __init__(self, config: dict[str, Any]) -> None:
        self.config = config
        self._fields = None
        self._engines: dict[tuple, Any] = {}

    def engine(self, test: RuleTestFile) -> Any:
        hosts = tuple(sorted((n, tuple(a)) for n, a in test.hosts.items()))
        key = (tuple(test.rules), test.priority, test.rule_matching, hosts)
        if key not in self._engines:
            from .rules.engine import RuleEngine  # noqa: PLC0415 (heavy; only when running)
            if self._fields is None:
                from .plugins import collect_fields  # noqa: PLC0415
                self._fields = collect_fields(self.config)
            names = NameResolver()
            names.answer(test.hosts)
            self._engines[key] = RuleEngine.load(test.rules, self._fields,
                                                 min_priority=test.priority,
                                                 rule_matching=test.rule_matching,
                                                 names=names)
        return self._engines[key]

    def run_case(self, engine: Any, case: Case) -> CaseResult:
        decoder = Decoder()
        alerts: list[Alert] = []
        for rec, loc in case.records:
            try:
                evt = record_to_event(rec, loc.line or 0, decoder)
            except CaptureError as exc:
                return CaseResult(case, False, alerts, [f"{loc}: bad event: {exc.message}"])
            alerts.extend(engine.check(evt) or ())
        return CaseResult(case, *_compare(case, alerts))


def _compare(case: Case, alerts: list[Alert]) -> tuple[bool, list[Alert], list[str]]:
    left = list(alerts)
    problems = []
    for want in case.expected:
        hit = next((a for a in left if want.matches(a)), None)
        if hit is None:
            near = [a for a in left if a.rule == want.rule]
            why = ""
            if near:
                a = near[0]
                got = {k: a.output_fields.get(k, "<missing>") for k in want.output_fields}
                why = f" (it fired with priority {a.priority.label}, fields {got}, " \
                      f"output {a.output!r})"
            problems.append(f"expected {want}: not raised{why}")
        else:
            left.remove(hit)
    if left and not case.allow_other_alerts:
        for a in left:
            problems.append(f"unexpected alert: {a.rule} ({a.priority.label}): {a.output}")
    return not problems, alerts, problems
