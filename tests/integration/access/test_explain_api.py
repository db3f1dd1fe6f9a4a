"""POST /admin/access/explain over the demo care system, on both databases: the decisions
it shows are exactly the ones reads are served on, a new directive shows at once with
the directive that decided, unknown persons are 404, and every explain is audited."""

from __future__ import annotations

from typing import Any

import pytest

from joinedup.access.consent_cli import consent_from_options
from joinedup.access.purposes import Purpose
from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from tests.integration.fhir import test_records_api
from tests.integration.fhir.test_records_api import MISSING, Demo, _other_org_patient

demo = test_records_api.demo
"""The records API tests' demo area fixture (module scope: built again for this module)."""

pytestmark = pytest.mark.slow


def _bearer(headers: dict[str, str]) -> str:
    return headers["Authorization"].removeprefix("Bearer ")


def _ig(demo: Demo, *scopes: Permission) -> dict[str, str]:
    issued = demo.svc.issuer.issue(
        org="JHUB", client_id="jhub-console", purpose=Purpose.GOVERNANCE,
        scopes=frozenset(scopes or {Permission.AUDIT_READ, Permission.CONSENTS_WRITE}),
        practitioner="JHUB-P001", role="ig-lead")
    return {"Authorization": f"Bearer {issued.access_token}"}


def _explain(demo: Demo, person: str, token: str | None = None) -> Any:
    return demo.client.post("/admin/access/explain", headers=_ig(demo),
                            json={"token": token or _bearer(demo.insider), "person": person})


def test_explain_shows_the_decisions_reads_are_served_on(demo: Demo) -> None:
    _org, patient = _other_org_patient(demo)
    r = _explain(demo, demo.person)
    assert r.status_code == 200, r.text
    found = r.json()
    assert found["owners"] == sorted(demo.patients)
    assert found["requester"]["org"] == "RWC"
    decisions = {(d["owner"], d["category"], s): d
                 for d in found["decisions"] for s in d["sensitivities"]}
    served = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
    shown = {f"{e['resource']['resourceType']}/{e['resource']['id']}"
             for e in served.json()["entry"]}
    patients = [p for ids in demo.patients.values() for p in ids]
    checked = 0
    for stored in demo.svc.records.by_subject(patients):
        d = decisions[(stored.org_code, stored.category, stored.sensitivity)]
        visible = d["effect"] == "permit" or d["obligations"]["mark_withheld"]
        assert (stored.reference in shown) == visible, (stored.reference, d)
        checked += 1
    assert checked > 5
    assert any(d["effect"] == "deny" for d in found["decisions"])
    assert {"own-organisation", "agreement"} <= set(found["reasons"])


def test_a_new_directive_shows_at_once_with_the_directive_that_decided(demo: Demo) -> None:
    org, _patient = _other_org_patient(demo)
    made = demo.client.post("/admin/consents", headers=_ig(demo), json=consent_from_options(
        demo.patients["RWC"][0], "objection", None, "conditions", None, None, None))
    assert made.status_code == 201, made.text
    consent_id = made.json()["id"]
    found = _explain(demo, f"Patient/{demo.patients[org][0]}").json()
    assert found["consents"]["objections_to_categories"] == {"conditions": consent_id}
    row = next(d for d in found["decisions"] if d["owner"] == org and d["category"] == "conditions")
    assert row["effect"] == "deny"
    assert row["reasons"] == ["objection-to-category"]
    assert row["consent"] == consent_id
    own = next(d for d in found["decisions"]
               if d["owner"] == "RWC" and d["category"] == "conditions")
    assert own["reasons"] == ["own-organisation"]
    demo.client.post(f"/admin/consents/{consent_id}/revoke", headers=_ig(demo))


def test_unknown_person_is_not_found_and_every_explain_is_audited(demo: Demo) -> None:
    before = demo.svc.audit.count(EventQuery(actions=frozenset({AuditAction.ACCESS_EXPLAIN})))
    r = _explain(demo, MISSING)
    assert r.status_code == 404
    assert r.headers["content-type"].startswith("application/problem+json")
    assert _explain(demo, demo.person).status_code == 200
    events = demo.svc.audit.search(EventQuery(actions=frozenset({AuditAction.ACCESS_EXPLAIN})))
    assert len(events) == before + 2
    latest = events[0].event  # newest first
    assert latest.persons == (demo.person,)
    assert latest.actor.practitioner == "JHUB-P001"
    assert latest.detail["explained"]["org"] == "RWC"
    assert events[1].event.persons == ()


def test_the_explained_token_must_be_valid_and_the_caller_needs_audit_read(demo: Demo) -> None:
    r = _explain(demo, demo.person, token="not-a-token")
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "token"
    r = demo.client.post("/admin/access/explain", headers=_ig(demo, Permission.CONSENTS_WRITE),
                         json={"token": _bearer(demo.insider), "person": demo.person})
    assert r.status_code == 403


def _partner_ig(demo: Demo, org: str) -> dict[str, str]:
    issued = demo.svc.issuer.issue(
        org=org, client_id=f"{org.lower()}-app", purpose=Purpose.GOVERNANCE,
        scopes=frozenset({Permission.AUDIT_READ}), practitioner=f"{org}-P001", role="ig-lead")
    return {"Authorization": f"Bearer {issued.access_token}"}


def test_a_partner_ig_lead_explains_only_its_own_tokens_about_persons_it_holds(
    demo: Demo,
) -> None:
    """The answer names every record holder and directive of the person: a partner's
    IG lead asking about anyone else gets what an unknown person gets."""
    from joinedup.orgs.vocab import OrgKind
    from tests.integration.fhir.test_consent_need_to_know import _partner, _same, _stranger

    stranger = _stranger(demo)
    own = _bearer(_partner(demo, stranger))

    def asked(headers: dict[str, str], token: str, person: str) -> Any:
        return demo.client.post("/admin/access/explain", headers=headers,
                                json={"token": token, "person": person})

    ig = _partner_ig(demo, stranger)
    real, fake = asked(ig, own, demo.person), asked(ig, own, MISSING)
    assert fake.status_code == 404
    _same(real, fake, demo.person)
    # RWC holds a record of the person: its IG lead explains RWC's tokens, not others'.
    rwc = _partner_ig(demo, "RWC")
    assert asked(rwc, _bearer(demo.insider), demo.person).status_code == 200
    real, fake = asked(rwc, own, demo.person), asked(rwc, own, MISSING)
    _same(real, fake, demo.person)
    assert {o["kind"] for o in demo.svc.registry.list_orgs() if o["code"] == "JHUB"} == {
        OrgKind.HUB.value}
    assert asked(_ig(demo), own, demo.person).status_code == 200  # the hub may


def test_a_token_that_reads_no_records_is_refused_alike_for_known_and_unknown_persons(
    demo: Demo,
) -> None:
    """Checked before the person is looked up: 422 for both, the same body."""
    from tests.integration.fhir.test_consent_need_to_know import _same

    system = demo.svc.issuer.issue(org="RWC", client_id="rwc-app", purpose=Purpose.DIRECT_CARE,
                                   scopes=frozenset({Permission.RECORDS_READ}))
    for headers in (_ig(demo), _partner_ig(demo, "RWC")):
        real = demo.client.post("/admin/access/explain", headers=headers, json={
            "token": system.access_token, "person": demo.person})
        fake = demo.client.post("/admin/access/explain", headers=headers, json={
            "token": system.access_token, "person": MISSING})
        assert fake.status_code == 422, fake.text
        _same(real, fake, demo.person)
