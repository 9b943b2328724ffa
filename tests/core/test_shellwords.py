"""The linear shell-word splitter gives shlex.split's words (POSIX mode, no comments)."""

from __future__ import annotations

import random
import shlex

import pytest

from syswarden.core import shellwords

CASES = [
    "", "  ", "a", "a b\tc\nd", "'a b' c", '"a b" c', 'a"b c"d', "a'b c'd", r"a\ b", r'"a\"b"',
    r'"a\\b"', r'"a\nb"', r"'a\b'", "''", 'x "" y', "a\\\nb", "é ü\x00", r"\'", "$HOME '$x'",
]


@pytest.mark.parametrize("text", CASES)
def test_the_words_are_shlex_s(text):
    assert shellwords.split(text) == shlex.split(text)


@pytest.mark.parametrize("text", ["'a", '"a', 'a"b', "a\\", '"a\\"'])
def test_an_unclosed_quote_or_a_trailing_backslash_is_an_error_as_in_shlex(text):
    with pytest.raises(ValueError):
        shlex.split(text)
    with pytest.raises(ValueError):
        shellwords.split(text)


def test_random_strings_split_as_shlex_splits_them():
    alphabet = ["a", "b", " ", "\t", "\n", "'", '"', "\\", "$", "\r", "é", "\x00"]
    rng = random.Random(7)
    for _ in range(20_000):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 14)))
        try:
            expected = shlex.split(text)
        except ValueError:
            with pytest.raises(ValueError):
                shellwords.split(text)
        else:
            assert shellwords.split(text) == expected, repr(text)


def test_a_megabyte_word_is_one_word():
    word = "x" * (1 << 20)
    assert shellwords.split(f"cmd '{word}' \"{word}\" {word}") == ["cmd", word, word, word]
