"""Who may write and read a person's consent directives, on both databases.

A partner organisation's system (which holds ``consents:write`` to record
through ``/fhir``) gets no more through the admin API than through ``/fhir``:
it records only for a person it holds a record of, sees only the directives it
recorded or that name it, and withdraws only what it recorded. Everything else
is answered exactly as an unknown person or directive is. Only the hub records,
reads and withdraws for anyone."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from httpx import Response

from joinedup.access.consent_cli import consent_from_options
from joinedup.demo.area import build_area
from joinedup.orgs.vocab import OrgKind
from tests.integration.fhir import test_consent_api
from tests.integration.fhir.test_consent_api import _admin, _rwc_writer, _token
from tests.integration.fhir.test_records_api import MISSING, SEED, Demo, _other_org_patient

demo = test_consent_api.demo
"""The records API tests' demo area fixture (module scope: built again for this module)."""

pytestmark = pytest.mark.slow


def _practitioner(org: str) -> str:
    return next(p.id for p in build_area(SEED).practitioners() if p.org_code == org)


def _stranger(demo: Demo) -> str:
    """A partner organisation (not the hub) holding no record of the demo person."""
    kinds = {o["code"]: o["kind"] for o in demo.svc.registry.list_orgs()}
    return next(code for code, kind in sorted(kinds.items())
                if kind != OrgKind.HUB.value and code not in demo.patients)


def _partner(demo: Demo, org: str) -> dict[str, str]:
    return _token(demo.svc, org, _practitioner(org), "clinician")


@pytest.fixture
def objection_to_other(demo: Demo) -> Iterator[tuple[str, str]]:
    """RWC records the person's objection to sharing with another organisation that
    holds a record of them; (that organisation, the directive's id)."""
    other, _patient = _other_org_patient(demo)
    made = demo.client.post("/fhir/Consent", json=consent_from_options(
        demo.patients["RWC"][0], "objection", other, None, None, None, None),
        headers=_rwc_writer(demo))
    assert made.status_code == 201, made.text
    yield other, made.json()["id"]
    demo.client.post(f"/admin/consents/{made.json()['id']}/revoke", headers=_admin(demo))


def _same(real: Response, fake: Response, real_id: str) -> None:
    """The same status, headers and body (bar the request's own id in ``instance``)."""
    assert real.status_code == fake.status_code, (real.text, fake.text)
    assert {k: v for k, v in real.headers.items() if k not in _PER_REQUEST} == {
        k: v for k, v in fake.headers.items() if k not in _PER_REQUEST}
    body, other = json.loads(real.text.replace(real_id, MISSING)), fake.json()
    if isinstance(body, dict) and isinstance(other, dict):
        body.pop("instance", None)
        other.pop("instance", None)
    assert body == other


_PER_REQUEST = frozenset({"x-request-id", "content-length", "date"})


def test_a_partner_cannot_record_through_the_admin_api_for_a_person_it_holds_no_record_of(
    demo: Demo,
) -> None:
    stranger = _partner(demo, _stranger(demo))
    patient = demo.patients["RWC"][0]

    def attempt(p: str) -> Response:
        return demo.client.post("/admin/consents", json=consent_from_options(
            p, "objection", None, "housing", None, None, None), headers=stranger)

    real, fake = attempt(patient), attempt(MISSING)
    assert real.status_code == 422, real.text
    _same(real, fake, patient)
    assert not [c for c in demo.svc.consents.for_patients(demo.patients["RWC"])
                if c.directive.category is not None
                and c.directive.category.value == "housing"
                and c.directive.status.value == "active"]


def test_a_partner_cannot_list_or_read_directives_of_a_person_it_holds_no_record_of(
    demo: Demo, objection_to_other: tuple[str, str],
) -> None:
    _other, consent_id = objection_to_other
    stranger = _partner(demo, _stranger(demo))
    patient = demo.patients["RWC"][0]
    for params in ({"person": demo.person}, {"patient": patient}):
        real = demo.client.get("/admin/consents", params=params, headers=stranger)
        fake = demo.client.get("/admin/consents", params={
            k: MISSING for k in params}, headers=stranger)
        assert real.status_code == 404
        _same(real, fake, next(iter(params.values())))
    real = demo.client.get(f"/admin/consents/{consent_id}", headers=stranger)
    fake = demo.client.get(f"/admin/consents/{MISSING}", headers=stranger)
    assert real.status_code == 404
    _same(real, fake, consent_id)
    # The hub sees it.
    hub = demo.client.get(f"/admin/consents/{consent_id}", headers=_admin(demo))
    assert hub.status_code == 200


def test_a_partner_cannot_withdraw_an_objection_to_itself_recorded_elsewhere(
    demo: Demo, objection_to_other: tuple[str, str],
) -> None:
    other, consent_id = objection_to_other
    objected = _partner(demo, other)  # holds a record of the person, but did not record it
    real = demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=objected)
    fake = demo.client.post(f"/admin/consents/{MISSING}/revoke", headers=objected)
    assert real.status_code == 404, real.text
    _same(real, fake, consent_id)
    stored = demo.svc.consents.read(consent_id)
    assert stored is not None
    assert stored.directive.status.value == "active"
    # The organisation that recorded it may withdraw it (for the person).
    mine = demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=_rwc_writer(demo))
    assert mine.status_code == 200, mine.text
    assert mine.json()["status"] == "inactive"


def test_a_record_holder_sees_only_the_directives_it_recorded_or_that_name_it(
    demo: Demo,
) -> None:
    """An explicit consent to a third organisation (say, a charity), recorded by RWC,
    is not another record holder's business: read and search answer as for nothing."""
    other, other_patient = _other_org_patient(demo)
    third = _stranger(demo)
    made = demo.client.post("/fhir/Consent", json=consent_from_options(
        demo.patients["RWC"][0], "explicit-consent", third, None, None, None, None),
        headers=_rwc_writer(demo))
    assert made.status_code == 201, made.text
    consent_id = made.json()["id"]
    try:
        reader = _partner(demo, other)
        real = demo.client.get(f"/fhir/Consent/{consent_id}", headers=reader)
        fake = demo.client.get(f"/fhir/Consent/{MISSING}", headers=reader)
        assert real.status_code == 404
        _same(real, fake, consent_id)
        found = demo.client.get("/fhir/Consent", params={"patient": other_patient},
                                headers=reader)
        assert found.status_code == 200
        assert consent_id not in {e["resource"]["id"] for e in found.json()["entry"]}
        assert found.json()["total"] == len(found.json()["entry"])
        # The recorder still sees it.
        assert demo.client.get(f"/fhir/Consent/{consent_id}",
                               headers=_rwc_writer(demo)).status_code == 200
    finally:
        demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=_admin(demo))
