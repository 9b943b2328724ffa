"""The opens the loaded rules can match, as a condition simple enough for the kernel.

An open-family event is usually the most frequent one a source delivers, and most opens
cannot match any rule (a read of ``/dev/null``, a failed lookup along ``$PATH``).  From the
rules' conditions, each folded for ``open``/``openat``/``openat2``, :func:`open_prefilter`
derives a *necessary* condition for a rule to match: a few terms, each a set of flag tests
(success, write, read, create, truncate) and optionally a set of path prefixes.  A source that
evaluates it before sending drops only opens that no rule can match.

The derivation over-approximates, so it is sound by construction: a check it does not
understand (a process name, a container, a negation) counts as "may be true".  A path
constraint holds only of the path as ``fd.name`` shows it: absolute and normalised.  The
kernel side sends every open whose path it cannot judge that way (relative, or containing
``//``, a ``.`` or ``..`` component, or a trailing ``/``).

Beyond Falco, a term may test the path the kernel resolved from the opened file instead
(``fd.realpath``: a term with ``real``, the same prefixes tested on it), or the file's identity
(``samefile``: a term with ``ids``, the device and inode numbers of the files the rule names);
the kernel side computes both for every successful open before it judges it.

It is ``None`` (every open must be sent) when some rule can match an open with no flag or path
constraint, or when a rule reads ``fd.*`` on an event that takes a file descriptor it did not
create (``fchmod``, ``dup``...): the fd table learns a file's name from its open, and must not
miss one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from ..event import FD_KINDS
from ..fields import FieldDef
from ..syscalls import ENTER_ARGS, EVENTS, O_CREAT, O_TMPFILE_OWN, O_TRUNC
from . import ast
from . import procnames
from .operators import says
from .resolved import RCheck, RMacro, RNode, iter_checks

log = logging.getLogger("syswarden.rules")

#: Flag tests a term may require (all of them).
OK = "ok"            # the open succeeded (fd.num >= 0)
WRITE = "write"      # opened for writing (O_WRONLY or O_RDWR)
READ = "read"        # opened for reading (O_RDONLY or O_RDWR)
CREATE = "create"    # may create: O_CREAT or O_TMPFILE in the flags
TRUNC = "trunc"      # O_TRUNC
FLAG_TESTS = (OK, WRITE, READ, CREATE, TRUNC)

#: The event types the prefilter speaks for (``creat`` always writes: never filtered).
OPEN_TYPES = ("open", "openat", "openat2")

#: Types whose fds come from a call the prefilter never drops (sockets): a rule reading
#: ``fd.*`` on them does not need every open.
SOCKET_TYPES = frozenset({
    "accept", "accept4", "bind", "connect", "getsockopt", "listen", "recvfrom", "recvmsg",
    "sendmsg", "sendto", "setsockopt", "shutdown", "socket", "socketpair"})


def reads_a_descriptor(evt_type: str | None) -> bool:
    """Whether ``fd.*`` of this event type may come from the fd table: it takes a descriptor
    it did not create (an ``fd``/``oldfd`` argument); an unknown type may.  A ``dirfd`` does
    not count: it only makes a path argument absolute (``fd.*`` of ``unlinkat`` or ``renameat``
    is not its directory, in Falco as here), and the kernel side sends every open that
    returned a directory."""
    if evt_type is None:
        return True
    if evt_type in SOCKET_TYPES or evt_type in OPEN_TYPES or evt_type == "creat":
        return False
    names = EVENTS.get(evt_type)
    if names is None:
        return True
    return any(_names_a_descriptor(n) for n in (*names, *ENTER_ARGS.get(evt_type, ())))


def _names_a_descriptor(arg: str) -> bool:
    """Whether an argument of this name is a descriptor the event's ``fd.*`` may describe."""
    return "fd" in arg and not arg.endswith("dirfd") and arg != "fdlimit"


_FILE_KINDS = frozenset(x for k in FD_KINDS if k.opened for x in (k.name, k.char))

MAX_TERMS = 16       # beyond this a conjunction stops refining (still sound, less selective)
MAX_PREFIXES = 64    # beyond this the prefilter is given up (every open sent); a part of a
                     # condition naming more paths counts as "any open"

