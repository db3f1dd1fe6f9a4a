"""The consent store on both databases: directives recorded as FHIR Consent, refused
with every problem listed, withdrawn, and read back for the decision point (with the
requester's self-declared relationships) in one statement."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from joinedup.access.consent import DirectiveKind, DirectiveStatus
from joinedup.access.consent_cli import consent_from_options
from joinedup.access.consent_fhir import ConsentError
from joinedup.access.consent_store import ConsentStore, directives_and_declarations
from joinedup.access.relationships import RelationshipKind
from joinedup.errors import Conflict, InvalidInput, NotFound
from joinedup.labels import DataCategory
from joinedup.people.models import Person, PersonRecord
from joinedup.storage.engine import Database

ORGS = ["RWX", "J81001", "WPOLICE", "WCARERS"]
AGREEMENTS = ["carers-support"]
TODAY = date(2026, 12, 3)


def _person(db: Database, person: str, records: dict[str, str]) -> None:
    with db.session() as s:
        s.add(Person(id=person))
        s.flush()
        for patient, org in records.items():
            s.add(PersonRecord(record_id=f"Patient/{patient}", person_id=person, org_code=org,
                               features={}, rule="nhs-number", linked_by="test"))


@pytest.fixture
def store(db: Database) -> ConsentStore:
    _person(db, "person-1", {"p1-rwx": "RWX", "p1-gp": "J81001"})
    _person(db, "person-2", {"p2-rwx": "RWX"})
    return ConsentStore(db, today=lambda: TODAY)


def _create(store: ConsentStore, resource: Any, org: str = "RWX", holder: bool = True) -> Any:
    return store.create(resource, recorded_by_org=org, recorded_by="RWX-P001",
                        known_orgs=ORGS, known_agreements=AGREEMENTS, holder_required=holder)


def test_a_directive_is_stored_as_the_consent_it_was_read_as(store: ConsentStore) -> None:
    made = _create(store, consent_from_options("p1-gp", "objection", "WPOLICE", None, None,
                                               None, None))
    assert made.person_id == "person-1"
    assert made.directive.kind is DirectiveKind.OBJECTION
    assert made.resource["organization"][0]["identifier"]["value"] == "RWX"
    assert made.resource["meta"]["versionId"] == "1"
    again = store.read(made.directive.id)
    assert again is not None
    assert again.resource == made.resource
    # Any of the person's Patient records finds it.
    assert [c.directive.id for c in store.for_patients(["p1-rwx", "p1-gp"])] == [made.directive.id]
    assert store.for_patients(["p2-rwx"]) == []


def test_a_malformed_consent_is_refused_with_every_problem(store: ConsentStore) -> None:
    bad = consent_from_options("p2-rwx", "explicit-consent", "NOPE", None, "no-such-agreement",
                               None, None)
    bad["status"] = "proposed"
    bad["provision"]["type"] = "deny"
    with pytest.raises(ConsentError) as caught:
        _create(store, bad)
    where = {p.location for p in caught.value.problems}
    # Every problem at once: the unknown names too, though the Consent has others.
    assert {"provision.type", "status", "provision.actor", "policy.uri"} <= where
    # The structural problems are reported; the references are checked too when it parses.
    semantic = consent_from_options("p2-rwx", "explicit-consent", "NOPE", None,
                                    "no-such-agreement", None, None)
    semantic["resourceType"] = "Observation"
    with pytest.raises(ConsentError) as caught:
        _create(store, semantic)
    assert {p.location for p in caught.value.problems} == {
        "resourceType", "provision.actor", "policy.uri"}
    assert store.for_patients(["p2-rwx"]) == []  # nothing written


def test_a_patient_the_organisation_holds_no_record_of_looks_like_one_that_does_not_exist(
    store: ConsentStore,
) -> None:
    def refusal(patient: str) -> str:
        with pytest.raises(ConsentError) as caught:
            _create(store, consent_from_options(patient, "national-opt-out", None, None, None,
                                                None, None), org="WPOLICE")
        return str(caught.value).replace(patient, "X")

    assert refusal("p1-rwx") == refusal("no-such-patient")
    # The hub (admin API, CLI) records for anyone in the person index.
    made = _create(store, consent_from_options("p1-rwx", "national-opt-out", None, None, None,
                                               None, None), org="WPOLICE", holder=False)
    assert made.directive.kind is DirectiveKind.NATIONAL_OPT_OUT


def test_withdrawing_keeps_the_directive_inactive(store: ConsentStore) -> None:
    made = _create(store, consent_from_options("p1-rwx", "objection", None, "mental-health",
                                               None, None, None))
    gone = store.revoke(made.directive.id, by_org="RWX", by="RWX-P001")
    assert gone.directive.status is DirectiveStatus.INACTIVE
    assert gone.version == 2
    assert gone.resource["status"] == "inactive"
    with pytest.raises(Conflict):
        store.revoke(made.directive.id, by_org="RWX", by="RWX-P001")
    with pytest.raises(NotFound):
        store.revoke("nope", by_org="RWX", by="RWX-P001")
    assert store.for_patients(["p1-rwx"], status=DirectiveStatus.ACTIVE) == []


def test_the_decision_point_reads_directives_in_effect_and_live_declarations(
    store: ConsentStore, db: Database,
) -> None:
    _create(store, consent_from_options("p1-gp", "objection", "WPOLICE", None, None, None, None))
    _create(store, consent_from_options("p1-rwx", "objection", None, "mental-health", None,
                                        None, None))
    _create(store, consent_from_options("p1-rwx", "explicit-consent", "WCARERS", None,
                                        "carers-support", None, None))
    later = _create(store, consent_from_options("p1-rwx", "national-opt-out", None, None, None,
                                                "2027-01-01", None))
    store.declare("p1-rwx", org="J81001", practitioner="J81001-P001", reason="new registration")
    store.declare("p1-rwx", org="J81001", practitioner="J81001-P002", reason="someone else")
    patients = ["p1-gp", "p1-rwx"]
    with db.engine.connect() as conn:
        consents, declared = directives_and_declarations(
            conn, "person-1", patients, org="J81001", practitioner="J81001-P001", today=TODAY)
        assert set(consents.objected_orgs) == {"WPOLICE"}
        assert set(consents.objected_categories) == {DataCategory.MENTAL_HEALTH}
        assert consents.has_consented("WCARERS", "carers-support")
        assert consents.opted_out is None  # not yet in effect
        assert [(r.kind, r.reason) for r in declared] == [
            (RelationshipKind.SELF_DECLARED, "new registration")]
        later_on, _ = directives_and_declarations(
            conn, "person-1", patients, org="J81001", practitioner="J81001-P001",
            today=date(2027, 1, 2))
        assert later_on.opted_out == later.directive.id
        _, none = directives_and_declarations(
            conn, "person-1", patients, org="J81001", practitioner="J81001-P001", today=TODAY,
            now=datetime.now(UTC) + timedelta(days=2))
        assert none == ()
        other, _ = directives_and_declarations(
            conn, "person-2", ["p2-rwx"], org="J81001", practitioner="J81001-P001", today=TODAY)
        assert not other.has_objections


def test_a_declaration_needs_a_reason_and_a_known_patient(store: ConsentStore) -> None:
    with pytest.raises(InvalidInput) as caught:
        store.declare("p1-rwx", org="J81001", practitioner="J81001-P001", reason=" ", hours=0)
    assert {p.location for p in caught.value.problems} == {"reason", "hours"}
    with pytest.raises(NotFound):
        store.declare("nobody", org="J81001", practitioner="J81001-P001", reason="x")


def test_a_directive_follows_its_record_through_a_merge_and_its_undoing(
    store: ConsentStore, db: Database,
) -> None:
    from joinedup.people.index import PersonIndex

    made = _create(store, consent_from_options("p2-rwx", "objection", "WPOLICE", None, None,
                                               None, None))
    people = PersonIndex(db, None)  # type: ignore[arg-type]  # merging needs no matcher

    def objections(patient: str) -> set[str]:
        person, by_org = store.person_of_patient(patient) or ("", {})
        with db.engine.connect() as conn:
            consents, _ = directives_and_declarations(
                conn, person, [p for ids in by_org.values() for p in ids], org="RWX",
                practitioner="RWX-P001", today=TODAY)
        return set(consents.objected_orgs.values())

    assert objections("p1-gp") == set()
    merge = people.merge("person-1", "person-2", by="steward", reason="same person")
    assert objections("p1-gp") == {made.directive.id}  # now one person: it applies
    assert store.read(made.directive.id).person_id == "person-1"  # type: ignore[union-attr]
    people.unmerge(merge, by="steward")
    assert objections("p1-gp") == set()
    assert objections("p2-rwx") == {made.directive.id}
