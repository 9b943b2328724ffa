"""Helpers for testing syswarden plugins, as ``trio.testing`` is for trio: the project's own
tests use them, and so can a third-party plugin's (docs/plugins.md, "Testing your plugin").

Events and alerts:

- :func:`make_event`: an :class:`~syswarden.core.event.Event` with its process tree, its fd
  and optionally its container, in one call: what a rule or a field reads.
- :func:`make_alert`: an :class:`~syswarden.core.alert.Alert` as a rule raises it, for outputs.
- :func:`read_field`: one field of an event, read as the rule engine reads it.
- :func:`fields_with`: every installed field and some more rows (a plugin's, being written).

Rules: :class:`RuleCloner`, Falco's rules cloned to any number of rules of their shapes.

Plugin objects and the agent:

- :class:`ListSource`: a source that sends the events it is given, then ends (or waits).
- :class:`RecordingOutput`: an output that keeps every alert it receives.
- :func:`make_agent`: a real agent of the plugins and objects given (the built-in plugins
  disabled unless named), built and not started: ``await agent.run()``.
- :class:`DrivenOutput` and :func:`base_config`: one output run the way the agent runs it
  (behind its queue, threshold and rate limit), without an agent.

The agent as a program: :data:`SYSWARDEN` (the command), :func:`running_agent` (started, ready,
stopped and checked around a ``with`` block) and :func:`refused_at_start`.

NATS: :class:`NatsCluster` and :func:`nats_cluster`, real ``nats-server`` processes with
JetStream on 127.0.0.1 (the nats output and the fleet).

Nothing here needs pytest; it needs trio.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import ipaddress
import itertools
import json
import os
import pathlib
import re
import signal
import subprocess
import sys
import threading
import time
import types
from collections.abc import Iterable, Iterator
from typing import Any

import trio

from syswarden.core.agent import Agent
from syswarden.core.alert import Alert, Priority
from syswarden.core.config import load_config
from syswarden.core.event import Container, Event, FdInfo, Mount, Process
from syswarden.core.fields import Field, FieldRegistry, define
from syswarden.core.hookspecs import hookimpl
from syswarden.core.metrics import Metrics
from syswarden.core.outputs import OutputRunner, OutputSettings
from syswarden.core.plugins import BUILTIN_PLUGINS, collect_fields, make_plugin_manager
from syswarden.core.protocols import BASES, Output, Source
from syswarden.core.rules import ast
from syswarden.core.rules.compiler import Compiler
from syswarden.core.rules.engine import CompiledRule, load_rules
from syswarden.core.rules.loader import RuleDef, rule_condition
from syswarden.core.rules.parser import parse
from syswarden.core.rules.resolved import MacroDef, Origin
from syswarden.core.rules.typesets import type_sets

# ---------------------------------------------------------------------------------------------
# Events and alerts
# ---------------------------------------------------------------------------------------------

#: the time of :func:`make_event`'s events (ns since the epoch): 2023-11-14 22:13:20.123456789
EVENT_TS = 1_700_000_000_123_456_789


def make_event(type: str = "openat", *, name: str | None = None, proc: str = "cat",
               parent: str = "bash", grandparent: str = "sshd", args: dict | None = None,
               res: int = 3, uid: int = 1000, cmdline: list[str] | None = None,
               sip: str | None = None, sport: int | None = None, container: str | None = None,
               mounts: list[str] | None = None, env: list[str] | None = None,
               ts: int = EVENT_TS, fd_num: int = 3) -> Event:
    """A realistic event of syscall ``type``, with its state as the enrichers attach it.

    Its process (pid 12, ``proc``, user ``uid``, arguments ``cmdline`` and environment
    ``env``) has a parent (pid 11, ``parent``, the same user) and a grandparent (pid 10,
    ``grandparent``, root).  ``name`` gives it a file fd (number ``fd_num``; for the open
    syscalls also the ``name`` and ``fd`` arguments); ``sip`` and ``sport`` an IPv4 socket fd
    from 10.0.0.1:5000 to that server instead.  ``container`` (a 12-hex id) or ``mounts``
    (destinations, each mounted from ``/src<dest>``) put the process in a container named
    ``web`` from the ``nginx`` image.  ``args`` are the syscall's other arguments and ``res``
    its return value.  The event is not numbered (``num`` 0: the agent numbers it).
    """
    grand = Process(10, comm=grandparent, uid=0)
    par = Process(11, comm=parent, parent=grand, uid=uid)
    p = Process(12, comm=proc, parent=par, uid=uid, args=cmdline or [], env=env or [])
    evt_args = dict(args or {})
    if name is not None and type in ("open", "openat", "openat2"):
        evt_args.setdefault("name", name)
        evt_args.setdefault("fd", res)
    e = Event(type, ts=ts, tid=12, pid=12, res=res, args=evt_args)
    e.proc = p
    if name is not None:
        e.fd = FdInfo(fd_num, "file", name)
    if sip is not None:
        e.fd = FdInfo(fd_num, "ipv4", f"10.0.0.1:5000->{sip}:{sport}",
                      sip=ipaddress.ip_address(sip), sport=sport,
                      cip=ipaddress.ip_address("10.0.0.1"), cport=5000)
    if container is not None or mounts is not None:
        c = Container(container or "abcdef123456", name="web", image_repository="nginx",
                      mounts=[Mount("/src" + d, d) for d in (mounts or [])], complete=True)
        e.container = c
        p.container = c
        p.container_id = c.id
    return e


_alert_numbers = itertools.count()


def make_alert(i: int | None = None, rule: str = "Terminal shell in container",
               priority: Priority = Priority.NOTICE, **fields: Any) -> Alert:
    """An alert as a rule raises it, now: Falco's "shell in a container" by default.

    Its ``output_fields`` are ``proc.name`` (bash), ``container.id`` and ``seq`` (``i``, else
    the next number of a counter), updated with ``fields``; its ``output`` names ``seq``, so
    every alert's line differs.
    """
    n = next(_alert_numbers) if i is None else i
    output_fields: dict[str, Any] = {"proc.name": "bash", "container.id": "4f1a2b3c4d5e", "seq": n}
    output_fields.update(fields)
    return Alert(rule=rule, priority=priority,
                 output=f"A shell was spawned in a container (seq={n} "
                        f"proc={output_fields['proc.name']})",
                 time_ns=time.time_ns(), output_fields=output_fields, tags=["shell", "mitre"])


@functools.cache
def _installed_fields() -> FieldRegistry:
    return collect_fields()


def fields_with(*rows: Field, provider: str = "test") -> FieldRegistry:
    """A registry of every installed plugin's fields and ``rows``, declared by ``provider``:
    the fields rules load against when a plugin that declares ``rows`` is enabled."""
    registry = collect_fields()
    registry.add_all(define(provider, rows))
    return registry


def read_field(name: str, event: Event, arg: Any = None,
               registry: FieldRegistry | None = None) -> Any:
    """The value of field ``name`` (with its argument ``arg``: ``proc.aname[2]`` is
    ``read_field("proc.aname", e, 2)``) for ``event``, read as the rule engine reads it.
    ``registry``: the fields to look in (default: every installed plugin's)."""
    d = (registry or _installed_fields()).get(name)
    if d is None:
        raise KeyError(f"field {name} is not declared")
    return d.bind(arg).read(event)


# ---------------------------------------------------------------------------------------------
# Rule sets of any size
# ---------------------------------------------------------------------------------------------

class RuleCloner:
    """Falco's rules (``files``, read and compiled by syswarden's loader and compiler), and
    clones of them to reach any number of rules with their shapes and event types.

    :meth:`rules` gives the first ``n`` rules of round 0 (the enabled rules, in load order),
    round 1 (a clone of each), round 2...  The clone of round ``k`` is named
    ``<rule> (clone k)``; its condition (exceptions included) is the original's with one
    more item, ``swbench-clone-k``, in each of its lists of strings (``proc.name in
    (...)``, ``fd.name pmatch (...)``...).  A rule with no such list of its own gets copies
    of the macros it names, their lists grown the same way (``<macro>__clone<k>``); with
    ``distinct_macros``, every clone does.  No process or file is named ``swbench-clone-k``:
    a clone matches the events its original matches, yet it is a distinct rule.
    """

    def __init__(self, files: list[str], fields: FieldRegistry,
                 distinct_macros: bool = False) -> None:
        result, compiled, _ = load_rules(files, fields)
        if result.errors:
            raise ValueError(f"the rules do not load: {result.errors[0]}")
        self.lists, _ = result.expanded_lists()
        self.macros = result.macros
        self.comp = Compiler(fields, self.lists, self.macros)
        self.distinct_macros = distinct_macros
        #: every compiled rule, enabled or not, in load order
        self.all_rules = compiled
        by_name = {r.name: r for r in compiled if r.enabled}
        #: (definition, compiled by the loader) of each enabled rule, in load order
        self.base: list[tuple[RuleDef, CompiledRule]] = [
            (rd, by_name[rd.name]) for rd in result.rules
            if rd.enabled and rd.source in ("syscall", "") and rd.name in by_name]
        self.grown = 0      # lists given an item, in the clones' own conditions
        self.in_macros = 0  # lists given an item in the macros cloned for them
        self.same = 0       # clones with no list grown at all (the original's condition)
        self.clones: dict[tuple[int, int], CompiledRule] = {}

    def rules(self, n: int) -> list[CompiledRule]:
        """The first ``n`` rules of round 0 (the originals), round 1, ..."""
        out: list[CompiledRule] = []
        k = 0
        while len(out) < n:
            for i, (rd, rule) in enumerate(self.base[:n - len(out)]):
                if k and (i, k) not in self.clones:
                    self.clones[i, k] = self.clone(rd, rule, k)
                out.append(self.clones[i, k] if k else rule)
            k += 1
        return out

    def clone(self, rd: RuleDef, rule: CompiledRule, k: int) -> CompiledRule:
        text = rule_condition(rd, self.lists)
        origin = Origin(text, rd.cond_location)
        tree = parse(text, rd.cond_location)
        before, in_macros = self.grown, self.in_macros
        varied = self._vary(tree, k, origin, self.distinct_macros)
        if self.grown == before and not self.distinct_macros:
            varied = self._vary(tree, k, origin, True)
        self.same += self.grown == before and self.in_macros == in_macros
        node = self.comp.resolve(varied, origin)
        types, _ = type_sets(node)
        return dataclasses.replace(rule, name=f"{rule.name} (clone {k})", node=node,
                                   types=types, predicate=None)

    def _vary(self, node: ast.Node, k: int, origin: Origin, macros: bool) -> ast.Node:
        if isinstance(node, (ast.And, ast.Or)):
            return type(node)(tuple(self._vary(c, k, origin, macros) for c in node.children),
                              node.pos)
        if isinstance(node, ast.Not):
            return ast.Not(self._vary(node.child, k, origin, macros), node.pos)
        if isinstance(node, ast.MacroRef) and macros:
            return ast.MacroRef(self._macro(node.name, k), node.pos)
        if isinstance(node, ast.Check) and isinstance(node.value, ast.ListLit):
            bound = self.comp.bind_field(node.field, origin)
            if bound.name != "evt.type" and bound.type.is_string:
                extra = ast.Literal(f"swbench-clone-{k}", node.value.pos, quoted=True)
                self.grown += 1
                return dataclasses.replace(
                    node, value=ast.ListLit((*node.value.items, extra), node.value.pos))
        return node

    def _macro(self, name: str, k: int) -> str:
        """The name of macro ``name``'s clone for round ``k`` (defined on first use)."""
        mdef = self.macros.get(name)
        if mdef is None:      # not a macro: the compiler says what it is
            return name
        clone = f"{name}__clone{k}"
        if clone not in self.macros:
            # defined before its body is varied: a macro that names itself stops here
            self.macros[clone] = MacroDef(clone, mdef.node, mdef.origin)
            grown = self.grown
            self.macros[clone].node = self._vary(mdef.node, k, mdef.origin, True)
            self.in_macros += self.grown - grown
            self.grown = grown
        return clone


# ---------------------------------------------------------------------------------------------
# Plugin objects
# ---------------------------------------------------------------------------------------------


class ListSource(Source):
    """Sends ``events``, ``batch_size`` at a time, then returns (the agent drains and stops);
    with ``wait``, then waits for the agent's stop (a test that signals or reloads a running
    agent).  ``sent`` counts the events sent."""

    def __init__(self, events: Iterable[Event], batch_size: int = 256, *, wait: bool = False,
                 name: str = "list") -> None:
        self.name = name
        self.events = list(events)
        self.batch_size = max(1, batch_size)
        self.wait = wait
        self.sent = 0
        self._stop = trio.Event()

    async def run(self, send: trio.MemorySendChannel[list[Event]], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        for i in range(0, len(self.events), self.batch_size):
            if self._stop.is_set():
                return
            batch = self.events[i:i + self.batch_size]
            await send.send(batch)
            self.sent += len(batch)
        if self.wait:
            await self._stop.wait()

    def stop(self) -> bool:
        """Send no more batches and return."""
        self._stop.set()
        return True


class RecordingOutput(Output):
    """Keeps every alert it receives, in order, in ``alerts``; ``reopened`` counts the
    agent's reopen requests (SIGUSR1, SIGHUP).  ``settings``: its threshold, queue and rate
    limit (default: the globals)."""

    def __init__(self, name: str = "recording", settings: OutputSettings | None = None) -> None:
        self.name = name
        if settings is not None:
            self.settings = settings
        self.alerts: list[Alert] = []
        self.reopened = 0

    @property
    def rules(self) -> list[str]:
        """The rule of each alert received, in order."""
        return [a.rule for a in self.alerts]

    async def run(self, alerts: trio.MemoryReceiveChannel[Alert], *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        task_status.started()
        async with alerts:
            async for alert in alerts:
                self.alerts.append(alert)

    def reopen(self) -> None:
        self.reopened += 1


def _providing(kind: str, obj: Any) -> types.ModuleType:
    """A plugin whose ``syswarden_make_<kind>s`` returns ``obj``."""
    plugin = types.ModuleType(f"syswarden.testing.{kind}.{obj.name}")

    @hookimpl
    def make(ctx: Any) -> Any:
        return obj

    setattr(plugin, f"syswarden_make_{kind}s", make)
    return plugin


def _as_plugin(i: int, thing: Any) -> tuple[str, Any]:
    """``(name, plugin)``: a plugin object provided by a plugin of its own; a plugin as it is."""
    for kind, (base, _) in BASES.items():
        if isinstance(thing, base):
            return f"given-{i}-{kind}-{thing.name}", _providing(kind, thing)
    return f"given-{i}", thing


def make_agent(directory: str | os.PathLike, *plugins: Any, config: dict[str, Any] | None = None,
               builtins: Iterable[str] = ()) -> Agent:
    """A real agent, built (its plugins' objects resolved) and not started: ``await
    agent.run()`` runs it until its sources end and returns the exit code (0: all went well).

    ``plugins``, in this order: instances of :class:`~syswarden.core.protocols.Source`,
    ``Enricher``, ``Filter`` or ``Output`` (a :class:`ListSource`, your filter...), each
    built as it is, and plugins (a module of ``@hookimpl`` functions: yours), whose factories
    build theirs from the config.  The built-in plugins are registered but disabled (their
    config sections and fields are known: a rule may read ``proc.name``), except those named
    in ``builtins`` (``"rules"``: the rule engine on the config's ``rules_file``).

    ``config`` holds the config file's keys (defaults fill the rest); it is written to
    ``directory`` (pytest's ``tmp_path``) as ``syswarden.yaml``, the agent's
    ``config_path``: rewrite it and ``await agent.reload()`` for a rule reload.
    """
    cfg = copy.deepcopy(config or {})
    enabled = set(builtins)
    cfg["disabled_plugins"] = [n for n, _, _ in BUILTIN_PLUGINS if n not in enabled] + \
        list(cfg.get("disabled_plugins") or [])
    path = pathlib.Path(directory) / "syswarden.yaml"
    path.write_text(json.dumps(cfg, indent=2))
    manager = make_plugin_manager(cfg, given=[_as_plugin(i, p) for i, p in enumerate(plugins)])
    agent = Agent(load_config(str(path), (), manager.schemas()), manager, config_path=str(path))
    agent.build()
    return agent


# ---------------------------------------------------------------------------------------------
# One output, without an agent
# ---------------------------------------------------------------------------------------------


def base_config(**over: Any) -> dict[str, Any]:
    """The global keys an output and its runner read (text lines, no threshold, no rate
    limit, a queue of 1000, 5 s to flush), updated with ``over``: the ``config`` to build an
    output with when no config file is loaded."""
    config: dict[str, Any] = {
        "json_output": False, "json_include_output_property": True,
        "json_include_tags_property": True, "time_format_iso_8601": False,
        "buffered_outputs": False, "priority": "debug",
        "outputs": {"rate": 0, "max_burst": 1000},
        "pipeline": {"output_queue": 1000, "shutdown_grace": 5.0},
    }
    config.update(over)
    return config


class DrivenOutput:
    """An output run the way the agent runs it: behind an
    :class:`~syswarden.core.outputs.OutputRunner` (its threshold, rate limit and bounded
    queue), in a nursery::

        driven = DrivenOutput(output, base_config())
        await nursery.start(driven.run)
        driven.offer([make_alert(1), make_alert(2)])
        await driven.stop()         # the queue closed: the output drains it and returns

    ``metrics`` holds the runner's counters (``outputs.NAME.queued`` ...) and the output's.
    """

    def __init__(self, output: Any, config: dict[str, Any] | None = None,
                 metrics: Metrics | None = None) -> None:
        self.output = output
        self.metrics = metrics if metrics is not None else Metrics()
        self.runner = OutputRunner.for_output(output, config or base_config(), self.metrics)
        self.finished = trio.Event()

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run the output until :meth:`stop` (start it with ``nursery.start``)."""
        try:
            await self.runner.run(task_status=task_status)
        finally:
            self.finished.set()

    def offer(self, alerts: Iterable[Alert]) -> None:
        """Offer each alert as the filter stage does: never waits (over the threshold, the
        rate or the queue, it is counted, not queued)."""
        for alert in alerts:
            self.runner.offer(alert)

    async def stop(self, timeout: float = 30.0) -> None:
        """Close the queue and wait, at most ``timeout`` seconds, for the output to return."""
        self.runner.close()
        with trio.fail_after(timeout):
            await self.finished.wait()


# ---------------------------------------------------------------------------------------------
# The agent as a program
# ---------------------------------------------------------------------------------------------

#: the ``syswarden`` command of this Python (``[*SYSWARDEN, "-c", config]``)
SYSWARDEN = [sys.executable, "-m", "syswarden.core.cli"]


class AgentProcess:
    """A running ``syswarden`` (see :func:`running_agent`): ``proc`` (its Popen) and
    ``stderr`` (its log so far)."""

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
        """Wait for the ``syswarden ready`` line; raise AssertionError with the log when the
        agent exits first or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        while not self.ready.wait(0.1):
            if self.proc.poll() is not None:
                raise AssertionError(f"agent exited with {self.proc.returncode} before ready:\n"
                                     f"{self.stderr}")
            if time.monotonic() > deadline:
                raise AssertionError(f"agent not ready after {timeout}s:\n{self.stderr}")

    @staticmethod
    def lines(path: str) -> list[str]:
        """The lines of ``path`` (a file output) so far, none when it does not exist yet."""
        try:
            with open(path, encoding="utf-8", errors="replace") as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []

    def wait_for_line(self, path: str, pattern: str, timeout: float = 20.0) -> str:
        """The first line of ``path`` matching ``pattern`` (a regex), waiting up to ``timeout``
        seconds: alerts arrive asynchronously."""
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
        """SIGTERM (SIGKILL after ``timeout``); the exit code."""
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
    """``syswarden ARGS`` in a subprocess, ready (its ``syswarden ready`` line seen) for the
    ``with`` block; then stopped with SIGTERM, and its exit code checked to be 0."""
    proc = subprocess.Popen([*SYSWARDEN, *args], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
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
    out = subprocess.run([*SYSWARDEN, *args, "--dry-run", "-e", "/dev/null"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2, out.stderr
    assert "Traceback" not in out.stderr
    return out.stderr


# ---------------------------------------------------------------------------------------------
# NATS JetStream on 127.0.0.1 (the nats output and the fleet)
# ---------------------------------------------------------------------------------------------

def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class NatsCluster:
    """``size`` real ``nats-server`` processes with JetStream on 127.0.0.1, clustered when
    ``size`` > 1, each with its own store under ``directory`` (kept across restarts)::

        cluster = NatsCluster(tmp_path)      # started, JetStream ready
        cluster.kill(cluster.stream_leader("S"))    # SIGKILL one; cluster.start(i) again
        cluster.close()

    ``conf`` is added to every server's config (an ``authorization`` block; ``auth``: the
    nats-py ``connect`` arguments that pass it).  ``call(fn)``
    runs ``await fn(js)`` with a fresh nats-py connection, for checks from blocking code."""

    def __init__(self, directory: str | os.PathLike, size: int = 3, conf: str = "",
                 auth: dict[str, Any] | None = None) -> None:
        self.dir = pathlib.Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.size = size
        self.ports = [free_port() for _ in range(size)]
        self.cluster_ports = [free_port() for _ in range(size)]
        self.procs: list[subprocess.Popen | None] = [None] * size
        self.conf = conf
        self.auth = auth or {}
        for i in range(size):
            self.start(i, wait=False)
        try:
            self.wait_ready()
        except BaseException:
            self.close()
            raise

    @property
    def urls(self) -> list[str]:
        return [f"nats://127.0.0.1:{p}" for p in self.ports]

    def start(self, i: int, wait: bool = True) -> None:
        name = f"n{i + 1}"
        conf = self.dir / f"{name}.conf"
        cluster = ""
        if self.size > 1:
            routes = ", ".join(f"nats-route://127.0.0.1:{p}" for p in self.cluster_ports)
            cluster = (f"cluster {{ name: c1, listen: 127.0.0.1:{self.cluster_ports[i]}, "
                       f"routes: [{routes}] }}")
        conf.write_text(f"server_name: {name}\nlisten: 127.0.0.1:{self.ports[i]}\n"
                        f"jetstream {{ store_dir: {self.dir / ('js-' + name)} }}\n"
                        f"{cluster}\n{self.conf}\n")
        log = open(self.dir / f"{name}.log", "ab")
        self.procs[i] = subprocess.Popen(["nats-server", "-c", str(conf)], stdout=log,
                                         stderr=subprocess.STDOUT)
        if wait:
            self.wait_ready()

    def kill(self, i: int, sig: int = signal.SIGKILL) -> None:
        proc = self.procs[i]
        if proc is not None and proc.poll() is None:
            proc.send_signal(sig)
            proc.wait(10)
        self.procs[i] = None

    def close(self) -> None:
        for i in range(self.size):
            self.kill(i, signal.SIGTERM)

    def call(self, fn: Any, timeout: float = 30.0, **connect: Any) -> Any:
        """``await fn(js)`` on a fresh connection to the servers that run."""
        import asyncio

        import nats

        async def quiet(exc: Exception) -> None:     # the caller sees the error it raises
            pass

        async def go() -> Any:
            nc = await nats.connect(servers=[u for u, p in zip(self.urls, self.procs) if p],
                                    connect_timeout=2, allow_reconnect=False,
                                    max_reconnect_attempts=0, error_cb=quiet,
                                    **{**self.auth, **connect})
            try:
                return await fn(nc.jetstream(timeout=5))
            finally:
                await nc.close()
        return asyncio.run(asyncio.wait_for(go(), timeout))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Until JetStream answers (a meta leader is elected)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.call(lambda js: js.account_info(), timeout=5)
                return
            except Exception as exc:
                if time.monotonic() > deadline:
                    raise AssertionError(f"JetStream not ready after {timeout}s: {exc}")
                time.sleep(0.2)

    def stream_leader(self, stream: str) -> int:
        """The index of the server leading ``stream``."""
        async def info(js: Any) -> Any:
            return await js.stream_info(stream)
        leader = self.call(info).cluster.leader
        return int(leader.lstrip("n")) - 1

    def messages(self, stream: str) -> list[Any]:
        """Every message of ``stream`` in order (nats-py ``RawStreamMsg``: ``subject``,
        ``headers``, ``data``)."""
        async def read(js: Any) -> list[Any]:
            info = await js.stream_info(stream)
            return [await js.get_msg(stream, seq) for seq in
                    range(info.state.first_seq, info.state.last_seq + 1)] \
                if info.state.messages else []
        return self.call(read, timeout=120)


@contextlib.contextmanager
def nats_cluster(directory: str | os.PathLike, size: int = 3, conf: str = "",
                 auth: dict[str, Any] | None = None) -> Iterator[NatsCluster]:
    """A :class:`NatsCluster` for a ``with`` block, stopped after it."""
    cluster = NatsCluster(directory, size, conf, auth)
    try:
        yield cluster
    finally:
        cluster.close()
