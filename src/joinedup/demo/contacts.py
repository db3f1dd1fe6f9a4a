"""Who knows whom: which people each organisation holds a record for.

The chances follow need, the way services do: the hospital sees many older
people, the mental health trust people with serious mental illness, the
council's adult social care frail and disabled adults, children's services
children in need and some of their parents, the carers' charity the carers of
social care clients, the homelessness charity people without a home, the
police a safeguarding subset. Overlaps fall out of that, so the person index
has real work: the same person is known to several organisations.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from types import MappingProxyType

from joinedup.demo.clinical import MENTAL_HEALTH_KEYS
from joinedup.demo.population import Person, Population

SERIOUS_MENTAL_ILLNESS = frozenset({"schizophrenia", "bipolar", "ptsd"})
SUBSTANCE = frozenset({"alcohol_dependence", "drug_misuse"})


@dataclass(frozen=True, slots=True)
class Caseload:
    """The people one organisation knows, with why (a short role per person)."""

    org_code: str
    roles: MappingProxyType[str, str]
    """person id -> role, e.g. ``"patient"``, ``"child-cp"``, ``"parent"``, ``"carer"``."""

    @property
    def person_ids(self) -> tuple[str, ...]:
        return tuple(sorted(self.roles))

    def __contains__(self, person_id: object) -> bool:
        return person_id in self.roles

    def __len__(self) -> int:
        return len(self.roles)


@dataclass(frozen=True, slots=True)
class Contacts:
    caseloads: MappingProxyType[str, Caseload]

    def __getitem__(self, org_code: str) -> Caseload:
        return self.caseloads[org_code]

    def orgs_knowing(self, person_id: str) -> tuple[str, ...]:
        return tuple(code for code, c in self.caseloads.items() if person_id in c)


def assign_contacts(population: Population) -> Contacts:
    """Deterministic from the population's seed."""
    seed = population.seed

    def rng(org: str) -> random.Random:
        return random.Random(f"{seed}:contacts:{org}")

    people = population.people
    loads: dict[str, dict[str, str]] = {}
    for practice in ("J81001", "J81002"):
        loads[practice] = {p.id: "patient" for p in people if p.gp_practice == practice}
    loads["RWX"] = _pick(rng("RWX"), people, _acute_chance, "patient")
    loads["RWM"] = _pick(rng("RWM"), people, _mental_health_chance, "patient")
    loads["RWC"] = _pick(rng("RWC"), people, _community_chance, "patient")
    loads["WCCASC"] = _pick(rng("WCCASC"), people, _adult_social_care_chance, "client")
    loads["WCCCS"] = _childrens_services(rng("WCCCS"), population)
    loads["WHOMEHELP"] = _pick(rng("WHOMEHELP"), people, _homeless_chance, "client")
    loads["WCARERS"] = _carers(rng("WCARERS"), population, loads["WCCASC"])
    asc_carers = _pick_from(rng("WCCASC-carers"), loads["WCARERS"], 0.3)
    for person_id in asc_carers:
        loads["WCCASC"].setdefault(person_id, "carer")
    loads["WPOLICE"] = _police(rng("WPOLICE"), population, loads)
    order = ("RWX", "RWM", "RWC", "J81001", "J81002", "WCCASC", "WCCCS", "WPOLICE",
             "WCARERS", "WHOMEHELP")
    for code in order:
        _top_up(rng(f"{code}-top-up"), population, code, loads[code])
    return Contacts(
        MappingProxyType(
            {
                code: Caseload(code, MappingProxyType(dict(sorted(loads[code].items()))))
                for code in order
            }
        )
    )


MIN_CASELOAD = 5
"""Small populations still give every organisation a few people, so every export has rows."""

_TOP_UP: dict[str, tuple[Callable[[Person], bool], str]] = {
    "RWX": (lambda p: True, "patient"),
    "RWM": (lambda p: p.age() >= 12, "patient"),
    "RWC": (lambda p: p.age() >= 60, "patient"),
    "J81001": (lambda p: p.gp_practice == "J81001", "patient"),
    "J81002": (lambda p: p.gp_practice == "J81002", "patient"),
    "WCCASC": (lambda p: p.age() >= 18, "client"),
    "WCCCS": (lambda p: p.age() < 18, "child-cin"),
    "WPOLICE": (lambda p: p.age() >= 10, "adult-at-risk"),
    "WCARERS": (lambda p: 25 <= p.age() <= 80, "carer"),
    "WHOMEHELP": (lambda p: 18 <= p.age() <= 65, "client"),
}


def _top_up(
    rng: random.Random, population: Population, code: str, load: dict[str, str]
) -> None:
    eligible, role = _TOP_UP[code]
    if len(load) >= MIN_CASELOAD:
        return
    candidates = [p.id for p in population.people if p.id not in load and eligible(p)]
    rng.shuffle(candidates)
    for person_id in candidates[: MIN_CASELOAD - len(load)]:
        load[person_id] = "child-concern" if code == "WPOLICE" and population[
            person_id].age() < 18 else role


def _pick(
    rng: random.Random, people: tuple[Person, ...], chance: Callable[[Person], float], role: str
) -> dict[str, str]:
    return {p.id: role for p in people if rng.random() < chance(p)}


