"""One error hierarchy for everything a user can get wrong or a component can fail at.

Every error a user can cause carries a :class:`Location` (file, line, column, and the item it
belongs to) so the CLI prints ``file:line:col: message`` and never a Python traceback.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Location:
    """Where in a user's file something is: 1-based line and column; item is e.g. ``rule 'X'``."""

    file: str | None = None
    line: int | None = None
    col: int | None = None
    item: str | None = None

    def __str__(self) -> str:
        parts = [self.file or "<input>"]
        if self.line is not None:
            parts.append(str(self.line))
            if self.col is not None:
                parts.append(str(self.col))
        where = ":".join(parts)
        return f"{where} ({self.item})" if self.item else where


class SyswardenError(Exception):
    """Base of every error syswarden raises on purpose; its message is meant for the user."""

    def __init__(self, message: str, location: Location | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.location = location
        self.hint = hint

    def __str__(self) -> str:
        text = f"{self.location}: {self.message}" if self.location else self.message
        return f"{text}\n  hint: {self.hint}" if self.hint else text


class ConfigError(SyswardenError):
    """A bad config file, key, type or ``-o`` override."""


class RuleError(SyswardenError):
    """A rules file that cannot be loaded, or a condition/output that cannot be compiled."""


class PluginError(SyswardenError):
    """A plugin that cannot be found, loaded, or that broke its contract."""


class SourceError(SyswardenError):
    """An event source that cannot start (no root, bcc missing, capture file unreadable...)."""


class OutputError(SyswardenError):
    """An output that cannot be set up or cannot deliver."""


class UnsafePathError(SyswardenError):
    """A path root was asked to write that another user could have prepared: a symbolic or
    hard link, a FIFO, a file or directory someone else owns, a directory others can write."""
