"""The data steward's admin API over the person index."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from starlette.testclient import TestClient

from joinedup.access.purposes import Purpose
from joinedup.api.app import create_app
from joinedup.auth.permissions import Permission
from joinedup.people.index import PersonIndex
from joinedup.services import Services
from tests.integration.people.test_person_index import FieldMatcher, person


@pytest.fixture
def steward(services: Services) -> Iterator[tuple[TestClient, Services, dict[str, str]]]:
    svc = dataclasses.replace(services, people=PersonIndex(services.db, FieldMatcher()))
    token = svc.issuer.issue(
        org="JHUB",
        client_id="jhub-console",
        purpose=Purpose.GOVERNANCE,
        scopes=frozenset({Permission.PEOPLE_REVIEW}),
        practitioner="JHUB-P002",
        role="data-steward",
    )
    with TestClient(create_app(svc)) as client:
        yield client, svc, {"Authorization": f"Bearer {token.access_token}"}


def test_review_accept_then_unmerge_over_http(
    steward: tuple[TestClient, Services, dict[str, str]],
) -> None:
    client, svc, auth = steward
    a = svc.people.link_one(person("A/1"), "RWX")
    c = svc.people.link_one(person("C/1", postcode="WX9 9ZZ"), "WCARERS")
    queue = client.get("/admin/people/review", headers=auth).json()
    assert [q["id"] for q in queue] == [c.review_pair]
    assert {e["comparison"] for e in queue[0]["evidence"]} == {"given_name", "family_name", "dob"}
    r = client.post(f"/admin/people/review/{c.review_pair}/accept", headers=auth)
    assert r.status_code == 200
    merge = r.json()["merge"]
    joined = client.get(f"/admin/people/{a.person_id}", headers=auth).json()
    assert joined["records"] == {"RWX": ["A/1"], "WCARERS": ["C/1"]}
    assert client.post(f"/admin/people/merges/{merge}/undo", headers=auth).status_code == 200
    assert client.get(f"/admin/people/{c.person_id}", headers=auth).json()["records"] == {
        "WCARERS": ["C/1"]
    }
    history = client.get(f"/admin/people/{c.person_id}/history", headers=auth).json()
    assert [h["actor"] for h in history if h["action"] in {"merge", "unmerge"}] == [
        "JHUB-P002",
        "JHUB-P002",
    ]


def test_steward_errors_are_problems(steward: tuple[TestClient, Services, dict[str, str]]) -> None:
    client, _, auth = steward
    assert client.get("/admin/people/no-such", headers=auth).status_code == 404
    assert client.post("/admin/people/review/999/accept", headers=auth).status_code == 404
    r = client.post("/admin/people/merges", headers=auth, json={"survivor": 1})
    assert r.status_code == 422
    assert {e["location"] for e in r.json()["errors"]} == {"survivor", "merged", "reason"}


def test_review_needs_the_permission(services: Services, client: TestClient) -> None:
    token = services.issuer.issue(
        org="RWX",
        client_id="rwx-epr",
        purpose=Purpose.DIRECT_CARE,
        scopes=frozenset({Permission.RECORDS_READ}),
    )
    r = client.get(
        "/admin/people/review", headers={"Authorization": f"Bearer {token.access_token}"}
    )
    assert r.status_code == 403
