"""The organisations registry through the admin API."""

from __future__ import annotations

from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from joinedup.access.purposes import Purpose
from joinedup.auth.permissions import Permission
from joinedup.services import Services


def _auth(services: Services, *scopes: Permission) -> dict[str, str]:
    token = services.issuer.issue(
        org="JHUB",
        client_id="jhub-console",
        purpose=Purpose.ADMINISTRATION,
        scopes=frozenset(scopes),
    )
    return {"Authorization": f"Bearer {token.access_token}"}


def test_register_and_show_an_organisation(client: TestClient, services: Services) -> None:
    h = _auth(services, Permission.ORGS_READ, Permission.ORGS_WRITE)
    r = client.post(
        "/admin/orgs",
        headers=h,
        json={"code": "RWX", "name": "Wessex Hospitals", "kind": "acute-trust"},
    )
    assert r.status_code == 201, r.text
    assert (
        client.post(
            "/admin/orgs/RWX/teams",
            headers=h,
            json={"id": "RWX-ED", "name": "Emergency department"},
        ).status_code
        == 201
    )
    r = client.post(
        "/admin/orgs/RWX/practitioners",
        headers=h,
        json={"id": "RWX-P1", "name": "Dr A", "role": "clinician", "team_id": "RWX-ED"},
    )
    assert r.status_code == 201, r.text
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    r = client.post(
        "/admin/orgs/RWX/systems",
        headers=h,
        json={
            "client_id": "rwx-epr",
            "name": "EPR",
            "jwks": {"keys": [key.as_dict(private=False)]},
        },
    )
    assert r.status_code == 201, r.text
    shown = client.get("/admin/orgs/RWX", headers=h).json()
    assert shown["kind"] == "acute-trust"
    assert [t["id"] for t in shown["teams"]] == ["RWX-ED"]
    assert shown["practitioners"][0]["team_id"] == "RWX-ED"
    assert shown["systems"][0]["client_id"] == "rwx-epr"
    assert [o["code"] for o in client.get("/admin/orgs", headers=h).json()] == ["RWX"]


def test_all_problems_reported_at_once(client: TestClient, services: Services) -> None:
    h = _auth(services, Permission.ORGS_WRITE)
    r = client.post("/admin/orgs", headers=h, json={"code": "x", "name": "", "kind": "spa"})
    assert r.status_code == 422
    assert r.headers["content-type"] == "application/problem+json"
    assert {e["location"] for e in r.json()["errors"]} == {"code", "name", "kind"}


def test_private_keys_are_refused(client: TestClient, services: Services) -> None:
    h = _auth(services, Permission.ORGS_WRITE)
    client.post("/admin/orgs", headers=h, json={"code": "RWX", "name": "H", "kind": "acute-trust"})
    key = ECKey.generate_key("P-256", parameters={"kid": "k1"}, private=True)
    r = client.post(
        "/admin/orgs/RWX/systems",
        headers=h,
        json={"client_id": "rwx-epr", "name": "EPR", "jwks": {"keys": [key.as_dict(private=True)]}},
    )
    assert r.status_code == 422
    assert "private key material" in r.json()["errors"][0]["message"]


def test_unknown_org_and_duplicates(client: TestClient, services: Services) -> None:
    h = _auth(services, Permission.ORGS_READ, Permission.ORGS_WRITE)
    r = client.get("/admin/orgs/NOPE", headers=h)
    assert r.status_code == 404
    r = client.post(
        "/admin/orgs/NOPE/practitioners",
        headers=h,
        json={"id": "X1", "name": "A", "role": "nurse", "team_id": "T9"},
    )
    assert r.status_code == 422
    assert {e["location"] for e in r.json()["errors"]} == {"org_code", "team_id"}
    body = {"code": "RWX", "name": "H", "kind": "acute-trust"}
    assert client.post("/admin/orgs", headers=h, json=body).status_code == 201
    assert client.post("/admin/orgs", headers=h, json=body).status_code == 409


def test_permission_is_needed(client: TestClient, services: Services) -> None:
    r = client.get("/admin/orgs", headers=_auth(services, Permission.RECORDS_READ))
    assert r.status_code == 403
    assert "orgs:read" in r.json()["detail"]
    r = client.post(
        "/admin/orgs",
        headers=_auth(services, Permission.ORGS_READ),
        json={"code": "RWX", "name": "H", "kind": "acute-trust"},
    )
    assert r.status_code == 403
