"""The rule engine: loaded rules, indexed by event type, checked per event.

``RuleEngine.load(files, fields)`` reads the rules files (:mod:`.loader`), compiles every
rule's condition (exceptions included) and output once (:mod:`.compiler`, :mod:`.output`), and
builds the event-type index: for each event type some rule names, one generated function that
evaluates, in rule order, only the rules that can match that type (with every ``evt.type``
check already decided); events of any other type go to the function of the rules that match
every type.  ``check(evt)`` is then one dict lookup and one call.  A type with many rules
narrows them first (:mod:`.narrow`): indexes on the values the rules need and tests of the
parts they share drop, once per event, the rules that cannot match (``narrow=False``: every
rule tried in turn, as a reference).

``rule_matching``: ``first`` (Falco's default) raises at most one alert per event, for the
first matching rule in load order; ``all`` raises one per matching rule.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..alert import Alert, Priority
from ..errors import Location, RuleError
from ..fields import FieldRegistry
from .ast import Const
from .codegen import Namespace, build_matcher, compile_node
from .compiler import Compiler, compile_condition
from .loader import BUILTIN_PLUGINS, Loader, LoadResult, exception_field, rule_condition
from .operators import OPERATORS, split_modified
from .output import OutputOptions, compile_rule_output
from .selection import apply_selection
from .limits import MAX_GENERATED_NODES, over
from .resolved import Origin, RNode, inlined_size
from .typesets import ALL, TypeSet, fold, mentioned_types, type_sets
from .loader import SOURCES

__all__ = ["RuleEngine", "CompiledRule", "compile_condition", "load_rules"]

log = logging.getLogger("syswarden.rules")


@dataclass(eq=False)
class CompiledRule:
    name: str
    desc: str
    priority: Priority
    tags: list[str]
    enabled: bool
    source: str
    condition: str
    output: str
    location: Location | None = None
    node: RNode = None
    types: TypeSet = ALL
    render: Callable[[Any], tuple[str, dict]] | None = field(default=None, repr=False)
    predicate: Callable[[Any], bool] | None = field(default=None, repr=False)


def load_rules(files: list[str], fields: FieldRegistry, output: OutputOptions | None = None,
               plugins: Iterable[str] = BUILTIN_PLUGINS
               ) -> tuple[LoadResult, list[CompiledRule], list[RuleError]]:
    """Read and compile; returns (load result, compiled rules, warnings).  ``output``: what
    the config's ``append_output`` adds to the rules' outputs; ``plugins``: the Falco plugins
    whose requirement is met (:func:`~.loader.provided_plugins`).

    Errors (of reading and of compiling) are in ``result.errors``, in file order.
    """
    for entry in output.append if output is not None else ():
        entry.check(fields)
    result = Loader(plugins).load_files(files)
    lists, list_errors = result.expanded_lists()
    for exc in list_errors:
        _record(result, exc)
    comp = Compiler(fields, lists, result.macros)
    warnings: list[RuleError] = []
    rules: list[CompiledRule] = []
    for rd in result.rules:
        if rd.source not in SOURCES:    # an error the loader reported: not compiled
            continue
        text = rule_condition(rd, lists)
        origin = Origin(text, rd.cond_location)
        try:
            _check_exceptions(rd, comp)
            try:
                node = comp.resolve_text(text, origin)
            except RecursionError:
                raise RuleError("condition too deeply nested", rd.cond_location) from None
            comp.check_size(node, f"rule '{rd.name}'", rd.cond_location)
            said: list[str] = []
            render = compile_rule_output(rd.output, rd.name, rd.source, rd.tags, fields,
                                         rd.output_location, comp, output, said)
            warnings.extend(RuleError(text, rd.output_location) for text in said)
        except RuleError as exc:
            if rd.skip_if_unknown_filter and "unknown field" in exc.message:
                warnings.append(RuleError(f"rule skipped (skip-if-unknown-filter): "
                                          f"{exc.message}", exc.location))
                continue
            _record(result, exc)
            continue
        types, _ = type_sets(node)
        if types.is_all and rd.warn_evttypes:
            warnings.append(RuleError(
                "rule matches too many evt.type values (no evt.type restriction): every "
                "event is checked against it, a significant performance penalty",
                rd.location))
        rules.append(CompiledRule(rd.name, rd.desc, rd.priority, rd.tags, rd.enabled,
                                  rd.source, text, rd.output, rd.location, node, types,
                                  render))
    warnings.extend(comp.warnings)
    used = {m for m, d in result.macros.items() if d.used}
    for name, mdef in result.macros.items():
        if name not in used:
            warnings.append(RuleError("macro not referenced by any rule; unused",
                                      mdef.origin.location))
    referenced = _lists_referenced(result, comp)
    for name, ldef in result.lists.items():
        if name not in referenced:
            warnings.append(RuleError("list not referenced by any rule, macro or list; "
                                      "unused", ldef.location))
    result.warnings.extend(warnings)
    return result, rules, warnings


def _check_exceptions(rd: Any, comp: Compiler) -> None:
    """Each exception's fields and comps, reported at the exception (not in the condition)."""
    for exc in rd.exceptions:
        fields = [exc.fields] if isinstance(exc.fields, str) else list(exc.fields)
        comps = exc.comps if isinstance(exc.comps, list) else [exc.comps] * len(fields)
        for f, c in zip(fields, comps, strict=False):
            ref = exception_field(str(f))
            try:
                if ref is None:
                    raise RuleError("not a field")
                comp.lookup(ref, Origin(str(f)))
            except RuleError:
                raise RuleError(f"exception '{exc.name}': unknown field '{f}'",
                                exc.location) from None
            operator = OPERATORS.get(c)
            if c is not None and split_modified(c) is None and \
                    (operator is None or not operator.comparator):
                raise RuleError(f"exception '{exc.name}': '{c}' is not a comparison operator",
                                exc.location)


