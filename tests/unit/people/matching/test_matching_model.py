from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.people.matching.model import FORMAT_VERSION, MatchingModel, ModelFileError
from joinedup.people.matching.training import decontaminated_u


def test_round_trip_through_a_file(model: MatchingModel, tmp_path: Path) -> None:
    path = tmp_path / "model.json"
    model.save(path)
    loaded = MatchingModel.load(path)
    assert loaded == model
    assert loaded.to_json() == model.to_json()


def test_envelope_records_versions_seed_and_thresholds(model: MatchingModel) -> None:
    data = json.loads(model.to_json())
    assert data["format"] == "joinedup.matching-model"
    assert data["format_version"] == FORMAT_VERSION
    assert data["seed"] == 11
    assert data["splink_version"].startswith("5.")
    assert data["thresholds"] == {"auto_link": 0.99, "review": 0.5}
    assert data["splink_settings"]["link_type"] == "dedupe_only"


def test_settings_cannot_be_changed_through_the_model(model: MatchingModel) -> None:
    settings = model.settings
    settings["probability_two_random_records_match"] = 0.5
    assert model.settings["probability_two_random_records_match"] != 0.5


def _tampered(model: MatchingModel, change) -> str:  # type: ignore[no-untyped-def]
    data = json.loads(model.to_json())
    change(data)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("change", "location"),
    [
        (lambda d: d.update(format="something.else"), "format"),
        (lambda d: d.update(format_version=FORMAT_VERSION + 1), "format_version"),
        (lambda d: d.update(splink_version="4.0.8"), "splink_version"),
        (lambda d: d.update(trained_at="yesterday"), "trained_at"),
        (lambda d: d.update(seed=-1), "seed"),
        (lambda d: d["thresholds"].update(auto_link=2), "thresholds"),
        (
            lambda d: d["splink_settings"]["comparisons"][0]["comparison_levels"][1].update(
                sql_condition="1 = 1"
            ),
            "comparisons[0].comparison_levels[1].sql_condition",
        ),
        (
            lambda d: d["splink_settings"]["comparisons"][0]["comparison_levels"][2].pop(
                "m_probability"
            ),
            "comparison_levels[2].m_probability",
        ),
        (
            lambda d: d["splink_settings"]["comparisons"].append(
                {"output_column_name": "shoe_size"}
            ),
            "splink_settings.comparisons",
        ),
        (
            lambda d: d["splink_settings"]["blocking_rules_to_generate_predictions"].append(
                {"blocking_rule": "1 = 1"}
            ),
            "blocking_rules_to_generate_predictions",
        ),
    ],
)
def test_incompatible_files_are_refused_naming_the_problem(model, change, location) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ModelFileError) as info:
        MatchingModel.from_json(_tampered(model, change))
    assert any(location in p.location for p in info.value.problems), info.value.problems


def test_every_problem_is_reported_at_once(model: MatchingModel) -> None:
    def break_three(d: dict) -> None:
        d.update(format_version=99, seed="x")
        d["splink_settings"]["link_type"] = "merge_all"

    with pytest.raises(ModelFileError) as info:
        MatchingModel.from_json(_tampered(model, break_three))
    locations = {p.location for p in info.value.problems}
    assert {"format_version", "seed", "splink_settings.link_type"} <= locations


@pytest.mark.parametrize("text", ["", "{", "[]", "null", b"\xff\xfe"])
def test_corrupt_files_are_refused(text: str | bytes) -> None:
    with pytest.raises(ModelFileError, match="matching model"):
        MatchingModel.from_json(text)


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ModelFileError, match="cannot be read"):
        MatchingModel.load(tmp_path / "absent.json")


def test_training_is_reproducible_from_the_seed(
    estate_features: pd.DataFrame, model: MatchingModel, retrain
) -> None:  # type: ignore[no-untyped-def]
    again = retrain([estate_features])
    assert again.to_json() == model.to_json()


def test_training_leaves_out_comparisons_with_no_data(model: MatchingModel) -> None:
    # The small estate has no NHS numbers at all.
    assert "nhs_number" not in model.comparison_names
    assert model.summary["comparisons_left_out"] == ["nhs_number"]


@given(
    u=st.floats(1e-6, 0.5),
    m=st.floats(1e-3, 1.0),
    prior=st.floats(1e-6, 1e-2),
)
def test_u_correction_recovers_the_non_match_rate(u: float, m: float, prior: float) -> None:
    # A random sample's rate mixes matches (prior * m) into the non-matches' u.
    sampled = prior * m + (1 - prior) * u
    assert decontaminated_u(sampled, m, prior, sampled_pairs=1e7) == pytest.approx(u, rel=1e-6)


def test_u_correction_stops_at_one_pair_in_the_sample() -> None:
    # Every sampled agreement explained by matches: the sample cannot tell u
    # below one pair, so that is what is kept, never zero or less.
    assert decontaminated_u(2e-5, 0.5, 4e-5, sampled_pairs=1e6) == pytest.approx(1e-6)
    # And a rate already below one pair is left as it was.
    assert decontaminated_u(1e-8, 0.5, 4e-5, sampled_pairs=1e6) == pytest.approx(1e-8)


def test_the_prior_is_recorded_with_the_rules_estimate_beside_it(model: MatchingModel) -> None:
    summary = json.loads(model.summary_json)
    settings = json.loads(model.settings_json)
    assert summary["prior"] == settings["probability_two_random_records_match"]
    assert 0 < summary["prior"] < 1
    assert 0 < summary["prior_from_rules"] < 1
