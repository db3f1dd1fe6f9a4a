from __future__ import annotations

import random
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from joinedup.demo.contacts import assign_contacts
from joinedup.demo.names import are_nicknames
from joinedup.demo.population import REFERENCE_DATE, build_population
from joinedup.demo.quality import PROFILES, dob_error, nickname_for, source_records, typo

names = st.text(alphabet="abcdefghijklmnopqrstuvwxyz", min_size=3, max_size=12)


def _distance(a: str, b: str) -> int:
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        row = [i]
        for j, cb in enumerate(b, 1):
            row.append(min(previous[j] + 1, row[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = row
    return previous[-1]


@given(names, st.integers(0, 10**6))
def test_a_typo_is_one_or_two_edits_away(name: str, seed: int) -> None:
    wrong = typo(name, random.Random(seed))
    assert _distance(name, wrong) <= 2


@given(st.dates(date(1920, 1, 1), date(2026, 10, 31)), st.integers(0, 10**6))
def test_a_wrong_birth_date_is_never_in_the_future(birth: date, seed: int) -> None:
    wrong, kind = dob_error(birth, random.Random(seed))
    assert wrong < REFERENCE_DATE
    assert kind.startswith("dob-")


def test_nicknames_come_from_the_table() -> None:
    rng = random.Random(1)
    for name in ("Robert", "Margaret", "William", "Elizabeth"):
        alias = nickname_for(name, rng)
        assert alias is not None
        assert alias != name
        assert are_nicknames(name, alias)
    assert nickname_for("Xanthippe", rng) is None


def test_missing_nhs_number_rates_follow_the_profiles() -> None:
    population = build_population(11, 2000)
    everyone = [p.id for p in population.people]
    for org, (low, high) in {"WCCASC": (0.3, 0.4), "WCARERS": (0.76, 0.84), "RWX": (0.0, 0.04)}.items():
        records = source_records(org, everyone, population)
        missing = sum(r.nhs_number is None for r in records) / len(records)
        assert low < missing < high, (org, missing, PROFILES[org].nhs_missing)


def test_each_record_belongs_to_one_person_and_ids_are_unique() -> None:
    population = build_population(12, 600)
    contacts = assign_contacts(population)
    for org, caseload in contacts.caseloads.items():
        records = source_records(org, caseload.person_ids, population)
        assert len({r.source_id for r in records}) == len(records)
        assert {r.person_id for r in records} == set(caseload.person_ids)


def test_overlaps_between_organisations_exist() -> None:
    population = build_population(13, 2000)
    contacts = assign_contacts(population)
    spans = [contacts.orgs_knowing(p.id) for p in population.people]
    assert sum(len(s) >= 3 for s in spans) > 20
    pairs = {frozenset((a, b)) for s in spans for a in s for b in s if a < b}
    for pair in [("RWX", "WCCASC"), ("RWM", "WHOMEHELP"), ("WCCCS", "WPOLICE"),
                 ("J81001", "WCARERS"), ("RWC", "WCCASC")]:
        assert frozenset(pair) in pairs, pair
