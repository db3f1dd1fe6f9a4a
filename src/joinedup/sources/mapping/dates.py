"""Date formats a feed declares, compiled to regular expressions once.

Exports write dates every way: ``31/01/1980``, ``01/31/1980``, ``19800131``,
``31-JAN-80``, ``1980-01-31T09:30``. A feed declares the formats it uses
(``dd/mm/yyyy``...) and the mapping refuses a list that contains two readings
of the same shape (``dd/mm/yyyy`` with ``mm/dd/yyyy``): which one a value
means cannot be guessed, so it must be declared. Parsing is a regex match and
a ``date()`` call, cheap enough for every row; ``strptime`` is several times
slower and cannot express a two-digit-year pivot.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time
from zoneinfo import ZoneInfo

_TOKENS = (
    ("yyyy", "year", r"(?P<year>\d{4})"),
    ("yy", "year2", r"(?P<year2>\d{2})"),
    ("mon", "monname", r"(?P<monname>[A-Za-z]{3})"),
    ("mm", "month", r"(?P<month>\d{2})"),
    ("m", "month", r"(?P<month>\d{1,2})"),
    ("dd", "day", r"(?P<day>\d{2})"),
    ("d", "day", r"(?P<day>\d{1,2})"),
    ("HH", "hour", r"(?P<hour>\d{2})"),
    ("MI", "minute", r"(?P<minute>\d{2})"),
    ("SS", "second", r"(?P<second>\d{2})"),
)
_MONTHS = {
    name: n
    for n, name in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"),
        start=1,
    )
}
ISO = "iso"
"""The format name for ISO 8601 dates and date-times (``1980-01-31``, ``1980-01-31T09:30:00Z``)."""


@dataclass(frozen=True, slots=True)
class DateFormat:
    text: str
    regex: re.Pattern[str]
    fields: tuple[str, ...]
    """Field kinds in order of appearance (``day``, ``month``, ``year``...)."""
    skeleton: str
    """The format with day and month tokens blanked, to find ambiguous pairs."""

    @property
    def has_time(self) -> bool:
        return "hour" in self.fields or self.text == ISO

    @property
    def two_digit_year(self) -> bool:
        return "year2" in self.fields


def compile_format(text: str) -> DateFormat:
    """Compile a declared format or raise ValueError saying what is wrong with it."""
    if text == ISO:
        return DateFormat(ISO, re.compile(""), (), ISO)
    pattern, fields, skeleton, i = "", [], "", 0
    while i < len(text):
        for token, kind, regex in _TOKENS:
            if text.startswith(token, i):
                if kind in fields or (kind == "year2" and "year" in fields):
                    raise ValueError(f"date format {text!r} repeats {token!r}")
                pattern += regex
                fields.append(kind)
                skeleton += "X" if kind in ("day", "month") else f"<{token}>"
                i += len(token)
                break
        else:
            pattern += re.escape(text[i])
            skeleton += text[i]
            i += 1
    missing = [k for k in ("day", "month") if k not in fields]
    if "monname" in fields and "month" not in fields:
        missing = [k for k in missing if k != "month"]
    if "year" not in fields and "year2" not in fields:
        missing.append("year")
    if missing:
        raise ValueError(f"date format {text!r} has no {' or '.join(missing)}")
    return DateFormat(text, re.compile(pattern + r"\Z"), tuple(fields), skeleton)


def ambiguous_pairs(formats: tuple[DateFormat, ...]) -> list[tuple[str, str]]:
    """Pairs of formats that read the same text as different dates (``dd/mm`` vs ``mm/dd``)."""
    pairs = []
    for i, a in enumerate(formats):
        for b in formats[i + 1 :]:
            order_a = [f for f in a.fields if f in ("day", "month")]
            order_b = [f for f in b.fields if f in ("day", "month")]
            if a.skeleton == b.skeleton and order_a != order_b:
                pairs.append((a.text, b.text))
    return pairs


class DateParser:
    """Reads a value with the first declared format that matches."""

    def __init__(
        self, formats: tuple[DateFormat, ...], pivot: int | None, zone: ZoneInfo | None
    ) -> None:
        self._formats = formats
        self._pivot = pivot
        self._zone = zone
        self.describe = " or ".join(f.text for f in formats)

    def parse(self, value: str) -> date | datetime:
        """The date (or date-time) ``value`` means; ValueError naming the formats otherwise."""
        for fmt in self._formats:
            if fmt.text == ISO:
                found = self._iso(value)
                if found is not None:
                    return found
                continue
            match = fmt.regex.match(value)
            if match is None:
                continue
            parts = match.groupdict()
            year = self._year(parts)
            month = int(parts["month"]) if "month" in parts else _MONTHS.get(parts["monname"].lower(), 0)
            try:
                day = date(year, month, int(parts["day"]))
                if "hour" not in parts:
                    return day
                moment = datetime.combine(
                    day,
                    time(int(parts["hour"]), int(parts.get("minute") or 0), int(parts.get("second") or 0)),
                )
            except ValueError as exc:
                raise ValueError(f"not a real date ({exc})") from None
            return moment.replace(tzinfo=self._zone) if self._zone else moment
        raise ValueError(f"does not match {self.describe}")

    def _year(self, parts: dict[str, str]) -> int:
        if "year" in parts:
            return int(parts["year"])
        two = int(parts["year2"])
        pivot = self._pivot if self._pivot is not None else 0
        return 2000 + two if two <= pivot else 1900 + two

    def _iso(self, value: str) -> date | datetime | None:
        try:
            if len(value) == 10:
                return date.fromisoformat(value)
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
        if moment.tzinfo is None and self._zone is not None:
            moment = moment.replace(tzinfo=self._zone)
        return moment
