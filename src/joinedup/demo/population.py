"""The synthetic population of Wessex: the truth every organisation's export is drawn from.

People live in households (children with a parent, couples, people living
alone), so family links, shared addresses and shared surnames exist the way
they do in real data. Everything follows from the seed through named random
streams (``random.Random(f"{seed}:population:...")``), which are stable across
Python versions and independent of ``PYTHONHASHSEED``.
"""

from __future__ import annotations

import bisect
import itertools
import random
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, timedelta
from enum import StrEnum
from types import MappingProxyType

from joinedup.demo.clinical import allergy_prevalence, condition_prevalence
from joinedup.demo.names import NameLists, load_name_lists
from joinedup.demo.places import Address, AddressBook, build_address_book
from joinedup.nhs_number import check_digit

REFERENCE_DATE = date(2026, 11, 1)
"""The demo's "today": ages, activity dates and "future" are relative to it, never to the clock."""

MIN_PEOPLE = 10


class Sex(StrEnum):
    """Sex as the truth holds it; each export codes it its own way."""

    FEMALE = "female"
    MALE = "male"


@dataclass(frozen=True, slots=True)
class EthnicCategory:
    code: str
    description: str
    weight: float
    name_group: str | None


ETHNIC_CATEGORIES: tuple[EthnicCategory, ...] = (
    EthnicCategory("A", "White - British", 86.0, None),
    EthnicCategory("B", "White - Irish", 1.0, "irish"),
    EthnicCategory("C", "White - Any other White background", 4.5, "other_white"),
    EthnicCategory("D", "Mixed - White and Black Caribbean", 0.6, None),
    EthnicCategory("E", "Mixed - White and Black African", 0.3, None),
    EthnicCategory("F", "Mixed - White and Asian", 0.5, None),
    EthnicCategory("G", "Mixed - Any other mixed background", 0.4, None),
    EthnicCategory("H", "Asian or Asian British - Indian", 1.2, "south_asian"),
    EthnicCategory("J", "Asian or Asian British - Pakistani", 0.5, "south_asian"),
    EthnicCategory("K", "Asian or Asian British - Bangladeshi", 0.3, "south_asian"),
    EthnicCategory("L", "Asian or Asian British - Any other Asian background", 0.6, "south_asian"),
    EthnicCategory("M", "Black or Black British - Caribbean", 0.4, "black"),
    EthnicCategory("N", "Black or Black British - African", 0.9, "black"),
    EthnicCategory("P", "Black or Black British - Any other Black background", 0.2, "black"),
    EthnicCategory("R", "Other Ethnic Groups - Chinese", 0.5, "chinese"),
    EthnicCategory("S", "Other Ethnic Groups - Any other ethnic group", 0.6, "other"),
    EthnicCategory("Z", "Not stated", 1.5, None),
)
"""NHS Data Dictionary ethnic category codes, weighted for a mostly rural south-west county."""

ETHNIC_CATEGORY_BY_CODE = MappingProxyType({e.code: e for e in ETHNIC_CATEGORIES})

AGE_BANDS: tuple[tuple[int, float], ...] = (
    (0, 5.0), (5, 5.6), (10, 5.8), (15, 5.6), (20, 5.4), (25, 5.8), (30, 6.1),
    (35, 6.0), (40, 5.9), (45, 6.2), (50, 7.0), (55, 7.1), (60, 6.6), (65, 5.9),
    (70, 5.8), (75, 4.3), (80, 3.0), (85, 1.8), (90, 0.8), (95, 0.25), (100, 0.03),
)
"""Five-year age bands (start, % of people): an older-than-England county pyramid."""


@dataclass(frozen=True, slots=True)
class Person:
    id: str
    nhs_number: str
    given_name: str
    middle_name: str
    family_name: str
    sex: Sex
    birth_date: date
    ethnic_category: str
    address: Address | None
    """None means no fixed abode."""
    previous_addresses: tuple[Address, ...]
    """Most recent first."""
    moved_on: date | None
    household_id: str
    phone: str
    gp_practice: str | None
    parent_ids: tuple[str, ...] = ()
    carer_id: str | None = None
    previous_family_name: str | None = None
    conditions: tuple[str, ...] = ()
    allergies: tuple[str, ...] = ()
    smoking: str = "never"
    homeless: bool = False

    def age(self, on: date = REFERENCE_DATE) -> int:
        years = on.year - self.birth_date.year
        if (on.month, on.day) < (self.birth_date.month, self.birth_date.day):
            years -= 1
        return years

    @property
    def needs_care(self) -> bool:
        """Would plausibly get adult social care: frail, dementia, learning disability."""
        age = self.age()
        frail = {"dementia", "heart_failure", "fall", "stroke", "hip_fracture"}
        return age >= 18 and (
            "learning_disability" in self.conditions
            or (age >= 65 and bool(frail.intersection(self.conditions)))
            or age >= 90
        )


