"""The process names (and where the process runs) a rule's condition allows, for a source
that knows them where events happen.

``proc.name`` is the process's ``comm`` as the process table knows it: the kernel's comm after
the process's last exec (16 bytes with its NUL, so at most 15), copied to a child at fork, or
read from ``/proc/PID/stat`` for a process the table found already running.  A source that
keeps a copy of that name in the kernel (per process, from the same exec and fork records, and
the table's own names for the processes it found running) can keep there the events of
processes no rule's name test allows.

:func:`condition_names` over-approximates a folded condition as the set of names it can hold
for (None: any name): ``proc.name = X`` and ``proc.name in (X, Y)`` are sets, a conjunction is
the intersection of its parts' sets, a disjunction their union, anything else (a negation, a
prefix, another field) any name.  The names are compared as the kernel's comm bytes
(:func:`comm_key`: UTF-8, as the source decodes a comm, cut to 15 bytes: a comm can hold no
more, so a longer name can only widen what is sent).  A name that cannot be such a key (empty,
holding a NUL, not encodable) makes the check any name.

:func:`condition_places` does the same for ``container.id`` (:data:`PLACE_FIELD`): on the host
(``= host``), in a container (``!= host``, ``= <id>``, ``in`` ids without ``host``).
"""

from __future__ import annotations

from typing import Any

from . import ast
from .operators import says
from .resolved import RCheck, RMacro, RNode

#: The field whose value the kernel side can know: the process table's ``comm``.
NAME_FIELD = "proc.name"
#: Bytes of a comm, its NUL included (the kernel's TASK_COMM_LEN).
COMM_LEN = 16

# Abstract value: the names a condition may hold for (None: any name).
Names = frozenset[str] | None


def comm_key(name: str) -> bytes | None:
    """The bytes the kernel's comm holds for a process of this name (NUL padded to
    :data:`COMM_LEN`), or None when no comm can hold it (empty, a NUL inside, not
    encodable)."""
    try:
        raw = name.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:
        return None
    if not raw or b"\0" in raw:
        return None
    return raw[:COMM_LEN - 1].ljust(COMM_LEN, b"\0")


def name_set(c: RCheck) -> Names:
    """The names one check allows (None: it does not test the name as the kernel can)."""
    if c.field.name != NAME_FIELD or c.field.key != NAME_FIELD or c.rhs is not None:
        return None
    names = says(c.op, c.const).equals      # what the operator declares (=, in...)
    if names is None or not all(isinstance(n, str) and comm_key(n) is not None for n in names):
        return None
    return frozenset(names)


def condition_names(node: RNode, memo: dict[int, Names] | None = None) -> Names:
    """The names a folded condition may hold for (None: any)."""
    return sets_of(node, name_set, {} if memo is None else memo)


def sets_of(node: RNode, check: Any, memo: dict[int, Names]) -> Names:
    """A folded condition abstracted as the set of values (names, places, socket classes) it
    may hold for, None for any: each check as ``check`` says, a conjunction the intersection of
    its parts' sets, a disjunction their union, a negation any.  ``memo`` keeps each shared
    macro's, by ``id``."""
    if isinstance(node, RCheck):
        return check(node)
    if isinstance(node, RMacro):
        key = id(node)
        if key not in memo:
            memo[key] = sets_of(node.child, check, memo)
        return memo[key]
    if isinstance(node, ast.Const):
        return None if node.value else frozenset()
    if isinstance(node, ast.Or):
        out: frozenset[str] = frozenset()
        for c in node.children:
            n = sets_of(c, check, memo)
            if n is None:
                return None
            out |= n
        return out
    if isinstance(node, ast.And):
        acc: Names = None
        for c in node.children:
            n = sets_of(c, check, memo)
            if n is not None:
                acc = n if acc is None else acc & n
        return acc
    return None                                 # a negation: may hold for anything


#: Where a process runs, as ``container.id`` tells it (Falco's ``container`` macro:
#: ``container.id != host``): on the host, or in a container.  A source that knows which
#: cgroups the agent takes for the host's can keep the events of rules for containers only.
PLACE_FIELD = "container.id"
HOST, CONTAINER = "host", "container"
PLACES = frozenset({HOST, CONTAINER})


def place_set(c: RCheck) -> Names:
    """Where one check allows the process to run (None: anywhere)."""
    if c.field.name != PLACE_FIELD or c.field.key != PLACE_FIELD or c.rhs is not None:
        return None
    said = says(c.op, c.const)              # what the operator declares (=, !=, in...)
    if said.excludes is not None and HOST in said.excludes:
        return frozenset({CONTAINER})
    if said.equals is not None and all(isinstance(v, str) for v in said.equals):
        return frozenset(HOST if v == HOST else CONTAINER for v in said.equals)
    return None


def condition_places(node: RNode, memo: dict[int, Names] | None = None) -> Names:
    """Where a folded condition may hold (None: anywhere), as :func:`condition_names`."""
    return sets_of(node, place_set, {} if memo is None else memo)


def both(a: Names, b: Names) -> Names:
    """The names two conjoined conditions may both hold for."""
    if a is None:
        return b
    return a if b is None else a & b


def covers(a: Names, b: Names) -> bool:
    """Whether every name ``b`` allows, ``a`` allows."""
    return a is None or (b is not None and b <= a)


def allows(names: Names, name: str | None) -> bool:
    """Whether a process of this name (None: not known) may pass ``names``."""
    if names is None or name is None:
        return True
    key = comm_key(name)
    return key is None or key in {comm_key(n) for n in names}


def allows_place(places: Names, host: bool | None) -> bool:
    """Whether a process on the host (``host``; None: not known) may pass ``places``."""
    return places is None or host is None or (HOST if host else CONTAINER) in places


def describe(names: Names, places: Names = None) -> str:
    out = "" if names is None else " by " + ", ".join(sorted(names))
    return out + ("" if places is None else " on " + (" or ".join(sorted(places)) or "none"))


def bit_sets(sets: Any) -> dict[frozenset[str], int]:
    """Each distinct name set (of an iterable; None left out) -> its bit in the kernel's
    per-name mask, at most 64 of them (the others are not tested: any name)."""
    out: dict[frozenset[str], int] = {}
    for s in sets:
        if s is not None and s not in out and len(out) < 64:
            out[s] = 1 << len(out)
    return out


def name_masks(bits: dict[frozenset[str], int]) -> dict[bytes, int]:
    """The kernel's name table: each comm key -> the bits of the sets holding it."""
    out: dict[bytes, int] = {}
    for names, bit in bits.items():
        for n in names:
            key = comm_key(n)
            if key is not None:
                out[key] = out.get(key, 0) | bit
    return out
