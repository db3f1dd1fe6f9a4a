"""SQL search vs the in-memory reference: the same ids, order and total for random worlds
and random queries, with and without an access filter, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records import reference
from joinedup.records.dates import DatePrefix
from joinedup.records.params import SEARCH_PARAMS, Kind
from joinedup.records.query import (
    Criterion,
    DateValue,
    Include,
    Query,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
)
from joinedup.records.search import allowed_pairs
from joinedup.records.store import RecordStore
from joinedup.records.tables import INDEX_TABLES, history, resources
from joinedup.records.writer import PreparedUnit, RecordWriter, WriteContext, prepare
from joinedup.storage.engine import Database

ORGS = ("RWX", "WCCASC")
NAMES = ("Smith", "smyth", "O'Brien", "Zoë", "Smith-Jones", "Åse", "Anne Marie")
GIVEN = ("Anne", "ann", "Bob", "Zoe")
DATES = (
    "1950",
    "1950-03",
    "1950-03-14",
    "1950-03-15",
    "1951-12-31",
    "1950-03-14T10:00:00Z",
    "1950-03-14T23:30:00-02:00",
    "2024-02-01",
)
POSTCODES = ("SO23 1AA", "so231ab", "SO2 3AA", "BH1 1AA")
SYSTEMS = ("http://snomed.info/sct", "http://example.org/local", None)
CODES = ("44054006", "73211009", "x1", "X1")
PATIENT_IDS = tuple(f"p{i}" for i in range(6))


def _coding(system: str | None, code: str) -> dict[str, str]:
    return {"code": code} if system is None else {"system": system, "code": code}


def _labels(category: str) -> dict[str, Any]:
    return {
        "security": [
            {"system": CATEGORY_SYSTEM, "code": category},
            {"system": CONFIDENTIALITY_SYSTEM, "code": "N"},
        ]
    }


@st.composite
def patients(draw: st.DrawFn, pid: str) -> dict[str, Any]:
    r: dict[str, Any] = {"resourceType": "Patient", "id": pid, "meta": _labels("demographics")}
    ids = draw(
        st.lists(
            st.tuples(
                st.sampled_from((NHS_NUMBER_SYSTEM, "urn:local", None)), st.sampled_from(CODES)
            ),
            min_size=1,
            max_size=2,
        )
    )
    if ids:
        r["identifier"] = [{"value": v} if s is None else {"system": s, "value": v} for s, v in ids]
    names = draw(
        st.lists(
            st.tuples(st.sampled_from(NAMES), st.lists(st.sampled_from(GIVEN), max_size=2)),
            min_size=1,
            max_size=2,
        )
    )
    if names:
        r["name"] = [{"family": f, "given": g} for f, g in names]
    if not _rarely(draw):
        r["birthDate"] = draw(st.sampled_from(DATES))
    if not _rarely(draw):
        r["address"] = [
            {"postalCode": p}
            for p in draw(st.lists(st.sampled_from(POSTCODES), min_size=1, max_size=2))
        ]
    if draw(st.booleans()):
        r["gender"] = draw(st.sampled_from(("female", "male")))
    if _rarely(draw):
        r["active"] = draw(st.booleans())
    return r


@st.composite
def conditions(draw: st.DrawFn, cid: str) -> dict[str, Any]:
    category = draw(st.sampled_from(("conditions", "mental-health")))
    r: dict[str, Any] = {"resourceType": "Condition", "id": cid, "meta": _labels(category)}
    if not _rarely(draw):
        r["subject"] = {"reference": f"Patient/{draw(st.sampled_from(PATIENT_IDS))}"}
    codes = draw(
        st.lists(
            st.tuples(st.sampled_from(SYSTEMS), st.sampled_from(CODES)), min_size=1, max_size=2
        )
    )
    if codes:
        r["code"] = {"coding": [_coding(s, c) for s, c in codes]}
    if draw(st.booleans()):
        r["category"] = [{"coding": [_coding(SYSTEMS[0], draw(st.sampled_from(CODES)))]}]
    onset = draw(st.sampled_from(("none", "date", "period", "open")))
    if onset == "date":
        r["onsetDateTime"] = draw(st.sampled_from(DATES))
    elif onset == "period":
        a, b = sorted(draw(st.lists(st.sampled_from(DATES[:5]), min_size=2, max_size=2)))
        r["onsetPeriod"] = {"start": a, "end": b}
    elif onset == "open":
        r["onsetPeriod"] = {"start": draw(st.sampled_from(DATES))}
    if draw(st.booleans()):
        r["clinicalStatus"] = {
            "coding": [_coding(None, draw(st.sampled_from(("active", "resolved"))))]
        }
    if draw(st.booleans()):
        r["recordedDate"] = draw(st.sampled_from(DATES))
    if draw(st.booleans()):
        r["identifier"] = [{"system": "urn:local", "value": draw(st.sampled_from(CODES))}]
    if draw(st.booleans()):
        r["encounter"] = {"reference": f"Encounter/{draw(st.sampled_from(('e1', 'e2')))}"}
    return r


@st.composite
def worlds(draw: st.DrawFn) -> list[tuple[str, int, dict[str, Any]]]:
    """(org, minute the version was written, resource) for a few Patients and Conditions."""
    world = []
    for pid in draw(st.lists(st.sampled_from(PATIENT_IDS), unique=True, min_size=2, max_size=6)):
        world.append((draw(st.sampled_from(ORGS)), draw(st.integers(0, 2)), draw(patients(pid))))
    for i in range(draw(st.integers(1, 6))):
        world.append(
            (draw(st.sampled_from(ORGS)), draw(st.integers(0, 2)), draw(conditions(f"c{i}")))
        )
    for eid in draw(st.lists(st.sampled_from(("e1", "e2")), unique=True, max_size=2)):
        world.append((draw(st.sampled_from(ORGS)), 0, _encounter(eid, draw(st.sampled_from(
            PATIENT_IDS)))))
    return world


def _encounter(eid: str, pid: str) -> dict[str, Any]:
    """An Encounter the Conditions' ``encounter`` can point at (about any patient)."""
    return {
        "resourceType": "Encounter", "id": eid, "meta": _labels("encounters"),
        "status": "finished", "class": {"code": "AMB"},
        "subject": {"reference": f"Patient/{pid}"},
    }


