"""From a person's demographic record to the features the matching model compares.

Everything here is pure: the same record always gives the same features, in
one record (``features_of``) or a whole table (``features_table``); a
property test holds the two to each other. Unusable values (an unparseable
date, an invalid NHS number, a name of only punctuation) become ``None``: the
model treats a missing value as no evidence, never as disagreement.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, fields
from datetime import date
from typing import TYPE_CHECKING, Any

import jellyfish

from joinedup import nhs_number
from joinedup.people.matching.nicknames import NicknameTable, default_nicknames

if TYPE_CHECKING:
    import pandas as pd

_NOT_A_NAME = frozenset({"UNKNOWN", "NOTKNOWN", "NK", "NONE", "NULL", "NA", "NOTSTATED"})
_NON_LETTERS = re.compile(r"[^A-Z]")
_NAME_SPLIT = re.compile(r"[\s,]+")
_NON_ALNUM = re.compile(r"[^A-Z0-9]+")
_UK_POSTCODE = re.compile(r"^([A-Z]{1,2}[0-9][A-Z0-9]?)([0-9][A-Z]{2})$")
_DIGITS = re.compile(r"\D")
_NO_FIXED_ABODE = "ZZ99"
_SEX = {
    "M": "M", "MALE": "M", "1": "M",
    "F": "F", "FEMALE": "F", "2": "F",
    "O": "O", "OTHER": "O", "9": "O",
}  # fmt: skip


@dataclass(frozen=True, slots=True)
class PersonRecord:
    """The demographic part of a canonical Patient record, as matching sees it.

    ``birth_date`` is an ISO date (``1956-03-12``), eight digits (``19560312``)
    or a ``date``; ``sex`` a FHIR administrative gender or M/F. Validation on
    construction is limited to what would make the record unusable as a key:
    values the model cannot use are kept and simply yield no feature.
    """

    record_id: str
    given_names: tuple[str, ...] = ()
    family_name: str | None = None
    birth_date: str | date | None = None
    sex: str | None = None
    postcode: str | None = None
    address_lines: tuple[str, ...] = ()
    nhs_number: str | None = None
    city: str | None = None  # town or suburb (FHIR Address.city)
    region: str | None = None  # county or state (FHIR Address.state)

    def __post_init__(self) -> None:
        problems = []
        if not isinstance(self.record_id, str) or not self.record_id.strip():
            problems.append("record_id must be a non-empty string")
        if isinstance(self.given_names, str):
            problems.append("given_names must be a tuple of names, not one string")
        if isinstance(self.address_lines, str):
            problems.append("address_lines must be a tuple of lines, not one string")
        if problems:
            raise ValueError("; ".join(problems))


@dataclass(frozen=True, slots=True)
class MatchFeatures:
    """One record's comparable features. Field names are the model's column names."""

    unique_id: str
    given_name: str | None
    given_name_canon: str | None
    given_name_phon: str | None
    family_name: str | None
    family_name_phon: str | None
    dob: str | None
    dob_year: str | None
    dob_month: str | None
    dob_day: str | None
    sex: str | None
    postcode: str | None
    postcode_sector: str | None
    postcode_outward: str | None
    address_number: str | None
    address_street: str | None
    nhs_number: str | None
    locality: str | None = None
    region: str | None = None


FEATURE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(MatchFeatures))


# --- single values ---------------------------------------------------------


def _fold(raw: str) -> str:
    """Upper-case ASCII with accents removed ("Zoë" -> "ZOE")."""
    decomposed = unicodedata.normalize("NFKD", raw)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).upper()


def clean_name(raw: str | None) -> str | None:
    """Letters only, upper case; "O'Brien-Smith" -> "OBRIENSMITH"; placeholders -> None."""
    if raw is None:
        return None
    cleaned = _NON_LETTERS.sub("", _fold(raw))
    if not cleaned or cleaned in _NOT_A_NAME:
        return None
    return cleaned


def first_given_name(given_names: Iterable[str]) -> str | None:
    """The first usable given name; "Mary Ann" given as one string counts as two names."""
    for part in given_names:
        if part is None:
            continue
        for token in _NAME_SPLIT.split(part):
            name = clean_name(token)
            if name is not None:
                return name
    return None


def phonetic(name: str | None) -> str | None:
    """Metaphone code of a cleaned name (jellyfish); ``None`` when it has none."""
    if name is None:
        return None
    code = jellyfish.metaphone(name)
    return code or None


def dob_parts(raw: str | date | None) -> tuple[str | None, str | None, str | None, str | None]:
    """(YYYYMMDD, YYYY, MM, DD) from an ISO date or eight digits.

    Impossible calendar dates (month 25) are kept on purpose: a day and month
    typed the wrong way round is one of the errors the model looks for.
    """
    if raw is None:
        return None, None, None, None
    text = raw.strftime("%Y%m%d") if isinstance(raw, date) else _DIGITS.sub("", raw.strip())
    if len(text) != 8 or text == "00000000":
        return None, None, None, None
    return text, text[:4], text[4:6], text[6:]


def clean_sex(raw: str | None) -> str | None:
    """M, F or O; unknown or unrecognised -> None (no evidence either way)."""
    if raw is None:
        return None
    return _SEX.get(raw.strip().upper())


def postcode_parts(raw: str | None) -> tuple[str | None, str | None, str | None]:
    """(postcode, sector, outward code): "so16 7ab" -> ("SO167AB", "SO16 7", "SO16").

    A value that is not a UK postcode (a foreign or mistyped one) keeps its
    cleaned form for exact and one-edit comparison but has no sector or outward code.
    """
    if raw is None:
        return None, None, None
    compact = _NON_ALNUM.sub("", _fold(raw))
    if not compact:
        return None, None, None
    if compact.startswith(_NO_FIXED_ABODE):
        # ZZ99 pseudo-postcodes mean "no fixed abode" or "not known": not a place.
        return None, None, None
    found = _UK_POSTCODE.match(compact)
    if found is None:
        return compact, None, None
    outward, inward = found.groups()
    return compact, f"{outward} {inward[0]}", outward


def address_parts(lines: Sequence[str]) -> tuple[str | None, str | None]:
    """(house numbers, address words) from every address line.

    "Flat 3, 12 High St." -> ("3 12", "FLATHIGHST"). Numbers and words are
    compared separately because one is often right when the other is not.
    Each line's words are run together (a space typed in or left out, "HIGH
    ST" / "HIGHST", changes nothing) and the lines are put in order, so lines
    recorded in a different order ("12 High St", "Bitterne" / "Bitterne",
    "12 High St") still agree.
    """
    numbers: list[str] = []
    words: list[str] = []
    for line in lines:
        if line is None:
            continue
        tokens = _NON_ALNUM.sub(" ", _fold(line)).split()
        numbers += [t for t in tokens if any(ch.isdigit() for ch in t)]
        text = "".join(t for t in tokens if not any(ch.isdigit() for ch in t))
        if text:
            words.append(text)
    return (" ".join(numbers) or None, " ".join(sorted(words)) or None)


def clean_locality(raw: str | None) -> str | None:
    """Letters only, upper case: "Noble Park" -> "NOBLEPARK"."""
    return clean_name(raw)


def clean_nhs_number(raw: str | None) -> str | None:
    """The normalised number when valid (Modulus 11); anything else counts as absent."""
    if raw is None or not nhs_number.is_valid(raw):
        return None
    return nhs_number.normalise(raw)


# --- whole records ---------------------------------------------------------


def features_of(record: PersonRecord, nicknames: NicknameTable | None = None) -> MatchFeatures:
    """The features of one record (the online path)."""
    table = nicknames if nicknames is not None else default_nicknames()
    given = first_given_name(record.given_names)
    family = clean_name(record.family_name)
    dob, year, month, day = dob_parts(record.birth_date)
    postcode, sector, outward = postcode_parts(record.postcode)
    number, street = address_parts(record.address_lines)
    return MatchFeatures(
        unique_id=record.record_id,
        given_name=given,
        given_name_canon=None if given is None else table.canonical_of(given),
        given_name_phon=phonetic(given),
        family_name=family,
        family_name_phon=phonetic(family),
        dob=dob,
        dob_year=year,
        dob_month=month,
        dob_day=day,
        sex=clean_sex(record.sex),
        postcode=postcode,
        postcode_sector=sector,
        postcode_outward=outward,
        address_number=number,
        address_street=street,
        nhs_number=clean_nhs_number(record.nhs_number),
        locality=clean_locality(record.city),
        region=clean_locality(record.region),
    )


def features_table(records: pd.DataFrame, nicknames: NicknameTable | None = None) -> pd.DataFrame:
    """The features of a table of records (the batch path), one row per input row.

    ``records`` has the ``PersonRecord`` field names as columns, with
    ``given_names`` and ``address_lines`` as a string (first name / first line)
    or a tuple. Each distinct value is normalised once, which is what makes a
    million records take seconds rather than minutes.
    """
    import numpy as np
    import pandas as pd

    table = nicknames if nicknames is not None else default_nicknames()
    n = len(records)

    def column(name: str) -> pd.Series[Any]:
        if name in records.columns:
            return records[name].astype(object).where(records[name].notna(), None)
        return pd.Series([None] * n, index=records.index, dtype=object)

    def distinct_codes(values: pd.Series[Any]) -> Any:
        try:
            return pd.factorize(values, use_na_sentinel=False)
        except TypeError:  # lists (unhashable) among the values
            return pd.factorize(values.map(_hashable), use_na_sentinel=False)

    def per_distinct(
        values: pd.Series[Any], fn: Callable[[Any], Any], parts: int = 0
    ) -> list[pd.Series[Any]]:
        """``fn`` of each distinct value, spread back to every row; ``parts`` > 0
        splits a tuple result into that many columns."""
        codes, distinct = distinct_codes(values)
        width = max(parts, 1)
        results = np.empty((len(distinct), width), dtype=object)
        for i, value in enumerate(distinct):
            out = fn(None if _is_missing(value) else value)
            results[i, :] = out if parts else (out,)
        return [pd.Series(results[codes, j], index=values.index, dtype=object) for j in range(width)]

    out = pd.DataFrame(index=records.index)
    out["unique_id"] = records["record_id"].astype(str)
    [given] = per_distinct(column("given_names"), lambda v: first_given_name(_as_tuple(v)))
    out["given_name"] = given
    canon, phon = per_distinct(
        given,
        lambda g: (None, None) if g is None else (table.canonical_of(g), phonetic(g)),
        parts=2,
    )
    out["given_name_canon"], out["given_name_phon"] = canon, phon
    family, family_phon = per_distinct(
        column("family_name"),
        lambda v: (lambda f: (f, phonetic(f)))(clean_name(v)),
        parts=2,
    )
    out["family_name"], out["family_name_phon"] = family, family_phon
    for name, series in zip(
        ("dob", "dob_year", "dob_month", "dob_day"),
        per_distinct(column("birth_date"), dob_parts, parts=4),
        strict=True,
    ):
        out[name] = series
    [out["sex"]] = per_distinct(column("sex"), clean_sex)
    for name, series in zip(
        ("postcode", "postcode_sector", "postcode_outward"),
        per_distinct(column("postcode"), postcode_parts, parts=3),
        strict=True,
    ):
        out[name] = series
    out["address_number"], out["address_street"] = per_distinct(
        column("address_lines"), lambda v: address_parts(_as_tuple(v)), parts=2
    )
    out["nhs_number"] = clean_nhs_numbers(column("nhs_number"))
    [out["locality"]] = per_distinct(column("city"), clean_locality)
    [out["region"]] = per_distinct(column("region"), clean_locality)
    # Every column is already object dtype with None for missing.
    return out[list(FEATURE_COLUMNS)]


def clean_nhs_numbers(values: pd.Series[Any]) -> pd.Series[Any]:
    """``clean_nhs_number`` over a column, with the Modulus 11 check done in numpy."""
    import numpy as np
    import pandas as pd

    text = values.where(values.notna(), "").astype(str)
    digits = text.str.replace(r"[\s\-]", "", regex=True).str.strip()
    shaped = digits.str.fullmatch(r"[0-9]{10}").fillna(False).to_numpy(dtype=bool)
    out = np.full(len(values), None, dtype=object)
    if shaped.any():
        candidates = digits[shaped].to_numpy(dtype="U10")
        d = candidates.view("<U1").reshape(-1, 10).astype(np.int64)
        total = (d[:, :9] * np.arange(10, 1, -1)).sum(axis=1)
        check = 11 - total % 11
        check[check == 11] = 0
        ok = (check != 10) & (check == d[:, 9]) & ~(d == d[:, :1]).all(axis=1)
        out[np.nonzero(shaped)[0][ok]] = candidates[ok].astype(object)
    return pd.Series(out, index=values.index, dtype=object)


def _as_tuple(value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)


def _is_missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value)


def _hashable(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(value)
    return value  # type: ignore[no-any-return]