_BOOL_TESTS = {"evt.is_open_write": WRITE, "evt.is_open_read": READ,
               "evt.is_open_create": CREATE, "evt.is_open_exec": CREATE}
_FLAG_NAMES = {"O_TRUNC": TRUNC, "O_CREAT": CREATE, "O_F_CREATED": CREATE, "O_TMPFILE": CREATE}


_FLAG_TESTS = {
    OK: lambda res, flags: res >= 0,
    WRITE: lambda res, flags: flags & 3 in (1, 2),
    READ: lambda res, flags: flags & 3 in (0, 2),
    CREATE: lambda res, flags: bool(flags & (O_CREAT | O_TMPFILE_OWN)),
    TRUNC: lambda res, flags: bool(flags & O_TRUNC),
}


def judgeable(path: str) -> bool:
    """Whether ``fd.name`` will be this path as it is: absolute, and nothing to normalise
    (no ``//``, no ``.`` or ``..`` component, no trailing ``/``; ``/.ssh`` is fine)."""
    return (path.startswith("/") and "//" not in path and "/./" not in path
            and "/../" not in path and not path.endswith(("/", "/.", "/..")))


@dataclass(frozen=True)
class Term:
    """Every test in ``needs`` holds; unless ``prefixes`` is None, ``fd.name`` (with ``real``:
    ``fd.realpath``) starts with one of ``prefixes``; unless ``substrings`` is None, it contains
    one of ``substrings``; unless ``ids`` is None, the file is one of ``ids`` (``(major, minor,
    inode)``: ``samefile``), and then there is no path test; unless ``names`` is None,
    ``proc.name`` is one of ``names``; unless ``places`` is None, the process runs where one of
    ``places`` says (host, container: :mod:`.procnames`)."""

    needs: frozenset[str] = frozenset()
    prefixes: frozenset[str] | None = None
    substrings: frozenset[str] | None = None
    real: bool = False
    ids: frozenset[tuple[int, int, int]] | None = None
    names: frozenset[str] | None = None
    places: frozenset[str] | None = None

    @property
    def has_path_test(self) -> bool:
        """Whether it tests the file (its path or identity), not only the flags."""
        return self.prefixes is not None or self.substrings is not None or self.ids is not None

    def both(self, o: Term) -> Term:
        """The conjunction (of two substring tests, the more selective one is kept; of a path
        test on ``fd.name`` and one on ``fd.realpath``, or of a path and an identity test, one
        of them: dropping a conjunct only widens)."""
        names = procnames.both(self.names, o.names)
        places = procnames.both(self.places, o.places)
        if self.ids is not None or o.ids is not None:
            ids = self.ids if o.ids is None else o.ids if self.ids is None else \
                self.ids & o.ids
            return Term(self.needs | o.needs, ids=ids, names=names, places=places)
        if self.has_path_test and o.has_path_test and self.real != o.real:
            return Term(self.needs | o.needs, self.prefixes, self.substrings, self.real,
                        names=names, places=places)
        real = self.real if self.has_path_test else o.real
        if self.prefixes is None or o.prefixes is None:
            prefixes = self.prefixes if o.prefixes is None else o.prefixes
        else:
            # empty: no judgeable path satisfies both, the others still pass
            prefixes = frozenset(p if p.startswith(q) else q
                                 for p in self.prefixes for q in o.prefixes
                                 if p.startswith(q) or q.startswith(p))
        if self.substrings is None or o.substrings is None:
            subs = self.substrings if o.substrings is None else o.substrings
        else:
            subs = max(self.substrings, o.substrings, key=_selectivity)
        return Term(self.needs | o.needs, minimal_prefixes(prefixes), subs, real,
                    names=names, places=places)

    def covers(self, o: Term) -> bool:
        """Whether every open ``o`` accepts, this term accepts too."""
        if not self.needs <= o.needs or not procnames.covers(self.names, o.names) \
                or not procnames.covers(self.places, o.places):
            return False
        if not self.has_path_test:
            return True
        if self.ids is not None:
            return o.ids is not None and o.ids <= self.ids
        if o.ids is not None or self.real != o.real:
            return False
        if self.substrings is not None and (o.substrings is None or not all(
                any(s in t for s in self.substrings) for t in o.substrings)):
            return False
        if self.prefixes is None:
            return True
        return o.prefixes is not None and all(any(p.startswith(q) for q in self.prefixes)
                                              for p in o.prefixes)

    def holds(self, res: int, flags: int, path: str, judged: bool, realpath: str | None = None,
              ident: tuple[int, int, int] | None = None, name: str | None = None,
              host: bool | None = None) -> bool:
        """Whether an open passes this term (a path not ``judged`` passes every path test; a
        ``realpath`` not known or cut (not absolute) every test on it; an unknown ``ident``
        no identity test; a process ``name`` not known every name test, a place not known
        every place test)."""
        if not all(_FLAG_TESTS[n](res, flags) for n in self.needs):
            return False
        if not procnames.allows(self.names, name) or \
                not procnames.allows_place(self.places, host):
            return False
        if self.ids is not None:
            return ident in self.ids
        if self.real:
            if realpath is None or not realpath.startswith("/"):
                return True
            path = realpath
        elif not judged:
            return True
        return ((self.prefixes is None or path.startswith(tuple(self.prefixes)))
                and (self.substrings is None or any(x in path for x in self.substrings)))