def _lists_referenced(result: LoadResult, comp: Compiler) -> set[str]:
    refs = set(comp.used_lists)
    for ldef in result.lists.values():
        refs.update(i for i in ldef.items if i in result.lists)
    # lists named in macros that no rule uses still count as referenced
    for mdef in result.macros.values():
        text = mdef.origin.text
        refs.update(n for n in result.lists if n in text)
    return refs


def _record(result: LoadResult, exc: RuleError) -> None:
    """Keep a compile error once (a broken macro fails every rule that uses it)."""
    key = (exc.message, str(exc.location))
    if any((e.message, str(e.location)) == key for e in result.errors):
        return
    result.errors.append(exc)
    file = exc.location.file if exc.location else None
    if file in result.by_file:
        result.by_file[file][0].append(exc)


class _Index:
    """Everything :meth:`RuleEngine.check` reads, replaced as one object on a reload.

    ``dispatch`` maps an event type to its generated function; ``other`` serves every type no
    rule names; ``active`` is the rule list the functions' indexes refer to.
    """

    __slots__ = ("dispatch", "other", "active", "first", "use_index", "ns", "sources")

    def __init__(self, active: list[CompiledRule], first: bool, use_index: bool,
                 narrow: bool = True) -> None:
        self.active = active
        self.first = first
        self.use_index = use_index
        self.ns = Namespace()
        self.dispatch: dict[str, Callable] = {}
        self.sources: dict[str, str] = {}
        mode = "first" if first else "all"
        if not use_index:
            self.other, self.sources["*"] = build_matcher(
                [(i, r.node) for i, r in enumerate(active)], self.ns, mode, "_match_all",
                narrow)
            return
        named: set[str] = set()
        seen: set[int] = set()
        for r in active:
            mentioned_types(r.node, named, seen)
        budget = _CodeBudget(active)
        for t in sorted(named):
            members = budget.spend(_members(active, t))
            fn, self.sources[t] = build_matcher(members, self.ns, mode, "_match_" + _ident(t),
                                                narrow)
            self.dispatch[t] = fn
        self.other, self.sources["*"] = build_matcher(budget.spend(_members(active, None)),
                                                      self.ns, mode, "_match_other", narrow)


class _CodeBudget:
    """Counts the nodes of the generated functions (each rule once per event type it names,
    folded for it) and refuses, at the rule that would pass it, over
    :data:`~.limits.MAX_GENERATED_NODES`."""

    def __init__(self, active: list[CompiledRule]) -> None:
        self.active = active
        self.nodes = 0

    def spend(self, members: list[tuple[int, RNode]]) -> list[tuple[int, RNode]]:
        memo: dict[int, int] = {}
        for i, node in members:
            self.nodes += inlined_size(node, memo)
            if self.nodes > MAX_GENERATED_NODES:
                rule = self.active[i]
                raise RuleError(over("with rule '" + rule.name + "', the code generated for "
                                     "the event types the rules name has", self.nodes,
                                     MAX_GENERATED_NODES, "nodes"), rule.location,
                                hint="name fewer event types in big rules, or use fewer, "
                                     "smaller macros")
        return members


def _members(active: list[CompiledRule], evt_type: str | None) -> list[tuple[int, RNode]]:
    """The rules that can match ``evt_type`` (None: a type no rule names), folded for it."""
    memo: dict = {}
    out = []
    for i, r in enumerate(active):
        if (evt_type in r.types) if evt_type is not None else r.types.complement:
            node = fold(r.node, evt_type, memo)
            if not (isinstance(node, Const) and node.value is False):
                out.append((i, node))
    return out


