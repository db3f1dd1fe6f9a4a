"""Steward charts: written as HTML or PNG from what is in the index."""

from __future__ import annotations

from pathlib import Path

import pytest

from joinedup.errors import InvalidInput
from joinedup.people.charts import waterfall, weight_distribution
from joinedup.people.index import PersonIndex
from joinedup.storage.engine import Database
from tests.integration.people.test_person_index import FieldMatcher, person


def test_distribution_and_waterfall(db: Database, tmp_path: Path) -> None:
    index = PersonIndex(db, FieldMatcher())
    index.link_one(person("A/1"), "RWX")
    index.link_one(person("B/1"), "WCCASC")
    c = index.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS")
    assert c.review_pair is not None
    html = weight_distribution(db, tmp_path / "weights.html").read_text()
    assert "vega" in html.lower()
    assert "review (open)" in html
    png = waterfall(index.pair(c.review_pair), tmp_path / "pair.png").read_bytes()
    assert png.startswith(b"\x89PNG")
    with pytest.raises(InvalidInput):
        weight_distribution(db, tmp_path / "weights.pdf")
