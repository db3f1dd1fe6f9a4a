"""Data quality of a batch and of a feed, and redaction of offending values in reports.

Reports are read by integration engineers at the sending organisation and by
the hub's operators, and end up in tickets and e-mails; they must say enough
to fix a problem and no more. So an offending value is shown by its *shape*
(``943 476 5919`` -> ``999 999 9999``; ``12/31/1980`` -> ``99/99/9999``), its
length and, where a year is the point (a date in the future), the year only.
Never a whole NHS number, name, address or date of birth.

Quality is measured on what was accepted, from the canonical resources, so
the same numbers mean the same thing for CSV, FHIR and HL7 v2 feeds.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import asdict, dataclass, fields
from datetime import date
from functools import lru_cache
from typing import Any

from joinedup.nhs_number import NHS_NUMBER_SYSTEM, is_valid
from joinedup.records.dates import date_range

OLDEST_PLAUSIBLE_YEAR = 1900
"""A birth or clinical date before this is reported as implausibly old."""

_DIGIT_RUN = re.compile(r"\d[\d \-/.:]{3,}\d")

_DATE_ELEMENTS: dict[str, tuple[str, ...]] = {
    "Patient": ("birthDate", "deceasedDateTime"),
    "Condition": ("onsetDateTime", "recordedDate", "abatementDateTime"),
    "AllergyIntolerance": ("recordedDate", "onsetDateTime"),
    "Observation": ("effectiveDateTime", "issued"),
    "MedicationStatement": ("effectiveDateTime", "dateAsserted"),
    "Encounter": ("period.start", "period.end"),
    "EpisodeOfCare": ("period.start", "period.end"),
    "CarePlan": ("period.start", "created"),
    "Flag": ("period.start",),
    "CareTeam": ("period.start",),
    "Procedure": ("performedDateTime",),
    "DocumentReference": ("date",),
}
"""Dates that record something that has happened, so cannot be in the future."""


def shape(value: str, limit: int = 24) -> str:
    """Digits as 9, letters as X (x if lower case), everything else kept; capped at ``limit``."""
    out = []
    for ch in value[:limit]:
        if ch.isdigit():
            out.append("9")
        elif ch.isalpha():
            out.append("x" if ch.islower() else "X")
        else:
            out.append(ch)
    return "".join(out) + ("…" if len(value) > limit else "")


def describe(value: str) -> str:
    """A redacted description of an offending value: ``shape 99/99/9999, length 10``."""
    return f"shape {shape(value)}, length {len(value)}"


def scrub(message: str) -> str:
    """Replace runs of digits (NHS numbers, dates, phone numbers) in a message by their shape.

    Adapters are asked to describe values with :func:`describe`; this is the
    safety net so a report never carries one that slipped through.
    """
    return _DIGIT_RUN.sub(lambda m: shape(m.group(0)), message)


@dataclass(slots=True)
class Quality:
    """Counts over accepted units; add two to combine batches or chunks."""

    patients: int = 0
    nhs_number_present: int = 0
    nhs_number_valid: int = 0
    birthdate_present: int = 0
    postcode_present: int = 0
    future_dates: int = 0
    implausibly_old_dates: int = 0
    duplicate_source_ids: int = 0

    def add(self, other: Quality) -> None:
        """Add ``other``'s counts to these (in place: once per unit of a batch)."""
        self.patients += other.patients
        self.nhs_number_present += other.nhs_number_present
        self.nhs_number_valid += other.nhs_number_valid
        self.birthdate_present += other.birthdate_present
        self.postcode_present += other.postcode_present
        self.future_dates += other.future_dates
        self.implausibly_old_dates += other.implausibly_old_dates
        self.duplicate_source_ids += other.duplicate_source_ids

    def __add__(self, other: Quality) -> Quality:
        return Quality(*(getattr(self, f.name) + getattr(other, f.name) for f in fields(self)))

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = asdict(self)
        n = self.patients
        out["completeness"] = {
            "nhs_number": _ratio(self.nhs_number_present, n),
            "nhs_number_valid": _ratio(self.nhs_number_valid, n),
            "birthdate": _ratio(self.birthdate_present, n),
            "postcode": _ratio(self.postcode_present, n),
        }
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Quality:
        return cls(**{f.name: int(data.get(f.name, 0)) for f in fields(cls)})

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (
            type(self),
            (
                self.patients,
                self.nhs_number_present,
                self.nhs_number_valid,
                self.birthdate_present,
                self.postcode_present,
                self.future_dates,
                self.implausibly_old_dates,
                self.duplicate_source_ids,
            ),
        )


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


@dataclass(frozen=True, slots=True)
class Finding:
    """A quality warning about one accepted unit, already redacted."""

    message: str
    location: str


_DATE_PATHS: dict[str, tuple[tuple[str, tuple[str, ...]], ...]] = {
    rtype: tuple((path, tuple(path.split("."))) for path in paths)
    for rtype, paths in _DATE_ELEMENTS.items()
}
"""(path, its parts) of :data:`_DATE_ELEMENTS`, split once."""


def _value(resource: Any, parts: tuple[str, ...]) -> Any:
    node: Any = resource
    for part in parts:
        if not isinstance(node, dict):
            return None
        node = node.get(part)
    return node


def check_resource(
    resource: dict[str, Any], quality: Quality, today: date, where: str = ""
) -> list[Finding]:
    """Update ``quality`` with one accepted resource; return its findings (warnings)."""
    findings: list[Finding] = []
    rtype = str(resource.get("resourceType"))
    if rtype == "Patient":
        quality.patients += 1
        present = False
        bad: str | None = None
        for i in resource.get("identifier") or ():
            if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM:
                present = True
                number = str(i.get("value", ""))
                if bad is None and not is_valid(number):
                    bad = number
        if present:
            quality.nhs_number_present += 1
            if bad is None:
                quality.nhs_number_valid += 1
            else:
                findings.append(
                    Finding(
                        f"NHS number fails the Modulus 11 check ({describe(bad)})",
                        f"{where}Patient.identifier",
                    )
                )
        if resource.get("birthDate"):
            quality.birthdate_present += 1
        for a in resource.get("address") or ():
            if isinstance(a, dict) and a.get("postalCode"):
                quality.postcode_present += 1
                break
    paths = _DATE_PATHS.get(rtype)
    if not paths:
        return findings
    limit_future = _epoch_day_end(today)
    for path, parts in paths:
        value = _value(resource, parts)
        if isinstance(value, str):
            try:
                low, _ = date_range(value)
            except ValueError:
                continue
            year = value[:4]
            if low > limit_future:
                quality.future_dates += 1
                findings.append(
                    Finding(f"date is in the future (year {year})", f"{where}{rtype}.{path}")
                )
            elif int(year) < OLDEST_PLAUSIBLE_YEAR:
                quality.implausibly_old_dates += 1
                findings.append(
                    Finding(
                        f"date is implausibly old (year {year}, before {OLDEST_PLAUSIBLE_YEAR})",
                        f"{where}{rtype}.{path}",
                    )
                )
    return findings


@lru_cache(maxsize=16)
def _epoch_day_end(today: date) -> int:
    return date_range(today.isoformat())[1]


def measure(resources: Iterable[dict[str, Any]], today: date) -> Quality:
    """Quality over stored resources (a feed's current records)."""
    quality = Quality()
    for resource in resources:
        check_resource(resource, quality, today)
    return quality