def _selectivity(subs: frozenset[str]) -> tuple[int, int]:
    """How selective a substring test is: its shortest string's length, then fewer strings."""
    return (min(map(len, subs), default=0), -len(subs))


@dataclass(frozen=True)
class OpenPrefilter:
    """An open may match a rule only if one of ``terms`` holds (no terms: no open can)."""

    terms: tuple[Term, ...]

    def prefixes(self) -> list[str]:
        return sorted({p for t in self.terms for p in (t.prefixes or ())})

    def accepts(self, res: int, flags: int, path: str, is_dir: bool = False,
                realpath: str | None = None,
                ident: tuple[int, int, int] | None = None,
                name: str | None = None, host: bool | None = None) -> bool:
        """Whether an open must be sent (the reference a source's own test implements): a
        term holds of it, with its path judged only when the path is as ``fd.name`` will show
        it, its process's name only when known (``name``: as the process table has it), and
        where it runs only when known (``host``: its cgroup the host's); and an open that
        returned a directory is always sent (a later ``openat(dirfd, ...)`` or ``fchdir`` is
        resolved through it).  ``realpath`` is the path the kernel resolved (by default the
        path as written, as for a path through no link and no mount); ``ident`` the file's
        (major, minor, inode), None when not known."""
        if res >= 0 and is_dir:
            return True
        judged = judgeable(path)
        if realpath is None and judged:
            realpath = path
        return any(t.holds(res, flags, path, judged, realpath, ident, name, host)
                   for t in self.terms)

    def describe(self) -> str:
        if not self.terms:
            return "no open can match"
        parts = []
        for t in self.terms:
            s = " and ".join(sorted(t.needs)) or "any"
            if t.prefixes is not None:
                s += " under " + ", ".join(sorted(t.prefixes))
            if t.real:
                s += " (realpath)"
            if t.substrings is not None:
                s += " containing " + ", ".join(repr(x) for x in sorted(t.substrings))
            if t.ids is not None:
                s += f" same file as one of {len(t.ids)}"
            parts.append(s + procnames.describe(t.names, t.places))
        return " | ".join(parts)


# Abstract value of a condition: None (may hold for any open) or a list of terms (an empty
# list: holds for none).
Terms = list[Term] | None


