"""The organisations registry: organisations, teams, practitioners, client systems."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.orgs.models import ClientSystem, Organisation, Practitioner, Team
from joinedup.orgs.specs import OrgSpec, PractitionerSpec, SystemSpec, TeamSpec
from joinedup.orgs.vocab import OrgKind
from joinedup.storage.engine import Database


@dataclass(frozen=True)
class OrgDetail:
    org: dict[str, Any]
    teams: list[dict[str, Any]]
    practitioners: list[dict[str, Any]]
    systems: list[dict[str, Any]]


def org_view(org: Organisation) -> dict[str, Any]:
    return {"code": org.code, "name": org.name, "kind": org.kind, "active": org.active}


def team_view(team: Team) -> dict[str, Any]:
    return {"id": team.id, "org_code": team.org_code, "name": team.name}


def practitioner_view(p: Practitioner) -> dict[str, Any]:
    return {
        "id": p.id,
        "org_code": p.org_code,
        "name": p.name,
        "role": p.role,
        "team_id": p.team_id,
        "active": p.active,
    }


def system_view(s: ClientSystem) -> dict[str, Any]:
    return {
        "client_id": s.client_id,
        "org_code": s.org_code,
        "name": s.name,
        "scopes": s.scopes.split(),
        "active": s.active,
        "jwks": s.jwks,
    }


class Registry:
    def __init__(self, db: Database) -> None:
        self._db = db

    # -- reads -----------------------------------------------------------------
    def list_orgs(self) -> list[dict[str, Any]]:
        with self._db.session() as s:
            return [
                org_view(o) for o in s.scalars(select(Organisation).order_by(Organisation.code))
            ]

    def show_org(self, code: str) -> OrgDetail:
        with self._db.session() as s:
            org = s.get(Organisation, code)
            if org is None:
                raise NotFound(f"no organisation with code {code!r}")
            teams = s.scalars(select(Team).where(Team.org_code == code).order_by(Team.id))
            people = s.scalars(
                select(Practitioner).where(Practitioner.org_code == code).order_by(Practitioner.id)
            )
            systems = s.scalars(
                select(ClientSystem)
                .where(ClientSystem.org_code == code)
                .order_by(ClientSystem.client_id)
            )
            return OrgDetail(
                org_view(org),
                [team_view(t) for t in teams],
                [practitioner_view(p) for p in people],
                [system_view(x) for x in systems],
            )

    def is_hub(self, code: str) -> bool:
        """Whether ``code`` is the area's hub, whose staff act for the whole area (IG across
        every organisation, stewarding, registering feeds for others)."""
        with self._db.session() as s:
            org = s.get(Organisation, code)
            return org is not None and org.kind == OrgKind.HUB.value

    def practitioner(self, session: Session, practitioner_id: str) -> Practitioner | None:
        return session.get(Practitioner, practitioner_id)

    def system(self, session: Session, client_id: str) -> ClientSystem | None:
        return session.get(ClientSystem, client_id)

    # -- writes ----------------------------------------------------------------
    def add_org(self, spec: OrgSpec) -> dict[str, Any]:
        with self._db.session() as s:
            if s.get(Organisation, spec.code) is not None:
                raise Conflict(f"organisation {spec.code!r} already exists")
            org = Organisation(code=spec.code, name=spec.name, kind=spec.kind.value, active=True)
            s.add(org)
            s.flush()
            return org_view(org)

    def add_team(self, spec: TeamSpec) -> dict[str, Any]:
        with self._db.session() as s:
            self._require_org(s, spec.org_code, "org_code")
            if s.get(Team, spec.id) is not None:
                raise Conflict(f"team {spec.id!r} already exists")
            team = Team(id=spec.id, org_code=spec.org_code, name=spec.name)
            s.add(team)
            s.flush()
            return team_view(team)

    def add_practitioner(self, spec: PractitionerSpec) -> dict[str, Any]:
        with self._db.session() as s:
            problems = []
            if s.get(Organisation, spec.org_code) is None:
                problems.append(Problem(f"no organisation with code {spec.org_code!r}", "org_code"))
            if spec.team_id is not None:
                team = s.get(Team, spec.team_id)
                if team is None or team.org_code != spec.org_code:
                    problems.append(
                        Problem(
                            f"no team {spec.team_id!r} in organisation {spec.org_code!r}", "team_id"
                        )
                    )
            if problems:
                raise InvalidInput("invalid practitioner", problems)
            if s.get(Practitioner, spec.id) is not None:
                raise Conflict(f"practitioner {spec.id!r} already exists")
            p = Practitioner(
                id=spec.id,
                org_code=spec.org_code,
                name=spec.name,
                role=spec.role.value,
                team_id=spec.team_id,
                active=True,
            )
            s.add(p)
            s.flush()
            return practitioner_view(p)

    def add_system(self, spec: SystemSpec) -> dict[str, Any]:
        with self._db.session() as s:
            self._require_org(s, spec.org_code, "org_code")
            if s.get(ClientSystem, spec.client_id) is not None:
                raise Conflict(f"client system {spec.client_id!r} already exists")
            system = ClientSystem(
                client_id=spec.client_id,
                org_code=spec.org_code,
                name=spec.name,
                jwks=spec.jwks,
                scopes=spec.scopes,
                active=True,
            )
            s.add(system)
            s.flush()
            return system_view(system)

    @staticmethod
    def _require_org(s: Session, code: str, location: str) -> Organisation:
        org = s.get(Organisation, code)
        if org is None:
            raise InvalidInput(
                "unknown organisation", [Problem(f"no organisation with code {code!r}", location)]
            )
        return org
