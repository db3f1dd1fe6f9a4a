"""Pure text normalisers used by transforms: postcodes, names, casing, redaction.

Each returns the normal form or raises ValueError with a message that does
not repeat the personal value (problems end up in batch reports); where the
value's shape helps to fix it, :func:`shape` shows it with letters and
digits masked.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_OUTWARD = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?\Z")
_INWARD = re.compile(r"[0-9][A-Z]{2}\Z")
_SPACES = re.compile(r"\s+")


def shape(value: str, limit: int = 24) -> str:
    """``'SO16 6YD'`` -> ``'AA99 9AA'``: enough to see a format mistake, not the value."""
    masked = "".join(
        "9" if c.isdigit() else ("A" if c.isupper() else ("a" if c.isalpha() else c))
        for c in value[:limit]
    )
    return masked + ("…" if len(value) > limit else "")


def postcode(value: str) -> str:
    """Normalise a UK postcode to ``AA9A 9AA`` form; ValueError when it cannot be one."""
    compact = _SPACES.sub("", value).upper()
    if compact == "GIR0AA":
        return "GIR 0AA"
    outward, inward = compact[:-3], compact[-3:]
    if len(compact) < 5 or not _OUTWARD.match(outward) or not _INWARD.match(inward):
        raise ValueError(f"not a UK postcode (shape {shape(value)!r})")
    return f"{outward} {inward}"


def collapse_spaces(value: str) -> str:
    return _SPACES.sub(" ", value).strip()


_WORD_BREAKS = re.compile("([\\s\\-'\u2019]+)")
"""Spaces, hyphens and apostrophes (straight or typographic) start a new capital."""


def title_case(value: str) -> str:
    """``"O'BRIEN-SMITH"`` -> ``"O'Brien-Smith"``, ``"MCDONALD"`` -> ``"McDonald"``."""
    if value.isalpha():  # the common case, without the regex
        word = value[:1].upper() + value[1:].lower()
        if word.startswith("Mc") and len(word) > 2:
            word = "Mc" + word[2].upper() + word[3:]
        return word
    parts = _WORD_BREAKS.split(value.lower())
    out = []
    for part in parts:
        if part and part[0].isalpha():
            part = part[0].upper() + part[1:]
            if part.startswith("Mc") and len(part) > 2:
                part = "Mc" + part[2].upper() + part[3:]
        out.append(part)
    return "".join(out)


CASES = {
    "keep": lambda s: s,
    "title": title_case,
    "upper": str.upper,
    "lower": str.lower,
}
"""Casing a transform may apply: names as exported are often all upper case."""


class NameParts(NamedTuple):
    """A person's name split from one column: family name and given names in order.
    (A NamedTuple: one is made per row, and a frozen dataclass is slower to build.)"""

    family: str
    given: tuple[str, ...]


NAME_STYLES = ("family_comma_given", "given_family", "family_given", "auto")


def split_name(value: str, style: str) -> NameParts:
    """Split ``"SMITH, John Paul"`` (family_comma_given), ``"John Paul Smith"`` (given_family),
    ``"SMITH John"`` (family_given); ``auto`` reads a comma as family-first."""
    text = collapse_spaces(value)
    if style == "auto":
        style = "family_comma_given" if "," in text else "given_family"
    if style == "family_comma_given":
        family, sep, given = text.partition(",")
        if not sep:
            raise ValueError("expected 'FAMILY, Given' with a comma")
        names = tuple(given.split())
        family = family.strip()
    else:
        words = text.replace(",", " ").split()
        if not words:
            raise ValueError("the name is empty")
        if style == "given_family":
            family, names = words[-1], tuple(words[:-1])
        else:
            family, names = words[0], tuple(words[1:])
    if not family:
        raise ValueError("no family name")
    return NameParts(family, names)