class RuleEngine:
    """Compiled rules and the event-type index.  Build with :meth:`load`.

    ``check`` stays the same bound method for the engine's life: :meth:`adopt` swaps in the
    rules of a newly loaded engine as one assignment, so a caller that holds ``engine.check``
    (the agent does) judges the next event with the new rules.  ``narrow``: narrow an
    event type's rules before trying them (:mod:`.narrow`); off, each rule is tried in turn
    (the same alerts, the reference the tests compare it with).
    """

    def __init__(self, rules: list[CompiledRule], *, min_priority: Priority = Priority.DEBUG,
                 rule_matching: str = "first", use_index: bool = True,
                 warnings: list[RuleError] | None = None, narrow: bool = True) -> None:
        if rule_matching not in ("first", "all"):
            raise RuleError(f"rule_matching must be 'first' or 'all', not {rule_matching!r}")
        self._all_rules = rules
        self.warnings: list[RuleError] = list(warnings or [])
        self.min_priority = min_priority
        self.errors = 0          # events whose evaluation raised (counted, then per rule)
        #: called once per such event (the filter plugin counts it in the metrics)
        self.on_error: Callable[[], None] | None = None
        active = [r for r in rules if r.enabled and r.priority <= min_priority]
        self._ix = _Index(active, rule_matching == "first", use_index, narrow)

    @classmethod
    def load(cls, files: list[str], fields: FieldRegistry, *,
             min_priority: Priority = Priority.DEBUG, rule_matching: str = "first",
             use_index: bool = True, selection: Iterable[dict] = (),
             output: OutputOptions | None = None,
             plugins: Iterable[str] = BUILTIN_PLUGINS) -> RuleEngine:
        """Load and compile rules files.  Raises the first :class:`RuleError`.  ``selection``:
        the config's ``rules:`` entries (:mod:`.selection`); ``output``: its
        ``append_output`` and ``buffer_format_base64``; ``plugins``: as for
        :func:`load_rules`."""
        result, rules, warnings = load_rules(files, fields, output, plugins)
        if result.errors:
            raise result.errors[0]
        apply_selection(rules, selection)
        return cls(rules, min_priority=min_priority, rule_matching=rule_matching,
                   use_index=use_index, warnings=result.warnings)

    def adopt(self, other: RuleEngine) -> None:
        """Take over ``other``'s rules (a reload); ``check`` switches in one assignment."""
        self._all_rules = other._all_rules
        self.warnings = other.warnings
        self.min_priority = other.min_priority
        self._ix = other._ix

    @property
    def rule_matching(self) -> str:
        return "first" if self._ix.first else "all"

    @property
    def use_index(self) -> bool:
        return self._ix.use_index

    @property
    def sources(self) -> dict[str, str]:
        """The generated Python source of each event type's function (for inspection)."""
        return self._ix.sources

    # -- the hot path -------------------------------------------------------------------------

    def check(self, evt: Any) -> list[Alert]:
        """The alerts ``evt`` raises (an empty list for none)."""
        ix = self._ix
        fn = ix.dispatch.get(evt.type, ix.other)
        try:
            hit = fn(evt)
        except Exception:  # a reader broke its contract: count, then judge rule by rule
            self.errors += 1
            if self.on_error is not None:
                self.on_error()
            log.debug("rule evaluation failed for %r", evt, exc_info=True)
            hit = self._slow(evt, ix)
        if ix.first:
            if hit < 0:
                return []
            return [self._alert(ix.active[hit], evt)]
        return [self._alert(ix.active[i], evt) for i in hit]

    def _slow(self, evt: Any, ix: _Index) -> Any:
        """Per-rule evaluation, a failing rule counted as not matching."""
        hits = []
        for i, r in enumerate(ix.active):
            if ix.use_index and evt.type not in r.types:
                continue
            if r.predicate is None:
                r.predicate = compile_node(r.node, Namespace())
            try:
                ok = r.predicate(evt)
            except Exception:
                ok = False
            if ok:
                if ix.first:
                    return i
                hits.append(i)
        return -1 if ix.first else hits

    def _alert(self, rule: CompiledRule, evt: Any) -> Alert:
        try:
            text, ofields = rule.render(evt)
        except Exception:  # pragma: no cover - readers must not raise
            self.errors += 1
            text, ofields = rule.output, {}
        return Alert(rule=rule.name, priority=rule.priority, output=text, time_ns=evt.ts,
                     output_fields=ofields, tags=list(rule.tags), source=rule.source)

    # -- introspection ------------------------------------------------------------------------

    def event_types(self) -> set[str] | None:
        """The event types the enabled rules need; None when some rule matches every type."""
        out: set[str] = set()
        for r in self._ix.active:
            if r.types.complement:
                return None
            out |= r.types.names
        return out

    def named_types(self) -> set[str]:
        """The event types some active rule's ``evt.type`` check names (each has its own
        folded conditions; every other type shares those of :meth:`conditions_for` None)."""
        named: set[str] = set()
        seen: set[int] = set()
        for r in self._ix.active:
            mentioned_types(r.node, named, seen)
        return named

    def conditions_for(self, evt_type: str | None) -> list[tuple[CompiledRule, RNode]]:
        """The active rules that can match ``evt_type`` (None: a type no rule names), each
        with its condition folded for that type (every ``evt.type`` check decided)."""
        return [(self._ix.active[i], node) for i, node in _members(self._ix.active, evt_type)]

    def rules(self) -> list[CompiledRule]:
        """Every compiled rule (enabled or not, any priority), in load order."""
        return list(self._all_rules)

    def active_rules(self) -> list[CompiledRule]:
        """The rules events are checked against (enabled, at or above the priority)."""
        return list(self._ix.active)


def _ident(name: str) -> str:
    return "".join(c if c.isalnum() else "_" for c in name)
