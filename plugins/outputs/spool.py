"""The outputs' on-disk queue: alerts waiting for delivery survive a crash or SIGKILL.

One implementation, shared by the webhook and nats outputs (each its own database file).

SQLite in WAL mode (``synchronous=NORMAL``: a committed row survives the process being
killed; only a power cut may lose the last commits).  Bounded: beyond ``max_jobs`` rows the
oldest are deleted and the count returned so the caller counts them as dropped.

Two tables:

``jobs``  what to deliver, in order: ``kind`` is ``alert`` (deliver this alert) or ``repeat``
          (tell the receiver that the alert of ticket ``dedup_key`` happened ``count`` more
          times; one pending repeat job per key, its count grows until it is delivered).
          ``not_before`` holds a repeat note back so a burst becomes one note.
``dedup`` one row per de-duplication key: when its window started, how many alerts it has
          seen, the receiver's reference (a Redmine issue id) once the first one was delivered.

The queue holds alerts (command lines, file names of the whole host) and root writes it, so the
database is created by :func:`~syswarden.core.safe_files.open_file` before SQLite opens it: a
symbolic link, hard link or FIFO at its path, a directory on the way another user owns or can
write without the sticky bit, or a database directory anyone else can write even with it, is
refused (:class:`~syswarden.core.errors.UnsafePathError`).  The file gets ``mode`` (default
0600) and a directory created for it the matching search bits (0700).  SQLite names its side
files after the database and creates them with the database's mode; ones left by a crash are
checked and given the mode too, and nobody else can plant new ones: nobody else can write in
that directory.
"""

from __future__ import annotations

import contextlib
import json
import os
import sqlite3
from collections.abc import Container, Iterator
from dataclasses import asdict, dataclass

from syswarden.core.alert import Alert, Priority
from syswarden.core.safe_files import FILE_MODE, dir_mode_for, open_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    dedup_key TEXT,
    count INTEGER NOT NULL DEFAULT 1,
    not_before REAL NOT NULL DEFAULT 0,
    alert TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_repeat ON jobs (kind, dedup_key);