def _pick_from(rng: random.Random, roles: dict[str, str], chance: float) -> list[str]:
    return [pid for pid in sorted(roles) if rng.random() < chance]


def _acute_chance(p: Person) -> float:
    age = p.age()
    chance = 0.16 + 0.4 * min(1.0, max(0, age - 55) / 35)
    if age < 5:
        chance += 0.1
    if p.homeless:
        chance += 0.45
    if MENTAL_HEALTH_KEYS.intersection(p.conditions):
        chance += 0.08
    if p.needs_care:
        chance += 0.15
    return min(chance, 0.9)


def _mental_health_chance(p: Person) -> float:
    age = p.age()
    if age < 12:
        return 0.0
    chance = 0.0
    if SERIOUS_MENTAL_ILLNESS.intersection(p.conditions):
        chance = 0.85
    elif SUBSTANCE.intersection(p.conditions):
        chance = 0.3
    elif {"depression", "anxiety"}.intersection(p.conditions):
        chance = 0.3 if age < 18 else 0.1
    if "dementia" in p.conditions:
        chance = max(chance, 0.2)
    return min(chance + (0.2 if p.homeless else 0.0), 0.95)


def _community_chance(p: Person) -> float:
    age = p.age()
    if age >= 70:
        return 0.2 + (0.45 if p.needs_care else 0.0)
    if age >= 18 and len(p.conditions) >= 3:
        return 0.05
    return 0.0


def _adult_social_care_chance(p: Person) -> float:
    age = p.age()
    if age < 18:
        return 0.0
    if "learning_disability" in p.conditions:
        return 0.7
    chance = 0.5 if p.needs_care else 0.0
    if age >= 85:
        chance = max(chance, 0.2)
    if SERIOUS_MENTAL_ILLNESS.intersection(p.conditions):
        chance = max(chance, 0.2)
    return chance


def _homeless_chance(p: Person) -> float:
    age = p.age()
    if p.homeless:
        return 0.9
    if 18 <= age <= 65 and SUBSTANCE.intersection(p.conditions):
        return 0.06
    return 0.0


def _childrens_services(rng: random.Random, population: Population) -> dict[str, str]:
    """Children in need and on child protection plans, and some of their parents."""
    loads: dict[str, str] = {}
    for p in population.people:
        if p.age() >= 18:
            continue
        parent_risk = any(
            SUBSTANCE.union(SERIOUS_MENTAL_ILLNESS).intersection(population[q].conditions)
            for q in p.parent_ids
        )
        cp = 0.006 + (0.12 if parent_risk else 0.0)
        cin = 0.03 + (0.25 if parent_risk else 0.0) + (0.1 if "autism" in p.conditions else 0.0)
        roll = rng.random()
        if roll < cp:
            loads[p.id] = "child-cp"
        elif roll < cp + cin:
            loads[p.id] = "child-cin"
    if not any(role == "child-cp" for role in loads.values()):
        children = sorted(p.id for p in population.people if p.age() < 18)
        if children:  # every demo has at least one child protection plan to protect
            loads[rng.choice(children)] = "child-cp"
    for child_id in sorted(loads):
        for parent_id in population[child_id].parent_ids:
            if parent_id not in loads and rng.random() < 0.6:
                loads[parent_id] = "parent"
    return loads


def _carers(
    rng: random.Random, population: Population, asc: dict[str, str]
) -> dict[str, str]:
    """Unpaid carers: of social care clients mostly, and parents of disabled children."""
    loads: dict[str, str] = {}
    for p in population.people:
        if p.carer_id is None:
            continue
        chance = 0.45 if p.id in asc else 0.1
        if rng.random() < chance:
            loads.setdefault(p.carer_id, "carer")
    for p in population.people:
        if p.age() < 18 and {"learning_disability", "autism"}.intersection(p.conditions):
            for parent_id in p.parent_ids[:1]:
                if rng.random() < 0.3:
                    loads.setdefault(parent_id, "parent-carer")
    return loads


def _police(
    rng: random.Random, population: Population, loads: dict[str, dict[str, str]]
) -> dict[str, str]:
    """A safeguarding subset: children on plans, their parents, adults at risk, victims."""
    cs = loads["WCCCS"]
    police: dict[str, str] = {}
    for p in population.people:
        age = p.age()
        role = cs.get(p.id)
        if role == "child-cp" and rng.random() < 0.8:
            police[p.id] = "child-concern"
        elif role == "parent" and rng.random() < 0.35:
            police[p.id] = "domestic-abuse"
        elif p.homeless and rng.random() < 0.35:
            police[p.id] = "adult-at-risk"
        elif "dementia" in p.conditions and rng.random() < 0.04:
            police[p.id] = "missing-person"
        elif (
            SERIOUS_MENTAL_ILLNESS.intersection(p.conditions) and rng.random() < 0.08
        ):
            police[p.id] = "mental-health"
        elif 18 <= age <= 50 and p.sex.value == "female" and rng.random() < 0.004:
            police[p.id] = "domestic-abuse"
        elif role == "child-cin" and rng.random() < 0.15:
            police[p.id] = "child-concern"
    return police
