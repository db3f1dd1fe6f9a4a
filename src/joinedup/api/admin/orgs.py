"""Admin routes for the organisations registry."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Request

from joinedup.api.audit_trail import record_change
from joinedup.api.deps import Token, require, services
from joinedup.audit.events import AuditAction
from joinedup.auth.permissions import Permission
from joinedup.orgs.specs import OrgSpec, PractitionerSpec, SystemSpec, TeamSpec
from joinedup.services import Services
from joinedup.validation import parse

router = APIRouter(prefix="/orgs", tags=["admin: organisations"])

Svc = Annotated[Services, Depends(services)]
Read = Depends(require(Permission.ORGS_READ))
Write = Depends(require(Permission.ORGS_WRITE))
JsonBody = Annotated[dict[str, Any], Body()]


@router.get("", dependencies=[Read], summary="List organisations")
def list_orgs(svc: Svc) -> list[dict[str, Any]]:
    return svc.registry.list_orgs()


@router.post("", dependencies=[Write], status_code=201, summary="Register an organisation")
def add_org(svc: Svc, body: JsonBody, request: Request, token: Token) -> dict[str, Any]:
    org = svc.registry.add_org(parse(OrgSpec, body, what="organisation"))
    record_change(request, token, AuditAction.ORG_CHANGE, change="add-org", org_code=org["code"])
    return org


@router.get(
    "/{code}", dependencies=[Read], summary="An organisation with its teams, staff, systems"
)
def show_org(svc: Svc, code: str) -> dict[str, Any]:
    detail = svc.registry.show_org(code)
    return {
        **detail.org,
        "teams": detail.teams,
        "practitioners": detail.practitioners,
        "systems": detail.systems,
    }


@router.post("/{code}/teams", dependencies=[Write], status_code=201, summary="Add a team")
def add_team(svc: Svc, code: str, body: JsonBody, request: Request, token: Token) -> dict[str, Any]:
    team = svc.registry.add_team(parse(TeamSpec, {**body, "org_code": code}, what="team"))
    record_change(
        request, token, AuditAction.ORG_CHANGE, change="add-team", org_code=code, team=team["id"]
    )
    return team


@router.post(
    "/{code}/practitioners", dependencies=[Write], status_code=201, summary="Add a practitioner"
)
def add_practitioner(
    svc: Svc, code: str, body: JsonBody, request: Request, token: Token
) -> dict[str, Any]:
    spec = parse(PractitionerSpec, {**body, "org_code": code}, what="practitioner")
    added = svc.registry.add_practitioner(spec)
    record_change(
        request,
        token,
        AuditAction.ORG_CHANGE,
        change="add-practitioner",
        org_code=code,
        practitioner=added["id"],
    )
    return added


@router.post(
    "/{code}/systems",
    dependencies=[Write],
    status_code=201,
    summary="Register a client system and its public keys",
)
def add_system(
    svc: Svc, code: str, body: JsonBody, request: Request, token: Token
) -> dict[str, Any]:
    spec = parse(SystemSpec, {**body, "org_code": code}, what="client system")
    added = svc.registry.add_system(spec)
    record_change(
        request,
        token,
        AuditAction.KEY_CHANGE,
        change="add-client-system",
        org_code=code,
        client=added["client_id"],
        kids=[k.get("kid") for k in spec.jwks.get("keys", [])],
    )
    return added