TOKEN_CODES = {
    "gender": ("female", "male"),
    "clinical-status": ("active", "resolved"),
}


def _value(draw: st.DrawFn, kind: Kind, name: str) -> Any:
    if kind is Kind.TOKEN:
        code: str | None = draw(st.sampled_from(TOKEN_CODES.get(name, CODES)))
        pick = draw(st.integers(0, 9))
        system: str | None = None
        if pick == 0:
            system = ""
        elif pick <= 3:
            system = draw(st.sampled_from((NHS_NUMBER_SYSTEM, "urn:local", *SYSTEMS[:2])))
            if pick == 1:
                code = None  # any code in the system
        return TokenValue(code, system)
    if kind is Kind.STRING:
        text = draw(
            st.sampled_from((*NAMES, *GIVEN, *POSTCODES, "sm", "s", "so23", "o'b", "ZO", "jones"))
        )
        return StringValue(text, exact=_rarely(draw))
    if kind is Kind.DATE:
        return DateValue(draw(st.sampled_from(list(DatePrefix))), draw(st.sampled_from(DATES)))
    if kind is Kind.SUBJECT:
        kind_name = draw(st.sampled_from((None, "Patient", "Group"))) if _rarely(draw) else None
        return ReferenceValue(draw(st.sampled_from(PATIENT_IDS)), kind_name)
    return ReferenceValue(
        draw(st.sampled_from(("e1", "e2", "p1"))), draw(st.sampled_from((None, "Encounter")))
    )


SEARCHED = {
    "Patient": sorted(set(SEARCH_PARAMS["Patient"]) - {"general-practitioner"}),
    "Condition": sorted(SEARCH_PARAMS["Condition"]),
}


def _rarely(draw: st.DrawFn) -> bool:
    """True one time in four: for the restrictions that would otherwise empty most results."""
    return draw(st.integers(0, 3)) == 0


