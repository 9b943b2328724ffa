"""What the container engine tests share: reading a field, enriching as the agent does, and the
live pipeline (the real eBPF source, the process enricher, the container enricher, a rule's
condition and output) whose alerts a test reads."""

from __future__ import annotations

import os
import pathlib
import pty
import select
import signal
import subprocess
import time
import uuid
from collections.abc import Callable
from typing import Any

import pytest
import trio

from syswarden.core.event import Event
from syswarden.core.fields import FieldRegistry
from syswarden.core.metrics import Metrics
from syswarden.plugins.enrichers.containers.fields import FIELDS

REG = FieldRegistry(FIELDS)


def run_in_terminal(argv: list[str], send: bytes = b"exit\n") -> None:
    """Run ``argv`` (``docker exec -it ...``, ``ctr task exec -t ...``) under a real
    pseudo-terminal, type ``send`` into it, and wait (bounded) until it ends."""
    pid, fd = pty.fork()
    if pid == 0:
        os.execvp(argv[0], argv)
    try:
        time.sleep(1.5)
        os.write(fd, send)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    if not os.read(fd, 4096):
                        break
                except OSError:
                    break
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                pid = 0
                break
    finally:
        if pid:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)


class RuntimeDaemon:
    """A runtime's daemon started by a test on a private socket: ``command()`` is how it runs,
    ``answers()`` whether it serves its API yet; ``kill()`` stops the daemon alone (its
    containers keep running, as on a real node when the runtime restarts)."""

    name = "daemon"

    def __init__(self, directory: pathlib.Path, socket: str) -> None:
        self.dir = directory
        self.socket = socket
        self.proc: subprocess.Popen | None = None
        self.env: dict[str, str] | None = None

    def command(self) -> list[str]:
        raise NotImplementedError

    def answers(self) -> bool:
        raise NotImplementedError

    def take_docker_image(self, ref: str, load: Callable[[str], Any]) -> None:
        """A local Docker image handed to this runtime: ``docker save`` into a tar file of the
        daemon's directory, ``load(tar path)`` (the runtime's own import), the file removed."""
        from tests.helpers.docker import docker
        tar = self.dir / f"img-{uuid.uuid4().hex[:8]}.tar"
        docker("save", ref, "-o", str(tar))
        try:
            load(str(tar))
        finally:
            tar.unlink(missing_ok=True)

    def start(self, timeout: float = 30.0) -> None:
        log = self.dir / f"{self.name}.log"
        with open(log, "ab") as out:
            self.proc = subprocess.Popen(self.command(), env=self.env, stdout=out, stderr=out,
                                         start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if os.path.exists(self.socket) and self.answers():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not start:\n" + log.read_text()[-3000:])

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self.proc = None

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


def read(name: str, evt: Event, arg: Any = None) -> Any:
    return REG.get(name).bind(arg).read(evt)


async def enrich(enricher: Any, *events: Event) -> None:
    """As the agent does: prepare the batch, then enrich each event."""
    await enricher.prepare(list(events))
    for evt in events:
        enricher.enrich(evt)


async def live_alerts(nursery: trio.Nursery, enricher: Any, condition: str, output: str, *,
                      macros: dict[str, str] | None = None,
                      syscalls: frozenset[str] = frozenset({"execve", "openat"}),
                      ) -> list[tuple[Event, str]]:
    """Start the real eBPF source (``syscalls`` and the fork family) feeding the process
    enricher and ``enricher``; return the list the pipeline appends ``(event, output text)``
    to for every event that meets ``condition`` (which may name ``macros``)."""
    if os.geteuid() != 0:
        pytest.skip("the eBPF source needs root")
    from syswarden.core.plugins import collect_fields
    from syswarden.core.rules.compiler import compile_condition
    from syswarden.core.rules.output import compile_output
    from syswarden.plugins.enrichers.process.enricher import ProcessEnricher
    from syswarden.plugins.sources.ebpf.source import EbpfSource

    fields = collect_fields()
    rule = compile_condition(condition, fields, macros=macros)
    render = compile_output(output, fields)
    process = ProcessEnricher(Metrics())
    source = EbpfSource({}, {*syscalls, "clone", "clone3", "fork", "vfork"},
                        os.getpid(), Metrics())
    send, recv = trio.open_memory_channel[list[Event]](256)
    await nursery.start(source.run, send)
    alerts: list[tuple[Event, str]] = []

    async def pipeline() -> None:
        async with recv:
            async for batch in recv:
                await enricher.prepare(batch)
                for evt in batch:
                    process.enrich(evt)
                    enricher.enrich(evt)
                    if rule(evt):
                        alerts.append((evt, render(evt)[0]))
    nursery.start_soon(pipeline)
    return alerts


#: What the probe tests render of each exec: the process's three probe fields, the container's
#: two probes, the process's command (argv: busybox runs its applets as ``exe``)
PROBE_OUTPUT = ("%proc.is_container_liveness_probe %proc.is_container_readiness_probe "
                "%proc.is_container_healthcheck [%container.liveness_probe] "
                "[%container.readiness_probe] %proc.exe %proc.args")


async def probes_told_apart(alerts: list[tuple[Event, str]], probes: tuple[str, str],
                            expected: list[tuple[str, str]]) -> None:
    """Wait until ``alerts`` (rendered with :data:`PROBE_OUTPUT`) holds one output per
    ``(liveness readiness healthcheck, command)`` of ``expected``, then check they are those, in
    any order, each with the container's ``probes`` (liveness, readiness)."""
    from collections import Counter

    from tests.helpers.docker import eventually

    live, ready = probes
    want = Counter(f"{flags} [{live}] [{ready}] {command}" for flags, command in expected)
    with trio.move_on_after(60):                    # a guard, not a timing
        await eventually(lambda: len(alerts) >= len(expected))
    assert Counter(text for _, text in alerts) == want
