"""Audit events: validation, canonical form, and the chain hash."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta, timezone

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.audit.events import (
    GENESIS_HASH,
    Actor,
    AuditAction,
    AuditEvent,
    Outcome,
    canonical_json,
    chain_hash,
    contains_nhs_number,
)
from tests.unit.audit.factory import T0, read


def test_canonical_form_is_sorted_compact_utc_json() -> None:
    event = read(time=datetime(2026, 3, 1, 10, 0, tzinfo=timezone(timedelta(hours=1))))
    body = event.canonical(7)
    text = body.decode()
    assert " " not in text
    parsed = orjson.loads(body)
    assert list(parsed) == sorted(parsed)
    assert parsed["seq"] == 7
    assert parsed["time"] == "2026-03-01T09:00:00.000000Z"
    assert parsed["break_glass"] is None
    assert parsed["detail"] == {}


def test_chain_hash_is_sha256_of_previous_digest_and_body() -> None:
    body = read().canonical(1)
    expected = hashlib.sha256(bytes(32) + body).hexdigest()
    assert chain_hash(GENESIS_HASH, body) == expected


def test_event_round_trips_through_its_body() -> None:
    event = read(persons=("P-2", "P-1", "P-2"), obligations={"withhold_fields": ["a"]})
    assert event.persons == ("P-1", "P-2")
    again = AuditEvent.from_body(orjson.loads(event.canonical(3)))
    assert again == event


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ValueError) as caught:
        AuditEvent(
            action="no.such",  # type: ignore[arg-type]
            actor=Actor(org=None),
            outcome="maybe",  # type: ignore[arg-type]
            persons=("",),
            resources=("not-a-ref",),
            time=datetime(2026, 1, 1),
        )
    message = str(caught.value)
    for fragment in ("action", "outcome", "actor", "persons", "resources", "time"):
        assert fragment in message


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("persons", ("9434765919",)),
        ("reasons", ("patient 943 476 5919 collapsed",)),
        ("detail", {"note": "nhs no 943-476-5919"}),
    ],
)
def test_nhs_numbers_are_refused_anywhere_in_free_text_or_person_ids(
    field: str, value: object
) -> None:
    with pytest.raises(ValueError, match="NHS number"):
        read(**{field: value})


def test_ids_that_merely_contain_digits_are_accepted() -> None:
    event = read(request_id="a9434765919b", resources=("Observation/9434765919",))
    assert event.request_id == "a9434765919b"
    assert not contains_nhs_number("a9434765919b")
    assert contains_nhs_number("call 9434765919 now")


def test_break_glass_needs_a_reason_and_the_flag() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        read(action=AuditAction.BREAK_GLASS, break_glass=True)
    with pytest.raises(ValueError, match="break_glass=True"):
        read(action=AuditAction.BREAK_GLASS, break_glass_reason="unconscious in A&E")
    with pytest.raises(ValueError, match="without break_glass"):
        read(break_glass_reason="why")
    ok = read(action=AuditAction.BREAK_GLASS, break_glass=True, break_glass_reason="A&E")
    assert orjson.loads(ok.canonical(1))["break_glass"] == {"reason": "A&E"}


def test_a_review_names_the_event_and_a_known_outcome() -> None:
    base = {"action": AuditAction.AUDIT_REVIEW, "outcome": Outcome.SUCCESS}
    with pytest.raises(ValueError, match="reviewed_seq"):
        read(**base, detail={"outcome": "appropriate"})
    with pytest.raises(ValueError, match=r"detail\.outcome"):
        read(**base, detail={"reviewed_seq": 3, "outcome": "fine"})
    assert read(**base, detail={"reviewed_seq": 3, "outcome": "appropriate"}).subject_seq == 3


def test_detail_must_be_json() -> None:
    with pytest.raises(ValueError, match="detail"):
        read(detail={"when": object()})


def test_detail_is_detached_from_the_callers_dict() -> None:
    detail = {"batch": "b1"}
    event = read(detail=detail)
    detail["batch"] = "changed"
    assert event.detail == {"batch": "b1"}


texts = st.text(min_size=1, max_size=12).filter(lambda s: s.strip() and not contains_nhs_number(s))
ids = st.text(alphabet="ABCDEFGHJKLMNPQRSTUVWXYZ0123456789-", min_size=1, max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)


@given(
    action=st.sampled_from([a for a in AuditAction if a not in {
        AuditAction.BREAK_GLASS, AuditAction.AUDIT_REVIEW}]),
    outcome=st.sampled_from(list(Outcome)),
    persons=st.lists(ids, max_size=3),
    reasons=st.lists(texts, max_size=3),
    detail=st.dictionaries(texts, json_values, max_size=3),
    seq=st.integers(1, 10**12),
    micros=st.integers(0, 10**12),
)
def test_spliced_canonical_bytes_equal_a_fresh_serialisation(
    action: AuditAction,
    outcome: Outcome,
    persons: list[str],
    reasons: list[str],
    detail: dict[str, object],
    seq: int,
    micros: int,
) -> None:
    event = AuditEvent(
        action=action,
        actor=Actor("RWX", "rwx-epr"),
        outcome=outcome,
        persons=tuple(persons),
        reasons=tuple(reasons),
        detail=detail,
        time=T0 + timedelta(microseconds=micros),
    )
    assert event.canonical(seq) == canonical_json(event.body(seq))
    assert AuditEvent.from_body(orjson.loads(event.canonical(seq))) == event


def test_default_time_is_now_in_utc() -> None:
    before = datetime.now(UTC)
    event = AuditEvent(action=AuditAction.ORG_CHANGE, actor=Actor("JHUB"), outcome=Outcome.SUCCESS)
    assert before <= event.time <= datetime.now(UTC)
