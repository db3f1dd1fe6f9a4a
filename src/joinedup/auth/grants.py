"""The OAuth2 client-credentials grant with private_key_jwt client authentication (RFC 7523).

An organisation's system signs a short-lived assertion with its own private
key; joinedup checks it against the public keys registered for that system,
refuses replays, and issues an access token for the practitioner the system
acts for. The practitioner's role and team come from the registry.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from joserfc import jwt
from joserfc.errors import BadSignatureError, ExpiredTokenError, JoseError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from joinedup.access.purposes import NEEDS_REASON, Purpose
from joinedup.auth.jwk import CLIENT_ALGS
from joinedup.auth.models import UsedAssertion
from joinedup.auth.permissions import Permission, parse_scope
from joinedup.auth.tokens import IssuedToken, TokenIssuer
from joinedup.errors import Forbidden, InvalidInput, Problem, Unauthenticated
from joinedup.orgs.models import ClientSystem, Organisation, Practitioner
from joinedup.storage.engine import Database

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


@dataclass(frozen=True)
class TokenRequest:
    """What the caller asks for, beyond who it is."""

    purpose: str
    scope: str | None = None
    practitioner: str | None = None
    reason: str | None = None


class TokenService:
    def __init__(
        self,
        db: Database,
        issuer: TokenIssuer,
        *,
        token_endpoint: str,
        assertion_max_age: int,
        leeway: int,
    ) -> None:
        self._db = db
        self._issuer = issuer
        self._endpoint = token_endpoint
        self._max_age = assertion_max_age
        self._leeway = leeway

    def client_credentials(
        self, *, grant_type: str, assertion_type: str, assertion: str, request: TokenRequest
    ) -> IssuedToken:
        problems = []
        if grant_type != "client_credentials":
            problems.append(Problem("only client_credentials is supported", "grant_type"))
        if assertion_type != ASSERTION_TYPE:
            problems.append(Problem(f"must be {ASSERTION_TYPE}", "client_assertion_type"))
        if not assertion:
            problems.append(Problem("a signed client assertion is required", "client_assertion"))
        if problems:
            raise InvalidInput("invalid token request", problems)
        client_id = self._authenticate(assertion)
        return self.mint(client_id=client_id, request=request)

    def _authenticate(self, assertion: str) -> str:
        """Verify the client assertion and return the client id it proves."""
        # Only the claimed issuer is read before verification: it says which
        # client's registered keys must verify the signature.
        claims = _peek_claims(assertion)
        client_id = claims.get("iss")
        if not isinstance(client_id, str) or claims.get("sub") != client_id:
            raise Unauthenticated(
                "client_assertion must have iss and sub both equal to the client id"
            )
        with self._db.session() as s:
            system = s.get(ClientSystem, client_id)
            if system is None or not system.active:
                raise Unauthenticated("unknown or inactive client")
            keys = KeySet.import_key_set(system.jwks)  # type: ignore[arg-type]
        try:
            verified = jwt.decode(assertion, keys, algorithms=list(CLIENT_ALGS))
            JWTClaimsRegistry(
                leeway=self._leeway,
                aud={"essential": True, "value": self._endpoint},
                exp={"essential": True},
                jti={"essential": True},
            ).validate(verified.claims)
        except BadSignatureError:
            raise Unauthenticated(
                "client_assertion signature does not match the client's registered keys"
            ) from None
        except ExpiredTokenError:
            raise Unauthenticated("client_assertion has expired") from None
        except JoseError as exc:
            raise Unauthenticated(
                f"client_assertion rejected: {exc.description or exc.error}"
            ) from None
        now = datetime.now(UTC).timestamp()
        exp = float(verified.claims["exp"])
        if exp - now > self._max_age:
            raise Unauthenticated(f"client_assertion exp is more than {self._max_age}s ahead")
        self._remember(client_id, str(verified.claims["jti"]), exp)
        return client_id

    def _remember(self, client_id: str, jti: str, exp: float) -> None:
        expires = datetime.fromtimestamp(exp, UTC)
        try:
            with self._db.session() as s:
                s.execute(delete(UsedAssertion).where(UsedAssertion.expires_at < datetime.now(UTC)))
                s.add(UsedAssertion(client_id=client_id, jti=jti, expires_at=expires))
        except IntegrityError:
            raise Unauthenticated("client_assertion has been used before (replay)") from None

    def mint(self, *, client_id: str, request: TokenRequest) -> IssuedToken:
        """Issue a token for ``client_id``; also used by `joinedup token` for local work."""
        problems = []
        try:
            purpose = Purpose(request.purpose)
        except ValueError:
            known = ", ".join(p.value for p in Purpose)
            problems.append(
                Problem(f"unknown purpose {request.purpose!r}; known: {known}", "purpose")
            )
            purpose = None
        if purpose in NEEDS_REASON and not (request.reason and request.reason.strip()):
            problems.append(
                Problem(f"purpose {request.purpose} (break-glass) needs a reason", "reason")
            )
        requested: frozenset[Permission] | None = None
        if request.scope:
            try:
                requested = parse_scope(request.scope)
            except ValueError as exc:
                problems.append(Problem(str(exc), "scope"))
        if problems or purpose is None:
            raise InvalidInput("invalid token request", problems)
        with self._db.session() as s:
            system = s.get(ClientSystem, client_id)
            if system is None or not system.active:
                raise Unauthenticated("unknown or inactive client")
            org = s.get(Organisation, system.org_code)
            if org is None or not org.active:
                raise Forbidden(f"organisation {system.org_code!r} is not active")
            allowed = parse_scope(system.scopes)
            if requested is not None and not requested <= allowed:
                extra = " ".join(sorted(p.value for p in requested - allowed))
                raise Forbidden(f"client {client_id!r} may not be granted: {extra}")
            granted = requested if requested is not None else allowed
            role = team = None
            if request.practitioner:
                practitioner = s.get(Practitioner, request.practitioner)
                if practitioner is None or practitioner.org_code != system.org_code:
                    raise Forbidden(
                        f"practitioner {request.practitioner!r} is not registered at "
                        f"{system.org_code!r}"
                    )
                if not practitioner.active:
                    raise Forbidden(f"practitioner {request.practitioner!r} is not active")
                role, team = practitioner.role, practitioner.team_id
            org_code = system.org_code
        return self._issuer.issue(
            org=org_code,
            client_id=client_id,
            purpose=purpose,
            scopes=granted,
            practitioner=request.practitioner,
            role=role,
            team=team,
            reason=request.reason,
        )


def _peek_claims(assertion: str) -> dict[str, object]:
    import base64
    import json

    try:
        payload = assertion.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        raise Unauthenticated("client_assertion is not a well-formed signed JWT") from None
    if not isinstance(data, dict):
        raise Unauthenticated("client_assertion payload is not a JSON object")
    return data
