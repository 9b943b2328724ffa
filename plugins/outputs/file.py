"""The file output (Falco's ``file_output``): alerts appended to a file, one per line.

Without ``keep_alive`` the file is opened and closed for every batch, as Falco does, so a
renamed file is never written to after the rename.  With ``keep_alive`` it stays open;
``reopen()`` (the agent calls it on SIGUSR1 and SIGHUP, e.g. from logrotate's postrotate) makes
the next write open the path afresh.  A write that fails (disk full, directory gone) is logged
once per failure streak and counted as ``outputs.file.failed``; the output keeps running.

Every open goes through :func:`~syswarden.core.safe_files.open_file`: a symbolic link, a hard
link, a FIFO or a file someone else owns at the path, or a directory others can replace it in,
is refused.  At start that stops the agent with the reason; later (a link planted before a
SIGUSR1 reopen) the batch is counted as failed and the reason logged.  The file gets ``mode``
(default 0600: alerts hold the command lines and file names of the whole host).
"""

from __future__ import annotations

import logging
import os
from typing import IO, Any

import trio

from syswarden.core.config import Key, Section
from syswarden.core.errors import UnsafePathError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import (OutputSettings, ThreadedWriter, batches, build_if_enabled,
                                    output_schema)
from syswarden.core.protocols import Output
from syswarden.core.safe_files import configured_mode, mode_key, open_file

log = logging.getLogger("syswarden.outputs.file")


class FileOutput(Output):
    name = "file"

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.settings = OutputSettings.from_config(config, section)
        self.metrics = metrics
        self.filename = os.path.abspath(section.get("filename") or "./events.txt")
        self.keep_alive = bool(section.get("keep_alive", False))
        self.buffered = bool(config.get("buffered_outputs", False))
        self.mode = configured_mode(section.get("mode"), "file_output.mode")
        self._fh: IO[str] | None = None
        self._reopen = False
        self._failing = False

    async def run(self, alerts: trio.MemoryReceiveChannel, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        # in a thread: a slow disk (NFS, a full journal) stalls only this output
        write = ThreadedWriter(self.name, self.metrics, self.write,
                               timeout=self.settings.timeout)
        try:
            await trio.to_thread.run_sync(self._open_at_start)
            task_status.started()
            async with alerts:
                async for batch in batches(alerts):
                    await write(batch)
        finally:
            self._close()

    def write(self, batch: list) -> bool:
        fmt = self.settings.formatter
        text = "".join(fmt(a) + "\n" for a in batch)
        if self._reopen:
            self._reopen = False
            self._close()
        try:
            fh = self._fh or self._open()
            try:
                fh.write(text)
                if not self.buffered or not self.keep_alive:
                    fh.flush()
            finally:
                if self.keep_alive:
                    self._fh = fh
                else:
                    fh.close()
        except (OSError, UnsafePathError) as exc:
            self._close()
            self._failed(exc)
            return False
        self._failing = False
        return True

    def _open(self) -> IO[str]:
        return os.fdopen(open_file(self.filename, self.mode), "a", encoding="utf-8")

    def _open_at_start(self) -> None:
        """An unsafe path stops the agent at start; a missing directory is only logged (the
        writes count their failures until it appears)."""
        try:
            fh = self._open()
        except OSError as exc:
            self._failed(exc)
            return
        if self.keep_alive:
            self._fh = fh
        else:
            fh.close()

    def _failed(self, exc: Exception) -> None:
        if not self._failing:
            log.error("file output: cannot write %s: %s", self.filename, exc)
        self._failing = True

    def reopen(self) -> None:
        """The next write opens the path again (after a logrotate rename).  Only a flag: the
        writing thread closes the old file itself, never under a write in progress."""
        self._reopen = True

    def _close(self) -> None:
        fh, self._fh = self._fh, None
        if fh is not None:
            try:
                fh.close()
            except OSError:
                pass


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return output_schema(
        "file_output", "Falco's file output", Key(bool, False, "append alerts to a file"),
        keep_alive=Key(bool, False, "keep the file open (reopened on SIGUSR1/SIGHUP)"),
        filename=Key(str, "./events.txt", "the file alerts are appended to"),
        mode=mode_key("the file's permissions, set when it is opened"))


@hookimpl
def syswarden_make_outputs(ctx: Any) -> FileOutput | None:
    return build_if_enabled(ctx, "file_output", FileOutput)
