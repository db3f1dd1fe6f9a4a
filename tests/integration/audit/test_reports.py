"""IG reports and the person's access report, from a scripted day of activity (both backends)."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from joinedup.audit import (
    Actor,
    AuditAction,
    AuditConfig,
    AuditKeyStore,
    AuditLog,
    Outcome,
    ReviewOutcome,
)
from joinedup.errors import Conflict, InvalidInput, NotFound
from joinedup.orgs.registry import Registry
from joinedup.orgs.specs import OrgSpec, PractitionerSpec
from joinedup.orgs.vocab import OrgKind, ProfessionalRole
from joinedup.storage.engine import Database
from tests.unit.audit.factory import T0, FixedClock, read

DAY = timedelta(days=1)
IG_LEAD = Actor("RWX", "rwx-ig", "RWX-IG1", "ig-lead")


def _registry(db: Database) -> None:
    registry = Registry(db)
    for code, name, kind in [
        ("RWX", "Wessex University Hospitals NHS Foundation Trust", OrgKind.ACUTE_TRUST),
        ("RWM", "Wessex Mental Health NHS Foundation Trust", OrgKind.MENTAL_HEALTH_TRUST),
        ("WCCASC", "Wessex County Council Adult Social Care", OrgKind.LA_ADULT_SOCIAL_CARE),
    ]:
        registry.add_org(OrgSpec(code=code, name=name, kind=kind))
    registry.add_practitioner(PractitionerSpec(
        id="RWM-P1", org_code="RWM", name="Dr Alex Jones", role=ProfessionalRole.CLINICIAN))


def _script(audit: AuditLog) -> dict[str, int]:
    """The demo's kind of day for person P-100, and some background."""
    seqs: dict[str, int] = {}
    [seqs["rwx-read"]] = audit.append([read("P-100", time=T0)])
    [seqs["asc-read"]] = audit.append([read(
        "P-100", org="WCCASC", practitioner="WCCASC-SW1", role="social-worker",
        purpose="care-coordination", time=T0 + timedelta(hours=1))])
    seqs["glass"], seqs["glass-read"] = audit.append([
        read("P-100", action=AuditAction.BREAK_GLASS, org="RWM", practitioner="RWM-P1",
             purpose="emergency", break_glass=True, break_glass_reason="unconscious in ED",
             time=T0 + timedelta(hours=2)),
        read("P-100", org="RWM", practitioner="RWM-P1", purpose="emergency", break_glass=True,
             break_glass_reason="unconscious in ED", time=T0 + timedelta(hours=2)),
    ])
    audit.append([
        read("P-100", action=AuditAction.ACCESS_DECISION, outcome=Outcome.DENY, org="WCCASC",
             practitioner="WCCASC-SW2", role="social-worker", reasons=("no-agreement",),
             time=T0 + timedelta(hours=3)),
        read("P-200", action=AuditAction.ACCESS_DECISION, outcome=Outcome.DENY, org="WCCASC",
             practitioner="WCCASC-SW2", role="social-worker", reasons=("no-agreement",),
             time=T0 + timedelta(hours=3)),
        read("P-200", action=AuditAction.ACCESS_DECISION, outcome=Outcome.DENY, org="RWX",
             reasons=("national-data-opt-out",), purpose="research", time=T0 + timedelta(hours=3)),
        read("P-100", action=AuditAction.RECORD_READ, outcome=Outcome.DENY, org="RWX",
             practitioner="RWX-P2", reasons=("sealed-category",), time=T0 + timedelta(hours=4)),
    ])
    [seqs["declared"]] = audit.append([read(
        "P-300", action=AuditAction.RELATIONSHIP_DECLARE, outcome=Outcome.SUCCESS,
        detail={"relationship_reason": "new referral, letter not yet on file"},
        time=T0 + timedelta(hours=5))])
    [seqs["declared-read"]] = audit.append([read(
        "P-300", reasons=("agreement", "self-declared-relationship"),
        time=T0 + timedelta(hours=5, minutes=1))])
    [seqs["other-person"]] = audit.append([read("P-200", time=T0 + timedelta(hours=6))])
    return seqs


