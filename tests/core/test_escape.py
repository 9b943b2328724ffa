"""escape_text: every character that could end a text line, drive a terminal or pass for one of
our escapes is escaped, unambiguously; printable text is left alone."""

from __future__ import annotations

import re

import pytest

from syswarden.core.escape import escape_text


@pytest.mark.parametrize("value, shown", [
    ("bash", "bash"),
    ("/tmp/ünïcödé 文件 😀", "/tmp/ünïcödé 文件 😀"),           # printable text stays
    ('say "hi" | tee', 'say "hi" | tee'),                         # quotes, spaces: not escaped
    ("a\nb", "a\\nb"),
    ("a\r\tb", "a\\r\\tb"),
    ("\\n typed", "\\\\n typed"),                                 # the attacker's backslash
    ("\x1b[2K\x1b]0;t\x07", "\\x1b[2K\\x1b]0;t\\x07"),
    ("\x00\x7f", "\\x00\\x7f"),
    ("\u0085\u009b", "\\u0085\\u009b"),                           # C1: NEL, CSI
    ("a\u2028b\u2029c", "a\\u2028b\\u2029c"),
    ("\u202eexe.txt\u2066", "\\u202eexe.txt\\u2066"),             # bidi overrides
    (b"\xff\xc3".decode("utf-8", "surrogateescape"), "\\xff\\xc3"),  # bytes not UTF-8
    ("\ud800", "\\ud800"),                                        # any other lone surrogate
])
def test_escape_text(value, shown):
    assert escape_text(value) == shown


_TOKEN = re.compile(r"\\(\\|n|r|t|x[0-9a-f]{2}|u[0-9a-f]{4})")


def _unescape(text: str) -> str:
    """The inverse, written from the documented escapes: \\xHH >= 0x80 is a raw byte."""
    def one(m: re.Match[str]) -> str:
        tok = m.group(1)
        if tok in ("\\", "n", "r", "t"):
            return {"\\": "\\", "n": "\n", "r": "\r", "t": "\t"}[tok]
        n = int(tok[1:], 16)
        return chr(n + 0xDC00) if tok[0] == "x" and n >= 0x80 else chr(n)
    return _TOKEN.sub(one, text)


TRICKY = ["", "\\", "\\\\n", "\\x1b", "\x1b", "\\u2028", "\u2028", "\udcff", "\\xff",
          "x\\\ny", "".join(map(chr, range(0x100))), "end\\"]


@pytest.mark.parametrize("value", TRICKY)
def test_escaped_text_is_one_clean_line_and_unambiguous(value):
    shown = escape_text(value)
    shown.encode("utf-8")                                  # strict: no surrogate left
    assert not re.search("[\x00-\x1f\x7f-\x9f\u2028\u2029]", shown)
    assert _unescape(shown) == value                       # no two values print the same


def test_every_escaped_character_but_the_backslash_is_unprintable():
    """escape_text returns a printable value without a backslash untouched (its fast path)."""
    from syswarden.core.escape import _TABLE
    assert [chr(n) for n in _TABLE if chr(n).isprintable()] == ["\\"]
