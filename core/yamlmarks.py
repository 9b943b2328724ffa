"""YAML loading that remembers where every value came from, and refuses hostile input.

``load(text, file)`` returns the data and a :class:`Marks` map from a key path
(``("file_output", "filename")`` or ``(3, "condition")``) to the 1-based line and column of
that value, so config and rule errors can name the file and line.  Syntax errors become
:class:`SyswardenError` subclasses carrying the location.

Config, rules, rule tests and webhook templates are an attacker's input as much as a typo's,
so the loader refuses, each with a located error: a file that is not UTF-8 or is larger than
:data:`MAX_FILE_BYTES`; nesting deeper than :data:`MAX_DEPTH`; aliases that would expand to more
than :data:`MAX_ALIAS_NODES` nodes (a "billion laughs" of a few hundred bytes) or that refer to
the node containing them; a mapping with the same key twice (both lines named); an integer too
long for Python to read (more than 4300 digits); a scalar its tag cannot make (``2001-13-45``).
"""

from __future__ import annotations

from typing import Any

import yaml
from yaml.composer import Composer, ComposerError
from yaml.constructor import ConstructorError

from .errors import Location, SyswardenError

try:  # the C parser is much faster for Falco's 3000-line rule files
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader

#: Largest file read (Falco's biggest rules file is about 200 KB).
MAX_FILE_BYTES = 16 << 20
#: Deepest nesting of sequences and mappings (Falco's files nest 5 levels).
MAX_DEPTH = 64
#: Nodes that aliases may add to a document when expanded.
MAX_ALIAS_NODES = 100_000


class _Loader(Composer, _Base):
    """The safe loader: libyaml's parser, PyYAML's composer with bounds, the safe constructor.

    A bare ``=`` reads as the string ``=`` as Falco's YAML reader does: PyYAML resolves it to
    ``tag:yaml.org,2002:value``, which its safe loaders cannot construct; Falco's rules write
    exception comparisons as ``comps: [=, in]``.  Registered on this subclass only, so no other
    YAML reader in the process changes.

    The composer counts the nodes it makes (``_nodes``) and, per anchor, how many nodes the
    anchored value holds once its own aliases are expanded (``_sizes``); an alias adds its
    anchor's size to ``_alias_nodes``.  So the bound is checked on the composed graph, in time
    linear in the text, before anything walks the expanded tree.
    """

    def __init__(self, stream: str) -> None:
        _Base.__init__(self, stream)
        Composer.__init__(self)
        self._depth = 0
        self._nodes = 0
        self._alias_nodes = 0
        self._sizes: dict[str, int] = {}

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node:
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent):
            return self._alias(event, parent, index)
        if self._depth >= MAX_DEPTH:
            raise ComposerError(None, None, f"nesting deeper than {MAX_DEPTH} levels",
                                event.start_mark)
        self._depth += 1
        before = self._nodes
        self._nodes += 1
        node = super().compose_node(parent, index)
        self._depth -= 1
        if event.anchor is not None:
            self._sizes[event.anchor] = self._nodes - before
        if isinstance(node, yaml.MappingNode):
            _check_duplicates(node)
        return node

    def _alias(self, event: yaml.AliasEvent, parent: yaml.Node | None, index: Any) -> yaml.Node:
        node = super().compose_node(parent, index)     # an undefined alias raises here
        size = self._sizes.get(event.anchor)
        if size is None:
            raise ComposerError(None, None, f"alias *{event.anchor} refers to a node that "
                                "contains it (recursive structures are not allowed)",
                                event.start_mark)
        self._alias_nodes += size
        self._nodes += size
        if self._alias_nodes > MAX_ALIAS_NODES:
            raise ComposerError(None, None, f"aliases expand to more than {MAX_ALIAS_NODES} "
                                f"nodes (at *{event.anchor}, {size} nodes): refused as an alias "
                                "bomb", event.start_mark)
        return node

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        try:
            return super().construct_object(node, deep)
        except (ValueError, ArithmeticError, LookupError, TypeError, AttributeError) as exc:
            # int("9" * 5000), date(2001, 13, 45), !!int "", !!bool maybe, !!timestamp now
            raise ConstructorError(None, None, f"cannot read {str(node.value)[:40]!r} as "
                                   f"{node.tag.rsplit(':', 1)[-1]}: {_short(exc)}",
                                   node.start_mark) from None