def open_prefilter(engine: Any) -> OpenPrefilter | None:
    """The prefilter of a :class:`~.engine.RuleEngine`'s active rules, or None (send all)."""
    reason = _fd_reader(engine)
    if reason:
        log.info("opens are not filtered at the source: %s", reason)
        return None
    out: list[Term] = []
    for t in OPEN_TYPES:
        memo: dict[int, Terms] = {}     # by id(): only while this type's folded nodes live
        for rule, node in engine.conditions_for(t):
            terms = _abstract(node, memo)
            if terms is None:
                log.info("opens are not filtered at the source: rule %r can match any %s",
                         rule.name, t)
                return None
            out = _union(out, terms)
            if _too_many(out):
                log.info("opens are not filtered at the source: the rules name over %d paths",
                         MAX_PREFIXES)
                return None
    subs = {x for t in out for x in (t.substrings or ())}
    if len(subs) > MAX_SUBSTRINGS:
        log.info("opens are not filtered at the source: the rules test over %d substrings",
                 MAX_SUBSTRINGS)
        return None
    return OpenPrefilter(tuple(sorted(out, key=lambda t: (
        sorted(t.needs), t.prefixes is not None, sorted(t.prefixes or ()),
        t.substrings is not None, sorted(t.substrings or ()), t.real,
        sorted(t.ids or ()), t.names is not None, sorted(t.names or ()),
        t.places is not None, sorted(t.places or ())))))


def _fd_reader(engine: Any) -> str | None:
    """Why every open must be sent: a rule reading ``fd.*`` of an fd another call created."""
    types: list[str | None] = sorted(engine.named_types())
    for t in [*types, None]:
        if not reads_a_descriptor(t):
            continue
        for rule, node in engine.conditions_for(t):
            for check in iter_checks(node):
                for f in (check.field, check.rhs):
                    for d in () if f is None else f.reads:
                        if d.name.startswith("fd.") and not _needs_no_open(check, f, d):
                            return (f"rule {rule.name!r} reads {d.name} on "
                                    f"{t or 'events of any type'}")
    return None


def _needs_no_open(check: RCheck, f: Any, d: FieldDef) -> bool:
    """Whether this check reads the declared field ``d`` (one ``f`` reads) the same whether or
    not the fd table saw the fd's open: one declared ``without_open`` (a field of IP sockets,
    the event's own fd number), or a type test for kinds other than files (false for a file,
    known or not, in either polarity)."""
    name = d.name
    if d.without_open:
        return True
    if name in ("fd.type", "fd.typechar") and check.rhs is None and f.key == name:
        kinds = says(check.op, check.const).equals
        return kinds is not None and not (kinds & _FILE_KINDS)
    return False


def _abstract(node: RNode, memo: dict[int, Terms]) -> Terms:
    if isinstance(node, RCheck):
        return _check(node)
    if isinstance(node, RMacro):
        key = id(node)
        if key not in memo:
            memo[key] = _abstract(node.child, memo)
        return memo[key]
    if isinstance(node, ast.Const):
        return None if node.value else []
    if isinstance(node, ast.Or):
        out: list[Term] = []
        for c in node.children:
            ct = _abstract(c, memo)
            if ct is None:
                return None
            out = _union(out, ct)
            if _too_many(out):
                return None
        return out
    if isinstance(node, ast.And):
        acc: list[Term] = [Term()]
        for c in node.children:
            ct = _abstract(c, memo)
            if ct is None:
                continue
            combined = [a.both(b) for a in acc for b in ct]
            if len(combined) > MAX_TERMS:
                continue                    # dropping a conjunct only widens: still sound
            acc = _union([], combined)
        return None if acc == [Term()] else acc
    return None                             # a negation: may hold for any open