@dataclass(frozen=True, slots=True)
class Population:
    seed: int
    people: tuple[Person, ...]
    _by_id: MappingProxyType[str, Person] = field(repr=False, compare=False)

    @classmethod
    def of(cls, seed: int, people: Sequence[Person]) -> Population:
        by_id = MappingProxyType({p.id: p for p in people})
        if len(by_id) != len(people):
            raise ValueError("person ids must be unique")
        nhs = {p.nhs_number for p in people}
        if len(nhs) != len(people):
            raise ValueError("NHS numbers must be unique")
        return cls(seed, tuple(people), by_id)

    def __getitem__(self, person_id: str) -> Person:
        return self._by_id[person_id]

    def __len__(self) -> int:
        return len(self.people)


class _Weighted:
    """Zipf-like weighted choice from a ranked list (common names first)."""

    def __init__(self, items: Sequence[str], exponent: float) -> None:
        self.items = tuple(items)
        weights = [1.0 / (rank + 1) ** exponent for rank in range(len(items))]
        self.cum = list(itertools.accumulate(weights))

    def pick(self, rng: random.Random) -> str:
        return self.items[bisect.bisect(self.cum, rng.random() * self.cum[-1])]


def build_population(seed: int, people: int) -> Population:
    """``people`` synthetic Wessex residents, deterministic from ``seed``."""
    if people < MIN_PEOPLE:
        raise ValueError(f"need at least {MIN_PEOPLE} people, not {people}")
    return _Builder(seed, people).build()


@dataclass(slots=True)
class _Draft:
    index: int
    age: int
    birth_date: date
    sex: Sex
    household: int = -1
    ethnic: str = "A"
    family_name: str = ""
    previous_family_name: str | None = None
    parents: list[int] = field(default_factory=list)
    carer: int | None = None
    homeless: bool = False


