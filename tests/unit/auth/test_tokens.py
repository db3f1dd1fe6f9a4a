"""Issuing and verifying access tokens, without a database."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from joserfc import jwt

from joinedup.access.purposes import Purpose
from joinedup.auth.jwk import KeyStore
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import TokenIssuer, TokenVerifier
from joinedup.errors import ConfigError, Unauthenticated

ISS, AUD = "http://joinedup.test", "joinedup"


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.generate()
    return store


def _issue(keys: KeyStore, **kw: object) -> str:
    issuer = TokenIssuer(
        keys,
        issuer=kw.pop("iss", ISS),
        audience=kw.pop("aud", AUD),  # type: ignore[arg-type]
        ttl_seconds=kw.pop("ttl", 600),
    )  # type: ignore[arg-type]
    args = {
        "org": "RWX",
        "client_id": "rwx-epr",
        "purpose": Purpose.DIRECT_CARE,
        "scopes": frozenset({Permission.RECORDS_READ}),
        "practitioner": "RWX-P1",
        "role": "clinician",
    } | kw
    return issuer.issue(**args).access_token  # type: ignore[arg-type]


def _verifier(keys: KeyStore) -> TokenVerifier:
    return TokenVerifier(keys, issuer=ISS, audience=AUD, leeway=0)


def test_round_trip_carries_who_and_why(keys: KeyStore) -> None:
    token = _verifier(keys).verify(_issue(keys))
    assert (token.org, token.client_id, token.practitioner, token.role) == (
        "RWX",
        "rwx-epr",
        "RWX-P1",
        "clinician",
    )
    assert token.purpose is Purpose.DIRECT_CARE
    assert token.has(Permission.RECORDS_READ)
    assert not token.has(Permission.ORGS_WRITE)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"aud": "someone-else"}, "another audience"),
        ({"iss": "http://evil.test"}, "another issuer"),
        ({"now": int(time.time()) - 3600}, "expired"),
    ],
)
def test_rejections_say_what_is_wrong(
    keys: KeyStore, kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(Unauthenticated, match=message):
        _verifier(keys).verify(_issue(keys, **kwargs))


def test_token_from_foreign_key_with_same_kid_fails_signature(
    keys: KeyStore, tmp_path: Path
) -> None:
    other = KeyStore(tmp_path / "other")
    forged_key = other.generate().key
    kid = keys.active().kid
    claims = jwt.decode(_issue(keys), keys.key_set()).claims
    forged = jwt.encode({"alg": "ES256", "kid": kid, "typ": "at+jwt"}, claims, forged_key)
    with pytest.raises(Unauthenticated, match="signature"):
        _verifier(keys).verify(forged)


def test_unknown_kid(keys: KeyStore, tmp_path: Path) -> None:
    other = KeyStore(tmp_path / "other")
    other.generate()
    with pytest.raises(Unauthenticated, match="unknown or retired key"):
        _verifier(keys).verify(_issue(other))


@pytest.mark.parametrize("garbage", ["", "abc", "a.b.c", "ey.ey.ey", "é.é.é"])
def test_malformed(keys: KeyStore, garbage: str) -> None:
    with pytest.raises(Unauthenticated, match="malformed"):
        _verifier(keys).verify(garbage)


def test_wrong_typ_is_refused(keys: KeyStore) -> None:
    key = keys.active()
    claims = jwt.decode(_issue(keys), keys.key_set()).claims
    token = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key.key)
    with pytest.raises(Unauthenticated, match="not an access token"):
        _verifier(keys).verify(token)


def test_rotation_keeps_old_tokens_until_retired(keys: KeyStore) -> None:
    old_kid = keys.active().kid
    old_token = _issue(keys)
    keys.generate()
    new_token = _issue(keys)
    verifier = _verifier(keys)
    assert jwt.decode(new_token, keys.key_set()).header["kid"] != old_kid
    verifier.verify(old_token)
    verifier.verify(new_token)
    keys.retire(old_kid)
    with pytest.raises(Unauthenticated, match="unknown or retired"):
        _verifier(keys).verify(old_token)
    assert old_kid not in {k["kid"] for k in keys.public_jwks()["keys"]}


def test_verifier_picks_up_a_rotated_key_without_restart(keys: KeyStore) -> None:
    verifier = _verifier(keys)
    verifier._last_reload -= 10  # as if the last reload was a while ago
    keys.generate()
    verifier.verify(_issue(keys))


def test_emergency_needs_reason(keys: KeyStore) -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        _issue(keys, purpose=Purpose.EMERGENCY)
    token = _verifier(keys).verify(_issue(keys, purpose=Purpose.EMERGENCY, reason="unconscious"))
    assert token.reason == "unconscious"


def test_no_keys_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="joinedup keys init"):
        KeyStore(tmp_path / "none").active()


def test_key_files_are_private(keys: KeyStore) -> None:
    path = keys.active().path
    assert path.stat().st_mode & 0o077 == 0
    assert "d" not in keys.public_jwks()["keys"][0]


def test_cannot_retire_only_key(keys: KeyStore) -> None:
    with pytest.raises(ConfigError, match="only signing key"):
        keys.retire(keys.active().kid)