def _check(c: RCheck) -> Terms:
    """One comparison as terms, from what its operator says of the value (:func:`says`); None
    when it says nothing the kernel can test."""
    names = procnames.name_set(c)
    if names is not None:
        return [Term(names=names)]
    places = procnames.place_set(c)
    if places is not None:
        return [Term(places=places)]
    if c.rhs is not None:
        return None                          # val(): another field
    name, said = c.field.name, says(c.op, c.const)
    subs = said.substrings
    if c.field.key == "evt.arg.flags" and subs and all(x in _FLAG_NAMES for x in subs):
        return [Term(frozenset({_FLAG_NAMES[x]})) for x in sorted(subs)]
    if c.field.key != name:
        return None                          # a transformer, another argument
    if name in _BOOL_TESTS and said.equals == {True}:
        return [Term(frozenset({_BOOL_TESTS[name]}))]
    if name in ("fd.num", "evt.rawres") and said.at_least is not None and said.at_least >= 0:
        return [Term(frozenset({OK}))]
    if name in ("fd.name", "fd.nameraw"):
        # fd.nameraw is fd.name for a path the kernel judges (absolute, nothing to normalise)
        return _path_terms(said.prefixes if said.prefixes is not None else said.equals, subs)
    if name == "fd.directory":
        # the directory itself, not D + "/": an fd opened as a directory has it as fd.directory
        dirs = None if said.equals is None else \
            frozenset(d.rstrip("/") or "/" if isinstance(d, str) else d for d in said.equals)
        return _path_terms(said.prefixes if said.prefixes is not None else dirs, subs)
    if name == "fd.realpath":
        # prefixes only: the kernel tests substrings on fd.name
        terms = _path_terms(said.prefixes if said.prefixes is not None else said.equals, None)
        return None if terms is None else [Term(t.needs, t.prefixes, real=True) for t in terms]
    ids = getattr(c.const, "ids", None)
    if name == "fd.devino" and c.op == "samefile" and ids is not None:
        return [Term(ids=frozenset(ids))] if ids else []
    return None


#: Longest substring a term keeps (a longer one is cut: containing it contains its head).
MAX_SUBSTRING = 64
#: Distinct substrings the prefilter tests at most (a source tests each one at every position
#: of a path); beyond, it is given up (every open sent).
MAX_SUBSTRINGS = 32


def _utf8(texts: Any) -> bool:
    """Whether every text is UTF-8 text (a ``\\xff`` in a rule is a byte that is not: the
    kernel side, which compares UTF-8 bytes, is not given it and sends every open)."""
    try:
        for t in texts:
            t.encode()
    except UnicodeEncodeError:
        return False
    return True


def _path_terms(prefixes: Any, substrings: Any) -> Terms:
    """A path that starts with one of ``prefixes`` and contains one of ``substrings`` (either
    None: no such test) as terms.  A prefix test holds only of absolute paths (fd.name of an
    open is absolute: a constant that is not can only match a name the source could not
    resolve, which the kernel side sends anyway), so one that is not is dropped, as is a test
    of text the kernel side cannot compare (not UTF-8); a substring is cut to its head."""
    if prefixes is not None and not (all(isinstance(p, str) and p.startswith("/")
                                         for p in prefixes) and _utf8(prefixes)):
        prefixes = None
    subs = None
    if substrings is not None and all(isinstance(x, str) for x in substrings):
        subs = frozenset(x[:MAX_SUBSTRING] for x in substrings)
        if not subs or "" in subs or not _utf8(subs):
            subs = None
    if prefixes is None and subs is None:
        return None
    terms = [Term(frozenset(), None if prefixes is None else minimal_prefixes(frozenset(prefixes)),
                  subs)]
    return None if _too_many(terms) else terms


def minimal_prefixes(prefixes: frozenset[str] | None) -> frozenset[str] | None:
    """Without the prefixes another one already covers.

    In sorted order a string comes after its prefixes, with only strings sharing that prefix
    between them: one pass keeping each string the last kept one does not start.
    """
    if prefixes is None:
        return None
    kept: list[str] = []
    for p in sorted(prefixes):
        if not kept or not p.startswith(kept[-1]):
            kept.append(p)
    return frozenset(kept)


def _too_many(terms: list[Term]) -> bool:
    """Whether ``terms`` name over :data:`MAX_PREFIXES` paths: the prefilter would be given up
    for them, so they are widened to "any open" (sound) before costing more."""
    return sum(len(t.prefixes or ()) + len(t.substrings or ()) + len(t.ids or ())
               for t in terms) > MAX_PREFIXES


def _union(acc: list[Term], more: list[Term]) -> list[Term]:
    """``acc`` or ``more``, without a term another one covers."""
    out: list[Term] = []
    for t in acc + more:
        if any(o.covers(t) for o in out):
            continue
        out = [o for o in out if not t.covers(o)] + [t]
    return out
