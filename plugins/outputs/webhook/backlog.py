"""What waits for delivery: the spool on disk and, while the spool cannot be written, memory.

A spool that cannot be written (disk full, I/O error) must not cost alerts the receiver could
take: the alerts it refuses are *held* in memory (at most ``memory_max``, the oldest dropped
beyond, counted) and delivered from there, after the jobs already on disk.  A job delivered
from the spool that the spool cannot delete is remembered as *delivered* so it is not sent
again in this run; its deletion is retried after every later delivery.

So what the webhook reports at exit is what is true: :meth:`Backlog.kept` jobs wait on disk for
the next start, :meth:`Backlog.undeleted` were delivered but will be sent again at the next
start (receivers drop redeliveries by the alert id), and what is still held in memory is
written to the spool if it now can be, else lost and counted.
"""

from __future__ import annotations

import itertools
import sqlite3
from collections import deque
from collections.abc import Collection

from syswarden.core.alert import Alert

from ..spool import Job, Spool


class Backlog:
    def __init__(self, spool: Spool, memory_max: int) -> None:
        self.spool = spool
        self.memory_max = max(1, int(memory_max))
        self.held: deque[Job] = deque()
        self._undeleted: dict[int, tuple[Job, float]] = {}    # id -> (job, next_note)
        self._ids = itertools.count(-1, -1)                   # held jobs: negative ids

    def hold(self, alerts: list[Alert]) -> int:
        """Keep alerts the spool refused in memory; return how many old ones that dropped."""
        for alert in alerts:
            self.held.append(Job(next(self._ids), "alert", None, 1, alert))
        dropped = max(0, len(self.held) - self.memory_max)
        for _ in range(dropped):
            self.held.popleft()
        return dropped

    def next(self, now: float | None, exclude: Collection[int]) -> Job | None:
        """The oldest job due at ``now`` (None: all are) not in ``exclude``: the spool's first,
        then the held ones."""
        skip = exclude if not self._undeleted else {*exclude, *self._undeleted}
        job = self.spool.next_due(now, skip)
        if job is not None:
            return job
        return next((j for j in self.held if j.id not in exclude), None)

    def finish(self, job: Job, next_note: float) -> None:
        """``job`` was delivered or given up: off the backlog (see :meth:`Spool.done`)."""
        if job.id < 0:
            self.held.remove(job)
            return
        try:
            self.spool.done(job, next_note)
        except sqlite3.Error:
            self._undeleted[job.id] = (job, next_note)
            return
        for old, note in list(self._undeleted.values()):     # there is room again
            try:
                self.spool.done(old, note)
            except sqlite3.Error:
                return
            del self._undeleted[old.id]

    def flush_held(self) -> tuple[int, int]:
        """At stop: write the held alerts to the spool.  Returns (alerts that could not be
        written, old jobs the spool's bound dropped to take them)."""
        if not self.held:
            return 0, 0
        alerts = [(job.alert, None) for job in self.held]
        try:
            trimmed = self.spool.add_alerts(alerts)
        except sqlite3.Error:
            return len(alerts), 0
        self.held.clear()
        return 0, trimmed

    def kept(self) -> int:
        """Jobs on disk still to deliver."""
        return len(self.spool) - len(self._undeleted)

    def undeleted(self) -> int:
        """Jobs delivered this run that stay on disk (the spool could not delete them)."""
        return len(self._undeleted)

    def __len__(self) -> int:
        return self.kept() + len(self.held)
