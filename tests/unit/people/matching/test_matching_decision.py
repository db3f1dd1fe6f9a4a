from __future__ import annotations

import duckdb
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.people.matching.batch import outcome_sql
from joinedup.people.matching.decision import (
    NhsTier,
    Outcome,
    Thresholds,
    decide,
    nhs_tier,
    probability_to_weight,
    weight_to_probability,
)
from joinedup.people.matching.normalise import FEATURE_COLUMNS, MatchFeatures

A, B = "9434765919", "4010232137"
THRESHOLDS = Thresholds()


def person(uid: str, **values: object) -> MatchFeatures:
    base: dict[str, object] = {c: None for c in FEATURE_COLUMNS}
    base.update(
        unique_id=uid, given_name="ANN", family_name="SMITH", dob="19560312", postcode="SO167AB"
    )
    base.update(values)
    return MatchFeatures(**base)  # type: ignore[arg-type]


def test_nhs_tiers() -> None:
    assert nhs_tier(A, A) is NhsTier.SAME
    assert nhs_tier(A, B) is NhsTier.CONFLICT
    assert nhs_tier(A, None) is NhsTier.UNDECIDED
    assert nhs_tier(None, None) is NhsTier.UNDECIDED


@pytest.mark.parametrize(
    ("left", "right", "p", "outcome", "reason"),
    [
        ({"nhs_number": A}, {"nhs_number": A}, None, Outcome.AUTO_LINK, "same valid NHS number"),
        ({"nhs_number": A}, {"nhs_number": A}, 0.0001, Outcome.AUTO_LINK, "same valid NHS number"),
        ({"nhs_number": A}, {"nhs_number": B}, 1.0, Outcome.REVIEW, "conflicting NHS numbers"),
        ({"nhs_number": A}, {"nhs_number": B}, 0.1, Outcome.NEW_PERSON, "conflicting NHS numbers"),
        ({"nhs_number": A}, {}, 0.995, Outcome.AUTO_LINK, "model score"),
        ({}, {}, 0.7, Outcome.REVIEW, "model score uncertain"),
        ({}, {}, 0.2, Outcome.NEW_PERSON, "model score low"),
        ({"dob": None, "postcode": None}, {}, 0.9999, Outcome.REVIEW, "only names to compare"),
    ],
)
def test_decision_table(
    left: dict, right: dict, p: float | None, outcome: Outcome, reason: str
) -> None:
    decision = decide(person("l", **left), person("r", **right), p, THRESHOLDS)
    assert (decision.outcome, decision.reason) == (outcome, reason)


def test_name_only_records_never_auto_link() -> None:
    bare = {"dob": None, "postcode": None, "address_street": None}
    for p in (0.99, 0.999999, 1.0):
        assert (
            decide(person("l", **bare), person("r", **bare), p, THRESHOLDS).outcome
            is not Outcome.AUTO_LINK
        )


@given(st.floats(min_value=0.0, max_value=1.0))
def test_different_valid_nhs_numbers_never_auto_link(p: float) -> None:
    outcome = decide(person("l", nhs_number=A), person("r", nhs_number=B), p, THRESHOLDS).outcome
    assert outcome is not Outcome.AUTO_LINK


def test_thresholds_are_validated_together() -> None:
    with pytest.raises(ValueError, match="auto_link") as info:
        Thresholds(auto_link=1.5, review=0.0)
    assert "review" in str(info.value)
    with pytest.raises(ValueError, match="not be above"):
        Thresholds(auto_link=0.6, review=0.9)


@given(st.floats(min_value=-30, max_value=30))
def test_weight_probability_round_trip(w: float) -> None:
    p = weight_to_probability(w)
    if 1e-12 < p < 1 - 1e-12:
        assert probability_to_weight(p) == pytest.approx(w, abs=1e-4)


value = st.sampled_from([None, "X"])
side = st.fixed_dictionaries(
    {
        "nhs_number": st.sampled_from([None, A, B]),
        "dob": value,
        "postcode": value,
        "address_street": value,
    }
)


@settings(max_examples=60, deadline=None)
@given(side, side, st.sampled_from([0.0, 0.3, 0.5, 0.7, 0.99, 0.995, 1.0]))
def test_batch_sql_outcome_agrees_with_decide(left: dict, right: dict, p: float) -> None:
    expected = decide(person("l", **left), person("r", **right), p, THRESHOLDS).outcome
    con = duckdb.connect()
    rows = pd.DataFrame([{"side": "l", **left}, {"side": "r", **right}]).astype(object)
    con.register("rows", rows)
    sql = f"""
        SELECT {outcome_sql(THRESHOLDS.auto_link, THRESHOLDS.review)} AS outcome
        FROM (SELECT {p}::DOUBLE AS match_probability) p,
             (SELECT * FROM rows WHERE side = 'l') l, (SELECT * FROM rows WHERE side = 'r') r
    """
    assert con.execute(sql).fetchone()[0] == expected.value
