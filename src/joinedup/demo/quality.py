"""How each organisation's copy of a person differs from the truth.

Real exports disagree with each other: NHS numbers missing, typos, nicknames,
swapped given and family names, day and month transposed, old addresses,
maiden names, postcodes typed without a space. A :class:`QualityProfile` per
organisation holds the rates; :func:`source_records` applies them and keeps
the list of what was done to each record, so the docs and tests can check
the rates and issue 4 can see which errors its matcher survives.
"""

from __future__ import annotations

import random
import string
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import date, timedelta
from types import MappingProxyType

from joinedup.demo.names import nickname_groups
from joinedup.demo.places import Address
from joinedup.demo.population import REFERENCE_DATE, Person, Population, Sex


@dataclass(frozen=True, slots=True)
class QualityProfile:
    """Chance per record of each kind of error, for one organisation's system."""

    nhs_missing: float
    name_typo: float
    nickname: float
    swapped_names: float
    stale_address: float
    """Given that the person moved: the system still has the previous address."""
    messy_postcode: float
    """Postcode without its space or in lower case."""
    dob_error: float
    """Day and month transposed, or a year or day typed wrong."""
    maiden_name: float
    """Given that the person changed family name: the system has the old one."""
    dob_missing: float = 0.0
    sex_missing: float = 0.0
    duplicate: float = 0.0
    """Chance the person has a second record (a duplicate registration) in this system."""


PROFILES = MappingProxyType(
    {
        "RWX": QualityProfile(0.02, 0.02, 0.02, 0.003, 0.35, 0.0, 0.004, 0.3, duplicate=0.015),
        "RWM": QualityProfile(0.03, 0.02, 0.03, 0.003, 0.4, 0.0, 0.004, 0.3, duplicate=0.005),
        "RWC": QualityProfile(0.01, 0.015, 0.03, 0.002, 0.3, 0.0, 0.003, 0.2, duplicate=0.005),
        "J81001": QualityProfile(0.003, 0.005, 0.0, 0.0, 0.03, 0.0, 0.001, 0.02, duplicate=0.002),
        "J81002": QualityProfile(0.003, 0.005, 0.0, 0.0, 0.03, 0.0, 0.001, 0.02, duplicate=0.002),
        "WCCASC": QualityProfile(
            0.35, 0.04, 0.06, 0.02, 0.5, 0.15, 0.01, 0.4, 0.0, 0.01, duplicate=0.01
        ),
        "WCCCS": QualityProfile(
            0.30, 0.04, 0.05, 0.02, 0.5, 0.15, 0.01, 0.3, 0.0, 0.01, duplicate=0.01
        ),
        "WCARERS": QualityProfile(
            0.80, 0.06, 0.15, 0.03, 0.6, 0.3, 0.02, 0.4, 0.05, 0.1, duplicate=0.01
        ),
        "WHOMEHELP": QualityProfile(
            0.85, 0.08, 0.15, 0.03, 0.0, 0.3, 0.04, 0.4, 0.08, 0.1, duplicate=0.02
        ),
        "WPOLICE": QualityProfile(
            0.50, 0.05, 0.08, 0.04, 0.6, 0.1, 0.02, 0.4, 0.02, 0.02, duplicate=0.03
        ),
    }
)

SOURCE_ID_FORMATS = MappingProxyType(
    {
        "RWX": "RWX{:07d}",
        "RWM": "RM{:06d}",
        "RWC": "C{:08d}",
        "J81001": "{:07d}",
        "J81002": "{:07d}",
        "WCCASC": "{:07d}",
        "WCCCS": "CS{:06d}",
        "WPOLICE": "NOM{:08d}",
        "WCARERS": "WC-{:05d}",
        "WHOMEHELP": "HH{:04d}",
    }
)
"""Each system's local record number style (source record ids)."""

_ID_RANGES = MappingProxyType(
    {"WHOMEHELP": (1000, 9999), "WCARERS": (10000, 99999), "WCCASC": (1000000, 1999999)}
)


@dataclass(frozen=True, slots=True)
class SourceRecord:
    """A person as one organisation's system holds them (before format-specific coding)."""

    org_code: str
    source_id: str
    person_id: str
    given_name: str
    middle_name: str
    family_name: str
    sex: Sex | None
    birth_date: date | None
    nhs_number: str | None
    address: Address | None
    postcode_text: str
    """The postcode as typed in this system (may lack its space or be lower case)."""
    phone: str
    problems: tuple[str, ...]
    """Which deliberate differences from the truth this record carries."""


def source_records(
    org_code: str, person_ids: Iterable[str], population: Population
) -> list[SourceRecord]:
    """One record per person (two for duplicate registrations), sorted by source id."""
    profile = PROFILES[org_code]
    rng = random.Random(f"{population.seed}:quality:{org_code}")
    ids = _id_allocator(org_code, rng)
    records = []
    for person_id in person_ids:
        person = population[person_id]
        records.append(_corrupt(org_code, next(ids), person, profile, rng))
        if rng.random() < profile.duplicate:
            doubled = replace(
                profile,
                nhs_missing=min(1.0, profile.nhs_missing * 2 + 0.3),
                name_typo=0.4,
                dob_error=0.05,
            )
            dup = _corrupt(org_code, next(ids), person, doubled, rng)
            records.append(replace(dup, problems=(*dup.problems, "duplicate-registration")))
    records.sort(key=lambda r: r.source_id)
    return records