def test_break_glass_report_and_recording_a_review(audit: AuditLog) -> None:
    seqs = _script(audit)
    report = audit.report("break-glass", T0, T0 + DAY)
    [row] = report.rows
    assert row["seq"] == seqs["glass"]
    assert row["reason"] == "unconscious in ED"
    assert (row["review"], row["org"], row["practitioner"]) == ("pending", "RWM", "RWM-P1")
    reviewed = audit.review(seqs["glass"], outcome=ReviewOutcome.APPROPRIATE, reviewer=IG_LEAD,
                            note="confirmed with ED consultant")
    assert reviewed.review is not None
    assert reviewed.review.reviewer == "RWX-IG1"
    [row] = audit.report("break-glass", T0, T0 + DAY).rows
    assert (row["review"], row["review_outcome"], row["reviewer"]) == (
        "reviewed", "appropriate", "RWX-IG1")
    with pytest.raises(Conflict, match="already reviewed"):
        audit.review(seqs["glass"], outcome="inappropriate", reviewer=IG_LEAD)
    with pytest.raises(NotFound):
        audit.review(seqs["rwx-read"], outcome="appropriate", reviewer=IG_LEAD)
    with pytest.raises(InvalidInput) as caught:
        audit.review(seqs["glass"], outcome="fine", reviewer=Actor("RWX"))
    assert {p.location for p in caught.value.problems} == {"outcome", "by"}
    assert audit.verify().ok  # the review is itself a chained event


def test_denials_by_organisation_and_reason(audit: AuditLog) -> None:
    _script(audit)
    report = audit.report("denials", T0, T0 + DAY)
    assert [dict(r) for r in report.rows] == [  # most first, then by organisation and reason
        {"org": "WCCASC", "reason": "no-agreement", "denials": 2},
        {"org": "RWX", "reason": "national-data-opt-out", "denials": 1},
        {"org": "RWX", "reason": "sealed-category", "denials": 1},
    ]
    rows = list(csv.DictReader(io.StringIO(report.to_csv())))
    assert rows[0] == {"org": "WCCASC", "reason": "no-agreement", "denials": "2"}


def test_self_declared_relationships(audit: AuditLog) -> None:
    seqs = _script(audit)
    report = audit.report("self-declared", T0, T0 + DAY)
    assert [r["seq"] for r in report.rows] == [seqs["declared"], seqs["declared-read"]]
    assert report.rows[0]["relationship_reason"] == "new referral, letter not yet on file"


def test_reports_are_bounded_by_the_date_range(audit: AuditLog) -> None:
    _script(audit)
    assert audit.report("denials", T0 + DAY, T0 + 2 * DAY).rows == ()
    with pytest.raises(InvalidInput):
        audit.report("denials", T0 + DAY, T0)
    with pytest.raises(InvalidInput, match="unknown report"):
        audit.report("everything", T0, T0 + DAY)


def test_unusual_volume(db: Database, audit_keys: AuditKeyStore) -> None:
    clock = FixedClock()
    log = AuditLog(db, audit_keys, AuditConfig(volume_factor=3, volume_floor=5), clock=clock)
    try:
        for day in range(10):  # baseline: RWX-P1 reads 4 people a day, RWX-P2 reads 2
            when = T0 - timedelta(days=10 - day)
            log.append([read(f"P-{i}", time=when) for i in range(4)])
            log.append([read(f"P-{i}", practitioner="RWX-P2", time=when) for i in range(2)])
        log.append([read(f"P-{i}", time=T0) for i in range(12)])  # 12 <= 3 x 4: normal
        log.append([read(f"P-{i}", time=T0 + DAY) for i in range(13)])  # 13 > 12: flagged
        log.append([read(f"P-{i}", practitioner="RWX-P2", time=T0) for i in range(7)])  # > 6
        log.append([read("P-1", practitioner="RWX-P3", time=T0) for _ in range(9)])  # 1 person
        log.append([read(f"P-{i}", practitioner="RWX-P4", time=T0) for i in range(6)])  # > floor
        report = log.report("volume", T0, T0 + 2 * DAY)
    finally:
        log.close()
    flagged = [(r["practitioner"], r["day"], r["distinct_persons"], r["threshold"])
               for r in report.rows]
    assert flagged == [
        ("RWX-P1", (T0 + DAY).date().isoformat(), 13, 12),
        ("RWX-P2", T0.date().isoformat(), 7, 6),
        ("RWX-P4", T0.date().isoformat(), 6, 5),
    ]
    assert report.rule is not None
    assert "median" in report.rule


def test_access_report_for_the_person(audit: AuditLog, db: Database) -> None:
    _registry(db)
    seqs = _script(audit)
    report = audit.access_report("P-100")
    assert not report.staff_names_shown
    assert [e.seq for e in report.entries] == [
        seqs["glass-read"], seqs["glass"], seqs["asc-read"], seqs["rwx-read"]]
    glass = report.entries[1]
    assert (glass.organisation, glass.organisation_name, glass.break_glass,
            glass.break_glass_reason) == (
        "RWM", "Wessex Mental Health NHS Foundation Trust", True, "unconscious in ED")
    assert all(e.practitioner is None and e.practitioner_name is None for e in report.entries)
    assert report.entries[2].purpose == "care-coordination"
    assert report.entries[2].role == "social-worker"
    named = audit.access_report("P-100", show_staff_names=True)
    assert named.entries[1].practitioner_name == "Dr Alex Jones"
    assert named.entries[3].practitioner == "RWX-P1"
    assert audit.access_report("P-999").entries == ()
