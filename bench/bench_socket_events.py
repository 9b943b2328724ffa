"""Socket events in user space: the cost per event of decoding, enriching and judging them.

A web server's load (a client making a new connection per request, a server accepting it)
as the eBPF source's ring-buffer records, built in memory (no kernel, no root): per request
the client's ``socket`` and ``connect`` (EINPROGRESS, with the local end the kernel read), the
server's ``accept4`` (the peer and the local end), a ``sendto`` with an address, and both
``close``.  The records go through the stages of the agent, each timed on its own, on one core:

1. the decoder (:class:`~syswarden.plugins.sources.ebpf.decode.Decoder`): record -> event;
2. the process enricher (process and fd tables): ``evt.proc``, ``evt.fd``, the tuple;
3. the rules: (a) syswarden's default rules, (b) Falco's three rule files together;
4. all of it as the agent runs it: a task standing for the source decodes ``--batch`` records
   at a time and sends them over trio channels to the agent's enrich and filter stages, with
   (a)'s rules;

for IPv4 (127.0.0.1) and IPv6 (::1) traffic.  Each figure is the best of three runs (the
machine is shared), with the agent's garbage collector settings.  Prints microseconds per
event; asserts nothing.

    .venv/bin/python bench/bench_socket_events.py [--requests N] [--batch N]
"""

from __future__ import annotations

import argparse
import gc
import os
import socket
import struct
import sys
import time
from collections.abc import Iterable

import trio

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import falco_rules_paths, machine  # noqa: E402

from syswarden.core.agent import GC_THRESHOLDS, Agent  # noqa: E402
from syswarden.core.config import default_rules_path  # noqa: E402
from syswarden.core.event import Event, Process  # noqa: E402
from syswarden.core.metrics import Metrics  # noqa: E402
from syswarden.core.plugins import collect_fields  # noqa: E402
from syswarden.core.rules.engine import RuleEngine  # noqa: E402
from syswarden.plugins.enrichers.process.enricher import ProcessEnricher  # noqa: E402
from syswarden.plugins.sources.ebpf import program as P  # noqa: E402
from syswarden.plugins.sources.ebpf import record as R  # noqa: E402
from syswarden.plugins.sources.ebpf.decode import Decoder  # noqa: E402

CLIENT_PID, SERVER_PID = 41000, 42000
LISTEN_FD, CLIENT_FD, SERVER_FD = 6, 3, 11
EINPROGRESS = -115
SOCK_STREAM_NONBLOCK = socket.SOCK_STREAM | socket.SOCK_NONBLOCK


def sockaddr(family: int, host: str, port: int) -> bytes:
    """A raw ``sockaddr_in``/``sockaddr_in6`` as the kernel side copies it."""
    if family == socket.AF_INET:
        return struct.pack("<H", family) + struct.pack(">H", port) + \
            socket.inet_pton(family, host) + bytes(8)
    return struct.pack("<H", family) + struct.pack(">H", port) + bytes(4) + \
        socket.inet_pton(family, host) + bytes(4)


def record(name: str, ts: int, pid: int, res: int, regs: Iterable[int] = (),
           strings: Iterable[bytes] = (), ino: int = 0) -> bytes:
    """One ``struct rec`` (:mod:`~syswarden.plugins.sources.ebpf.record`) followed by its
    strings."""
    strings = list(strings)
    head = R.pack(ts=ts, cgroup=1, res=res, a=list(regs), tid=pid, pid=pid,
                  kind=R.Kind.SYSCALL, evt=P.EVT_ID[name], slen=[len(s) for s in strings],
                  ino=ino)
    return head + b"".join(strings)


def make_records(requests: int, family: int) -> list[bytes]:
    """The records of ``requests`` requests, a new connection each (see the docstring)."""
    host = "127.0.0.1" if family == socket.AF_INET else "::1"
    server = sockaddr(family, host, 80)
    out = []
    ts = 1_000_000
    for i in range(requests):
        port = 32768 + i % 28000
        client = sockaddr(family, host, port)
        ino = 100_000 + 2 * i
        out += [
            record("socket", ts, CLIENT_PID, CLIENT_FD, (family, SOCK_STREAM_NONBLOCK, 0),
                   ino=ino),
            record("connect", ts + 1, CLIENT_PID, EINPROGRESS, (CLIENT_FD,),
                   (server, client), ino=ino),
            record("accept4", ts + 2, SERVER_PID, SERVER_FD, (LISTEN_FD,), (client, server),
                   ino=ino + 1),
            record("sendto", ts + 3, SERVER_PID, 100, (SERVER_FD,), (client,), ino=ino + 1),
            record("close", ts + 4, SERVER_PID, 0, (SERVER_FD,)),
            record("close", ts + 5, CLIENT_PID, 0, (CLIENT_FD,)),
        ]
        ts += 10
    return out


