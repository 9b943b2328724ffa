"""Assembling a config as Falco does: the main file, the files ``config_files`` names (merged
with Falco's strategies: append, override, add-only), Falco's ``-o key.path=value`` overrides
(list indices, YAML values) and ``${ENV}`` in string values; and where each value came from,
so that an error points at the file and line, or the ``-o``, that gave it.
"""

from __future__ import annotations

import logging
import os
import re
from typing import Any, Iterable

from . import yamlmarks
from .config_keys import Key, Section, check_value
from .errors import ConfigError, Location

log = logging.getLogger("syswarden.config")

#: ``config_files`` merge strategies, as Falco names them
CONFIG_STRATEGIES = ("append", "override", "add-only")

#: ``config_files``: validated before the files it names are read
CONFIG_FILES_KEY = Key(list, [], "more config files or directories (their files sorted), "
                       "merged into this one", items=(str, Section({
                           "path": Key(str, None, "a file or a directory"),
                           "strategy": Key(str, "append", "append: lists are extended, other "
                                           "keys replaced; override: every key replaced; "
                                           "add-only: only keys not set yet",
                                           choices=CONFIG_STRATEGIES)})))

#: ``key[]`` in an override: the entry after the last (Falco's append)
APPEND = -1


def parse_override(text: str) -> tuple[list[str | int], Any]:
    """``a.b[0].c=value`` -> (["a", "b", 0, "c"], value typed like YAML), as Falco's ``-o``:
    ``\\.``, ``\\[``, ``\\]`` and ``\\\\`` are a key's own characters
    (``-o 'x.kubernetes\\.io/role=master'``), ``key[]`` appends an entry, and a value may be a
    YAML list or mapping (``-o 'rules=[{disable: {tag: net}}]'``)."""
    if "=" not in text:
        raise ConfigError(f"override {text!r} is not key.path=value", Location("-o", item=text),
                          hint="e.g. -o json_output=true or -o 'append_output[0].match.source="
                               "syscall'")
    key, _, raw = text.partition("=")        # the first =, as Falco splits
    path = _override_path(key.strip(), text)
    try:
        value = yamlmarks.load(raw, "-o", ConfigError)[0] if raw.strip() else ""
    except ConfigError:
        value = raw
    return path, value


def _override_path(key: str, text: str) -> list[str | int]:
    path: list[str | int] = []
    name, i, closed = "", 0, True      # closed: the last part ended with ]

    def bad(why: str) -> ConfigError:
        return ConfigError(f"override {text!r}: {why}", Location("-o", item=text),
                           hint="keys are name.name[index]; \\. is a dot inside a name")
    while i < len(key):
        c = key[i]
        if c == "\\":
            if i + 1 >= len(key) or key[i + 1] not in ".[]\\":
                raise bad(f"{key[i:i + 2]!r} is not an escape (\\. \\[ \\] \\\\)")
            name += key[i + 1]
            i += 2
        elif c == ".":
            if not name and not (path and closed):
                raise bad("an empty key")
            if name:
                path.append(name)
            name, closed = "", False
            i += 1
        elif c == "[":
            end = key.find("]", i)
            inside = key[i + 1:end] if end > 0 else "x"
            if not (name or path) or (inside and not inside.isdigit()):
                raise bad(f"{key[i:end + 1] or key[i:]!r} is not a key or key[index]")
            if name:
                path.append(name)
            path.append(int(inside) if inside else APPEND)
            name, closed, i = "", True, end + 1
        elif c == "]":
            raise bad("a ] without its [")
        else:
            if closed and path:
                raise bad(f"{key[i:]!r} follows an index without a dot")
            name += c
            closed = False
            i += 1
    if name:
        path.append(name)
    elif not closed or not path:
        raise bad("an empty key")
    if not isinstance(path[0], str):
        raise bad("an index before any key")
    return path


class Origins(yamlmarks.Marks):
    """Where each value of a config merged from several files and ``-o`` came from: a path
    under an override names that ``-o``; a top-level key points into the file it came from
    (a list appended to: each entry into its own file)."""

    def __init__(self, main: yamlmarks.Marks) -> None:
        super().__init__()
        self.file = main.file
        self.main = main
        #: top-level key -> [(first list index, the file's marks)], in merge order
        self.by_key: dict[Any, list[tuple[int, yamlmarks.Marks]]] = {}
        self.overrides: list[tuple[tuple, str]] = []

    def merged(self, key: Any, marks: yamlmarks.Marks, appended_at: int | None = None) -> None:
        """``key`` now comes from ``marks``' file: all of it, or its entries from
        ``appended_at`` on."""
        if appended_at is None:
            self.by_key[key] = [(0, marks)]
        else:
            self.by_key.setdefault(key, [(0, self.main)]).append((appended_at, marks))

    def loc(self, path: tuple, item: str | None = None) -> Location:
        for prefix, text in reversed(self.overrides):
            if tuple(path[:len(prefix)]) == prefix:
                return Location("-o", item=text)
        segments = self.by_key.get(path[0]) if path else None
        if not segments:
            return self.main.loc(path, item)
        if len(path) > 1 and isinstance(path[1], int):
            start, marks = next((s, m) for s, m in reversed(segments) if s <= path[1])
            return marks.loc((path[0], path[1] - start, *path[2:]), item)
        return segments[-1][1].loc(path, item)


