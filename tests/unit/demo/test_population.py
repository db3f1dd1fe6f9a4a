from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.demo.places import UK_POSTCODE
from joinedup.demo.population import (
    ETHNIC_CATEGORY_BY_CODE,
    REFERENCE_DATE,
    build_population,
)
from joinedup.nhs_number import is_valid


@pytest.fixture(scope="module")
def population():  # type: ignore[no-untyped-def]
    return build_population(99, 3000)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31), people=st.integers(10, 80))
def test_nhs_numbers_are_valid_unique_and_in_the_test_range(seed: int, people: int) -> None:
    population = build_population(seed, people)
    numbers = [p.nhs_number for p in population.people]
    assert len(set(numbers)) == len(numbers) == people
    for n in numbers:
        assert is_valid(n)
        assert 9990000000 <= int(n) <= 9999999999


def test_same_seed_same_people_other_seed_other_people() -> None:
    assert build_population(3, 200) == build_population(3, 200)
    assert build_population(3, 200).people != build_population(4, 200).people


def test_too_few_people_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 10"):
        build_population(1, 9)


def test_demographics_look_like_a_uk_county(population) -> None:  # type: ignore[no-untyped-def]
    ages = [p.age() for p in population.people]
    assert min(ages) >= 0
    assert max(ages) <= 105
    children = sum(a < 18 for a in ages) / len(ages)
    over_75 = sum(a >= 75 for a in ages) / len(ages)
    assert 0.15 < children < 0.25
    assert 0.05 < over_75 < 0.15
    sexes = Counter(p.sex for p in population.people)
    assert 0.45 < sexes["female"] / len(ages) < 0.57
    assert all(p.ethnic_category in ETHNIC_CATEGORY_BY_CODE for p in population.people)
    assert Counter(p.ethnic_category for p in population.people).most_common(1)[0][0] == "A"
    assert all(p.birth_date < REFERENCE_DATE for p in population.people)


def test_surnames_are_skewed_but_not_absurdly(population) -> None:  # type: ignore[no-untyped-def]
    counts = Counter(p.family_name for p in population.people)
    top_share = counts.most_common(1)[0][1] / len(population)
    assert 0.005 < top_share < 0.05
    assert len(counts) > 300


def test_addresses_have_well_formed_postcodes(population) -> None:  # type: ignore[no-untyped-def]
    for p in population.people:
        for address in ([p.address] if p.address else []) + list(p.previous_addresses):
            assert UK_POSTCODE.match(address.postcode), address.postcode
            assert address.postcode.startswith("WX")
    moved = [p for p in population.people if p.previous_addresses and p.address]
    assert 0.05 < len(moved) / len(population) < 0.25


def test_families_children_live_with_a_parent(population) -> None:  # type: ignore[no-untyped-def]
    children = [p for p in population.people if p.age() < 18]
    with_parent = [c for c in children if c.parent_ids]
    assert len(with_parent) / len(children) > 0.9
    for child in with_parent:
        parent = population[child.parent_ids[0]]
        assert parent.household_id == child.household_id
        assert parent.age() - child.age() >= 17


def test_most_people_are_registered_with_one_of_the_two_practices(population) -> None:  # type: ignore[no-untyped-def]
    practices = Counter(p.gp_practice for p in population.people)
    assert set(practices) <= {"J81001", "J81002", None}
    assert practices[None] / len(population) < 0.05
    homeless = [p for p in population.people if p.homeless]
    assert homeless, "some people have no home"
    assert all(p.address is None or "Hostel" in p.address.line1 or "Shelter" in p.address.line1
               or "Housing" in p.address.line1 for p in homeless)
