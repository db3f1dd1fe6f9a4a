"""The OAuth2 token endpoint: client credentials with private_key_jwt, on both databases."""

from __future__ import annotations

from joserfc.jwk import ECKey
from starlette.testclient import TestClient

from joinedup.services import Services
from tests.support import add_org, assertion, token_form

AUD = "http://testserver/oauth2/token"


def test_token_for_a_registered_practitioner(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, practitioner="RWX-P1"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["token_type"] == "Bearer"
    assert r.headers["cache-control"] == "no-store"
    token = client.app.state.verifier.verify(body["access_token"])  # type: ignore[attr-defined]
    assert (token.org, token.practitioner, token.role, token.team) == (
        "RWX",
        "RWX-P1",
        "clinician",
        "RWX-T1",
    )


def test_replayed_assertion_is_refused(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    form = token_form(rwx, AUD)
    assert client.post("/oauth2/token", data=form).status_code == 200
    r = client.post("/oauth2/token", data=form)
    assert r.status_code == 401
    assert "replay" in r.json()["detail"]


def test_assertion_problems(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    stranger = ECKey.generate_key("P-256", parameters={"kid": "rwx-k1"}, private=True)
    cases = {
        "wrong audience": assertion(rwx, "http://elsewhere/token"),
        "signed by another key": assertion(rwx, AUD, key=stranger),
        "expired": assertion(rwx, AUD, lifetime=-120),
        "too far ahead": assertion(rwx, AUD, lifetime=3600),
        "unknown client": assertion(rwx, AUD, iss="nobody", sub="nobody"),
        "iss and sub differ": assertion(rwx, AUD, sub="someone"),
        "garbage": "not-a-jwt",
    }
    for label, value in cases.items():
        form = token_form(rwx, AUD) | {"client_assertion": value}
        r = client.post("/oauth2/token", data=form)
        assert r.status_code == 401, label
        assert r.headers["content-type"] == "application/problem+json", label
        assert r.json()["detail"], label
        assert "Traceback" not in r.text


def test_request_problems_listed_together(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    form = token_form(rwx, AUD) | {"grant_type": "password", "client_assertion_type": "x"}
    r = client.post("/oauth2/token", data=form)
    assert r.status_code == 422
    locations = {e["location"] for e in r.json()["errors"]}
    assert locations == {"grant_type", "client_assertion_type"}


def test_purpose_and_reason_rules(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, purpose="curiosity"))
    assert r.status_code == 422
    assert r.json()["errors"][0]["location"] == "purpose"
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, purpose="emergency"))
    assert r.status_code == 422
    assert "reason" in r.json()["errors"][0]["message"]
    r = client.post(
        "/oauth2/token", data=token_form(rwx, AUD, purpose="emergency", reason="collapsed in ED")
    )
    assert r.status_code == 200


def test_practitioner_of_another_org_is_forbidden(client: TestClient, services: Services) -> None:
    rwx = add_org(services, "RWX")
    add_org(services, "RWM")
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, practitioner="RWM-P1"))
    assert r.status_code == 403
    assert "not registered at 'RWX'" in r.json()["detail"]


def test_scope_is_limited_to_what_the_system_may_have(
    client: TestClient, services: Services
) -> None:
    rwx = add_org(services, "RWX", scopes="records:read")
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, scope="orgs:write"))
    assert r.status_code == 403
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, scope="records:read"))
    assert r.json()["scope"] == "records:read"
    r = client.post("/oauth2/token", data=token_form(rwx, AUD, scope="no-such:thing"))
    assert r.status_code == 422


def test_jwks_and_discovery_are_public(client: TestClient) -> None:
    keys = client.get("/.well-known/jwks.json").json()["keys"]
    assert keys
    assert all("d" not in k and k["kid"] for k in keys)
    conf = client.get("/.well-known/smart-configuration").json()
    assert conf["token_endpoint"] == AUD
    assert conf["token_endpoint_auth_methods_supported"] == ["private_key_jwt"]