def _id_allocator(org_code: str, rng: random.Random) -> Iterator[str]:
    low, high = _ID_RANGES.get(org_code, (100000, 9999999))
    fmt = SOURCE_ID_FORMATS[org_code]
    seen: set[int] = set()
    while True:
        n = rng.randint(low, high)
        if n not in seen:
            seen.add(n)
            yield fmt.format(n)


def _corrupt(
    org_code: str, source_id: str, person: Person, profile: QualityProfile, rng: random.Random
) -> SourceRecord:
    problems: list[str] = []
    given, middle, family = person.given_name, person.middle_name, person.family_name

    if person.previous_family_name and rng.random() < profile.maiden_name:
        family = person.previous_family_name
        problems.append("previous-family-name")
    if rng.random() < profile.nickname:
        alias = nickname_for(given, rng)
        if alias:
            given = alias
            problems.append("nickname")
    if rng.random() < profile.name_typo:
        if rng.random() < 0.6:
            family = typo(family, rng)
        else:
            given = typo(given, rng)
        problems.append("name-typo")
    if rng.random() < profile.swapped_names:
        given, family = family, given
        problems.append("swapped-names")

    birth: date | None = person.birth_date
    if rng.random() < profile.dob_missing:
        birth = None
        problems.append("dob-missing")
    elif rng.random() < profile.dob_error:
        birth, kind = dob_error(person.birth_date, rng)
        problems.append(kind)

    sex: Sex | None = person.sex
    if rng.random() < profile.sex_missing:
        sex = None
        problems.append("sex-missing")

    nhs: str | None = person.nhs_number
    if rng.random() < profile.nhs_missing:
        nhs = None
        problems.append("nhs-number-missing")

    address = person.address
    if person.previous_addresses and (
        person.address is None or rng.random() < profile.stale_address
    ):
        address = person.previous_addresses[0]
        if person.address is not None:
            problems.append("previous-address")
    postcode = address.postcode if address else ""
    if postcode and rng.random() < profile.messy_postcode:
        postcode = postcode.replace(" ", "") if rng.random() < 0.6 else postcode.lower()
        problems.append("postcode-format")

    return SourceRecord(
        org_code=org_code,
        source_id=source_id,
        person_id=person.id,
        given_name=given,
        middle_name=middle,
        family_name=family,
        sex=sex,
        birth_date=birth,
        nhs_number=nhs,
        address=address,
        postcode_text=postcode,
        phone=person.phone,
        problems=tuple(problems),
    )


def nickname_for(given: str, rng: random.Random) -> str | None:
    """Another name from ``given``'s nickname group, or None when it has none."""
    options = sorted(
        {n for g in nickname_groups() if given in g for n in g if n != given}
    )
    return rng.choice(options) if options else None


_KEYBOARD_NEIGHBOURS = {
    "a": "sq", "b": "vn", "c": "xv", "d": "sf", "e": "wr", "f": "dg", "g": "fh", "h": "gj",
    "i": "uo", "j": "hk", "k": "jl", "l": "k", "m": "n", "n": "bm", "o": "ip", "p": "o",
    "r": "et", "s": "ad", "t": "ry", "u": "yi", "w": "qe", "y": "tu",
}


def typo(name: str, rng: random.Random) -> str:
    """One keying error: transposed, dropped, doubled or mistyped letter."""
    if len(name) < 3:
        return name + rng.choice("aeiou")
    kind = rng.choice(("transpose", "drop", "double", "neighbour"))
    i = rng.randrange(1, len(name) - 1)
    if kind == "transpose" and name[i] != name[i + 1]:
        return name[:i] + name[i + 1] + name[i] + name[i + 2 :]
    if kind == "drop":
        return name[:i] + name[i + 1 :]
    if kind == "double":
        return name[: i + 1] + name[i] + name[i + 1 :]
    options = _KEYBOARD_NEIGHBOURS.get(name[i].lower(), string.ascii_lowercase)
    return name[:i] + rng.choice(options) + name[i + 1 :]


def dob_error(birth: date, rng: random.Random) -> tuple[date, str]:
    """A plausible wrong date of birth and the name of the mistake; never after the demo's today."""
    wrong, kind = _dob_error(birth, rng)
    if wrong >= REFERENCE_DATE:
        return birth - timedelta(days=1), "dob-day-typo"
    return wrong, kind


def _dob_error(birth: date, rng: random.Random) -> tuple[date, str]:
    if birth.day <= 12 and birth.day != birth.month and rng.random() < 0.5:
        return birth.replace(day=birth.month, month=birth.day), "dob-day-month-swapped"
    if rng.random() < 0.5:
        year = birth.year + rng.choice((-10, -1, 1, 10))
        try:
            return birth.replace(year=year), "dob-year-typo"
        except ValueError:  # 29 February
            return birth.replace(year=year, day=28), "dob-year-typo"
    return birth + timedelta(days=rng.choice((-1, 1))), "dob-day-typo"