_Loader.add_constructor("tag:yaml.org,2002:value", lambda ld, node: ld.construct_scalar(node))


def _short(exc: Exception) -> str:
    text = str(exc)
    if "integer string conversion" in text:
        return "more than 4300 digits"
    return text.split(";")[0]


def _check_duplicates(node: yaml.MappingNode) -> None:
    seen: dict[tuple[str, str], yaml.Node] = {}
    for key, _value in node.value:
        if not isinstance(key, yaml.ScalarNode):
            continue
        first = seen.setdefault((key.tag, key.value), key)
        if first is not key:
            raise ComposerError(f"duplicate key {key.value!r}: first on line "
                                f"{first.start_mark.line + 1}", first.start_mark,
                                f"duplicate key {key.value!r} (first on line "
                                f"{first.start_mark.line + 1})", key.start_mark)


class Marks(dict):
    """``path tuple -> (line, col)``, 1-based.  ``loc(path)`` turns a path into a Location."""

    file: str | None = None

    def loc(self, path: tuple, item: str | None = None) -> Location:
        while path and path not in self:
            path = path[:-1]
        line, col = self.get(path, (None, None))
        return Location(self.file, line, col, item)


def load(text: str, file: str | None, error: type[SyswardenError] = SyswardenError
         ) -> tuple[Any, Marks]:
    marks = Marks()
    marks.file = file
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None, marks
        _walk(node, (), marks)
        return loader.construct_document(node), marks
    except yaml.YAMLError as exc:
        raise error(f"invalid YAML: {_problem(exc)}", _location(exc, text, file)) from None
    finally:
        loader.dispose()


def _problem(exc: yaml.YAMLError) -> str:
    return getattr(exc, "problem", None) or str(exc).split("\n")[0]


def _location(exc: yaml.YAMLError, text: str, file: str | None) -> Location:
    mark = getattr(exc, "problem_mark", None)
    if mark is not None:
        return Location(file, mark.line + 1, mark.column + 1)
    position = getattr(exc, "position", None)          # a ReaderError: a character index
    if isinstance(position, int) and 0 <= position <= len(text):
        line = text.count("\n", 0, position) + 1
        return Location(file, line, position - (text.rfind("\n", 0, position) + 1) + 1)
    return Location(file)


def read_text(path: str, error: type[SyswardenError] = SyswardenError, what: str = "file"
              ) -> str:
    """A file's text; one that cannot be read, is too large or is not UTF-8 raises ``error``."""
    try:
        with open(path, "rb") as fh:
            raw = fh.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", Location(path)) from None
    if len(raw) > MAX_FILE_BYTES:
        raise error(f"{what} is larger than {MAX_FILE_BYTES >> 20} MiB", Location(path))
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise error(f"{what} is not UTF-8 text: byte 0x{raw[exc.start]:02x} ({exc.reason})",
                    Location(path, line, col)) from None


def load_file(path: str, error: type[SyswardenError] = SyswardenError, what: str = "file"
              ) -> tuple[Any, Marks]:
    """:func:`load` of a file read by :func:`read_text`."""
    return load(read_text(path, error, what), path, error)


def _walk(node: yaml.Node, path: tuple, marks: Marks) -> None:
    marks[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            k = key.value if isinstance(key, yaml.ScalarNode) else str(key)
            marks[path + (k, "__key__")] = (key.start_mark.line + 1, key.start_mark.column + 1)
            _walk(value, path + (k,), marks)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _walk(item, path + (i,), marks)