class _Builder:
    def __init__(self, seed: int, count: int) -> None:
        self.seed = seed
        self.count = count
        self.names: NameLists = load_name_lists()
        self.addresses: AddressBook = build_address_book(seed)

    def rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.seed}:population:{stream}")

    def build(self) -> Population:
        drafts = self._ages_and_sexes()
        households = self._households(drafts)
        self._ethnicity_and_surnames(drafts, households)
        self._carers(drafts, households)
        return Population.of(self.seed, self._people(drafts, households))

    def _ages_and_sexes(self) -> list[_Draft]:
        rng = self.rng("ages")
        starts = [start for start, _ in AGE_BANDS]
        weights = [w for _, w in AGE_BANDS]
        drafts = []
        for index in range(self.count):
            start = rng.choices(starts, weights)[0]
            age = start + (0 if start == 100 else rng.randrange(5))
            birth = REFERENCE_DATE - timedelta(days=365.25 * age + rng.uniform(1, 364))
            p_female = 0.5 + 0.2 * max(0, age - 65) / 35
            sex = Sex.FEMALE if rng.random() < p_female else Sex.MALE
            drafts.append(_Draft(index, age, birth, sex))
        return drafts

    def _households(self, drafts: list[_Draft]) -> list[list[int]]:
        """Group people into households: families with children, couples, singles."""
        rng = self.rng("households")
        children = [d for d in drafts if d.age < 18]
        adults = [d for d in drafts if d.age >= 18]
        free: dict[tuple[Sex, int], list[int]] = {}
        for d in sorted(adults, key=lambda d: (rng.random(), d.index)):
            free.setdefault((d.sex, d.age), []).append(d.index)

        def take(sex: Sex, low: int, high: int) -> int | None:
            ages = [a for a in range(max(low, 18), high + 1) if free.get((sex, a))]
            if not ages:
                return None
            return free[(sex, rng.choice(ages))].pop()

        households: list[list[int]] = []
        ordered = sorted(children, key=lambda d: (d.age + rng.uniform(0, 9), d.index))
        i = 0
        while i < len(ordered):
            size = rng.choices((1, 2, 3, 4), (42, 40, 14, 4))[0]
            siblings = ordered[i : i + size]
            i += size
            oldest = max(s.age for s in siblings)
            youngest = min(s.age for s in siblings)
            first_sex = Sex.FEMALE if rng.random() < 0.8 else Sex.MALE
            parent = take(first_sex, oldest + 18, youngest + 44)
            if parent is None:
                other = Sex.MALE if first_sex is Sex.FEMALE else Sex.FEMALE
                parent = take(other, oldest + 18, youngest + 50)
            members = [s.index for s in siblings]
            if parent is None:
                households.append(members)  # children in kinship care: no adult drawn
                continue
            for s in siblings:
                s.parents.append(parent)
            adults_here = [parent]
            if rng.random() < 0.65:
                p = drafts[parent]
                partner_sex = Sex.MALE if p.sex is Sex.FEMALE else Sex.FEMALE
                partner = take(partner_sex, p.age - 4, p.age + 5)
                if partner is not None:
                    adults_here.append(partner)
                    if rng.random() < 0.85:
                        for s in siblings:
                            s.parents.append(partner)
            households.append(adults_here + members)
        remaining = sorted(
            (idx for bucket in free.values() for idx in bucket), key=lambda x: drafts[x].age
        )
        used: set[int] = set()
        for pos, idx in enumerate(remaining):
            if idx in used:
                continue
            used.add(idx)
            members = [idx]
            if rng.random() < 0.5:
                for candidate in remaining[pos + 1 : pos + 12]:
                    if candidate not in used and drafts[candidate].sex is not drafts[idx].sex:
                        used.add(candidate)
                        members.append(candidate)
                        break
            households.append(members)
        households.sort(key=min)
        for number, members in enumerate(households):
            for idx in members:
                drafts[idx].household = number
        return households

    def _ethnicity_and_surnames(self, drafts: list[_Draft], households: list[list[int]]) -> None:
        rng = self.rng("ethnicity")
        codes = [e.code for e in ETHNIC_CATEGORIES]
        weights = [e.weight for e in ETHNIC_CATEGORIES]
        general = _Weighted(self.names.general_surnames, 0.4)
        long_tail = self.names.long_tail_surnames
        by_group = {g: _Weighted(ns, 0.6) for g, ns in self.names.group_surnames.items()}

        def surname(ethnic: str) -> str:
            group = ETHNIC_CATEGORY_BY_CODE[ethnic].name_group
            if group and rng.random() < 0.8:
                return by_group[group].pick(rng)
            if rng.random() < 0.45:
                return rng.choice(long_tail)
            return general.pick(rng)

        for members in households:
            ethnic = rng.choices(codes, weights)[0]
            family = surname(ethnic)
            couple = [m for m in members if drafts[m].age >= 18]
            for position, idx in enumerate(members):
                d = drafts[idx]
                d.ethnic = ethnic if rng.random() < 0.92 or d.age < 18 else rng.choices(
                    codes, weights
                )[0]
                if d.age < 18:
                    d.family_name = family if rng.random() < 0.9 else surname(ethnic)
                elif position == 0 or rng.random() < 0.3:
                    d.family_name = family if position == 0 else surname(d.ethnic)
                else:
                    d.family_name = family
                    if len(couple) > 1 and d.sex is Sex.FEMALE:
                        d.previous_family_name = surname(d.ethnic)
        homeless_rng = self.rng("homeless")
        for members in households:
            if len(members) == 1:
                d = drafts[members[0]]
                if 18 <= d.age <= 70 and homeless_rng.random() < 0.016:
                    d.homeless = True

    def _carers(self, drafts: list[_Draft], households: list[list[int]]) -> None:
        """Older people's carers: a partner at home, else an adult elsewhere of the same name."""
        rng = self.rng("carers")
        by_surname: dict[str, list[int]] = {}
        for d in drafts:
            if 30 <= d.age <= 70:
                by_surname.setdefault(d.family_name, []).append(d.index)
        for members in households:
            elders = [m for m in members if drafts[m].age >= 70]
            for elder in elders:
                if rng.random() > 0.45:
                    continue
                partners = [m for m in members if m != elder and drafts[m].age >= 18]
                if partners:
                    drafts[elder].carer = partners[0]
                    continue
                kin = [
                    k
                    for k in by_surname.get(drafts[elder].family_name, [])
                    if drafts[elder].age - 45 <= drafts[k].age <= drafts[elder].age - 18
                ]
                if kin:
                    drafts[elder].carer = rng.choice(kin)

    def _people(self, drafts: list[_Draft], households: list[list[int]]) -> list[Person]:
        rng = self.rng("people")
        nhs_numbers = _nhs_numbers(self.rng("nhs"), len(drafts))
        first_by_cohort = {
            (sex, cohort): _Weighted(names, 0.7)
            for sex, cohorts in self.names.general_first.items()
            for cohort, names in cohorts.items()
        }
        first_by_group = {
            (group, sex): _Weighted(names, 0.5)
            for group, sexes in self.names.group_first.items()
            for sex, names in sexes.items()
        }
        cohorts = self.names.cohorts

        def given(d: _Draft) -> str:
            group = ETHNIC_CATEGORY_BY_CODE[d.ethnic].name_group
            if group and rng.random() < 0.7:
                return first_by_group[(group, d.sex.value)].pick(rng)
            cohort = max(c for c in cohorts if c <= max(d.birth_date.year, cohorts[0]))
            return first_by_cohort[(d.sex.value, str(cohort))].pick(rng)

        household_address: dict[int, tuple[Address | None, tuple[Address, ...], date | None]] = {}
        move_rng = self.rng("moves")
        for number, members in enumerate(households):
            homeless = len(members) == 1 and drafts[members[0]].homeless
            settled = self.addresses.new_address(move_rng)
            if homeless:
                hostel = self.addresses.hostel(move_rng) if move_rng.random() < 0.55 else None
                left = REFERENCE_DATE - timedelta(days=move_rng.randrange(30, 900))
                household_address[number] = (hostel, (settled,), left)
            elif move_rng.random() < 0.13:
                current = self.addresses.new_address(move_rng)
                moved_in = REFERENCE_DATE - timedelta(days=move_rng.randrange(60, 2200))
                older: tuple[Address, ...] = (settled,)
                if move_rng.random() < 0.15:
                    older = (settled, self.addresses.new_address(move_rng))
                household_address[number] = (current, older, moved_in)
            else:
                household_address[number] = (settled, (), None)

        practice_rng = self.rng("gp")
        household_practice: dict[int, str | None] = {}
        for number in range(len(households)):
            home = household_address[number][0] or household_address[number][1][0]
            district = int(home.postcode.split(" ")[0][2:])
            near = "J81001" if district <= 6 else "J81002"
            far = "J81002" if near == "J81001" else "J81001"
            household_practice[number] = near if practice_rng.random() < 0.82 else far

        health_rng = self.rng("health")
        person_ids = [f"P{i + 1:06d}" for i in range(len(drafts))]
        people = []
        for d in drafts:
            address, previous, moved = household_address[d.household]
            practice = household_practice[d.household]
            if (d.homeless and practice_rng.random() < 0.5) or practice_rng.random() < 0.012:
                practice = None
            conditions = tuple(
                key
                for key, chance in condition_prevalence(d.age, d.sex.value, d.homeless)
                if health_rng.random() < chance
            )
            allergies = tuple(
                key for key, chance in allergy_prevalence(d.age) if health_rng.random() < chance
            )
            smoking = "never"
            if d.age >= 16:
                roll = health_rng.random()
                smoking = "current" if roll < 0.13 + 0.5 * d.homeless else (
                    "ex" if roll < 0.4 else "never"
                )
            middle = ""
            if rng.random() < 0.55:
                middle = given(d)
            people.append(
                Person(
                    id=person_ids[d.index],
                    nhs_number=nhs_numbers[d.index],
                    given_name=given(d),
                    middle_name=middle,
                    family_name=d.family_name,
                    sex=d.sex,
                    birth_date=d.birth_date,
                    ethnic_category=d.ethnic,
                    address=address,
                    previous_addresses=previous,
                    moved_on=moved,
                    household_id=f"H{d.household + 1:06d}",
                    phone=_phone(rng, d.age),
                    gp_practice=practice,
                    parent_ids=tuple(person_ids[p] for p in d.parents),
                    carer_id=None if d.carer is None else person_ids[d.carer],
                    previous_family_name=d.previous_family_name,
                    conditions=conditions,
                    allergies=allergies,
                    smoking=smoking,
                    homeless=d.homeless,
                )
            )
        return _ensure_sensitive(self.rng("sensitive"), people)


