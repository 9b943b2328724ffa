"""Counters: events in, drops per stage, alerts per rule and per output.

A counter is a dotted name (``events.in``, ``drops.enrich.container_pending``, ``alerts.rule.<rule>``,
``outputs.<name>.dropped``).  Anything that loses an event or an alert increments a ``drops.*``
or ``*.dropped`` counter: nothing is lost silently.  The agent logs a summary periodically and
on exit (non-zero counters only) and ``snapshot()`` gives them to tests.

:meth:`Metrics.count_alert` counts an alert (``alerts.total``, ``alerts.rule.<rule>``) and keeps
what its rule is (priority, source, tags) the first time it is seen, for the labels of Falco's
``falcosecurity_falco_rules_matches_total`` (:mod:`syswarden.core.exposition`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING, Callable

if TYPE_CHECKING:
    from .alert import Alert


class Metrics:
    def __init__(self) -> None:
        self._counters: dict[str, int] = defaultdict(int)
        self._gauges: dict[str, object] = {}
        #: gauges computed when read (a table's entries): name -> the function that counts
        self._watched: dict[str, Callable[[], int]] = {}
        #: rule name -> (priority value, source, tags), from the first alert of each rule
        self.rules: dict[str, tuple[int, str, tuple[str, ...]]] = {}

    def inc(self, name: str, n: int = 1) -> None:
        self._counters[name] += n

    def count_alert(self, alert: "Alert") -> None:
        """An alert raised (by a rule, or about the agent itself)."""
        counters = self._counters
        counters["alerts.total"] += 1
        counters[f"alerts.rule.{alert.rule}"] += 1
        if alert.rule not in self.rules:
            self.rules[alert.rule] = (int(alert.priority), alert.source, tuple(alert.tags))

    def set(self, name: str, value: object) -> None:
        """A gauge: a value read at report time (a ring's size, a table's entries)."""
        self._gauges[name] = value

    def watch(self, name: str, value: Callable[[], int]) -> None:
        """A gauge computed each time the figures are read (a report, a scrape): ``value()``
        counts what it says now, so nothing has to keep it up to date between reports."""
        self._watched[name] = value

    def get(self, name: str) -> int:
        return self._counters.get(name, 0)

    def snapshot(self) -> dict[str, object]:
        out: dict[str, object] = dict(self._counters)
        out.update(self._gauges)
        for name, value in self._watched.items():
            out[name] = value()
        return out

    def drops(self) -> dict[str, int]:
        return {k: v for k, v in self.snapshot().items()
                if isinstance(v, int) and v and (k.startswith("drops.") or k.endswith(".dropped"))}

    def summary(self) -> str:
        snap = self.snapshot()
        return " ".join(f"{k}={v}" for k, v in sorted(snap.items()) if v)