@st.composite
def queries(draw: st.DrawFn) -> Query:
    rtype = draw(st.sampled_from(("Patient", "Condition")))
    params = SEARCH_PARAMS[rtype]
    criteria = []
    for name in draw(st.lists(st.sampled_from(SEARCHED[rtype]), min_size=1, max_size=2)):
        p = params[name]
        values = tuple(_value(draw, p.kind, name) for _ in range(draw(st.integers(1, 3))))
        if p.kind is Kind.STRING and not all(v.key(p) for v in values):
            continue
        criteria.append(Criterion(name, values))
    ids: tuple[str, ...] = ()
    if _rarely(draw):
        ids = tuple(draw(st.lists(st.sampled_from((*PATIENT_IDS, "c0", "c1")), max_size=3)))
    updated: tuple[DateValue, ...] = ()
    if _rarely(draw):
        text = draw(st.sampled_from(("2030-01-01T10:01:00Z", "2030-01-01T10:00", "2030-01-01")))
        updated = (DateValue(draw(st.sampled_from(list(DatePrefix))), text),)
    includes: tuple[Include, ...] = ()
    if rtype == "Condition" and draw(st.booleans()):
        includes = tuple(draw(st.lists(st.sampled_from(INCLUDES), min_size=1, max_size=2)))
    return Query(
        rtype,
        tuple(criteria),
        includes=includes,
        ids=ids,
        last_updated=updated,
        active_only=_rarely(draw),
        sort=draw(st.sampled_from(list(Sort))),
        count=draw(st.integers(0, 6)),
        offset=draw(st.integers(0, 2)) if _rarely(draw) else 0,
    )


INCLUDES = (
    Include("subject"),
    Include("patient", "Patient"),
    Include("encounter"),
    Include("*"),
    Include("*", "Encounter"),
)
"""Conditions' includes: their Patient, their Encounter (the worlds hold some), all."""

PAIRS = (
    st.none()
    | st.none()
    | st.frozensets(
        st.tuples(
            st.sampled_from(ORGS),
            st.sampled_from(("demographics", "conditions", "mental-health", "encounters")),
        ),
        min_size=1,
        max_size=4,
    )
)
BASE = datetime(2030, 1, 1, 10, 0, tzinfo=UTC)


def _load(db: Database, world: list[tuple[str, int, dict[str, Any]]]) -> list[reference.Record]:
    with db.engine.begin() as conn:
        for table in (*INDEX_TABLES, history, resources):
            conn.execute(delete(table))
        records = []
        for n, (org, minute, resource) in enumerate(world):
            when = BASE + timedelta(minutes=minute)
            writer = RecordWriter(conn, WriteContext(org, f"feed-{org.lower()}", "b1", when))
            prepared, problems = prepare(resource, allowed_categories=None)
            assert prepared is not None, problems
            writer.write([PreparedUnit(n + 1, f"s{n}", (prepared,))])
            records.append(
                reference.Record(
                    resource,
                    org,
                    prepared.labels.category.value,
                    resource.get("active") is not False,
                    when,
                )
            )
    return records


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(world=worlds(), qs=st.lists(queries(), min_size=1, max_size=6), pairs=PAIRS)
def test_sql_search_equals_the_reference(
    db: Database,
    world: list[tuple[str, int, dict[str, Any]]],
    qs: list[Query],
    pairs: frozenset[tuple[str, str]] | None,
) -> None:
    records = _load(db, world)
    store = RecordStore(db)
    where = allowed_pairs(pairs) if pairs is not None else None
    # Criteria seldom match much: each query with includes is also run with none,
    # so the includes are followed from a full page.
    broad = [Query(q.resource_type, includes=q.includes, count=10) for q in qs if q.includes]
    for q in [*qs, *broad]:
        page = store.search(q, where=where)
        got = (page.total, [(r.resource_type, r.id) for r in page.items])
        assert got == reference.search(records, q, pairs), q
        included = store.included(q, page.items, where=where)
        assert [(r.resource_type, r.id) for r in included] == reference.included(
            records, q, got[1], pairs
        ), q
