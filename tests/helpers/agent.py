"""The real agent in a subprocess, for end-to-end tests.

``running_agent(*args)`` starts ``python -m syswarden.core.cli ARGS``, waits for its readiness
line (``syswarden ready``), and on exit stops it with SIGTERM (SIGKILL if it does not stop) and
checks it exited 0.  ``AgentProcess.wait_for_line(path, regex)`` polls a file output until a line
matches: alerts arrive asynchronously, so tests wait for what they expect, with a deadline.
"""

from __future__ import annotations

import contextlib
import re
import signal
import subprocess
import sys
import threading
import time
from typing import Iterator

CLI = [sys.executable, "-m", "syswarden.core.cli"]


class AgentProcess:
    def __init__(self, proc: subprocess.Popen) -> None:
        self.proc = proc
        self.stderr_lines: list[str] = []
        self.ready = threading.Event()
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        for line in self.proc.stderr:
            self.stderr_lines.append(line)
            if "syswarden ready" in line:
                self.ready.set()

    @property
    def stderr(self) -> str:
        return "".join(self.stderr_lines)

    def wait_ready(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode} before ready:\n"
                                     f"{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"agent not ready after {timeout}s:\n{self.stderr}")

    @staticmethod
    def lines(path: str) -> list[str]:
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_for_line(self, path: str, pattern: str, timeout: float = 20.0) -> str:
        """The first line of ``path`` matching ``pattern`` (a regex), waiting up to ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            for line in self.lines(path):
                if regex.search(line):
                    return line
            if time.monotonic() > deadline:
                raise AssertionError(f"no line matching {pattern!r} in {path} after {timeout}s;"
                                     f" it has:\n" + "\n".join(self.lines(path)[-20:]) +
                                     f"\nagent log:\n{self.stderr[-3000:]}")
            time.sleep(0.2)

    def stop(self, timeout: float = 30.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(5)
        return self.proc.returncode


@contextlib.contextmanager
def running_agent(*args: str, ready_timeout: float = 90.0) -> Iterator[AgentProcess]:
    proc = subprocess.Popen([*CLI, *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)
    agent = AgentProcess(proc)
    try:
        agent.wait_ready(ready_timeout)
        yield agent
    finally:
        code = agent.stop()
    assert code == 0, f"agent exited with {code}:\n{agent.stderr[-3000:]}"


def refused_at_start(*args: str) -> str:
    """``syswarden ARGS --dry-run -e /dev/null`` must exit 2 (bad input) with no traceback;
    returns its stderr, for the test to check the message names the place."""
    out = subprocess.run([*CLI, *args, "--dry-run", "-e", "/dev/null"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr
