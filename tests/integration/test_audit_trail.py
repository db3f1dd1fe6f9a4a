"""Changes made through the admin API and the CLI reach the hash-chained audit log."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from starlette.testclient import TestClient

from joinedup.access.purposes import Purpose
from joinedup.api.app import create_app
from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from joinedup.people.index import PersonIndex
from joinedup.services import Services
from tests.integration.people.test_person_index import FieldMatcher, person


def _events(services: Services, action: AuditAction) -> list[dict[str, object]]:
    found = services.audit.search(EventQuery(actions=frozenset({action})))
    return [e.as_dict() for e in found]


def test_org_changes_are_audited_with_the_actor(client: TestClient, services: Services) -> None:
    token = services.issuer.issue(
        org="JHUB",
        client_id="jhub-console",
        purpose=Purpose.ADMINISTRATION,
        scopes=frozenset({Permission.ORGS_WRITE}),
        practitioner="JHUB-P001",
        role="integration-engineer",
    )
    auth = {"Authorization": f"Bearer {token.access_token}"}
    r = client.post(
        "/admin/orgs", headers=auth, json={"code": "RWX", "name": "H", "kind": "acute-trust"}
    )
    assert r.status_code == 201
    refused = client.post("/admin/orgs", headers=auth, json={"code": "x"})
    assert refused.status_code == 422
    events = _events(services, AuditAction.ORG_CHANGE)
    assert len(events) == 1, "only the change that happened is recorded"
    text = str(events[0])
    assert "JHUB-P001" in text
    assert "add-org" in text
    assert r.headers["x-request-id"] in text
    assert services.audit.verify().ok


def test_steward_decisions_are_audited(services: Services) -> None:
    svc = dataclasses.replace(services, people=PersonIndex(services.db, FieldMatcher()))
    svc.people.link_one(person("A/1"), "RWX")
    pair = svc.people.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS").review_pair
    token = svc.issuer.issue(
        org="JHUB",
        client_id="jhub-console",
        purpose=Purpose.GOVERNANCE,
        scopes=frozenset({Permission.PEOPLE_REVIEW}),
        practitioner="JHUB-P002",
        role="data-steward",
    )
    with TestClient(create_app(svc)) as c:
        r = c.post(
            f"/admin/people/review/{pair}/accept",
            headers={"Authorization": f"Bearer {token.access_token}"},
        )
    assert r.status_code == 200
    [event] = _events(svc, AuditAction.PERSON_MERGE)
    assert "JHUB-P002" in str(event)


def test_cli_ingest_is_audited(services: Services, tmp_path: Path) -> None:
    from tests.integration.test_cli import run

    env = {
        "JOINEDUP_DATABASE_URL": services.db.engine.url.render_as_string(hide_password=False),
        "JOINEDUP_DATA_DIR": str(services.settings.data_dir),
    }
    from joinedup.orgs.specs import OrgSpec
    from joinedup.orgs.vocab import OrgKind
    from joinedup.sources.feeds import spec_from_mapping
    from joinedup.sources.mapping import bundled_mappings

    services.registry.add_org(
        OrgSpec(code="WCCASC", name="Adult social care", kind=OrgKind.LA_ADULT_SOCIAL_CARE)
    )
    services.ingestion.feeds.register(
        spec_from_mapping(bundled_mappings()["WCCASC/wccasc-persons"])
    )
    from joinedup.demo import generate_to

    generate_to(tmp_path / "demo", people=300)
    export = next((tmp_path / "demo" / "WCCASC").rglob("*person*.csv"))
    r = run("ingest", "--feed", "wccasc-persons", str(export), env=env)
    assert r.returncode == 0, r.stderr
    [event] = _events(services, AuditAction.INGEST_BATCH)
    assert event["outcome"] == "success"
    assert "joinedup-cli" in str(event)
    assert "wccasc-persons" in str(event)
