"""What a caller supplies to register organisations, teams, practitioners and systems."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from joinedup.auth.permissions import PARTNER_DEFAULT, format_scope, parse_scope
from joinedup.orgs.vocab import ODS_CODE, OrgKind, ProfessionalRole

_ID = r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,39}$"


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)


def _ods(value: str) -> str:
    if not ODS_CODE.match(value):
        raise ValueError("must be an ODS-style code: 3 to 10 upper-case letters or digits")
    return value


class OrgSpec(_Spec):
    code: str
    name: str = Field(min_length=1, max_length=200)
    kind: OrgKind

    _code = field_validator("code")(_ods)


class TeamSpec(_Spec):
    id: str = Field(pattern=_ID)
    org_code: str
    name: str = Field(min_length=1, max_length=200)

    _org = field_validator("org_code")(_ods)


class PractitionerSpec(_Spec):
    id: str = Field(pattern=_ID)
    org_code: str
    name: str = Field(min_length=1, max_length=200)
    role: ProfessionalRole
    team_id: str | None = None

    _org = field_validator("org_code")(_ods)


class SystemSpec(_Spec):
    client_id: str = Field(pattern=r"^[a-z0-9][a-z0-9\-]{2,79}$")
    org_code: str
    name: str = Field(min_length=1, max_length=200)
    jwks: dict[str, Any] = Field(description="The system's public keys as a JWK Set.")
    scopes: str = Field(default=format_scope(PARTNER_DEFAULT))

    _org = field_validator("org_code")(_ods)

    @field_validator("scopes")
    @classmethod
    def _scopes(cls, value: str) -> str:
        return format_scope(parse_scope(value))

    @field_validator("jwks")
    @classmethod
    def _jwks(cls, value: dict[str, Any]) -> dict[str, Any]:
        from joinedup.auth.jwk import check_public_jwks

        check_public_jwks(value)
        return value
