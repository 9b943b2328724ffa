"""YAML loading that remembers where every value came from.

``load(text, file)`` returns the data and a :class:`Marks` map from a key path
(``("file_output", "filename")`` or ``(3, "condition")``) to the 1-based line and column of
that value, so config and rule errors can name the file and line.  Syntax errors become
:class:`SyswardenError` subclasses carrying the location.
"""

from __future__ import annotations

from typing import Any

import yaml

from .errors import Location, SyswardenError

try:  # the C loader is much faster for Falco's 3000-line rule files
    _Base = yaml.CSafeLoader
except AttributeError:  # pragma: no cover
    _Base = yaml.SafeLoader


class _Loader(_Base):
    """The safe loader, reading a bare ``=`` as the string ``=`` as Falco's YAML reader does.

    PyYAML resolves a plain ``=`` to ``tag:yaml.org,2002:value``, which its safe loaders cannot
    construct; Falco's rules write exception comparisons as ``comps: [=, in]``.  Registered on
    this subclass only, so no other YAML reader in the process changes.
    """


_Loader.add_constructor("tag:yaml.org,2002:value", lambda ld, node: ld.construct_scalar(node))


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
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        problem = getattr(exc, "problem", None) or str(exc)
        raise error(f"invalid YAML: {problem}", loc) from None
    if node is None:
        return None, marks
    _walk(node, (), marks)
    loader = _Loader("")
    try:
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        loc = Location(file, mark.line + 1, mark.column + 1) if mark else Location(file)
        raise error(f"invalid YAML: {getattr(exc, 'problem', exc)}", loc) from None
    finally:
        loader.dispose()
    return data, marks


def load_file(path: str, error: type[SyswardenError] = SyswardenError, what: str = "file"
              ) -> tuple[Any, Marks]:
    """:func:`load` of a file; one that cannot be read raises ``error`` naming ``what``."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise error(f"cannot read {what}: {exc.strerror}", Location(path)) from None
    return load(text, path, error)


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
