"""FHIR dates as ranges, and the search prefixes on them."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.records.dates import (
    MAX_TS,
    MIN_TS,
    DatePrefix,
    date_range,
    instant,
    matches,
    period_range,
)


def ts(*args: int) -> int:
    return int(datetime(*args, tzinfo=UTC).timestamp())  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("1980", ts(1980, 1, 1), ts(1980, 12, 31, 23, 59, 59)),
        ("1980-02", ts(1980, 2, 1), ts(1980, 2, 29, 23, 59, 59)),  # leap year
        ("1980-05-12", ts(1980, 5, 12), ts(1980, 5, 12, 23, 59, 59)),
        ("1980-05-12T10:30", ts(1980, 5, 12, 10, 30), ts(1980, 5, 12, 10, 30, 59)),
        ("1980-05-12T10:30:15Z", ts(1980, 5, 12, 10, 30, 15), ts(1980, 5, 12, 10, 30, 15)),
        ("1980-05-12T10:30:15.123+01:00", ts(1980, 5, 12, 9, 30, 15), ts(1980, 5, 12, 9, 30, 15)),
        ("1899-12-31", ts(1899, 12, 31), ts(1899, 12, 31, 23, 59, 59)),
    ],
)
def test_a_date_is_as_wide_as_its_precision(text: str, low: int, high: int) -> None:
    assert date_range(text) == (low, high)


@pytest.mark.parametrize(
    "text", ["", "80", "12/05/1980", "1980-13", "1980-02-30", "1980-05-12T25:00", "soon"]
)
def test_not_a_fhir_date(text: str) -> None:
    with pytest.raises(ValueError):
        date_range(text)


def test_periods_without_an_end_are_ongoing() -> None:
    assert period_range({"start": "2024"}) == (ts(2024, 1, 1), MAX_TS)
    assert period_range({"end": "2024"}) == (MIN_TS, ts(2024, 12, 31, 23, 59, 59))
    assert period_range({}) is None


DAY = date_range("2024-03-10")
# (prefix, target, expected): decision table from FHIR R4 3.1.1.4.1.2, search value 2024-03-10
TABLE = [
    (DatePrefix.EQ, "2024-03-10T09:00:00Z", True),
    (DatePrefix.EQ, "2024-03", False),  # wider than the search day
    (DatePrefix.NE, "2024-03", True),
    (DatePrefix.GT, "2024-03-11", True),
    (DatePrefix.GT, "2024-03", True),  # the month reaches past the day
    (DatePrefix.GT, "2024-03-10T23:00:00Z", False),
    (DatePrefix.LT, "2024-03-09", True),
    (DatePrefix.LT, "2024-03-10T00:30:00Z", False),
    (DatePrefix.GE, "2024-03-10T12:00:00Z", True),
    (DatePrefix.GE, "2024-03-09", False),
    (DatePrefix.LE, "2024-03-10T12:00:00Z", True),
    (DatePrefix.LE, "2024-03-11", False),
    (DatePrefix.SA, "2024-03-11", True),
    (DatePrefix.SA, "2024-03", False),
    (DatePrefix.EB, "2024-03-09", True),
    (DatePrefix.EB, "2024-03", False),
]


@pytest.mark.parametrize(("prefix", "target", "expected"), TABLE)
def test_search_prefixes(prefix: DatePrefix, target: str, expected: bool) -> None:
    assert matches(prefix, date_range(target), DAY) is expected


@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30)))
def test_a_day_contains_each_of_its_moments(moment: datetime) -> None:
    low, high = date_range(moment.date().isoformat())
    second = date_range(moment.replace(microsecond=0).isoformat() + "Z")
    assert low <= second[0] <= second[1] <= high
    assert matches(DatePrefix.EQ, second, (low, high))


def test_instants_have_milliseconds_and_z() -> None:
    assert (
        instant(datetime(2026, 11, 22, 10, 0, 0, 123456, tzinfo=UTC)) == "2026-11-22T10:00:00.123Z"
    )
