"""Online matching: the blocking index finds what Splink's blocking finds."""

from __future__ import annotations

import logging

import pandas as pd
from splink import Linker

from joinedup.people.matching.backends import new_duckdb_api
from joinedup.people.matching.decision import Outcome
from joinedup.people.matching.index import PersonIndex
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import (
    FEATURE_COLUMNS,
    MatchFeatures,
    PersonRecord,
    features_of,
)


def as_features(frame: pd.DataFrame) -> list[MatchFeatures]:
    clean = frame[list(FEATURE_COLUMNS)].astype(object)
    return [
        MatchFeatures(*r)
        for r in clean.where(clean.notna(), None).itertuples(index=False, name=None)
    ]


def test_candidates_are_exactly_splinks_blocked_pairs(
    model: MatchingModel, estate_features: pd.DataFrame
) -> None:
    api = new_duckdb_api(threads=1)
    linker = Linker(api.register(estate_features), model.settings, log_level=logging.ERROR)
    blocked = linker.inference.predict(warning_mode="never").as_pandas_dataframe()
    expected = {
        frozenset(p) for p in zip(blocked["unique_id_l"], blocked["unique_id_r"], strict=True)
    }

    index = PersonIndex.from_frame(model, estate_features)
    ids = estate_features["unique_id"].tolist()
    found = set()
    for features in as_features(estate_features):
        for position in index.candidates(features):
            found.add(frozenset((features.unique_id, ids[position])))
    assert found == expected


def test_a_slightly_different_copy_finds_its_person(
    model: MatchingModel, estate: pd.DataFrame, estate_features: pd.DataFrame
) -> None:
    index = PersonIndex.from_frame(model, estate_features)
    original = estate.iloc[0]
    arriving = PersonRecord(
        "new-1",
        given_names=(original["given_names"],),
        family_name=original["family_name"],
        birth_date=original["birth_date"],
        sex=original["sex"],
        postcode=original["postcode"],
        address_lines=(original["address_lines"],),
    )
    best = index.match(features_of(arriving))[0]
    assert best.unique_id == original["record_id"] or best.unique_id.startswith(
        f"p{original['person']}c"
    )
    assert best.decision.outcome is Outcome.AUTO_LINK


def test_added_records_are_found_and_conflicting_nhs_numbers_never_auto_link(
    model: MatchingModel, estate_features: pd.DataFrame
) -> None:
    index = PersonIndex.from_frame(model, estate_features)
    first = PersonRecord(
        "nhs-a",
        given_names=("Zebedee",),
        family_name="Quartermaine",
        birth_date="1944-02-29",
        postcode="SO16 7AB",
        address_lines=("1 Magic Roundabout",),
        nhs_number="943 476 5919",
    )
    index.add([features_of(first)])
    twin = PersonRecord(
        "nhs-b",
        given_names=("Zebedee",),
        family_name="Quartermaine",
        birth_date="1944-02-29",
        postcode="SO16 7AB",
        address_lines=("1 Magic Roundabout",),
        nhs_number="401 023 2137",
    )
    candidates = index.match(features_of(twin))
    assert candidates[0].unique_id == "nhs-a"
    assert candidates[0].decision.outcome is Outcome.REVIEW
    assert candidates[0].decision.reason == "conflicting NHS numbers"


def test_name_only_record_is_never_auto_linked(
    model: MatchingModel, estate_features: pd.DataFrame
) -> None:
    index = PersonIndex.from_frame(model, estate_features)
    row = estate_features.iloc[0]
    bare = PersonRecord("bare", given_names=(row["given_name"],), family_name=row["family_name"])
    outcomes = {c.decision.outcome for c in index.match(features_of(bare), limit=50)}
    assert Outcome.AUTO_LINK not in outcomes