def read_merged(file: str, overrides: Iterable[str]
                 ) -> tuple[dict, Origins, list[str], list[str]]:
    """The config as Falco assembles it, not validated yet: the file, its ``-o
    config_files=...`` overrides, the ``config_files`` merged in (each with its strategy), then
    the other overrides.  Returns the data, where each value came from, the files merged and
    the directories read."""
    data, marks = read_mapping(file)
    origins = Origins(marks)
    parsed = [(*parse_override(text), text) for text in overrides]
    for keys, value, text in parsed:
        if keys[0] == "config_files":
            _set(data, keys, value, text, origins)
    check_value(data.get("config_files", []), CONFIG_FILES_KEY, ("config_files",),
                 "config_files", origins)
    included, folders = _merge_config_files(data, file, origins)
    for keys, value, text in parsed:
        if keys[0] != "config_files":
            _set(data, keys, value, text, origins)
    return data, origins, included, folders


def read_mapping(file: str) -> tuple[dict, yamlmarks.Marks]:
    data, marks = yamlmarks.load_file(file, ConfigError, "config file")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError("the config file must be a mapping of keys", marks.loc(()))
    return expand_env(data), marks


_ENV = re.compile(r"\$(\$?)\{([^}]*)\}")


def expand_env(value: Any) -> Any:
    """Falco's environment variables in a config file's string values: ``${NAME}`` is the
    variable's value, ``$${NAME}`` the text ``${NAME}``.  A variable that is not set is left as
    written (Falco erases it), so that a plugin needing it reports it by name."""
    if isinstance(value, str):
        if "$" not in value:
            return value
        return _ENV.sub(lambda m: "${" + m.group(2) + "}" if m.group(1)
                        else os.environ.get(m.group(2), m.group(0)), value)
    if isinstance(value, list):
        return [expand_env(v) for v in value]
    if isinstance(value, dict):
        return {k: expand_env(v) for k, v in value.items()}
    return value


def _set(data: dict, keys: list, value: Any, text: str, origins: Origins) -> None:
    """Falco's ``-o``: set the value at ``keys``, creating mappings (and appending to a list
    at its length) on the way."""
    target: Any = data
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        where = ".".join(str(k) for k in keys[:i + 1])
        if isinstance(key, int):
            if not isinstance(target, list):
                raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is not a list",
                                  Location("-o", item=text))
            if key == APPEND:
                key = keys[i] = len(target)
            if key > len(target):
                raise ConfigError(f"override {text!r}: index {key} is past the end of a list "
                                  f"of {len(target)}", Location("-o", item=text),
                                  hint=f"the next entry is [{len(target)}]")
            if key == len(target):
                target.append({} if not last else None)
        elif not isinstance(target, dict):
            raise ConfigError(f"override {text!r}: {where.rsplit('.', 1)[0]} is not a mapping",
                              Location("-o", item=text))
        if last:
            target[key] = value
        else:
            nxt = keys[i + 1]
            child = target[key] if isinstance(key, int) or key in target else None
            if isinstance(child, list) and not isinstance(nxt, int):
                raise ConfigError(f"override {text!r}: {where} is a list, not a mapping",
                                  Location("-o", item=text), hint=f"{where}[0].{nxt}=...")
            if isinstance(child, dict) and isinstance(nxt, int):
                raise ConfigError(f"override {text!r}: {where} is a mapping, not a list",
                                  Location("-o", item=text))
            if not isinstance(child, (dict, list)):
                child = [] if isinstance(nxt, int) else {}
                target[key] = child
            target = child
    origins.overrides.append((tuple(keys), text))


def _merge_config_files(data: dict, main: str, origins: Origins
                        ) -> tuple[list[str], list[str]]:
    """Merge the ``config_files`` entries into ``data`` in order (a directory: its files,
    sorted; a path that does not exist is skipped, as Falco does).  Returns the files merged
    and the directories read (both watched)."""
    files: list[str] = []
    folders: list[str] = []
    for i, entry in enumerate(data.get("config_files") or []):
        where = origins.loc(("config_files", i), f"config_files[{i}]")
        entry_path = entry if isinstance(entry, str) else entry.get("path")
        if not entry_path:
            raise ConfigError("config_files entry has no path", where)
        strategy = "append" if isinstance(entry, str) else entry.get("strategy", "append")
        entry_path = os.path.expanduser(entry_path)      # as Falco: from the working dir
        if os.path.abspath(entry_path) == os.path.abspath(main):
            raise ConfigError("config_files includes the main config file itself", where)
        if os.path.isdir(entry_path):
            folders.append(os.path.abspath(entry_path))
            names = sorted(os.path.join(entry_path, n) for n in os.listdir(entry_path))
            batch = [n for n in names if os.path.isfile(n)]
        elif os.path.isfile(entry_path):
            batch = [entry_path]
        else:
            log.debug("%s: %s does not exist; skipped", where, entry_path)
            continue
        for name in batch:
            _include(data, name, strategy, origins)
            files.append(os.path.abspath(name))
    return files, folders


def _include(data: dict, file: str, strategy: str, origins: Origins) -> None:
    more, marks = read_mapping(file)
    for key, value in more.items():
        if key == "config_files":
            raise ConfigError("config_files may not be set in an included config file",
                              marks.loc((key, "__key__"), key))
        if strategy == "add-only" and key in data:
            continue
        if strategy == "append" and isinstance(value, list) and isinstance(data.get(key), list):
            origins.merged(key, marks, appended_at=len(data[key]))
            data[key] = data[key] + value
        else:
            origins.merged(key, marks)
            data[key] = value
