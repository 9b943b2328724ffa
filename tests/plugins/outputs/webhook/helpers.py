"""Webhook sections for tests: every key at its default, then the test's own."""

from __future__ import annotations

from syswarden.plugins.outputs.webhook import webhook_section


def hook(url: str, tmp_path, **over) -> dict:
    section = webhook_section(True).defaults()
    section.update(name="hook", url=url, queue_file=str(tmp_path / "spool.sqlite3"),
                   retry_initial=0.05, retry_max=0.5, timeout=2.0)
    section.update(over)
    return section
