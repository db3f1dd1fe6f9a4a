"""Report output: JSON shape and CSV that spreadsheets cannot run as formulas."""

from __future__ import annotations

import csv
import io

import pytest

from joinedup.audit.reports import Report, check_range
from joinedup.errors import InvalidInput
from tests.unit.audit.factory import T0


def test_csv_has_header_and_neutralises_formulas() -> None:
    report = Report("break-glass", T0, T0.replace(day=2), ("seq", "reason", "persons", "when"),
                    ({"seq": 1, "reason": "=HYPERLINK(\"x\")", "persons": ["P-1", "P-2"],
                      "when": T0},))
    rows = list(csv.reader(io.StringIO(report.to_csv())))
    assert rows[0] == ["seq", "reason", "persons", "when"]
    assert rows[1] == ["1", "'=HYPERLINK(\"x\")", "P-1;P-2", "2026-03-01T09:00:00.000000Z"]
    assert report.as_dict()["from"] == "2026-03-01T09:00:00.000000Z"


def test_a_range_must_run_forwards_with_zones() -> None:
    with pytest.raises(InvalidInput) as caught:
        check_range(T0, T0)
    assert caught.value.problems[0].location == "to"
    with pytest.raises(InvalidInput):
        check_range(T0.replace(tzinfo=None), T0)
