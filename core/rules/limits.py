"""How far a rules file may make the engine expand: lists, macros, conditions.

A few hundred bytes of rules can name a list ten times in a list named ten times in another
(a billion items once flattened), or a macro twice in a macro used twice in another (a
condition of a billion nodes once inlined).  Rules files are input like any other: every
expansion is counted *before* it is built, and one that would pass a limit below is refused
with a :class:`~syswarden.core.errors.RuleError` located at the list, macro or rule, naming the
limit.  Falco's own rule files stay far below each (their largest list flattens to a few
hundred items, their largest condition to
463 nodes, all of them to 2,375).
"""

from __future__ import annotations

#: Items one list may flatten to (the lists nested in it substituted, duplicates counted as
#: Falco counts them), and items one ``(...)`` in a condition may expand to.
MAX_LIST_ITEMS = 1_000_000
#: Items every list of the rules together may flatten to.
MAX_TOTAL_LIST_ITEMS = 2_000_000
#: Lists nested in lists nested in lists...: how deep.
MAX_LIST_DEPTH = 100
#: Macros used by macros used by macros...: how deep.
MAX_MACRO_DEPTH = 64
#: Nodes (checks, ``and``, ``or``, ``not``) one rule's condition may have once its macros are
#: inlined, as the generated code has them.
MAX_CONDITION_NODES = 20_000
#: Nodes every rule's condition together may have, macros inlined.
MAX_TOTAL_NODES = 100_000
#: Nodes of the generated code: a rule is in the function of each event type it names, its
#: condition folded for that type (Falco's rules: about 5,500).
MAX_GENERATED_NODES = 200_000


def over(what: str, size: int, limit: int, unit: str) -> str:
    """The message of a refused expansion: ``list 'x' flattens to 1,000,000,000 items, over
    the limit of 1,000,000``."""
    return f"{what} {size:,} {unit}, over the limit of {limit:,} (a bound on rules input)"
