"""The consent store and the in-memory summary must agree: random directives, written as
FHIR Consent, read back through FHIR and the decision path's SQL statement, add up to
exactly the ``PersonConsents`` the pure model makes of them, on any day, on both
databases."""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import delete

from joinedup.access.consent import ConsentDirective, PersonConsents
from joinedup.access.consent_fhir import from_fhir, to_fhir
from joinedup.access.consent_store import directives_and_declarations
from joinedup.access.models import ConsentRow
from joinedup.storage.base import utcnow
from joinedup.storage.engine import Database
from tests.generative.access.test_access_engine_vs_reference import PERSON, TODAY, directives

PATIENTS = ("p-a", "p-b")


def _row(d: ConsentDirective, patient: str) -> ConsentRow:
    read = from_fhir({**to_fhir(d), "patient": {"reference": f"Patient/{patient}"}})
    return ConsentRow(
        id=read.id, patient_id=read.person, kind=read.kind.value, status=read.status.value,
        organisation=read.organisation,
        category=None if read.category is None else read.category.value,
        agreement_id=read.agreement_id, recorded=read.recorded, start=read.start, end=read.end,
        recorded_by_org="RWX", recorded_by="test", version=1, updated_at=utcnow(),
        resource=to_fhir(read),
    )


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(made=directives(), which=st.lists(st.sampled_from(PATIENTS), min_size=12, max_size=12),
       offset=st.integers(-30, 500))
def test_the_store_adds_up_directives_as_the_pure_model_does(
    db: Database, made: list[ConsentDirective], which: list[str], offset: int,
) -> None:
    unique = list({d.id: d for d in made}.values())
    day = TODAY + timedelta(days=offset)
    with db.session() as s:
        s.execute(delete(ConsentRow))
        s.add_all(_row(d, which[i % len(which)]) for i, d in enumerate(unique))
    with db.engine.connect() as conn:
        stored, _ = directives_and_declarations(conn, PERSON, PATIENTS, org="RWX",
                                                practitioner="RWX-P1", today=day)
    assert stored == PersonConsents.of(PERSON, unique, day)
