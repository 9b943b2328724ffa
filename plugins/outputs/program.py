"""The program output (Falco's ``program_output``): alerts fed to a shell command's stdin.

Without ``keep_alive`` the command (``/bin/sh -c PROGRAM``) is started for every alert and fed
that one line, as Falco does.  With ``keep_alive`` one long-lived process is fed line by line;
when it dies it is restarted (counted as ``outputs.program.restarts``, with a growing pause if
it keeps dying at once) and the alert that found it dead is written to the new process.  A
line already written into the pipe of a process that then dies unread cannot be recovered: a
consumer that must not lose alerts should read promptly, or use the webhook output.  On stop,
the alerts of the batch still being fed when the shutdown grace runs out (a program that stopped
reading, or never exits) are counted in ``outputs.program.dropped``, as the queue's are.
``reopen()`` (SIGUSR1/SIGHUP) ends the current process gracefully; the next alert starts a new one.
"""

from __future__ import annotations

import logging
import subprocess
from typing import Any

import trio

from syswarden.core.config import Key, Section
from syswarden.core.errors import ConfigError
from syswarden.core.hookspecs import hookimpl
from syswarden.core.outputs import (BatchInHand, OutputSettings, batches, build_if_enabled,
                                    output_schema)
from syswarden.core.protocols import Output

log = logging.getLogger("syswarden.outputs.program")

MAX_RESTART_PAUSE = 30.0
STABLE_AFTER = 10.0          # a process alive this long resets the restart pause


class ProgramOutput(Output):
    name = "program"

    def __init__(self, config: dict[str, Any], section: dict[str, Any], metrics: Any) -> None:
        self.settings = OutputSettings.from_config(config, section)
        self.metrics = metrics
        self.program = section.get("program") or ""
        if not self.program.strip():
            raise ConfigError("program_output.program is empty")
        self.keep_alive = bool(section.get("keep_alive", False))
        self.argv = ["/bin/sh", "-c", self.program]
        self._proc: trio.Process | None = None
        self._started_at = 0.0
        self._pause = 0.0
        self._retired: list[trio.Process] = []

    @property
    def pid(self) -> int | None:
        """The keep-alive process's pid (None when none is running)."""
        return self._proc.pid if self._proc is not None and self._proc.returncode is None else None

    async def run(self, alerts: trio.MemoryReceiveChannel, *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        in_hand = BatchInHand(self.name, self.metrics)
        try:
            async with alerts:
                async for batch in batches(alerts, limit=64):
                    with in_hand.holding(batch):
                        if self.keep_alive:
                            await self._feed(batch)
                            in_hand.done(len(batch))
                        else:
                            for alert in batch:
                                await self._run_once(alert)
                                in_hand.done()
            if self._proc is not None:      # stopping: let the consumer finish its input
                await self._retire(self._proc)
                self._proc = None
            for proc in self._retired:
                await proc.wait()
        finally:
            for proc in [self._proc, *self._retired]:
                if proc is not None and proc.returncode is None:
                    proc.kill()

    async def _run_once(self, alert: Any) -> None:
        line = (self.settings.formatter(alert) + "\n").encode()
        try:
            result = await trio.run_process(self.argv, stdin=line, check=False,
                                            stdout=subprocess.DEVNULL)
        except OSError as exc:
            self.metrics.inc("outputs.program.failed")
            log.error("program output: cannot run %r: %s", self.program, exc)
            return
        if result.returncode != 0:
            self.metrics.inc("outputs.program.failed")
            log.warning("program output: %r exited with %d", self.program, result.returncode)
        else:
            self.metrics.inc("outputs.program.sent")

    async def _feed(self, batch: list) -> None:
        fmt = self.settings.formatter
        data = "".join(fmt(a) + "\n" for a in batch).encode()
        while True:
            proc = await self._live_process()
            if proc is None:
                self.metrics.inc("outputs.program.failed", len(batch))
                return
            try:
                await proc.stdin.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                await proc.wait()
                continue                  # it died: _live_process restarts it
            self.metrics.inc("outputs.program.sent", len(batch))
            return

    async def _live_process(self) -> trio.Process | None:
        proc = self._proc
        if proc is not None and proc.returncode is None and proc.poll() is None:
            return proc
        if proc is not None:              # it died by itself: a restart, counted
            proc.stdin.close()            # a child it left behind sees EOF
            self.metrics.inc("outputs.program.restarts")
            lived = trio.current_time() - self._started_at
            self._pause = 0.0 if lived > STABLE_AFTER else min(MAX_RESTART_PAUSE,
                                                                max(0.1, self._pause * 2))
            log.warning("program output: %r exited with %s; restarting", self.program,
                        proc.returncode)
            await trio.sleep(self._pause)
        try:
            self._proc = await trio.lowlevel.open_process(self.argv, stdin=subprocess.PIPE)
        except OSError as exc:
            log.error("program output: cannot start %r: %s", self.program, exc)
            self._proc = None
            return None
        self._started_at = trio.current_time()
        return self._proc

    async def _retire(self, proc: trio.Process) -> None:
        try:
            await proc.stdin.aclose()
        except trio.BrokenResourceError:
            pass
        await proc.wait()

    def reopen(self) -> None:
        """End the keep-alive process (its stdin closed); the next alert starts a new one."""
        proc, self._proc = self._proc, None
        self._retired = [p for p in self._retired if p.poll() is None]
        if proc is not None and proc.returncode is None:
            self._retired.append(proc)
            proc.stdin.close()          # the process sees EOF and exits when it is done


@hookimpl
def syswarden_config_schema() -> dict[str, Section]:
    return output_schema(
        "program_output", "Falco's program output",
        Key(bool, False, "feed alerts to a program's stdin"),
        keep_alive=Key(bool, False, "one long-lived process fed line by line"),
        program=Key(str, "", "a shell command (run with /bin/sh -c)"))


@hookimpl
def syswarden_make_outputs(ctx: Any) -> ProgramOutput | None:
    return build_if_enabled(ctx, "program_output", ProgramOutput)
