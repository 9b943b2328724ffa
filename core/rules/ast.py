"""The syntax tree of a Falco condition.

Nodes are frozen dataclasses carrying ``pos``, the 0-based offset in the condition text, so
that a compile error (an unknown field, a type error, an unknown macro) points at the place.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class FieldRef:
    """``proc.aname[2]``, ``evt.arg.flags``, ``tolower(proc.name)``, ``join("-", (a, b))``.

    ``name`` is the text as written before any bracket (``evt.arg.flags``); ``arg`` the text in
    brackets (None without); ``transformers`` outermost first (``("tolower", "basename")``);
    ``call`` a transformer of several arguments (``join``, ``concat``, ``getopt``) that stands
    where the field would (``name`` is then its name, ``arg`` what follows it in brackets:
    ``getopt(proc.args, "t:")[t]``).
    """

    name: str
    arg: str | None
    pos: int
    transformers: tuple[str, ...] = ()
    call: Call | None = None

    def text(self) -> str:
        base = self.call.text() if self.call is not None else self.name
        inner = base + (f"[{self.arg}]" if self.arg is not None else "")
        for t in reversed(self.transformers):
            inner = f"{t}({inner})"
        return inner

    def plain_fields(self) -> list[FieldRef]:
        """The fields it reads, untransformed (``proc.name`` of ``toupper(proc.name)``)."""
        if self.call is None:
            return [FieldRef(self.name, self.arg, self.pos)]
        out: list[FieldRef] = []
        for a in self.call.args:
            for x in a.items if isinstance(a, ArgList) else (a,):
                if isinstance(x, FieldRef):
                    out += x.plain_fields()
        return out


@dataclass(frozen=True)
class ArgList:
    """``(fd.name, "aaa", toupper(proc.name))``: a list argument of a transformer."""

    items: tuple[FieldRef | Literal, ...]
    pos: int


@dataclass(frozen=True)
class Call:
    """``join("-", (fd.name, fd.directory))``: a transformer of several arguments."""

    name: str
    args: tuple[FieldRef | Literal | ArgList, ...]
    pos: int

    def text(self) -> str:
        """Falco's spelling of it as a key of ``output_fields``: ``join(-,(fd.name,a))``."""
        def arg(a: FieldRef | Literal | ArgList) -> str:
            if isinstance(a, ArgList):
                return "(" + ",".join(arg(x) for x in a.items) + ")"
            return a.text() if isinstance(a, FieldRef) else a.value
        return f"{self.name}(" + ",".join(arg(a) for a in self.args) + ")"


@dataclass(frozen=True)
class Literal:
    """A value: ``/etc``, ``"a b"``.  ``quoted`` tells a list name from a quoted word."""

    value: str
    pos: int
    quoted: bool = False


@dataclass(frozen=True)
class ListLit:
    """``(a, b, "c d")``, or a bare list name after a list operator (``in shell_binaries``)."""

    items: tuple[Literal, ...]
    pos: int


@dataclass(frozen=True)
class FieldValue:
    """``val(proc.pname)`` on the right side: compare with another field of the same event."""

    field: FieldRef
    pos: int


Value = Union[Literal, ListLit, FieldValue]


@dataclass(frozen=True)
class Check:
    """``field op value``; ``op`` as written (``==`` too); ``value`` is None for a unary
    operator (``exists``); ``mod`` a list modifier (``startswith anyof (a, b)``)."""

    field: FieldRef
    op: str
    value: Value | None
    pos: int
    mod: str | None = None


@dataclass(frozen=True)
class MacroRef:
    name: str
    pos: int


@dataclass(frozen=True)
class Not:
    child: Node
    pos: int


@dataclass(frozen=True)
class And:
    children: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Or:
    children: tuple[Node, ...]
    pos: int


@dataclass(frozen=True)
class Const:
    """True or False: what a folded sub-expression became (never written by users)."""

    value: bool
    pos: int = 0


Node = Union[Check, MacroRef, Not, And, Or, Const]