def make_enricher() -> ProcessEnricher:
    """A process enricher that knows the client and the server (no /proc snapshot)."""
    enricher = ProcessEnricher(snapshot=False)
    for pid, comm in ((CLIENT_PID, "ab"), (SERVER_PID, "nginx")):
        enricher.table.procs[pid] = Process(pid, comm=comm, exe=f"/usr/bin/{comm}",
                                            exepath=f"/usr/bin/{comm}", uid=33, user="www-data",
                                            container_id="host")
    return enricher


def time_stages(records: list[bytes], engines: list[tuple[str, RuleEngine]],
                batch: int) -> dict[str, float]:
    """Seconds each stage spent on all the records, taken ``batch`` at a time (a batch's
    events are dropped after it, as in the agent): decode, enrich, then each rule set."""
    decode = Decoder().decode
    enrich = make_enricher().enrich
    checks = [(name, engine.check) for name, engine in engines]
    spent = dict.fromkeys(["decode", "enrich"] + [name for name, _ in engines], 0.0)
    clock = time.perf_counter
    for i in range(0, len(records), batch):
        chunk = records[i:i + batch]
        t0 = clock()
        events = [decode(r) for r in chunk]
        t1 = clock()
        for ev in events:
            enrich(ev)
        spent["decode"] += t1 - t0
        spent["enrich"] += clock() - t1
        for name, check in checks:
            t0 = clock()
            for ev in events:
                check(ev)
            spent[name] += clock() - t0
    return spent


def time_agent(records: list[bytes], engine: RuleEngine, batch: int) -> float:
    """Seconds the agent's pipeline takes: a task standing for the source decodes ``batch``
    records at a time and sends them to the agent's enrich stage, which sends them to its
    filter stage (trio channels, as the agent wires them)."""
    agent = Agent({"pipeline": {"channel_batches": 16}}, plugins=None, metrics=Metrics())
    agent.enrichers = [make_enricher()]
    agent._checks = [("rules", engine.check)]
    decode = Decoder().decode

    async def main() -> float:
        src_send, src_recv = trio.open_memory_channel[list[Event]](16)
        enr_send, enr_recv = trio.open_memory_channel[list[Event]](16)
        t0 = time.perf_counter()
        async with trio.open_nursery() as stages:
            stages.start_soon(agent._enrich_stage, src_recv, enr_send)
            stages.start_soon(agent._filter_stage, enr_recv)
            async with src_send:
                for i in range(0, len(records), batch):
                    await src_send.send([decode(r) for r in records[i:i + batch]])
        return time.perf_counter() - t0

    return trio.run(main)


def settle_gc() -> None:
    """The agent's collector settings once started (what start-up built frozen, collections
    spaced out): without them the collections over the records would be measured."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=128,
                    help="records per batch (the eBPF source sends what the rings hold: "
                    "~180 events a batch under ab's load)")
    args = ap.parse_args()
    print(f"machine: {machine()}; python {sys.version.split()[0]}")
    fields = collect_fields()
    if "proc.name" not in fields:
        from syswarden.plugins.enrichers.process import FIELDS
        fields.add_all(FIELDS)
    engines: list[tuple[str, RuleEngine]] = []
    default = default_rules_path()
    if os.path.exists(default):
        engines.append(("(a) default rules", RuleEngine.load([default], fields)))
    falco = falco_rules_paths()
    if all(os.path.exists(f) for f in falco):
        engines.append(("(b) Falco's three files", RuleEngine.load(falco, fields)))
    else:
        print("(b) Falco's rules: skipped, not found (SYSWARDEN_SHARED=DIR)")
    for family, label in ((socket.AF_INET, "ipv4"), (socket.AF_INET6, "ipv6")):
        records = make_records(args.requests, family)
        settle_gc()
        n = len(records)
        print(f"{label}: {args.requests:,} requests, {n:,} socket events (socket, connect, "
              f"accept4, sendto, 2 close), batches of {args.batch}")
        runs = [time_stages(records, engines, args.batch) for _ in range(3)]
        for stage in runs[0]:
            print(f"  {stage:<46} {min(r[stage] for r in runs) / n * 1e6:6.2f} us/event")
        if engines:
            name, engine = engines[0]
            secs = min(time_agent(records, engine, args.batch) for _ in range(3))
            print(f"  {'agent pipeline, ' + name:<46} {secs / n * 1e6:6.2f} us/event")
    return 0


if __name__ == "__main__":
    sys.exit(main())
