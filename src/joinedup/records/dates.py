"""FHIR dates as closed ranges of epoch seconds, for indexing and date search.

A FHIR ``date``/``dateTime``/``instant`` is as precise as it is written:
``1980`` means the whole year, ``1980-05-12`` the whole day, a dateTime with
seconds one second. Storing each value as ``[low, high]`` (both inclusive,
whole seconds, UTC) lets the SQL index and the in-memory reference apply the
FHIR search prefixes to plain integers in exactly the same way. Fractions of
a second are dropped; a value without a time zone is taken as UTC.
"""

from __future__ import annotations

import calendar
import re
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from functools import lru_cache

MIN_TS = -62135596800
"""0001-01-01T00:00:00Z: the low end of a period with no start."""
MAX_TS = 253402300799
"""9999-12-31T23:59:59Z: the high end of an ongoing period."""

_DATE = re.compile(
    r"^(?P<y>\d{4})(?:-(?P<m>\d{2})(?:-(?P<d>\d{2})"
    r"(?:T(?P<H>\d{2}):(?P<M>\d{2})(?::(?P<S>\d{2})(?:\.\d+)?)?"
    r"(?P<tz>Z|[+-]\d{2}:\d{2})?)?)?)?$"
)


class DatePrefix(StrEnum):
    """FHIR search prefixes for dates (R4 3.1.1.4.1.2)."""

    EQ = "eq"
    NE = "ne"
    LT = "lt"
    GT = "gt"
    LE = "le"
    GE = "ge"
    SA = "sa"
    EB = "eb"


def _epoch(dt: datetime) -> int:
    return calendar.timegm(dt.utctimetuple())


@lru_cache(maxsize=65536)
def date_range(text: str) -> tuple[int, int]:
    """``text`` as an inclusive ``(low, high)`` in epoch seconds; ValueError if not a FHIR date.

    Cached (bounded): a batch of people repeats the same birth dates thousands of times.
    """
    m = _DATE.match(text.strip())
    if m is None:
        raise ValueError(
            "not a FHIR date or dateTime (expected YYYY, YYYY-MM, YYYY-MM-DD[Thh:mm[:ss]])"
        )
    year = int(m["y"])
    if year < 1:
        raise ValueError("year must be 0001 or later")
    if m["m"] is None:
        start = datetime(year, 1, 1, tzinfo=UTC)
        return _epoch(start), _epoch(datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC))
    month = int(m["m"])
    if m["d"] is None:
        last = calendar.monthrange(year, month)[1] if 1 <= month <= 12 else 0
        start = datetime(year, month, 1, tzinfo=UTC)  # raises for a bad month
        return _epoch(start), _epoch(datetime(year, month, last, 23, 59, 59, tzinfo=UTC))
    day = datetime(year, month, int(m["d"]), tzinfo=UTC)
    if m["H"] is None:
        return _epoch(day), _epoch(day) + 86399
    moment = day.replace(hour=int(m["H"]), minute=int(m["M"]), second=int(m["S"] or 0))
    if m["tz"] and m["tz"] != "Z":
        sign = 1 if m["tz"][0] == "+" else -1
        hours, minutes = int(m["tz"][1:3]), int(m["tz"][4:6])
        moment -= sign * timedelta(hours=hours, minutes=minutes)
    low = _epoch(moment)
    return low, low + (0 if m["S"] is not None else 59)


def period_range(period: dict[str, object]) -> tuple[int, int] | None:
    """A FHIR Period as a range: no start means the beginning of time, no end means ongoing."""
    start, end = period.get("start"), period.get("end")
    if start is None and end is None:
        return None
    low = date_range(start)[0] if isinstance(start, str) else MIN_TS
    high = date_range(end)[1] if isinstance(end, str) else MAX_TS
    return low, high


def matches(prefix: DatePrefix, target: tuple[int, int], search: tuple[int, int]) -> bool:
    """Whether a target range satisfies ``prefix`` + search range; the reference semantics.

    Written straight from the FHIR R4 definitions; :mod:`joinedup.records.search`
    compiles the same conditions to SQL, and a property test holds the two equal.
    """
    t_low, t_high = target
    s_low, s_high = search
    contained = t_low >= s_low and t_high <= s_high
    if prefix is DatePrefix.EQ:
        return contained
    if prefix is DatePrefix.NE:
        return not contained
    if prefix is DatePrefix.GT:
        return t_high > s_high
    if prefix is DatePrefix.LT:
        return t_low < s_low
    if prefix is DatePrefix.GE:
        return t_high > s_high or contained
    if prefix is DatePrefix.LE:
        return t_low < s_low or contained
    if prefix is DatePrefix.SA:
        return t_low > s_high
    return t_high < s_low  # EB


def instant(dt: datetime) -> str:
    """A UTC datetime as a FHIR instant with millisecond precision."""
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
