"""What plugins implement: the objects the factory hooks return, and the commands they add.

The sources, enrichers, filters and outputs subclass :class:`Source`, :class:`Enricher`,
:class:`Filter` and :class:`Output` (as httpx's transports subclass ``BaseTransport``): each
declares the required methods (abstract) and gives every optional one a documented no-op
default, so the agent calls them all directly and never asks whether a plugin has one.  An
object that does not subclass its base but has the required members still works: the plugin
manager wraps it once, at start-up, with :func:`adapt` (the defaults for what it lacks; the
per-event methods stay its own bound methods).  The agent resolves these objects once and then
calls their methods directly: the hot path (event -> rule -> alert) never goes through
``pm.hook``.  The commands a plugin adds to the command line (``syswarden_commands``) subclass
:class:`Command` or :class:`Flag`.
"""

from __future__ import annotations

import abc
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Protocol

import trio

from .alert import Priority
from .errors import PluginError
from .outputs import OutputSettings

if TYPE_CHECKING:
    import argparse

    from .agent import Agent
    from .alert import Alert
    from .event import Event
    from .fields import FieldRegistry
    from .metrics import Metrics
    from .plugins import Plugins
    from .rules.prefilter import OpenPrefilter
    from .rules.sockfilter import SocketPrefilter


class EmitAlert(Protocol):
    """Raises an alert about the agent itself (Falco's internal alerts), offered to every output
    like a rule's alert: ``output`` is its text, ``fields`` its ``output_fields``.  Called from
    the agent's trio thread."""

    def __call__(self, output: str, fields: dict[str, Any], rule: str = ...,
                 priority: Priority = ...) -> None: ...


@dataclass
class PluginContext:
    """What a factory hook is given to build its plugin objects.

    ``config`` is the whole validated config (defaults filled in); ``section(name)`` is one
    plugin's part of it.  ``event_types`` is the set of syscalls the loaded rules need (None:
    all); sources use it to attach only what is needed.  ``open_prefilter`` is a condition an
    open must meet for some filter to care (None: every open matters); a source may keep the
    other opens where it reads them (see :mod:`syswarden.core.rules.prefilter`).
    ``socket_prefilter`` is, per socket syscall, the socket families some filter may care about
    (None: all; see :mod:`syswarden.core.rules.sockfilter`).  ``emit_alert`` raises an alert
    about the agent itself (a source's event drops; :class:`EmitAlert`), or is None when no
    output would get it (``syswarden capture``): then log it instead.
    """

    config: dict[str, Any]
    metrics: "Metrics"
    fields: "FieldRegistry"
    event_types: set[str] | None = None
    open_prefilter: "OpenPrefilter | None" = None
    socket_prefilter: "SocketPrefilter | None" = None
    replay_file: str | None = None          # -e FILE: replay instead of the live source
    agent_pid: int = 0
    emit_alert: EmitAlert | None = None
    #: the agent's SIGHUP reload (config and rules; True when the new rules run), for a
    #: service that learns of new rules (None outside a running agent)
    reload: "Callable[[], Awaitable[bool]] | None" = None
    #: (pid, proc.name) of every process the process table knows, set by the process
    #: enricher (None without one), for a source that tests names where events happen
    process_names: "Callable[[], list[tuple[int, str]]] | None" = None

    def section(self, name: str) -> dict[str, Any]:
        return self.config.get(name) or {}

    def logger(self, plugin: str) -> logging.Logger:
        return logging.getLogger(f"syswarden.{plugin}")


# ---------------------------------------------------------------------------------------------
# The pipeline's plugin objects: required methods are abstract, optional ones no-ops
# ---------------------------------------------------------------------------------------------


