"""HTTP Range headers to plaintext offsets (RFC 9110), checked against a plain model."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.documents.errors import RangeNotSatisfiable
from joinedup.documents.ranges import content_range, parse_range


@pytest.mark.parametrize(
    ("header", "size", "expected"),
    [
        (None, 100, None),
        ("bytes=0-9", 100, (0, 10)),
        ("bytes=90-", 100, (90, 100)),
        ("bytes=90-500", 100, (90, 100)),
        ("bytes=-10", 100, (90, 100)),
        ("bytes=-500", 100, (0, 100)),
        ("BYTES = 5 - 5", 100, (5, 6)),
        ("bytes=0-0,5-9", 100, None),  # multi-range: send it all
        ("bytes=9-2", 100, None),  # invalid: ignored
        ("items=0-9", 100, None),
        ("bytes=-", 100, None),
    ],
)
def test_ranges(header: str | None, size: int, expected: tuple[int, int] | None) -> None:
    assert parse_range(header, size) == expected


@pytest.mark.parametrize(
    ("header", "size"), [("bytes=100-", 100), ("bytes=-0", 100), ("bytes=0-", 0), ("bytes=-5", 0)]
)
def test_unsatisfiable(header: str, size: int) -> None:
    with pytest.raises(RangeNotSatisfiable) as caught:
        parse_range(header, size)
    assert caught.value.status == 416
    assert f"*/{size}" in caught.value.problems[0].message


@given(st.integers(0, 1000), st.integers(0, 1200), st.integers(0, 1200))
def test_slice_agrees_with_the_rfc_model(size: int, first: int, last: int) -> None:
    data = bytes(range(256)) * 4
    data = data[:size]
    header = f"bytes={first}-{last}"
    if last < first:
        assert parse_range(header, size) is None
        return
    if first >= size:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, size)
        return
    got = parse_range(header, size)
    assert got is not None
    start, stop = got
    assert data[start:stop] == data[first : last + 1]
    assert content_range(start, stop, size) == f"bytes {first}-{min(last, size - 1)}/{size}"
