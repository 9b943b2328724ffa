"""Is every stage of a running agent moving?  The answer ``/healthz`` gives.

The agent is healthy when it is ready (every source attached), no source has ended while the
agent runs, every stage takes what waits for it, and no output keeps failing:

- a **stage** (``enrich``, ``filter``, ``output <name>``) is stuck when something has waited in
  its input queue and it has taken nothing for longer than ``webserver.healthz_stall_timeout``
  seconds.  What a stage has taken is read from the counters that exist (``events.in`` for the
  enrich stage, ``events.judged`` + ``events.from_agent`` for the filter stage, an output's
  ``queued`` less what is still in its queue), never counted a second time;
- an **output** is failing past its retry budget when, in the last stall timeout, alerts failed
  (``outputs.<name>.failed``) or were given up after their retries (``.expired.dropped``) and
  none was sent;
- a **source** has stopped when its task returned while the agent was not stopping.

:meth:`Health.sample` is called about once a second (the webserver's task) and after each
sample :meth:`Health.verdict` says ``(healthy, body)``: the body names each problem's stage.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .agent import Agent

#: the counters of ``outputs.<name>.`` that mean an alert was lost after the output tried
OUTPUT_FAILURES = ("failed", "expired.dropped")


@dataclass
class _Stage:
    """One stage: how much it has taken so far and how much waits for it."""

    name: str
    taken: Callable[[], int]
    waiting: Callable[[], int]
    last_taken: int = -1
    moved_at: float = 0.0


@dataclass
class _Output:
    name: str
    failures: int = 0
    sent: int = 0
    failing_since: float | None = None
    failed_at: float = 0.0


@dataclass
class Health:
    """The health of ``agent``'s stages, from its counters and queues."""

    agent: "Agent"
    stall_timeout: float
    clock: Callable[[], float] = time.monotonic
    _stages: list[_Stage] = field(default_factory=list)
    _outputs: list[_Output] = field(default_factory=list)

    def _watch(self) -> None:
        """The stages, once the agent's queues exist (after it started its pipeline)."""
        agent, m = self.agent, self.agent.metrics
        inputs = agent.stage_inputs
        now = self.clock()
        stages = [_Stage("enrich", lambda: m.get("events.in"),
                         _buffered(inputs["enrich"]), moved_at=now),
                  _Stage("filter", lambda: m.get("events.judged") + m.get("events.from_agent"),
                         _buffered(inputs["filter"]), moved_at=now)]
        for runner in agent.runners:
            stages.append(_Stage(f"output {runner.name}",
                                 _taken_by(runner), runner.pending, moved_at=now))
        self._stages = stages
        self._outputs = [_Output(r.name) for r in agent.runners]

    def sample(self) -> None:
        """Look at the counters and queues now; call it about once a second."""
        if not self.agent.stage_inputs:
            return
        if not self._stages:
            self._watch()
        now = self.clock()
        for stage in self._stages:
            taken = stage.taken()
            if taken != stage.last_taken or not stage.waiting():
                stage.last_taken, stage.moved_at = taken, now
        m = self.agent.metrics
        for out in self._outputs:
            failures = sum(m.get(f"outputs.{out.name}.{k}") for k in OUTPUT_FAILURES)
            sent = m.get(f"outputs.{out.name}.sent")
            if sent > out.sent:
                out.failing_since = None
            elif failures > out.failures:
                out.failed_at = now
                if out.failing_since is None:
                    out.failing_since = now
            if out.failing_since is not None and now - out.failed_at > self.stall_timeout:
                out.failing_since = None        # no failure for a while: recovered
            out.failures, out.sent = failures, sent

    def problems(self) -> list[dict[str, Any]]:
        """What is wrong now, each naming its stage; empty when healthy."""
        agent, now = self.agent, self.clock()
        out: list[dict[str, Any]] = []
        for name in agent.ended_sources:
            out.append({"stage": f"source {name}", "reason": "the source has stopped"})
        for stage in self._stages:
            idle = now - stage.moved_at
            if idle > self.stall_timeout:
                out.append({"stage": stage.name, "reason": "not taking events",
                            "waiting": stage.waiting(), "idle_seconds": round(idle, 1)})
        for o in self._outputs:
            if o.failing_since is not None:
                out.append({"stage": f"output {o.name}", "reason": "failing past its retries",
                            "failing_seconds": round(now - o.failing_since, 1),
                            "failures": o.failures})
        return out

    def verdict(self) -> tuple[bool, dict[str, Any]]:
        """``(healthy, body)``: ``{"status": "ok"}``, or the status and the problems."""
        if self.agent.stopping.is_set():
            return False, {"status": "stopping"}
        if not self.agent.ready.is_set():
            return False, {"status": "starting"}
        problems = self.problems()
        if problems:
            return False, {"status": "unhealthy", "problems": problems}
        return True, {"status": "ok"}


def _buffered(channel: Any) -> Callable[[], int]:
    return lambda: channel.statistics().current_buffer_used


def _taken_by(runner: Any) -> Callable[[], int]:
    queued = f"outputs.{runner.name}.queued"
    return lambda: runner.metrics.get(queued) - runner.pending()
