"""Normalising strings for search."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from joinedup.records.normalise import fold, postcode, prefix_upper_bound, text_keys


def test_fold_removes_case_accents_and_punctuation() -> None:
    assert fold("O'Brien") == "obrien"
    assert fold("Zoë") == "zoe"
    assert fold("ÅSE") == "ase"
    assert fold("  ") == ""


def test_multi_word_values_are_indexed_whole_and_by_word() -> None:
    assert text_keys("Smith-Jones") == {"smithjones", "smith", "jones"}
    assert text_keys("Anne Marie") == {"annemarie", "anne", "marie"}
    assert text_keys("Smith") == {"smith"}
    assert text_keys("'") == set()


def test_postcodes_compare_without_spaces() -> None:
    assert postcode("so23 1aa") == postcode("SO231AA") == "SO231AA"


@given(st.text(min_size=1), st.text())
def test_the_prefix_bound_is_above_every_extension(prefix: str, rest: str) -> None:
    if ord(prefix[-1]) >= 0x10FFFF:
        return
    bound = prefix_upper_bound(prefix)
    assert prefix <= prefix + rest < bound
    # and in UTF-8 byte order, which is what both databases compare
    assert (prefix + rest).encode("utf-8", "surrogatepass") < bound.encode("utf-8", "surrogatepass")


@given(st.text())
def test_ascii_fast_path_agrees_with_unicode_path(text: str) -> None:
    import unicodedata

    slow = "".join(c for c in unicodedata.normalize("NFKD", text) if c.isalnum()).casefold()
    assert fold(text) == slow
