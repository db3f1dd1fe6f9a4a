"""Health, readiness, metrics, request ids, OpenAPI, and what is kept out of logs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from joinedup.api.app import create_app
from joinedup.config import Settings
from joinedup.logs import configure
from joinedup.services import build
from joinedup.storage.engine import Database


def test_health_and_ready(client: TestClient) -> None:
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/ready").json() == {"status": "ready"}


def test_not_ready_on_an_unmigrated_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    svc = build(settings)
    svc.keys.ensure()
    with TestClient(create_app(svc)) as c:
        r = c.get("/ready")
    assert r.status_code == 503
    assert "joinedup db upgrade" in r.json()["detail"]


def test_request_id_is_echoed_or_made(client: TestClient) -> None:
    assert (
        client.get("/health", headers={"X-Request-ID": "abcdef123456"}).headers["x-request-id"]
        == "abcdef123456"
    )
    made = client.get("/health", headers={"X-Request-ID": "bad id!"}).headers["x-request-id"]
    assert made != "bad id!"
    assert len(made) == 32


def test_made_request_ids_are_unique_and_count_nothing(client: TestClient) -> None:
    """Ids the service makes are random throughout: no part of one is shared with the
    next or counts requests (which would tell a client how busy the service is)."""
    made = [client.get("/health").headers["x-request-id"] for _ in range(300)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made)
    assert len(set(made)) == len(made)
    assert len({m[:16] for m in made}) == len(made)
    assert len({m[16:] for m in made}) == len(made)


def test_metrics_use_route_templates_not_raw_paths(client: TestClient) -> None:
    client.get("/admin/orgs/9434765919")
    text = client.get("/metrics").text
    assert 'route="/admin/orgs/{code}"' in text
    assert "9434765919" not in text


def test_access_log_has_no_raw_path_or_query(
    client: TestClient, capsys: pytest.CaptureFixture[str]
) -> None:
    configure("info", json=True)
    client.get("/admin/orgs/9434765919?name=Smith")
    logged = capsys.readouterr().err
    assert "/admin/orgs/{code}" in logged
    assert "9434765919" not in logged
    assert "Smith" not in logged


def test_openapi_documents_the_routes(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    assert "/oauth2/token" in spec["paths"]
    assert "/admin/orgs/{code}" in spec["paths"]


def test_unhandled_error_is_a_plain_500(db: Database, services: object) -> None:
    from joinedup.services import Services

    assert isinstance(services, Services)
    app = create_app(services)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals 9434765919")

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/boom")
    assert r.status_code == 500
    assert r.json()["detail"] == "internal error"
    assert "secret" not in r.text


def test_capability_statement_is_public_fhir(client: TestClient) -> None:
    r = client.get("/fhir/metadata")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/fhir+json")
    body = r.json()
    assert body["resourceType"] == "CapabilityStatement"
    assert body["fhirVersion"] == "4.0.1"
    from fhir.resources.R4B.capabilitystatement import CapabilityStatement

    CapabilityStatement.model_validate(body)
    patient = next(x for x in body["rest"][0]["resource"] if x["type"] == "Patient")
    assert {"identifier", "name", "birthdate"} <= {p["name"] for p in patient["searchParam"]}
    assert patient["operation"][0]["name"] == "everything"


def test_fhir_errors_are_operation_outcomes(client: TestClient) -> None:
    r = client.get("/fhir/Patient/123")
    assert r.status_code in {401, 404}
    assert r.json()["resourceType"] == "OperationOutcome"


@pytest.mark.parametrize("bad", ["care.example.org/shared", "ftp://care.example.org",
                                 "https://", "https://care.example.org/?x=1",
                                 "https://care.example.org/#top"])
def test_a_public_base_url_that_is_not_an_absolute_http_url_is_refused(
    tmp_path: Path, bad: str
) -> None:
    with pytest.raises(ValueError, match="public_base_url") as refused:
        Settings(data_dir=tmp_path, public_base_url=bad)
    assert repr(bad) in str(refused.value)


def test_a_public_base_url_with_a_path_is_accepted(tmp_path: Path) -> None:
    url = "https://care.example.org/shared"
    assert Settings(data_dir=tmp_path, public_base_url=url).public_base_url == url
