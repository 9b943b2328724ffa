"""Webhook sections for tests (every key at its default, then the test's own), and a look
into a spool file from outside the process that owns it."""

from __future__ import annotations

import sqlite3

from syswarden.plugins.outputs.webhook import webhook_section


def hook(url: str, tmp_path, **over) -> dict:
    section = webhook_section(True).defaults()
    section.update(name="hook", url=url, queue_file=str(tmp_path / "spool.sqlite3"),
                   retry_initial=0.05, retry_max=0.5, timeout=2.0)
    section.update(over)
    return section


def spooled(path) -> int:
    """Jobs in a spool file (-1 when it cannot be read yet)."""
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            return db.execute("SELECT COUNT(*) FROM jobs").fetchone()[0]
        finally:
            db.close()
    except sqlite3.Error:
        return -1
