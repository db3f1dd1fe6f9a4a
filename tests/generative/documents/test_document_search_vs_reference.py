"""ITI-67 in SQL against a plain in-memory reference of FHIR search semantics.

Random documents (types, authors, events, dates, context periods with open ends)
and random searches (token and reference alternatives, repeated parameters, every
date prefix and precision, statuses, an access filter): the registry's SQL must
find exactly what the reference finds, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Table, insert

from joinedup.documents.index import document_tokens
from joinedup.documents.models import documents, search_tokens
from joinedup.documents.query import DateMatch, DocumentSearch, Patient, parse_date, parse_token
from joinedup.documents.registry import DocumentRegistry
from joinedup.storage.engine import Database

SYSTEMS = ["http://loinc.org", "http://snomed.info/sct", ""]
CODES = ["a", "b", "c"]
ORGS = ["J81001", "RWC", "RWX"]
BASE = datetime(2026, 1, 1, tzinfo=UTC)

instants = st.integers(0, 400 * 24).map(lambda h: BASE + timedelta(hours=h))
codings = st.tuples(st.sampled_from(SYSTEMS), st.sampled_from(CODES))


@st.composite
def docs(draw: Any) -> dict[str, Any]:
    start = draw(st.none() | instants)
    end = draw(st.none() | instants)
    if start and end and end < start:
        start, end = end, start
    context: dict[str, Any] = {
        "event": [{"coding": [{"system": s, "code": c}]} for s, c in draw(
            st.lists(codings, max_size=2))]}
    if start or end:
        context["period"] = {k: v.isoformat() for k, v in (("start", start), ("end", end)) if v}
    system, code = draw(codings)
    return {
        "resourceType": "DocumentReference",
        "status": draw(st.sampled_from(["current", "superseded", "entered-in-error"])),
        "type": {"coding": [{"system": system, "code": code}]},
        "author": [{"reference": f"Organization/{draw(st.sampled_from(ORGS))}"}],
        "date": draw(instants).isoformat(),
        "context": context,
    }


def _date_text(draw: Any) -> str:
    when = draw(instants)
    form = draw(st.sampled_from(["%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%dT%H:%M:%SZ"]))
    prefix = draw(st.sampled_from(["", "eq", "ne", "gt", "ge", "lt", "le", "sa", "eb"]))
    return prefix + when.strftime(form)


@st.composite
def searches(draw: Any) -> DocumentSearch:
    tokens = []
    for name in draw(st.lists(st.sampled_from(["type", "event", "author"]), max_size=2)):
        if name == "author":
            texts = draw(st.lists(st.sampled_from(
                [*ORGS, *(f"Organization/{o}" for o in ORGS)]), min_size=1, max_size=2))
        else:
            texts = draw(st.lists(st.sampled_from(
                [*CODES, "|a", "http://loinc.org|a", "http://snomed.info/sct|b",
                 "http://loinc.org|"]), min_size=1, max_size=2))
        matches = [parse_token(t, reference=name == "author") for t in texts]
        tokens.append((name, tuple(m for m in matches if m is not None)))
    dates = [tuple(m for m in (parse_date(_date_text(draw)) for _ in range(draw(
        st.integers(1, 2)))) if m) for _ in range(draw(st.integers(0, 2)))]
    periods = [tuple(m for m in (parse_date(_date_text(draw)),) if m)
               for _ in range(draw(st.integers(0, 2)))]
    if draw(st.booleans()):  # often a search by period alone, the hardest semantics
        tokens, dates = [], []
    every = ("current", "superseded", "entered-in-error")
    statuses = draw(st.just(every) | st.lists(st.sampled_from(every), min_size=1, max_size=3,
                                               unique=True).map(tuple))
    return DocumentSearch(Patient("id", "p"), statuses, tuple(tokens), tuple(dates),
                          tuple(periods), 1000, 0)


# -- the reference: FHIR R4 search semantics written out plainly ---------------------------

def _instant(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def _date_ok(m: DateMatch, value: datetime) -> bool:
    return {"eq": m.low <= value < m.high, "ne": not m.low <= value < m.high,
            "gt": value >= m.high, "sa": value >= m.high, "ge": value >= m.low,
            "lt": value < m.low, "eb": value < m.low, "le": value < m.high}[m.prefix]


def _period_ok(m: DateMatch, start: datetime | None, end: datetime | None) -> bool:
    if start is None and end is None:
        return False  # no period: nothing to compare
    inside = start is not None and start >= m.low and end is not None and end < m.high
    return {
        "eq": inside, "ne": not inside,
        "gt": end is None or end >= m.high, "sa": start is not None and start >= m.high,
        "ge": end is None or end >= m.low, "lt": start is None or start < m.low,
        "eb": end is not None and end < m.low, "le": start is None or start < m.high,
    }[m.prefix]


def _token_ok(criterion: tuple[str, tuple[Any, ...]], values: list[tuple[str, str, str]]
              ) -> bool:
    name, matches = criterion
    for m in matches:
        for n, system, value in values:
            if n != name or (m.system is not None and system != m.system):
                continue
            if m.value is None or value == m.value or (
                    m.reference and value.endswith("/" + m.value)):
                return True
    return False


def reference(stored: list[tuple[str, str, dict[str, Any]]], q: DocumentSearch,
              allowed: set[str]) -> list[str]:
    found = []
    for doc_id, org, resource in stored:
        period = resource["context"].get("period", {})
        start, end = _instant(period.get("start")), _instant(period.get("end"))
        date = _instant(resource["date"])
        assert date is not None
        if (org in allowed and resource["status"] in q.statuses
                and all(_token_ok(t, document_tokens(resource)) for t in q.tokens)
                and all(any(_date_ok(m, date) for m in d) for d in q.dates)
                and all(any(_period_ok(m, start, end) for m in p) for p in q.periods)):
            found.append(doc_id)
    return sorted(found)


def _load(db: Database, drawn: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, Any]]]:
    with db.engine.begin() as conn:
        conn.execute(documents.delete())
        conn.execute(search_tokens.delete())
    stored = []
    rows, tokens = [], []
    for n, resource in enumerate(drawn):
        doc_id = f"d{n}"
        org = resource["author"][0]["reference"].split("/")[1]
        period = resource["context"].get("period", {})
        rows.append({
            "id": doc_id, "master_identifier": doc_id, "status": resource["status"],
            "status_reason": None, "version": 1, "availability": "available",
            "subject_id": "p", "org_code": org, "category": "documents", "sensitivity": "N",
            "type_system": "", "type_code": "", "class_system": "", "class_code": "",
            "date": _instant(resource["date"]), "period_start": _instant(period.get("start")),
            "period_end": _instant(period.get("end")), "content_id": f"{n:032x}",
            "content_type": "application/pdf", "size": 0, "sha1": "", "staging_token": None,
            "submission_set_id": "s", "replaces_id": None, "created_at": BASE,
            "updated_at": BASE, "body": orjson.dumps(resource).decode()})
        tokens += [{"resource_id": doc_id, "name": a, "system": b, "value": c}
                   for a, b, c in document_tokens(resource)]
        stored.append((doc_id, org, resource))
    with db.engine.begin() as conn:
        if rows:
            conn.execute(insert(documents), rows)
        if tokens:
            conn.execute(insert(search_tokens), tokens)
    return stored


@settings(max_examples=80, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(drawn=st.lists(docs(), max_size=12), qs=st.lists(searches(), min_size=1, max_size=5),
       allowed=st.sets(st.sampled_from(ORGS), min_size=1))
def test_sql_document_search_equals_the_reference(
    db: Database, drawn: list[dict[str, Any]], qs: list[DocumentSearch], allowed: set[str]
) -> None:
    stored = _load(db, drawn)
    registry = DocumentRegistry(db, lambda: None)  # type: ignore[arg-type, return-value]

    def where(table: Table) -> Any:
        return table.c.org_code.in_(sorted(allowed))

    for q in qs:
        views, total = registry.find(q, where=where)
        expected = reference(stored, q, allowed)
        assert (total, sorted(v.id for v in views)) == (len(expected), expected), q