class Source(abc.ABC):
    """Produces batches of events.

    A source counts what it loses itself, in ``ctx.metrics`` (``drops.<where>.<why>``), and may
    raise an alert about itself with ``ctx.emit_alert``.
    """

    #: the source's name in logs and metrics
    name: str = ""

    @abc.abstractmethod
    async def run(self, send: "trio.MemorySendChannel[list[Event]]", *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Send ``list[Event]`` batches on ``send`` until the source ends (a replay file is
        exhausted) or is cancelled; call ``task_status.started()`` once attached (the agent
        logs ``ready`` when every source has).  Never close ``send``: the agent owns it."""

    def preload(self) -> None:
        """Start, in the background, what makes the source slow to start (the eBPF source
        compiles and loads its program in a helper process), so that it overlaps building the
        other stages (the process table's ``/proc`` snapshot) and starting them.  Called once
        by :meth:`~syswarden.core.agent.Agent.build` when the agent is built to run, right
        after the sources; :meth:`run` finishes the work and only then attaches, so nothing
        happens before the other stages are built.  The default does nothing."""

    def stop(self) -> bool:
        """The agent's graceful stop.  Return True when the source will send what it still
        holds and return from :meth:`run` by itself (within the agent's ``SOURCE_STOP_GRACE``);
        the default returns False: the source is cancelled."""
        return False

    def set_open_prefilter(self, prefilter: "OpenPrefilter | None") -> None:
        """A rule reload's new open prefilter (see :attr:`PluginContext.open_prefilter`),
        told before :meth:`set_event_types`.  The default ignores it."""

    def set_socket_prefilter(self, prefilter: "SocketPrefilter | None") -> None:
        """A rule reload's new socket prefilter (see :attr:`PluginContext.socket_prefilter`),
        told before :meth:`set_event_types`.  The default ignores it."""

    def set_event_types(self, types: set[str] | None) -> None:
        """A rule reload's syscalls (None: all), to change what the source attaches.  The
        default keeps what it has."""


class Enricher(abc.ABC):
    """Fills state on events: process, fds, users, containers.  Fills only what is missing
    (a replayed capture already carries its state)."""

    #: the enricher's name in logs and metrics (``errors.enrich.<name>``)
    name: str = ""

    @abc.abstractmethod
    def enrich(self, event: "Event") -> None:
        """Fill ``event``'s state: called per event, synchronously, in pipeline order."""

    async def prepare(self, batch: "list[Event]") -> None:
        """Awaited once per batch before :meth:`enrich` (a bounded wait for pending lookups).
        The default returns at once."""

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """A background service (Docker's event stream), started before the sources and
        cancelled once the pipeline has drained.  The default has none."""
        task_status.started()


class Filter(abc.ABC):
    """Judges events: the rule engine."""

    #: the filter's name in logs and metrics (``errors.filter.<name>``)
    name: str = ""

    @abc.abstractmethod
    def check(self, event: "Event") -> "list[Alert] | None":
        """The alerts ``event`` raises (an empty list or None for none)."""

    def event_types(self) -> set[str] | None:
        """The syscalls the filter needs.  The default, None, is every event."""
        return None

    def reload(self, config: dict[str, Any]) -> None:
        """Re-read the rules from ``config`` (SIGHUP); on failure raise a
        :class:`~syswarden.core.errors.RuleError` and keep the rules it had.  The default has
        nothing to re-read."""

    def open_prefilter(self) -> "OpenPrefilter | None":
        """An :class:`~syswarden.core.rules.prefilter.OpenPrefilter` every open this filter
        can match meets.  The default, None, needs every open."""
        return None

    def socket_prefilter(self) -> "SocketPrefilter | None":
        """A :class:`~syswarden.core.rules.sockfilter.SocketPrefilter`: the socket families
        this filter can match, per socket syscall.  The default, None, needs them all."""
        return None

    def describe(self) -> Iterable[tuple[str, str]]:
        """``(name, description)`` of each rule, for ``-L``.  The default has none."""
        return ()

    def describe_json(self, rule: str | None = None) -> dict[str, Any] | None:
        """Falco's JSON description of the rules, or of the one named ``rule`` (``-L`` and
        ``-l RULE`` with ``json_output``; :mod:`syswarden.core.rules.describe`).  The default,
        None: the filter has no such description."""
        return None

    def rules_files(self) -> list[str]:
        """The rules files the filter loaded, in order (``--support``).  The default has none."""
        return []


class Output(abc.ABC):
    """Delivers alerts somewhere.

    The agent gives each output its own bounded queue and applies the output's priority
    threshold and rate limit before queuing (see :mod:`syswarden.core.outputs`).
    """

    #: the output's name in logs and metrics (``outputs.<name>.sent`` ...)
    name: str = ""
    #: the shared per-output settings the agent reads (threshold, queue, rate limit, format);
    #: read yours from your section with :meth:`OutputSettings.from_config
    #: <syswarden.core.outputs.OutputSettings.from_config>`.  The default: every global value.
    settings: OutputSettings = OutputSettings()

    @abc.abstractmethod
    async def run(self, alerts: "trio.MemoryReceiveChannel[Alert]", *,
                  task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Read alerts from ``alerts`` until the channel is closed (the agent is stopping),
        deliver what it can, and return; call ``task_status.started()`` once ready."""

    def reopen(self) -> None:
        """SIGUSR1 and SIGHUP: reopen what rotates (a file after logrotate).  The default
        does nothing."""


class Service(abc.ABC):
    """A background task beside the pipeline (``syswarden_make_services``): the fleet's
    heartbeat, a watcher that reloads the rules when they change."""

    #: the service's name in logs
    name: str = ""

    @abc.abstractmethod
    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled (the agent stops once the pipeline has drained); call
        ``task_status.started()`` once running.  Raising a ``ConfigError`` before that is bad
        input (exit code 2)."""


# ---------------------------------------------------------------------------------------------
# Plugin objects that do not subclass their base
# ---------------------------------------------------------------------------------------------


class _Adapted:
    """A plugin object that does not subclass its base, as the agent holds it: the object's
    own members, looked up once here, over the base's defaults for those it lacks.  The
    object's methods are copied onto the adapter (the adapters' own ``run``, ``enrich`` and
    ``check`` only stand for the base's abstract ones), so the agent calls the object's bound
    methods with nothing in between: per event too."""

    base: type

    def __init__(self, plugin: Any) -> None:
        self.plugin = plugin
        for member in _members(self.base):
            value = getattr(plugin, member, None)
            if value is not None:
                setattr(self, member, value)

    def __repr__(self) -> str:
        return f"<{self.base.__name__} {self.plugin!r}>"


class _AdaptedSource(_Adapted, Source):
    base = Source

    def __init__(self, plugin: Any) -> None:
        super().__init__(plugin)
        own_stop = vars(self).get("stop")
        if own_stop is not None:    # a stop() of its own: it returns by itself unless it says no
            self.stop = lambda: own_stop() is not False

    async def run(self, send: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.plugin.run(send, task_status=task_status)


class _AdaptedEnricher(_Adapted, Enricher):
    base = Enricher

    def enrich(self, event: "Event") -> None:
        self.plugin.enrich(event)


class _AdaptedFilter(_Adapted, Filter):
    base = Filter

    def check(self, event: "Event") -> "list[Alert] | None":
        return self.plugin.check(event)


class _AdaptedOutput(_Adapted, Output):
    base = Output

    async def run(self, alerts: Any, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.plugin.run(alerts, task_status=task_status)


class _AdaptedService(_Adapted, Service):
    base = Service

    async def run(self, *, task_status: Any = trio.TASK_STATUS_IGNORED) -> None:
        await self.plugin.run(task_status=task_status)


#: kind (as the factory hooks name it) -> the base its objects subclass, and the adapter
BASES: dict[str, tuple[type, type]] = {
    "source": (Source, _AdaptedSource),
    "enricher": (Enricher, _AdaptedEnricher),
    "filter": (Filter, _AdaptedFilter),
    "output": (Output, _AdaptedOutput),
    "service": (Service, _AdaptedService),
}


def _members(base: type) -> list[str]:
    """The public members ``base`` declares: its methods and attributes."""
    return [n for n in vars(base) if not n.startswith("_")]


def adapt(kind: str, plugin: Any) -> Any:
    """``plugin`` as an instance of the ``kind``'s base: itself when it subclasses it, else
    wrapped once with the base's defaults for the optional members it lacks.  Raises
    :class:`PluginError` when it lacks a ``name`` or a required method."""
    base, adapter = BASES[kind]
    if isinstance(plugin, base):
        return plugin
    required = ["name", *sorted(base.__abstractmethods__)]
    missing = [m for m in required if not getattr(plugin, m, None)]
    if missing:
        raise PluginError(f"the {kind} {plugin!r} has no {', '.join(missing)}",
                          hint=f"subclass syswarden.core.protocols.{base.__name__}")
    return adapter(plugin)


class Command:
    """A subcommand, ``syswarden NAME ARGS``, that a plugin adds (``syswarden_commands``).

    Its parser (``prog="syswarden NAME"``) has the agent's ``-c FILE``, ``-o KEY=VALUE`` and
    ``-r FILE|DIR``, and the arguments :meth:`add_arguments` adds.  Once the command line is
    parsed, the config and the plugins are loaded and logging is set up; then :meth:`run`
    returns the exit code.  A :class:`~syswarden.core.errors.SyswardenError` it raises is
    printed without a traceback: exit code 3 for a ``SourceError``, else 2.
    """

    #: the word after ``syswarden``
    name: str = ""
    #: the text of ``syswarden NAME --help`` above the arguments (None: none)
    description: str | None = None

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        """Add the command's own arguments to ``parser`` (none by default)."""

    def run(self, args: argparse.Namespace, config: dict[str, Any], plugins: Plugins) -> int:
        """Do the command with the parsed ``args``; return the exit code."""
        raise NotImplementedError


class Flag:
    """A flag of the main command, ``syswarden --NAME``, that runs instead of the agent (like
    ``--list-fields``), added by a plugin (``syswarden_commands``).

    It is listed in ``syswarden --help`` after ``--list-plugins``.  Once the config and the
    plugins are loaded, :meth:`run` is given the parsed command line and the agent it
    describes, not built: build the stages you need (``agent.build(["filters"])``).
    """

    #: the flag, ``--`` and a name (``--dump-ebpf``)
    flag: str = ""
    #: its line in ``syswarden --help``
    help: str = ""

    @property
    def dest(self) -> str:
        """The attribute of the parsed command line that is true when the flag is given."""
        return self.flag.lstrip("-").replace("-", "_")

    def run(self, args: argparse.Namespace, agent: Agent) -> int:
        """Do what the flag asks; return the exit code."""
        raise NotImplementedError


def as_list(value: Any) -> list:
    """A factory hook may return one object, an iterable of them, or None."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return list(value)
    if isinstance(value, Iterable) and not isinstance(value, (str, bytes, dict)):
        return list(value)
    return [value]