_ALWAYS_PRESENT = (("chlamydia", 16, 30), ("hiv", 25, 60), ("gender_dysphoria", 16, 40))
"""Sealed-category conditions at least one person has, so access control always has work."""


def _ensure_sensitive(rng: random.Random, people: list[Person]) -> list[Person]:
    for key, youngest, oldest in _ALWAYS_PRESENT:
        if any(key in p.conditions for p in people):
            continue
        eligible = [
            i for i, p in enumerate(people) if youngest <= p.age() <= oldest and p.gp_practice
        ] or [i for i, p in enumerate(people) if p.age() >= 16]
        if eligible:
            i = rng.choice(eligible)
            people[i] = replace(people[i], conditions=(*people[i].conditions, key))
    return people


def _nhs_numbers(rng: random.Random, count: int) -> list[str]:
    """Unique valid NHS numbers from the test range 999 000 0000 - 999 999 9999."""
    seen: set[str] = set()
    numbers: list[str] = []
    while len(numbers) < count:
        first_nine = f"999{rng.randrange(1_000_000):06d}"
        digit = check_digit(first_nine)
        number = f"{first_nine}{digit}"
        if digit is None or number in seen or len(set(number)) == 1:
            continue
        seen.add(number)
        numbers.append(number)
    return numbers


def _phone(rng: random.Random, age: int) -> str:
    """Ofcom's drama ranges, so no number can ring a real phone."""
    if age < 12:
        return ""
    if age >= 70 and rng.random() < 0.6:
        return f"01632 960{rng.randrange(1000):03d}"
    return f"07700 900{rng.randrange(1000):03d}"
