"""Flatten Falco lists: the names of other lists among a list's items replaced by their items.

Falco substitutes a list into every list that names it, duplicates and all, so lists that name
lists that name lists grow as a product: nine lists of ten names each flatten to a billion
items.  Each list's flattened size is counted first (an integer per list, from the sizes of the
lists it names) and a list over :data:`~.limits.MAX_LIST_ITEMS`, or one that would bring every
list together over :data:`~.limits.MAX_TOTAL_LIST_ITEMS`, is refused with a located error and
never built.  The lists that pass are built without duplicates (``in``, ``intersects`` and
``pmatch`` mean the same without them), each once, so the work is linear in what is kept.

A list naming itself, directly or through others, keeps that name as a plain item (what a
condition would then compare with).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import Location, RuleError
from .limits import MAX_LIST_DEPTH, MAX_LIST_ITEMS, MAX_TOTAL_LIST_ITEMS, over


class _Flattener:
    def __init__(self, lists: Mapping[str, Sequence[str]],
                 locations: Mapping[str, Location | None]) -> None:
        self.lists = lists
        self.locations = locations
        self.out: dict[str, list[str]] = {}
        self.path: list[str] = []
        self.on_path: set[str] = set()
        self.sizes: dict[str, int] = {}     # Falco's flattened size, duplicates counted
        self.total = 0
        self.errors: list[RuleError] = []

    def refuse(self, name: str, message: str) -> list[str]:
        loc = self.locations.get(name) or Location(item=f"list '{name}'")
        self.errors.append(RuleError(message, loc, hint="split the list, or name fewer lists "
                                                        "in it"))
        self.out[name] = []          # its users then see it empty: one error, not a cascade
        return []

    def flatten(self, name: str) -> list[str]:
        got = self.out.get(name)
        if got is not None:
            return got
        if len(self.path) >= MAX_LIST_DEPTH:
            chain = " -> ".join(self.path[-3:] + [name])
            return self.refuse(name, f"lists nested more than {MAX_LIST_DEPTH} deep "
                                     f"(... {chain})")
        self.path.append(name)
        self.on_path.add(name)
        try:
            parts: list[Sequence[str] | str] = []
            size = 0
            for item in self.lists[name]:
                if item in self.lists and item not in self.on_path:
                    sub = self.flatten(item)
                    parts.append(sub)
                    size += self.sizes.get(item, len(sub))
                else:
                    parts.append(item)
                    size += 1
        finally:
            self.path.pop()
            self.on_path.discard(name)
        if size > MAX_LIST_ITEMS:
            return self.refuse(name, over(f"list '{name}' flattens (the lists it names "
                                          "substituted) to", size, MAX_LIST_ITEMS, "items"))
        if self.total + size > MAX_TOTAL_LIST_ITEMS:
            return self.refuse(name, over(f"the lists up to '{name}' flatten to",
                                          self.total + size, MAX_TOTAL_LIST_ITEMS,
                                          "items in all"))
        items: dict[str, None] = {}
        for part in parts:
            if isinstance(part, str):
                items[part] = None
            else:
                items.update(dict.fromkeys(part))
        self.sizes[name] = size
        self.total += len(items)
        self.out[name] = got = list(items)
        return got


def flatten_lists(lists: Mapping[str, Sequence[str]],
                  locations: Mapping[str, Location | None] | None = None
                  ) -> tuple[dict[str, list[str]], list[RuleError]]:
    """Every list flattened (see the module docstring), and the errors of those refused."""
    f = _Flattener(lists, locations or {})
    for name in lists:
        f.flatten(name)
    return f.out, f.errors
