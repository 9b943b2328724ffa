"""Helpers for the real-kernel eBPF tests (tests/plugins/sources/ebpf/): run the live source,
enrich what it sends, read a field of what it sent (:func:`syswarden.testing.read_field`)."""

from __future__ import annotations

import os
import time
from dataclasses import replace
from typing import Any, Awaitable, Callable

import pytest
import trio

from syswarden.plugins.enrichers.process.enricher import ProcessEnricher
from syswarden.plugins.sources.ebpf import program as P
from syswarden.plugins.sources.ebpf.source import EbpfSource

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="needs root (eBPF)")

#: Where exit handlers find a syscall's arguments: both ways are run where they can be.
ARGS_FROM = pytest.mark.parametrize("args_from", [
    "enter",
    pytest.param("regs", marks=pytest.mark.skipif(
        not P.registers_usable(), reason="no BTF or not x86_64: arguments from enter only")),
])

#: Seconds a rule reload may take to load its new program: ~2 s here, up to a minute in the
#: test guest (tests/vm: emulated, where bcc compiles and each fexit program is attached slowly).
RELOAD_TIMEOUT = 180


def exit_hook(cfg: dict, name: str) -> str:
    """The hook a syscall's exit is followed through with this (resolved) config: its fexit
    program where the kernel runs them, else its exit tracepoint."""
    sc = P.BY_NAME[name]
    kfunc = P.kfunc_of(sc, cfg)
    return f"fexit:{kfunc}" if kfunc else f"syscalls:sys_exit_{sc.tracepoint}"


def descends_from_me(evt: Any) -> bool:
    """The event's process is a descendant of the test process."""
    me = os.getpid()
    p = evt.proc
    return p is not None and any(a.pid == me for a in p.ancestors())


def events_of(src: EbpfSource, action: Callable[[], Any]) -> list:
    """Load ``src``, run ``action`` (which waits for the processes it starts), and return what
    the kernel sent meanwhile (the rings read until empty: other processes' events may be many);
    ``src`` is closed afterwards.  Checks of the loaded source
    (what is attached) belong in ``action``."""
    src.load()
    try:
        action()
        time.sleep(0.05)
        events: list = []
        for _ in range(10_000):     # a drain reads a bounded number of records per ring
            batch = src.drain()
            if not batch:
                break
            events += batch
        return events
    finally:
        src.close()


class AsDecoded:
    """Enrich events again from what the decoder gave, with a fresh enricher (after their
    processes are gone: only what the events themselves say counts).  Enriching resolves
    paths in place, so each run starts from copies of the decoded ``args``/``kernel``; ``raw``
    holds them, by ``id`` of the event, for a test to alter."""

    def __init__(self, events: list) -> None:
        self.raw = {id(e): (dict(e.args), e.kernel and replace(e.kernel)) for e in events}

    def enrich(self, events: list) -> None:
        enricher = ProcessEnricher(snapshot=True)
        for e in events:
            args, kernel = self.raw[id(e)]
            e.args, e.kernel = dict(args), kernel and replace(kernel)
            e.proc = e.fd = e.fd2 = None
            enricher.enrich(e)


class Live:
    """The live source running in a nursery, its batches enriched as they come."""

    def __init__(self, types: set[str] | None, cfg: dict | None = None,
                 prefilter: Any = None, socket_prefilter: Any = None) -> None:
        self.enricher = ProcessEnricher(snapshot=True)
        self.source = EbpfSource(cfg or {}, types, os.getpid(), open_prefilter=prefilter,
                                 socket_prefilter=socket_prefilter)
        self.events: list = []

    async def consume(self, recv: trio.MemoryReceiveChannel) -> None:
        async with recv:
            async for batch in recv:
                for ev in batch:
                    self.enricher.enrich(ev)
                self.events.extend(batch)

    async def settle(self, seconds: float = 0.3) -> None:
        """Give the reader time to drain what the kernel has sent."""
        await trio.sleep(seconds)


async def switched(src: EbpfSource, first: Any) -> None:
    """Wait until ``src`` runs a program other than ``first`` (a reload's new one)."""
    with trio.fail_after(RELOAD_TIMEOUT):
        while src.prog is first:
            await trio.sleep(0.05)


async def run_live(types: set[str] | None, action: Callable[[Live], Awaitable[None]],
                   cfg: dict | None = None, prefilter: Any = None,
                   socket_prefilter: Any = None) -> Live:
    live = Live(types, cfg, prefilter, socket_prefilter)
    send, recv = trio.open_memory_channel(1000)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(live.consume, recv)
        async with send:
            async with trio.open_nursery() as src_nursery:
                await src_nursery.start(live.source.run, send)
                await action(live)
                await live.settle(0.05)
                # a graceful stop sends everything recorded before it, however late the
                # reader is (a loaded machine): no event of the action can be missed
                live.source.stop()
                with trio.fail_after(30):
                    while live.source.prog is not None:
                        await trio.sleep(0.01)
    return live


def finit_module_attempt() -> int:
    """A child process that calls finit_module(2) on /dev/null (refused: nothing is loaded),
    waited for; returns its pid."""
    import ctypes
    pid = os.fork()
    if pid == 0:
        fd = os.open("/dev/null", os.O_RDONLY)
        ctypes.CDLL(None, use_errno=True).syscall(313, fd, b"", 0)   # x86_64 finit_module
        os._exit(0)
    os.waitpid(pid, 0)
    return pid
