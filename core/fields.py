"""The field registry: every field a condition or an output can name.

A field is declared once, by the plugin that can provide it, as a :class:`FieldDef`: its Falco
name, its type, the form of its argument and a one-line description.  A plugin writes them as
the rows of a table (:class:`Field`: name, type, description, reader), and :func:`define`
makes the definitions.  The rule compiler binds a field reference (``proc.aname[2]``) once, at
load time, into a plain reader ``Callable[[Event], value | None]``; the hot path only calls
readers.

Readers return Python natives by type (STRING -> str, numbers -> int, BOOL -> bool,
IPADDR -> ``ipaddress`` address, IPNET -> ``ipaddress`` network, BYTEBUF -> bytes) and ``None``
when the value is unknown for that event.  A *multi-valued* binding (``Bound.many``) returns a
tuple: ``proc.aname`` without an index is every ancestor's name, ``container.mount.dest`` every
mount; comparisons on it hold when they hold for any element, as in Falco.

A field whose provider is not loaded is still known to the parser (declared with
``provider="..."`` but no plugin enabled): it then reads as unknown.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Iterable, NamedTuple

from .errors import RuleError

if TYPE_CHECKING:
    from .event import Event

Reader = Callable[["Event"], Any]


class FieldType(enum.Enum):
    STRING = "string"
    UINT64 = "uint64"
    INT64 = "int64"
    BOOL = "bool"
    IPADDR = "ipaddr"
    IPNET = "ipnet"
    PORT = "port"
    ABSTIME = "abstime"
    RELTIME = "reltime"
    BYTEBUF = "bytebuf"
    CHARBUF = "charbuf"   # a string Falco compares as bytes; treated as STRING

    @property
    def is_numeric(self) -> bool:
        return self in (FieldType.UINT64, FieldType.INT64, FieldType.PORT,
                        FieldType.ABSTIME, FieldType.RELTIME)

    @property
    def is_string(self) -> bool:
        return self in (FieldType.STRING, FieldType.CHARBUF)


class ArgKind(enum.Enum):
    """What may stand in brackets (or after a dot) behind a field name."""

    NONE = "none"                  # proc.name
    INDEX = "index"                # proc.aname[2]: an integer, required
    INDEX_OPTIONAL = "index?"      # proc.aname or proc.aname[2]
    KEY = "key"                    # container.label[com.example]: any text, required
    KEY_OPTIONAL = "key?"          # evt.arg.flags / evt.arg[0] / evt.args
    INDEX_OR_KEY = "index|key"     # container.mount.dest[0] or container.mount.dest[/proc*]


class Bound(NamedTuple):
    """A field reference bound to its argument: what the compiler calls per event."""

    read: Reader
    many: bool = False


@dataclass(frozen=True)
class FieldDef:
    """One field, declared once by the plugin that provides it.

    ``bind(arg)`` returns the :class:`Bound` reader for one use of the field; ``arg`` is None,
    an ``int`` (INDEX) or a ``str`` (KEY).  ``bind`` may raise ``ValueError`` for a bad argument;
    the compiler turns that into a located :class:`RuleError`.
    """

    name: str
    type: FieldType
    desc: str
    bind: Callable[[Any], Bound] = field(repr=False, compare=False)
    arg: ArgKind = ArgKind.NONE
    provider: str = "core"
    #: the argument as Falco prints it in --list-fields, e.g. "[index]" or "[key]"
    arg_hint: str = ""
    #: why the field cannot be computed here ("": it is): a rule naming it is refused
    unsupported: str = ""
    #: an fd field with a value only on an IP socket (or one the fd table takes for one):
    #: every comparison is false elsewhere (the socket prefilter reads it)
    ip_only: bool = False
    #: an fd field that reads the same whether or not the fd table saw the fd's open: the
    #: event's own argument, or what socket calls (never dropped for an open's sake) taught
    #: the table (the open prefilter reads it)
    without_open: bool = False


def _unknown(evt: Any) -> None:
    return None


def unknown_binder(arg: Any) -> Bound:
    return Bound(_unknown)


@dataclass(frozen=True)
class Field:
    """One field as a row of its family's table: its name, type, description and reader.

    ``read(evt)`` returns the field's value for an event, None when unknown.  A field with an
    argument (``arg``: ``proc.aname[2]``, ``proc.env[HOME]``) has ``read`` given the argument
    once, when the rules load, to return the reader (or a :class:`Bound`); it may raise
    ``ValueError`` for a bad argument.  ``many``: the reader returns a tuple, every value the
    field has (a comparison holds when it holds for one).  ``read=None`` declares a field the
    plugin knows but cannot read: it parses, and reads as unknown.  ``hint`` is the argument
    as ``--list-fields`` prints it (``[index]``).  ``unsupported`` says why a field Falco has
    cannot be computed here: it is listed, and a rule naming it is refused when the rules load
    (never a value that looks computed and is not).  ``ip_only`` and ``without_open`` are what
    an fd field says to the prefilters (see :class:`FieldDef`).
    """

    name: str
    type: FieldType
    desc: str
    read: Callable[[Any], Any] | None
    arg: ArgKind = ArgKind.NONE
    hint: str = ""
    many: bool = False
    unsupported: str = ""
    ip_only: bool = False
    without_open: bool = False

    def define(self, provider: str) -> FieldDef:
        """The registry's :class:`FieldDef` of this row, for ``provider``."""
        read, many = self.read, self.many
        if self.unsupported:
            why = f"{self.name} is not supported by syswarden: {self.unsupported}"

            def bind(arg: Any) -> Bound:
                raise ValueError(why)
            return FieldDef(self.name, self.type, f"{self.desc} (Not supported: "
                            f"{self.unsupported}.)", bind, self.arg, provider, self.hint,
                            self.unsupported)
        if read is None:
            bind: Callable[[Any], Bound] = unknown_binder
        elif self.arg is ArgKind.NONE:
            bound = Bound(read, many)

            def bind(arg: Any) -> Bound:
                return bound
        else:
            def bind(arg: Any) -> Bound:
                got = read(arg)
                return got if isinstance(got, Bound) else Bound(got, many)
        return FieldDef(self.name, self.type, self.desc, bind, self.arg, provider, self.hint,
                        ip_only=self.ip_only, without_open=self.without_open)


def define(provider: str, *tables: Iterable[Field]) -> list[FieldDef]:
    """The definitions of every row of ``tables``, for ``provider``."""
    return [row.define(provider) for table in tables for row in table]


class FieldRegistry:
    """All fields, by name.  Built once at start-up from every plugin's declarations."""

    def __init__(self, defs: Iterable[FieldDef] = ()) -> None:
        self._defs: dict[str, FieldDef] = {}
        self.add_all(defs)

    def add_all(self, defs: Iterable[FieldDef]) -> None:
        for d in defs:
            self.add(d)

    def add(self, d: FieldDef) -> None:
        prev = self._defs.get(d.name)
        if prev is not None and prev.provider != d.provider and prev.bind is not unknown_binder \
                and d.bind is not unknown_binder:
            raise RuleError(f"field {d.name} is declared by both {prev.provider} and {d.provider}")
        if prev is None or prev.bind is unknown_binder:
            self._defs[d.name] = d

    def get(self, name: str) -> FieldDef | None:
        return self._defs.get(name)

    def __contains__(self, name: str) -> bool:
        return name in self._defs

    def __iter__(self):
        return iter(sorted(self._defs.values(), key=lambda d: d.name))

    def __len__(self) -> int:
        return len(self._defs)

    def names(self) -> list[str]:
        return sorted(self._defs)
