"""Access tokens: short-lived JWTs (RFC 9068 profile) saying who acts, for what purpose.

A token names the organisation, the client system, the practitioner and their
role (from the registry, never from the client's say-so), the purpose of use,
and the permissions granted. It is signed with the newest key in the KeyStore.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from joserfc import jwt
from joserfc.errors import (
    BadSignatureError,
    ExpiredTokenError,
    InvalidClaimError,
    JoseError,
    MissingClaimError,
)
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from joinedup.access.purposes import NEEDS_REASON, Purpose
from joinedup.auth.jwk import SIGNING_ALG, KeyStore
from joinedup.auth.permissions import Permission, format_scope, parse_scope
from joinedup.errors import Unauthenticated

TOKEN_TYPE = "at+jwt"  # noqa: S105 - a JWT typ, not a secret


@dataclass(frozen=True, slots=True)
class AccessToken:
    """A verified token's meaning."""

    org: str
    client_id: str
    purpose: Purpose
    scopes: frozenset[Permission]
    jti: str
    expires_at: int
    practitioner: str | None = None
    role: str | None = None
    team: str | None = None
    reason: str | None = None
    person: str | None = None
    """Set on person-scoped tokens: the person looking at their own record."""
    extra: dict[str, Any] = field(default_factory=dict)

    def has(self, permission: Permission) -> bool:
        return permission in self.scopes


@dataclass(frozen=True)
class IssuedToken:
    access_token: str
    expires_in: int
    scope: str
    token_type: str = "Bearer"  # noqa: S105


class TokenIssuer:
    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, ttl_seconds: int) -> None:
        self._keys = keys
        self._issuer = issuer
        self._audience = audience
        self._ttl = ttl_seconds

    def issue(
        self,
        *,
        org: str,
        client_id: str,
        purpose: Purpose,
        scopes: frozenset[Permission],
        practitioner: str | None = None,
        role: str | None = None,
        team: str | None = None,
        reason: str | None = None,
        person: str | None = None,
        now: int | None = None,
    ) -> IssuedToken:
        if purpose in NEEDS_REASON and not (reason and reason.strip()):
            raise ValueError(f"purpose {purpose} needs a reason")
        key = self._keys.active()
        issued_at = int(time.time()) if now is None else now
        subject = practitioner or (f"person/{person}" if person else f"system/{client_id}")
        claims: dict[str, Any] = {
            "iss": self._issuer,
            "aud": self._audience,
            "sub": subject,
            "iat": issued_at,
            "nbf": issued_at,
            "exp": issued_at + self._ttl,
            "jti": uuid.uuid4().hex,
            "client_id": client_id,
            "org": org,
            "purpose": purpose.value,
            "scope": format_scope(scopes),
        }
        optional = {
            "practitioner": practitioner,
            "role": role,
            "team": team,
            "reason": reason,
            "person": person,
        }
        claims.update({k: v for k, v in optional.items() if v})
        header = {"alg": SIGNING_ALG, "kid": key.kid, "typ": TOKEN_TYPE}
        value = jwt.encode(header, claims, key.key)
        return IssuedToken(value, self._ttl, claims["scope"])


class TokenVerifier:
    """Verifies tokens against the published keys; reloads keys when it meets a new kid."""

    def __init__(self, keys: KeyStore, *, issuer: str, audience: str, leeway: int = 30) -> None:
        self._keys = keys
        self._key_set: KeySet = keys.key_set()
        self._known = {k.kid for k in self._key_set.keys}
        self._claims = JWTClaimsRegistry(
            leeway=leeway,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            exp={"essential": True},
            sub={"essential": True},
            jti={"essential": True},
        )
        self._last_reload = time.monotonic()

    def _key_ids(self, token: str) -> str:
        from joserfc.jws import extract_compact

        try:
            header = extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, UnicodeEncodeError):
            raise Unauthenticated("the bearer token is malformed: not a compact JWS") from None
        if header.get("typ") != TOKEN_TYPE:
            raise Unauthenticated(
                f"the bearer token is not an access token (typ must be {TOKEN_TYPE})"
            )
        if header.get("alg") != SIGNING_ALG:
            raise Unauthenticated(f"the bearer token's alg must be {SIGNING_ALG}")
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthenticated("the bearer token's header has no kid")
        return kid

    def _refresh_for(self, kid: str) -> None:
        if kid in self._known or time.monotonic() - self._last_reload < 5:
            return
        self._key_set = self._keys.key_set()
        self._known = {k.kid for k in self._key_set.keys}
        self._last_reload = time.monotonic()

    def verify(self, token: str) -> AccessToken:
        kid = self._key_ids(token)
        self._refresh_for(kid)
        if kid not in self._known:
            raise Unauthenticated("the bearer token was signed by an unknown or retired key")
        try:
            decoded = jwt.decode(token, self._key_set, algorithms=[SIGNING_ALG])
            self._claims.validate(decoded.claims)
        except BadSignatureError:
            raise Unauthenticated("the bearer token's signature is not valid") from None
        except ExpiredTokenError:
            raise Unauthenticated("the bearer token has expired") from None
        except MissingClaimError as exc:
            raise Unauthenticated(
                f"the bearer token lacks a required claim: {exc.description}"
            ) from None
        except InvalidClaimError as exc:
            claim = exc.description.split("'")[1] if "'" in exc.description else exc.description
            if claim == "aud":
                raise Unauthenticated("the bearer token was issued for another audience") from None
            if claim == "iss":
                raise Unauthenticated("the bearer token was issued by another issuer") from None
            raise Unauthenticated(f"the bearer token's {claim} claim is not valid") from None
        except JoseError:
            raise Unauthenticated("the bearer token is malformed") from None
        return _meaning(decoded.claims)


def _meaning(claims: dict[str, Any]) -> AccessToken:
    try:
        purpose = Purpose(claims["purpose"])
        scopes = parse_scope(str(claims.get("scope", "")))
        return AccessToken(
            org=str(claims["org"]),
            client_id=str(claims["client_id"]),
            purpose=purpose,
            scopes=scopes,
            jti=str(claims["jti"]),
            expires_at=int(claims["exp"]),
            practitioner=claims.get("practitioner"),
            role=claims.get("role"),
            team=claims.get("team"),
            reason=claims.get("reason"),
            person=claims.get("person"),
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise Unauthenticated(
            f"the bearer token's claims are incomplete or invalid: {exc}"
        ) from None
