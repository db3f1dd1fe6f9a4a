"""Feed specs (joinedup.sources.feeds): validated on construction, every problem at once."""

from __future__ import annotations

from pathlib import Path

import pytest

from joinedup.errors import InvalidInput
from joinedup.sources.feeds import FeedSpec, MissingPolicy, RefreshMode, read_spec
from joinedup.validation import parse


def test_defaults() -> None:
    spec = FeedSpec.model_validate(
        {"id": "rwx-fhir", "org": "RWX", "format": "fhir", "categories": ["demographics"]}
    )
    assert (spec.refresh, spec.missing_policy, spec.partial_policy.value) == (
        RefreshMode.INCREMENTAL,
        MissingPolicy.KEEP,
        "partial",
    )


def test_every_field_problem_is_reported() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(
            FeedSpec,
            {
                "id": "Bad Id",
                "org": "x",
                "format": "xml",
                "categories": ["demographics", "demographics"],
            },
            what="feed",
        )
    assert [p.location for p in caught.value.problems] == ["id", "org", "format", "categories"]


def test_policies_must_make_sense_together() -> None:
    with pytest.raises(InvalidInput) as caught:
        parse(
            FeedSpec,
            {
                "id": "wccasc-persons",
                "org": "WCCASC",
                "format": "csv",
                "categories": ["demographics"],
                "missing_policy": "mark-inactive",
            },
            what="feed",
        )
    message = caught.value.problems[0].message
    assert "a csv feed needs a mapping file" in message
    assert "mark-inactive needs refresh: full" in message


def test_a_feed_file_names_its_mapping_relative_to_itself(tmp_path: Path) -> None:
    (tmp_path / "feeds").mkdir()
    path = tmp_path / "feeds" / "persons.yaml"
    path.write_text(
        "id: wccasc-persons\norg: WCCASC\nformat: csv\ncategories: [demographics]\n"
        "mapping: ../mappings/persons.yaml\nrefresh: full\n",
        encoding="utf-8",
    )
    spec = read_spec(path)
    assert spec.mapping == str((tmp_path / "mappings" / "persons.yaml").resolve())
    path.write_text("- not a mapping\n", encoding="utf-8")
    with pytest.raises(InvalidInput):
        read_spec(path)
