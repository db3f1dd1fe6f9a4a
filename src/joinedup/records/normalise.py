"""How strings are normalised for search, the same way when indexing and when querying.

FHIR string search is case- and accent-insensitive and matches from the start
of the value. Names arrive as "O'Brien", "o'brien", "OBRIEN", "Zoë", "Smith-Jones"
from different organisations, so each value is folded to lower-case letters and
digits with accents removed; multi-word values are also indexed word by word,
so "jones" finds "Smith-Jones" (a practitioner rarely knows which part of a
double-barrelled name a system stored first). Postcodes are compared without
spaces, upper-case ("so23 1aa" = "SO23 1AA").
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

_WORD_BREAK = re.compile(r"[\s\-]+")


def fold(text: str) -> str:
    """Lower-case letters and digits only, accents removed: "O'Brien" -> "obrien"."""
    if text.isascii():  # the common case, without the Unicode decomposition
        return "".join(filter(str.isalnum, text)).lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if ch.isalnum()).casefold()


@lru_cache(maxsize=65536)
def text_keys(text: str) -> frozenset[str]:
    """Every key a string value is indexed under: the whole value folded, and each word.

    Cached (bounded): a batch repeats the same given and family names thousands of times.
    """
    whole = fold(text)
    if " " not in text and "-" not in text:  # one word: the common case
        return frozenset((whole,)) if whole else frozenset()
    keys = {whole}
    keys.update(fold(word) for word in _WORD_BREAK.split(text))
    keys.discard("")
    return frozenset(keys)


@lru_cache(maxsize=65536)
def postcode(text: str) -> str:
    """A UK postcode (or any postal code) without spaces, upper-case: "so23 1aa" -> "SO231AA".

    Cached (bounded): a batch repeats the same postcodes many times.
    """
    return "".join(filter(str.isalnum, text)).upper()


def prefix_upper_bound(prefix: str) -> str:
    """The smallest string greater than every string starting with ``prefix``.

    Prefix search then becomes ``prefix <= value < bound``, which both SQLite
    (BINARY collation) and PostgreSQL (``COLLATE "C"``) answer from a B-tree
    index; code-point order equals UTF-8 byte order, so this holds for any text.
    """
    if not prefix:
        raise ValueError("empty prefix")
    last = ord(prefix[-1])
    if last >= 0x10FFFF:
        raise ValueError("prefix ends in the last code point")
    nxt = last + 1
    if 0xD800 <= nxt < 0xE000:  # surrogates cannot be stored: skip to the next real one
        nxt = 0xE000
    return prefix[:-1] + chr(nxt)
