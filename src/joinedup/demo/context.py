"""What every exporter needs: the area, the people, who knows whom, each system's records."""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta

from joinedup.demo.area import Area, Practitioner
from joinedup.demo.contacts import Contacts
from joinedup.demo.output import Output
from joinedup.demo.population import REFERENCE_DATE, Population
from joinedup.demo.quality import SourceRecord

ACTIVITY_START = date(2023, 11, 1)
"""Activity (encounters, assessments, referrals) falls in the three years before REFERENCE_DATE."""

HL7_START = date(2025, 11, 1)
"""The hospital's ADT feed holds the last twelve months."""

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@dataclass(frozen=True, slots=True)
class ExportContext:
    area: Area
    population: Population
    contacts: Contacts
    records: dict[str, list[SourceRecord]]
    out: Output
    carer_of: dict[str, str]
    """Unpaid carer's person id -> the person they care for (first found)."""

    @property
    def seed(self) -> int:
        return self.population.seed

    def rng(self, stream: str) -> random.Random:
        return random.Random(f"{self.seed}:export:{stream}")

    def staff(self, team_code: str) -> Sequence[Practitioner]:
        org_code = team_code.split("-")[0]
        return self.area.org(org_code).practitioners_in(team_code)

    def records_by_person(self, org_code: str) -> dict[str, list[SourceRecord]]:
        grouped: dict[str, list[SourceRecord]] = {}
        for record in self.records[org_code]:
            grouped.setdefault(record.person_id, []).append(record)
        return grouped


def random_date(rng: random.Random, start: date, end: date) -> date:
    """A day in [start, end)."""
    span = (end - start).days
    return start + timedelta(days=rng.randrange(max(span, 1)))


def random_datetime(rng: random.Random, day: date) -> datetime:
    return datetime.combine(day, time(rng.randrange(24), rng.randrange(60)))


def activity_date(rng: random.Random, not_before: date | None = None) -> date:
    start = max(ACTIVITY_START, not_before or ACTIVITY_START)
    return random_date(rng, start, REFERENCE_DATE)


def dmy(d: date | None) -> str:
    """dd/mm/yyyy, as council systems export dates."""
    return "" if d is None else d.strftime("%d/%m/%Y")


def d_m_yy(d: date | None) -> str:
    """d/m/yy without leading zeros: a spreadsheet's short date."""
    return "" if d is None else f"{d.day}/{d.month}/{d.year % 100:02d}"


def d_mon_yyyy(d: date | None) -> str:
    """"12 Mar 1950": the carers' charity database's display format."""
    return "" if d is None else f"{d.day} {_MONTHS[d.month - 1]} {d.year}"


def iso(d: date | None) -> str:
    return "" if d is None else d.isoformat()
