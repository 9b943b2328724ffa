"""What plugins implement: the objects the factory hooks return.

The agent resolves these once at start-up and then calls their methods directly: the hot path
(event -> rule -> alert) never goes through ``pm.hook``.  Optional members are marked; the agent
checks for them once with ``getattr``.  The commands a plugin adds to the command line
(``syswarden_commands``) subclass :class:`Command` or :class:`Flag`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable, Protocol, runtime_checkable

if TYPE_CHECKING:
    import argparse

    import trio

    from .agent import Agent
    from .alert import Alert
    from .event import Event
    from .fields import FieldRegistry
    from .metrics import Metrics
    from .plugins import Plugins
    from .rules.prefilter import OpenPrefilter
    from .rules.sockfilter import SocketPrefilter


@dataclass
class PluginContext:
    """What a factory hook is given to build its plugin objects.

    ``config`` is the whole validated config (defaults filled in); ``section(name)`` is one
    plugin's part of it.  ``event_types`` is the set of syscalls the loaded rules need (None:
    all); sources use it to attach only what is needed.  ``open_prefilter`` is a condition an
    open must meet for some filter to care (None: every open matters); a source may keep the
    other opens where it reads them (see :mod:`syswarden.core.rules.prefilter`).
    ``socket_prefilter`` is, per socket syscall, the socket families some filter may care about
    (None: all; see :mod:`syswarden.core.rules.sockfilter`).
    """

    config: dict[str, Any]
    metrics: "Metrics"
    fields: "FieldRegistry"
    event_types: set[str] | None = None
    open_prefilter: "OpenPrefilter | None" = None
    socket_prefilter: "SocketPrefilter | None" = None
    replay_file: str | None = None          # -e FILE: replay instead of the live source
    agent_pid: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    def section(self, name: str) -> dict[str, Any]:
        return self.config.get(name) or {}

    def logger(self, plugin: str) -> logging.Logger:
        return logging.getLogger(f"syswarden.{plugin}")


@runtime_checkable
class Source(Protocol):
    """Produces batches of events.

    ``run`` sends ``list[Event]`` batches on ``send`` until the source ends (a replay file is
    exhausted) or is cancelled; it calls ``task_status.started()`` once attached (the agent logs
    ``ready`` when every source has).  It must not close ``send`` (the agent owns it).
    Optional: ``set_event_types(types)`` to change the attached syscalls on a rule reload,
    preceded by ``set_open_prefilter(prefilter)`` and ``set_socket_prefilter(prefilter)`` when
    it has them;
    ``stop()`` to be asked, on a graceful stop, to send what it still holds and return (else it
    is cancelled).
    A source counts what it loses itself, in ``ctx.metrics`` (``drops.<where>.<why>``), and
    may raise an alert about itself with ``ctx.extra["emit_alert"](output, fields)``.
    """

    name: str

    async def run(self, send: "trio.MemorySendChannel[list[Event]]", *,
                  task_status: Any = ...) -> None: ...


@runtime_checkable
class Enricher(Protocol):
    """Fills state on events: process, fds, users, containers.  Fills only what is missing.

    ``enrich(event)`` is called per event, synchronously, in pipeline order.  Optional:
    ``async run(*, task_status)`` a background service (Docker's event stream), started before
    the sources; ``async prepare(batch)`` awaited once per batch before ``enrich`` (a bounded wait
    for pending lookups).
    """

    name: str

    def enrich(self, event: "Event") -> None: ...


@runtime_checkable
class Filter(Protocol):
    """Judges events: the rule engine.

    ``check(event)`` returns the alerts the event raises (an empty list or None for none).
    ``event_types()`` is the set of syscalls the filter needs (None: every event).
    ``reload(config)`` re-reads its rules; on failure it raises a :class:`RuleError` and keeps
    the rules it had.  Optional: ``open_prefilter()``, an
    :class:`~syswarden.core.rules.prefilter.OpenPrefilter` every open this filter can match
    meets, or None (a filter without it needs every open); ``socket_prefilter()``, likewise a
    :class:`~syswarden.core.rules.sockfilter.SocketPrefilter` or None.  Optional: ``describe() -> Iterable[tuple[name, desc]]`` for ``-L``.
    """

    name: str

    def check(self, event: "Event") -> "list[Alert] | None": ...

    def event_types(self) -> set[str] | None: ...

    def reload(self, config: dict[str, Any]) -> None: ...


@runtime_checkable
class Output(Protocol):
    """Delivers alerts somewhere.

    The agent gives each output its own bounded queue and applies the output's priority
    threshold and rate limit before queuing (see :mod:`syswarden.core.outputs`).  ``run`` reads
    alerts from ``alerts`` until the channel is closed (the agent is stopping), delivers what it
    can, and returns.  It calls ``task_status.started()`` once ready.  Optional:
    ``reopen()`` (SIGUSR1/SIGHUP, e.g. a file output after logrotate).

    Attributes the agent reads: ``name``; ``min_priority`` (a Priority or None for the global
    ``priority``); ``queue_size`` (int or None for ``pipeline.output_queue``); optional ``rate``
    and ``max_burst`` (None: the global ``outputs.rate``/``outputs.max_burst``).  The built-in
    outputs take these from their sections' shared keys (:func:`syswarden.core.outputs.output_keys`).
    """

    name: str

    async def run(self, alerts: "trio.MemoryReceiveChannel[Alert]", *,
                  task_status: Any = ...) -> None: ...


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
