"""The Python scorer must give Splink's own match weight for every pair."""

from __future__ import annotations

import logging

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from splink import Linker

from joinedup.people.matching.backends import new_duckdb_api
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import FEATURE_COLUMNS, PersonRecord, features_of
from joinedup.people.matching.scorer import PairScorer, TermFrequencies


def splink_weights(model: MatchingModel, features: pd.DataFrame, cartesian: bool) -> pd.DataFrame:
    settings = model.settings
    if cartesian:
        settings["blocking_rules_to_generate_predictions"] = []
    api = new_duckdb_api(threads=1)
    linker = Linker(api.register(features), settings, log_level=logging.ERROR)
    return linker.inference.predict(warning_mode="never").as_pandas_dataframe()


def python_weights(model: MatchingModel, features: pd.DataFrame, pairs: pd.DataFrame) -> np.ndarray:
    frame = features[list(FEATURE_COLUMNS)].astype(object)
    rows = {r[0]: r for r in frame.where(frame.notna(), None).itertuples(index=False, name=None)}
    scorer = PairScorer(model)
    tf = TermFrequencies.from_rows(list(rows.values()), scorer.tf_columns)
    return np.array(
        [
            scorer.weight(rows[a], rows[b], tf)
            for a, b in zip(pairs["unique_id_l"], pairs["unique_id_r"], strict=True)
        ]
    )


def test_agrees_with_splink_on_every_blocked_pair_of_the_estate(
    model: MatchingModel, estate_features: pd.DataFrame
) -> None:
    pairs = splink_weights(model, estate_features, cartesian=False)
    assert len(pairs) > 1000
    ours = python_weights(model, estate_features, pairs)
    np.testing.assert_allclose(ours, pairs["match_weight"].to_numpy(), rtol=0, atol=1e-9)


# Tiny alphabets so that pairs land on every level: near-miss names, swapped
# names, transposed dates, one-character postcodes, missing values.
GIVEN = ["ANN", "ANNE", "ANA", "A", "BILL", "WILLIAM", "SMITH", "JON", "JOHN", None]
FAMILY = ["SMITH", "SMYTH", "SMITHE", "ANN", "JONES", "JONSE", None]
DOBS = ["19560312", "19561203", "19560313", "19650312", "19560399", "19570101", None]
POSTCODES = [
    ("SO167AB", "SO16 7", "SO16"),
    ("SO167AD", "SO16 7", "SO16"),
    ("SO168ZZ", "SO16 8", "SO16"),
    ("2617", None, None),
    ("2671", None, None),  # two digits swapped
    (None, None, None),
]
STREETS = [
    ("12", "HIGH STREET"),
    ("12", "HIGH STRET"),
    ("14", "HIGH STREET"),
    (None, "MILL LANE"),
    (None, None),
]


@st.composite
def feature_rows(draw: st.DrawFn, uid: int) -> dict[str, object]:
    given_name, family = draw(st.sampled_from(GIVEN)), draw(st.sampled_from(FAMILY))
    dob = draw(st.sampled_from(DOBS))
    postcode, sector, outward = draw(st.sampled_from(POSTCODES))
    number, street = draw(st.sampled_from(STREETS))
    canon = {"BILL": "WILLIAM", "JON": "JOHN"}.get(given_name or "", given_name)
    phon = {"ANN": "AN", "ANNE": "AN", "ANA": "AN", "SMITH": "SM0", "SMYTH": "SM0", "SMITHE": "SM0"}
    return {
        "unique_id": f"u{uid}",
        "given_name": given_name,
        "given_name_canon": canon,
        "given_name_phon": phon.get(given_name or "", given_name),
        "family_name": family,
        "family_name_phon": phon.get(family or "", family),
        "dob": dob,
        "dob_year": dob and dob[:4],
        "dob_month": dob and dob[4:6],
        "dob_day": dob and dob[6:],
        "sex": draw(st.sampled_from(["M", "F", None])),
        "postcode": postcode,
        "postcode_sector": sector,
        "postcode_outward": outward,
        "address_number": number,
        "address_street": street,
        "nhs_number": None,
        "locality": draw(st.sampled_from(["BITTERNE", "BITTERN", "ROMSEY", None])),
        "region": draw(st.sampled_from(["HAMPSHIRE", "DORSET", None])),
    }


@st.composite
def feature_tables(draw: st.DrawFn) -> pd.DataFrame:
    n = draw(st.integers(min_value=2, max_value=14))
    return pd.DataFrame([draw(feature_rows(i)) for i in range(n)]).astype(object)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(feature_tables())
def test_agrees_with_splink_on_generated_tables(model: MatchingModel, table: pd.DataFrame) -> None:
    pairs = splink_weights(model, table, cartesian=True)
    ours = python_weights(model, table, pairs)
    np.testing.assert_allclose(ours, pairs["match_weight"].to_numpy(), rtol=0, atol=1e-9)


def test_explain_sums_to_the_weight(model: MatchingModel, estate_features: pd.DataFrame) -> None:
    frame = estate_features[list(FEATURE_COLUMNS)].astype(object)
    rows = list(frame.where(frame.notna(), None).itertuples(index=False, name=None))
    scorer = PairScorer(model)
    tf = TermFrequencies.from_rows(rows, scorer.tf_columns)
    hits = scorer.explain(rows[0], rows[1], tf)
    assert [h.comparison for h in hits] == list(model.comparison_names)
    total = scorer.prior_weight + sum(h.weight for h in hits)
    assert total == pytest.approx(scorer.weight(rows[0], rows[1], tf))


def test_typos_in_a_street_and_swapped_names_with_typos_reach_their_levels(
    model: MatchingModel,
) -> None:
    """FEBRL-style damage: each pair lands on the level meant for it, with Splink's weight."""

    def person(rid: str, given: str, family: str, postcode: str, line: str) -> PersonRecord:
        return PersonRecord(rid, (given,), family, "19560312", None, postcode, (line,))

    records = [
        person("a", "ZACHARY", "REES", "SO16 7AB", "12 High Street"),
        person("b", "REE", "ZACHAKRY", "SO16 7AB", "12 High Street"),  # swapped, with typos
        person("c", "ANNA", "JONES", "SO16 7AB", "12 High Stret"),  # same number, street typo
        person("d", "ANNA", "JONES", "SO16 7AB", "Hihg Street"),  # no number, street typo
        person("e", "ANNA", "JONES", "SO17 6AB", "40 High Stret"),  # postcode one swap away
    ]
    features = pd.DataFrame([features_of(r) for r in records]).astype(object)
    pairs = splink_weights(model, features, cartesian=True)
    np.testing.assert_allclose(
        python_weights(model, features, pairs), pairs["match_weight"], rtol=0, atol=1e-9
    )
    scorer = PairScorer(model)
    rows = {r[0]: r for r in features.itertuples(index=False, name=None)}

    def level(a: str, b: str, comparison: str) -> str:
        hits = {h.comparison: h.level for h in scorer.explain(rows[a], rows[b])}
        return hits[comparison]

    assert level("a", "b", "given_name") == "names swapped, similar"
    assert level("a", "b", "family_name") == "names swapped, similar (counted on given name)"
    assert level("a", "c", "location") == "same postcode and number, similar street"
    assert level("a", "d", "location") == "same postcode, similar street"
    assert level("a", "e", "location") == (
        "postcode one character different or two swapped, similar street"
    )
