"""Feeds, batches and quarantine through the admin API (mounted as the lead will mount it)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from joinedup.access.purposes import Purpose
from joinedup.api.app import create_app
from joinedup.auth.permissions import Permission
from joinedup.orgs.specs import OrgSpec
from joinedup.orgs.vocab import OrgKind
from joinedup.services import Services
from joinedup.sources.mapping import bundled_mappings
from tests.integration.records.records_helpers import nhs_number

PERSONS = bundled_mappings()["WCCASC/wccasc-persons"]
HEADER = "PERSON_ID,NHS_NO,FORENAME,SURNAME,DOB,GENDER,POSTCODE\r\n"


def _csv(*rows: str) -> bytes:
    return (HEADER + "".join(r + "\r\n" for r in rows)).encode()


GOOD = [
    f"P1,{nhs_number(1)},Anne,Smith,14/03/1950,F,SO23 1AA",
    f"P2,{nhs_number(2)},Bob,Jones,01/12/1948,M,SO23 1AB",
]
BAD = f"P3,{nhs_number(3)},Cat,Brown,31/02/1950,F,SO23 1AC"  # no 31 February


@pytest.fixture
def api(services: Services) -> Iterator[TestClient]:
    app = create_app(services)
    for code, kind in (
        ("JHUB", OrgKind.HUB),
        ("WCCASC", OrgKind.LA_ADULT_SOCIAL_CARE),
        ("RWX", OrgKind.ACUTE_TRUST),
    ):
        services.registry.add_org(OrgSpec(code=code, name=f"Org {code}", kind=kind))
    with TestClient(app) as client:
        yield client


def _auth(services: Services, org: str, *scopes: Permission) -> dict[str, str]:
    token = services.issuer.issue(
        org=org,
        client_id=f"{org.lower()}-ie",
        purpose=Purpose.ADMINISTRATION,
        scopes=frozenset(scopes),
    )
    return {"Authorization": f"Bearer {token.access_token}"}


ALL = (Permission.FEEDS_WRITE, Permission.RECORDS_WRITE, Permission.RECORDS_READ)
FEED = {"id": "wccasc-persons", "org": "WCCASC", "format": "csv", "mapping": str(PERSONS)}
CATEGORIES = ["demographics", "carers", "social-care-assessments"]


def _register(api: TestClient, services: Services) -> dict[str, str]:
    h = _auth(services, "WCCASC", *ALL)
    r = api.post("/admin/feeds", headers=h, json={**FEED, "categories": CATEGORIES})
    assert r.status_code == 201, r.text
    return h


def test_register_list_and_show_a_feed(api: TestClient, services: Services) -> None:
    h = _register(api, services)
    assert [f["id"] for f in api.get("/admin/feeds", headers=h).json()] == ["wccasc-persons"]
    shown = api.get("/admin/feeds/wccasc-persons", headers=h).json()
    assert shown["revision"] == 1
    assert shown["quality"]["current"]["patients"] == 0
    assert shown["open_quarantine"] == 0


def test_registration_problems_are_reported_together(api: TestClient, services: Services) -> None:
    h = _auth(services, "WCCASC", *ALL)
    r = api.post("/admin/feeds", headers=h, json={**FEED, "id": "X", "categories": []})
    assert r.status_code == 422
    assert {e["location"] for e in r.json()["errors"]} == {"id", "categories"}
    # a mapping that does not fit the feed: wrong feed name, undeclared categories
    r = api.post(
        "/admin/feeds",
        headers=h,
        json={**FEED, "id": "wccasc-other", "categories": ["demographics"]},
    )
    assert r.status_code == 422
    messages = " ".join(e["message"] for e in r.json()["errors"])
    assert "is for feed 'wccasc-persons'" in messages
    assert "which the feed does not declare" in messages


def test_mappings_must_come_from_allowed_places(
    api: TestClient, services: Services, tmp_path: Path
) -> None:
    h = _auth(services, "WCCASC", *ALL)
    outside = tmp_path.parent / "elsewhere.yaml"
    r = api.post(
        "/admin/feeds", headers=h, json={**FEED, "mapping": str(outside), "categories": CATEGORIES}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "mapping"
    bad_text = {**FEED, "categories": CATEGORIES, "mapping": None, "mapping_text": "format: csv\n"}
    r = api.post("/admin/feeds", headers=h, json=bad_text)
    assert r.status_code == 422
    assert not (services.settings.data_dir / "mappings" / "WCCASC" / "wccasc-persons.yaml").exists()


def test_other_organisations_feeds_are_invisible(api: TestClient, services: Services) -> None:
    _register(api, services)
    rwx = _auth(services, "RWX", *ALL)
    assert api.get("/admin/feeds", headers=rwx).json() == []
    assert api.get("/admin/feeds/wccasc-persons", headers=rwx).status_code == 404
    r = api.post("/admin/feeds", headers=rwx, json={**FEED, "categories": CATEGORIES})
    assert r.status_code == 403
    hub = _auth(services, "JHUB", *ALL)
    assert [f["id"] for f in api.get("/admin/feeds", headers=hub).json()] == ["wccasc-persons"]


def test_post_a_batch_read_its_report_and_quarantine(api: TestClient, services: Services) -> None:
    h = _register(api, services)
    r = api.post(
        "/admin/feeds/wccasc-persons/batches",
        headers=h,
        files={"file": ("persons.csv", _csv(*GOOD, BAD), "text/csv")},
    )
    assert r.status_code == 201, r.text
    batch = r.json()
    assert batch["status"] == "committed"
    assert (batch["counts"]["read"], batch["counts"]["accepted"], batch["counts"]["rejected"]) == (
        3,
        2,
        1,
    )
    [problem] = batch["report"]["problems"]
    assert problem["unit"] == 3
    assert "31/02/1950" not in r.text  # the offending date of birth is shown by its shape only
    assert api.get(f"/admin/batches/{batch['id']}", headers=h).json()["counts"] == batch["counts"]
    assert api.get("/admin/feeds/wccasc-persons/batches", headers=h).json()[0]["id"] == batch["id"]

    q = api.get("/admin/feeds/wccasc-persons/quarantine", headers=h).json()
    [unit] = q["units"]
    assert (unit["unit"], "raw" not in unit) == (3, True)
    no_read = _auth(services, "WCCASC", Permission.FEEDS_WRITE)
    r = api.get("/admin/feeds/wccasc-persons/quarantine?include_raw=true", headers=no_read)
    assert r.status_code == 403
    raw = api.get("/admin/feeds/wccasc-persons/quarantine?include_raw=true", headers=h).json()
    assert raw["units"][0]["raw"].startswith("P3,")

    # the same file again is recognised
    again = api.post(
        "/admin/feeds/wccasc-persons/batches",
        headers=h,
        files={"file": ("persons.csv", _csv(*GOOD, BAD), "text/csv")},
    ).json()
    assert (again["status"], again["duplicate_of"]) == ("duplicate", batch["id"])

    # the quality of what the feed holds now
    quality = api.get("/admin/feeds/wccasc-persons", headers=h).json()["quality"]["current"]
    assert (quality["patients"], quality["nhs_number_valid"]) == (2, 2)

    # reprocessing with an unchanged mapping keeps the unit in quarantine
    re = api.post("/admin/feeds/wccasc-persons/quarantine/reprocess", headers=h).json()
    assert (re["kind"], re["counts"]["rejected"]) == ("reprocess", 1)
    assert len(api.get("/admin/feeds/wccasc-persons/quarantine", headers=h).json()["units"]) == 1


def test_posting_needs_records_write(api: TestClient, services: Services) -> None:
    _register(api, services)
    h = _auth(services, "WCCASC", Permission.FEEDS_WRITE)
    r = api.post(
        "/admin/feeds/wccasc-persons/batches", headers=h, files={"file": ("p.csv", _csv(*GOOD))}
    )
    assert r.status_code == 403


def test_a_file_the_adapter_refuses_is_a_clear_error(api: TestClient, services: Services) -> None:
    h = _register(api, services)
    r = api.post(
        "/admin/feeds/wccasc-persons/batches",
        headers=h,
        files={"file": ("p.csv", b"PERSON_ID,SURNAME\r\nP1,Smith\r\n")},
    )
    assert r.status_code in (400, 422), r.text
    assert r.headers["content-type"] == "application/problem+json"
    assert any("NHS_NO" in e["message"] or "NHS_NO" in e["location"] for e in r.json()["errors"])
    [failed] = api.get("/admin/feeds/wccasc-persons/batches", headers=h).json()
    assert failed["status"] == "failed"


def test_every_route_needs_a_token(api: TestClient) -> None:
    from joinedup.api.routes import route_table

    paths = [
        (method, route.path)
        for route in route_table(api.app)  # type: ignore[arg-type]
        if route.path.startswith(("/admin/feeds", "/admin/batches"))
        for method in sorted(route.methods - {"HEAD", "OPTIONS"})
    ]
    assert len(paths) == 9
    for method, path in paths:
        r = api.request(method, path.replace("{feed_id}", "x").replace("{batch_id}", "x"), json={})
        assert r.status_code == 401, (method, path)