CREATE TABLE IF NOT EXISTS dedup (
    key TEXT PRIMARY KEY,
    first_seen REAL NOT NULL,
    count INTEGER NOT NULL,
    ref TEXT,
    last_note REAL NOT NULL DEFAULT 0
);
"""

#: what SQLite keeps beside the database (WAL mode, or the rollback journal)
SIDE_FILES = ("-wal", "-shm", "-journal")


def alert_to_json(alert: Alert) -> str:
    doc = asdict(alert)
    doc["priority"] = int(alert.priority)
    return json.dumps(doc, default=str)


def alert_from_json(text: str) -> Alert:
    doc = json.loads(text)
    doc["priority"] = Priority(doc["priority"])
    return Alert(**doc)


def prepare(path: str, mode: int) -> None:
    """Create (or check) the database file and its directories before SQLite opens them."""
    os.close(open_file(path, mode, make_dirs=True, dir_mode=dir_mode_for(mode),
                       private_dir=True))
    for suffix in SIDE_FILES:
        try:
            os.close(open_file(path + suffix, mode, create=False))
        except FileNotFoundError:
            pass


@dataclass
class Job:
    id: int
    kind: str
    dedup_key: str | None
    count: int
    alert: Alert


class Spool:
    def __init__(self, path: str, max_jobs: int, mode: int = FILE_MODE) -> None:
        self.path = path
        self.max_jobs = max(1, int(max_jobs))
        prepare(path, mode)
        self.db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=NORMAL")
        self.db.executescript(SCHEMA)
        # kept in memory: COUNT(*) walks the whole table, too slow per batch with a backlog
        self.size: int = self.db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]

    def close(self) -> None:
        self.db.close()

    # -- jobs ----------------------------------------------------------------------------------

    def add_alerts(self, alerts: list[tuple[Alert, str | None]]) -> int:
        """Queue alerts (each with its dedup key or None); return the old jobs dropped.
        Raises sqlite3.Error when the spool cannot be written (disk full): nothing changed."""
        with self._writing():
            self.db.executemany(
                "INSERT INTO jobs (kind, dedup_key, alert) VALUES ('alert', ?, ?)",
                [(key, alert_to_json(a)) for a, key in alerts])
            dropped = self._trim(len(alerts))
        self.size += len(alerts) - dropped          # only once committed
        return dropped

    def add_repeat(self, key: str, alert: Alert, not_before: float) -> int:
        """Count one more repeat for ``key``: grows the pending note, or queues a new one."""
        with self._writing():
            cur = self.db.execute(
                "UPDATE jobs SET count = count + 1, alert = ? WHERE kind = 'repeat' "
                "AND dedup_key = ?", (alert_to_json(alert), key))
            if cur.rowcount:
                return 0
            self.db.execute(
                "INSERT INTO jobs (kind, dedup_key, not_before, alert) VALUES ('repeat', ?, ?, ?)",
                (key, not_before, alert_to_json(alert)))
            dropped = self._trim(1)
        self.size += 1 - dropped
        return dropped

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction.  A failed COMMIT (SQLITE_FULL) is rolled back, so the
        connection is ready for the next write once there is room again."""
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield
            self.db.execute("COMMIT")
        except BaseException:
            if self.db.in_transaction:
                self.db.execute("ROLLBACK")
            raise

    def _trim(self, added: int) -> int:
        """Inside the inserting transaction: delete the oldest beyond the bound; their number."""
        excess = self.size + added - self.max_jobs
        if excess <= 0:
            return 0
        self.db.execute("DELETE FROM jobs WHERE id IN "
                        "(SELECT id FROM jobs ORDER BY id LIMIT ?)", (excess,))
        return excess

    def next_due(self, now: float | None, exclude: Container[int] = ()) -> Job | None:
        """The oldest job due at ``now`` (None: every job is due) whose id is not in
        ``exclude`` (jobs being sent, delivered jobs the full disk would not let go)."""
        sql = "SELECT id, kind, dedup_key, count, alert FROM jobs"
        args: tuple = ()
        if now is not None:
            sql += " WHERE not_before <= ?"
            args = (now,)
        cur = self.db.execute(sql + " ORDER BY id", args)
        try:
            for row in cur:
                if row[0] not in exclude:
                    return Job(row[0], row[1], row[2], row[3], alert_from_json(row[4]))
            return None
        finally:
            cur.close()

    def next_wake(self, now: float = 0.0) -> float | None:
        """When the next job held back (a repeat note) becomes due, if any is after ``now``."""
        (when,) = self.db.execute("SELECT MIN(not_before) FROM jobs WHERE not_before > ?",
                                  (now,)).fetchone()
        return when

    def done(self, job: Job, next_note: float = 0.0) -> None:
        """The job was delivered (or given up).  A repeat note that gained repeats while it
        was being sent stays, with what it gained, due at ``next_note``.  Raises sqlite3.Error
        when the spool cannot be written (the job stays)."""
        with self._writing():
            if job.kind == "repeat" and self.db.execute(
                    "UPDATE jobs SET count = count - ?, not_before = ? WHERE id = ? AND count > ?",
                    (job.count, next_note, job.id, job.count)).rowcount:
                return
            deleted = self.db.execute("DELETE FROM jobs WHERE id = ?", (job.id,)).rowcount
        self.size -= deleted

    def oldest(self, limit: int) -> list[Job]:
        """Up to ``limit`` of the oldest jobs, in order (an output that delivers in order,
        ``nats``, takes its next batch here)."""
        rows = self.db.execute("SELECT id, kind, dedup_key, count, alert FROM jobs "
                               "ORDER BY id LIMIT ?", (limit,)).fetchall()
        return [Job(r[0], r[1], r[2], r[3], alert_from_json(r[4])) for r in rows]

    def done_many(self, jobs: list[Job]) -> None:
        """Jobs delivered, in one transaction.  Raises sqlite3.Error when the spool cannot be
        written (the jobs stay; delivering them again is harmless to a receiver that
        de-duplicates on the alert's uuid)."""
        with self._writing():
            deleted = self.db.executemany("DELETE FROM jobs WHERE id = ?",
                                          [(j.id,) for j in jobs]).rowcount
        self.size -= deleted

    def __len__(self) -> int:
        return self.size

    # -- de-duplication ------------------------------------------------------------------------

    def seen(self, key: str, now: float, window: float) -> tuple[bool, int]:
        """Record an alert for ``key``: (is a repeat within the window, alerts in the window)."""
        with self._writing():
            row = self.db.execute("SELECT first_seen, count FROM dedup WHERE key = ?",
                                  (key,)).fetchone()
            if row is not None and now - row[0] < window:
                self.db.execute("UPDATE dedup SET count = count + 1 WHERE key = ?", (key,))
                return True, row[1] + 1
            self.db.execute("INSERT OR REPLACE INTO dedup (key, first_seen, count, ref, last_note)"
                            " VALUES (?, ?, 1, NULL, 0)", (key, now))
            self.db.execute("DELETE FROM dedup WHERE first_seen < ?", (now - window,))
            return False, 1

    def dedup_info(self, key: str) -> tuple[str | None, int, float]:
        """(receiver reference, alerts in the window, time of the last note) for ``key``."""
        row = self.db.execute("SELECT ref, count, last_note FROM dedup WHERE key = ?",
                              (key,)).fetchone()
        return (row[0], row[1], row[2]) if row else (None, 0, 0.0)

    def set_ref(self, key: str, ref: str) -> None:
        self.db.execute("UPDATE dedup SET ref = ? WHERE key = ?", (ref, key))

    def noted(self, key: str, now: float) -> None:
        self.db.execute("UPDATE dedup SET last_note = ? WHERE key = ?", (now, key))

