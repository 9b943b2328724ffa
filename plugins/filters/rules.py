"""The ``rules`` filter plugin: Falco-compatible rules judging every event.

A reader that raises while an event is judged is a plugin bug: the event is then judged rule by
rule (the failing rule counted as not matching) and ``rules.eval_errors`` is incremented.

Reads from the core config (the keys are Falco's, declared by the core schema): ``rules_file``
(files or directories, in order; an empty list means the packaged default ruleset),
``priority`` (rules below it are not loaded) and ``rule_matching`` (``first``|``all``).
The engine is built once at start-up; ``reload(config)`` builds a new one and, only when it
loaded without error, swaps its rules into the running engine (so the ``check`` the agent
resolved at start-up judges the next event with the new rules); a broken edit keeps the old
rules running.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from syswarden.core.alert import Alert, Priority
from syswarden.core.config import rules_paths
from syswarden.core.errors import RuleError
from syswarden.core.fields import FieldRegistry
from syswarden.core.hookspecs import hookimpl
from syswarden.core.protocols import Filter
from syswarden.core.rules.describe import describe
from syswarden.core.rules.engine import RuleEngine
from syswarden.core.rules.output import OutputOptions
from syswarden.core.rules.prefilter import OpenPrefilter, open_prefilter
from syswarden.core.rules.sockfilter import SocketPrefilter, socket_prefilter
from syswarden.core.rules.loader import expand_paths, provided_plugins

log = logging.getLogger("syswarden.rules")


def rules_files(config: dict[str, Any]) -> list[str]:
    return rules_paths(config)


class RulesFilter(Filter):
    """The Filter the agent calls: ``check`` is the engine's, bound at build time."""

    name = "rules"

    def __init__(self, config: dict[str, Any], fields: FieldRegistry, metrics: Any = None
                 ) -> None:
        self.fields = fields
        self.metrics = metrics
        self.engine = self._build(config)
        self.check = self.engine.check

    def _build(self, config: dict[str, Any]) -> RuleEngine:
        try:
            min_priority = Priority.parse(config.get("priority") or "debug")
        except ValueError as exc:
            raise RuleError(f"priority: {exc}") from None
        engine = RuleEngine.load(rules_files(config), self.fields, min_priority=min_priority,
                                 rule_matching=str(config.get("rule_matching") or "first"),
                                 selection=config.get("rules") or (),
                                 output=OutputOptions.from_config(config),
                                 plugins=provided_plugins(config))
        if self.metrics is not None:
            engine.on_error = lambda: self.metrics.inc("rules.eval_errors")
        self._files = rules_files(config)   # loaded: -L with json_output, --support read them
        self._output = OutputOptions.from_config(config)
        self._plugins = provided_plugins(config)
        for w in engine.warnings:   # as Falco does at start-up; `-V` shows them in full
            log.warning("rules: %s", str(w).split("\n")[0])
        active = engine.active_rules()
        types = engine.event_types()
        log.info("rules loaded: %d rules (%d active), %d warnings, event types: %s",
                 len(engine.rules()), len(active), len(engine.warnings),
                 "all" if types is None else len(types))
        return engine

    def check(self, event: Any) -> list[Alert]:  # replaced per instance by the engine's
        return self.engine.check(event)   # pragma: no cover

    def event_types(self) -> set[str] | None:
        return self.engine.event_types()

    def open_prefilter(self) -> OpenPrefilter | None:
        return open_prefilter(self.engine)

    def socket_prefilter(self) -> SocketPrefilter | None:
        return socket_prefilter(self.engine)

    def reload(self, config: dict[str, Any]) -> None:
        """Load the rules anew; on any error raise it and keep the running rules."""
        try:
            engine = self._build(config)
        except RuleError:
            raise
        except Exception as exc:  # a bug must not take the running rules down with it
            log.exception("rules reload failed unexpectedly")
            raise RuleError(f"rules reload failed: {exc!r}") from exc
        # the engine object (and its bound check, which the agent holds) stays; its rules
        # are replaced in one assignment
        self.engine.adopt(engine)

    def describe(self) -> Iterable[tuple[str, str]]:
        return [(r.name, r.desc) for r in self.engine.rules()]

    def describe_json(self, rule: str | None = None) -> dict[str, Any]:
        return describe(self._files, self.fields, rule, self._output, self._plugins)

    def rules_files(self) -> list[str]:
        return expand_paths(self._files)


@hookimpl
def syswarden_make_filters(ctx: Any) -> RulesFilter:
    return RulesFilter(ctx.config, ctx.fields, ctx.metrics)
