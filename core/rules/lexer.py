"""The tokens of Falco's condition language, scanned on demand by the parser.

Falco's language is context sensitive: ``open`` after ``evt.type =`` is a value, at the start
of an expression it is a macro name, and a bare value may hold characters (``/``, ``*``, ``:``)
that are operators nowhere else.  The parser therefore asks for the token it expects
(:meth:`Lexer.expr_token` where an expression may start, :meth:`Lexer.operator`,
:meth:`Lexer.value`) and the lexer scans from the current position.

Lexical rules, as in falcosecurity/libs ``filter/parser.cpp``:

- identifier: ``[a-zA-Z][a-zA-Z0-9_]*``; field name: identifiers joined by dots (at least one);
- field argument: ``[`` then a quoted string or ``[^ \\t\\n\\r\\[\\]"']+`` then ``]``;
- bare value: ``[^ \\t\\n\\r(),="']+``; quoted value: ``"..."`` or ``'...'`` with the escapes
  ``\\"`` ``\\'`` ``\\\\`` ``\\n`` ``\\t`` ``\\r`` ``\\b`` ``\\f`` ``\\xHH`` (exactly two hex
  digits, a byte: the string is UTF-8 with the bytes that are not kept as surrogates, as the
  sources decode paths; any other backslash stays);
- keywords ``and`` ``or`` ``not`` end at a non-identifier character;
- operators: the spellings of :data:`~.operators.OPERATORS` (docs/operators.md), punctuation
  longest first (``<=`` before ``<``), words ending at a non-identifier character.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from ..errors import Location, RuleError
from . import calls
from .operators import MODIFIERS, OPERATORS, TRANSFORMS


class TokenType(enum.Enum):
    LPAREN = "("
    RPAREN = ")"
    COMMA = ","
    AND = "and"
    OR = "or"
    NOT = "not"
    FIELD = "field"          # proc.name (argument, if any, in Token.arg)
    IDENT = "identifier"     # a macro or list name
    TRANSFORMER = "transformer"  # tolower( toupper( b64( basename( len( val(
    OP = "operator"
    STRING = "string"        # a quoted value
    WORD = "word"            # a bare value
    EOF = "end of condition"


@dataclass(frozen=True)
class Token:
    type: TokenType
    value: str
    pos: int
    arg: str | None = None


#: Transformers of several arguments (Falco 0.44): ``join``, ``concat``, ``getopt``.
CALLS = frozenset(calls.CALLS)
TRANSFORMERS = frozenset(TRANSFORMS) | {"val"} | CALLS

_WS = re.compile(r"[ \t\n\r\f\v\b]*")
_FIELD = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*(?:\.[a-zA-Z0-9_]+)+")
_IDENT = re.compile(r"[a-zA-Z][a-zA-Z0-9_]*")
_FIELD_ARG = re.compile(r"[^ \t\n\r\[\]\"']+")
_BARE = re.compile(r"[^ \t\n\r\f\v\b(),=\"']+")
_HEX2 = re.compile(r"[0-9a-fA-F]{2}")
#: a number as a transformer's argument (Falco's NumValue)
NUMBER = re.compile(r"0[xX][0-9a-zA-Z]+|[+\-]?[0-9]+\.?[0-9]*(?:[eE][+\-][0-9]+)?")
_WORD_CHAR = re.compile(r"[a-zA-Z0-9_]")
_ESCAPES = {"\"": "\"", "'": "'", "\\": "\\", "n": "\n", "t": "\t", "r": "\r", "b": "\b",
            "f": "\f"}


def snippet(text: str, pos: int) -> str:
    """The condition with a caret under ``pos`` (one line, the fault's line if multi-line)."""
    start = text.rfind("\n", 0, pos) + 1
    end = text.find("\n", pos)
    line = text[start:end if end >= 0 else len(text)]
    return f"{line}\n{' ' * (pos - start)}^"


def located_error(text: str, pos: int, message: str, location: Location | None) -> RuleError:
    """A :class:`RuleError` at offset ``pos`` of a condition: column, caret snippet, location.

    ``location`` is where the condition text starts in its file: with a column (a one-line
    value) the error's column is that column plus the offset; without (a block scalar) the
    line and column are counted inside the text.  ``err.column`` is always the 1-based column
    in the condition text, ``err.reason`` the message without the snippet.
    """
    loc = location or Location()
    line, col = loc.line, pos + 1
    if loc.col is not None and "\n" not in text[:pos]:
        col = loc.col + pos
    elif loc.line is not None and loc.col is None:
        line = loc.line + text.count("\n", 0, pos)
        col = pos - (text.rfind("\n", 0, pos) + 1) + 1
    err = RuleError(f"{message} at column {pos + 1}\n{snippet(text, pos)}",
                    Location(loc.file, line, col, loc.item))
    err.column = pos + 1  # type: ignore[attr-defined]
    err.reason = message  # type: ignore[attr-defined]
    return err


class Lexer:
    def __init__(self, text: str, location: Location | None = None) -> None:
        self.text = text
        self.pos = 0
        self.location = location

    # -- helpers ------------------------------------------------------------------------------

    def error(self, message: str, pos: int | None = None) -> RuleError:
        return located_error(self.text, self.pos if pos is None else pos, message,
                             self.location)

    def skip_ws(self) -> None:
        self.pos = _WS.match(self.text, self.pos).end()

    def at_end(self) -> bool:
        self.skip_ws()
        return self.pos >= len(self.text)

    def peek_char(self) -> str:
        self.skip_ws()
        return self.text[self.pos] if self.pos < len(self.text) else ""

    def _keyword(self, word: str) -> bool:
        """``word`` at the current position, not followed by an identifier character."""
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and not _WORD_CHAR.match(self.text, end):
            return True
        return False

    # -- the scanners the parser calls --------------------------------------------------------

    def punct(self, char: str) -> Token | None:
        """Consume ``(``, ``)`` or ``,`` if it is next."""
        self.skip_ws()
        if self.text.startswith(char, self.pos):
            tok = Token(TokenType(char), char, self.pos)
            self.pos += 1
            return tok
        return None

    def bool_op(self) -> Token | None:
        """Consume ``and`` or ``or`` if next."""
        self.skip_ws()
        for word, ttype in (("and", TokenType.AND), ("or", TokenType.OR)):
            if self._keyword(word):
                tok = Token(ttype, word, self.pos)
                self.pos += len(word)
                return tok
        return None

    def not_kw(self) -> Token | None:
        self.skip_ws()
        if self._keyword("not"):
            tok = Token(TokenType.NOT, "not", self.pos)
            self.pos += 3
            return tok
        return None

    def _transformer(self, start: int) -> Token | None:
        """``tolower(`` (a transformer or ``val`` and ``(``, no blank between) at ``start``."""
        m = _IDENT.match(self.text, start)
        if m and m.group() in TRANSFORMERS and self.text.startswith("(", m.end()):
            self.pos = m.end() + 1
            return Token(TokenType.TRANSFORMER, m.group(), start)
        return None

    def operand(self) -> Token:
        """Where a check may start: a transformer call, a field, or a macro name."""
        self.skip_ws()
        start = self.pos
        tok = self._transformer(start)
        if tok is not None:
            return tok
        m = _FIELD.match(self.text, start)
        if m:
            self.pos = m.end()
            arg = None
            if self.text.startswith("[", self.pos):
                arg = self._field_arg()
            return Token(TokenType.FIELD, m.group(), start, arg)
        m = _IDENT.match(self.text, start)
        if m:
            self.pos = m.end()
            return Token(TokenType.IDENT, m.group(), start)
        if start >= len(self.text):
            raise self.error("unexpected end of condition, expected a field, a macro or '('")
        raise self.error(f"unexpected {self.text[start]!r}, expected a field, a macro or '('")

    def field_arg(self) -> str | None:
        """``[...]`` right here (after a transformer call), or None."""
        return self._field_arg() if self.text.startswith("[", self.pos) else None

    def call_literal(self) -> Token | None:
        """A quoted string or a number, as a transformer's argument; None if neither."""
        self.skip_ws()
        start = self.pos
        if self.text[start:start + 1] in ("\"", "'"):
            return Token(TokenType.STRING, self._quoted(), start)
        m = NUMBER.match(self.text, start)
        if m and not _WORD_CHAR.match(self.text, m.end()) and \
                not self.text.startswith(".", m.end()):
            self.pos = m.end()
            return Token(TokenType.WORD, m.group(), start)
        return None

    def _field_arg(self) -> str:
        open_pos = self.pos
        self.pos += 1
        if self.pos < len(self.text) and self.text[self.pos] in "\"'":
            value = self._quoted()
        else:
            m = _FIELD_ARG.match(self.text, self.pos)
            if not m:
                raise self.error("expected a field argument after '['")
            value = m.group()
            self.pos = m.end()
        if not self.text.startswith("]", self.pos):
            raise self.error(f"expected ']' to close the field argument opened at column "
                             f"{open_pos + 1}")
        self.pos += 1
        return value

    def operator(self) -> Token:
        self.skip_ws()
        start = self.pos
        for op in OPERATORS.symbols:
            if self.text.startswith(op, start):
                self.pos += len(op)
                return Token(TokenType.OP, op, start)
        m = _IDENT.match(self.text, start)
        if m and m.group() in OPERATORS.words:
            self.pos = m.end()
            return Token(TokenType.OP, m.group(), start)
        if start >= len(self.text):
            raise self.error("unexpected end of condition, expected an operator")
        found = m.group() if m else self.text[start]
        raise self.error(f"expected an operator, found {found!r}")

    def modifier(self) -> Token | None:
        """``oneof``, ``anyof`` or ``allof`` if next, blanks on both sides (as in Falco's
        grammar: ``==oneof (a)`` and ``oneof(a)`` are no modifiers), then a list (``(`` or a
        name)."""
        start = self.pos
        self.skip_ws()
        m = _IDENT.match(self.text, self.pos)
        if m is None or m.group() not in MODIFIERS or self.pos == start:
            return None
        after = _WS.match(self.text, m.end()).end()
        if after == m.end():
            return None
        nxt = _IDENT.match(self.text, after)
        if self.text.startswith("(", after) or (nxt and nxt.group() not in ("and", "or", "not")):
            tok = Token(TokenType.WORD, m.group(), self.pos)
            self.pos = m.end()
            return tok
        return None

    def value(self) -> Token:
        """A quoted or bare value (or ``val(`` / a transformer, for the right side)."""
        self.skip_ws()
        start = self.pos
        if start >= len(self.text):
            raise self.error("unexpected end of condition, expected a value")
        ch = self.text[start]
        if ch in "\"'":
            return Token(TokenType.STRING, self._quoted(), start)
        tok = self._transformer(start)
        if tok is not None:
            return tok
        m = _BARE.match(self.text, start)
        if not m:
            raise self.error(f"expected a value, found {ch!r}")
        self.pos = m.end()
        return Token(TokenType.WORD, m.group(), start)

    def _quoted(self) -> str:
        quote = self.text[self.pos]
        start = self.pos
        i = self.pos + 1
        out: list[str | bytes] = []
        text = self.text
        while i < len(text):
            c = text[i]
            if c == "\\" and i + 1 < len(text):
                nxt = text[i + 1]
                if nxt in _ESCAPES:
                    out.append(_ESCAPES[nxt])
                elif nxt == "x":
                    if not _HEX2.fullmatch(text, i + 2, i + 4):
                        raise self.error("\\x needs two hexadecimal digits (\\x41)", i)
                    # a byte: "\xc3\xa9" is é, a byte that is not UTF-8 is kept as a path's
                    # undecodable byte is (surrogateescape), as Falco compares bytes
                    out.append(bytes([int(text[i + 2:i + 4], 16)]))
                    i += 4
                    continue
                else:
                    out.append(c + nxt)
                i += 2
                continue
            if c == quote:
                self.pos = i + 1
                if any(isinstance(x, bytes) for x in out):
                    return b"".join(x if isinstance(x, bytes) else
                                    x.encode("utf-8", "surrogateescape") for x in out
                                    ).decode("utf-8", "surrogateescape")
                return "".join(out)
            out.append(c)
            i += 1
        raise self.error("unterminated quoted string", start)
