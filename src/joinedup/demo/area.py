"""The Wessex demo area: organisations, teams, practitioners and client systems.

Pure values only. The organisation codes are fixed (every issue's demo, tests
and agreements use them); practitioner names are drawn from the seed so a
different seed gives different people but the same structure and ids. The
lead's loader turns an :class:`Area` into registry rows; nothing here touches
a database.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass

from joinedup.demo.names import NameLists, load_name_lists
from joinedup.orgs.vocab import ODS_CODE, OrgKind, ProfessionalRole

PRACTITIONER_ID_SYSTEM = "https://fhir.wessex.example/Id/practitioner"
"""Identifier system for the demo's practitioner ids (``RWX-P001``)."""

ODS_ORGANISATION_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
"""UK Core's ODS code system, used for every demo organisation for simplicity."""

LOCAL_ID_BASE = "https://fhir.wessex.example/Id"
"""Base of the organisations' local patient identifier systems."""


@dataclass(frozen=True, slots=True)
class Team:
    code: str
    name: str
    org_code: str

    def __post_init__(self) -> None:
        if not self.code.startswith(f"{self.org_code}-"):
            raise ValueError(f"team code {self.code!r} must start with {self.org_code}-")


@dataclass(frozen=True, slots=True)
class Practitioner:
    id: str
    given_name: str
    family_name: str
    role: ProfessionalRole
    team_code: str
    org_code: str

    def __post_init__(self) -> None:
        if not self.id.startswith(f"{self.org_code}-P"):
            raise ValueError(f"practitioner id {self.id!r} must start with {self.org_code}-P")

    @property
    def display_name(self) -> str:
        return f"{self.given_name} {self.family_name}"


@dataclass(frozen=True, slots=True)
class ClientSystem:
    """An organisation's system that calls joinedup (OAuth2 client)."""

    client_id: str
    name: str
    org_code: str
    patient_id_system: str
    """The identifier system of the local record numbers this system exports."""


@dataclass(frozen=True, slots=True)
class Organisation:
    code: str
    name: str
    kind: OrgKind
    teams: tuple[Team, ...]
    practitioners: tuple[Practitioner, ...]
    system: ClientSystem

    def __post_init__(self) -> None:
        problems = []
        if not ODS_CODE.match(self.code):
            problems.append(f"organisation code {self.code!r} is not ODS-style")
        if not any(p.role is ProfessionalRole.IG_LEAD for p in self.practitioners):
            problems.append(f"organisation {self.code} has no ig-lead")
        team_codes = {t.code for t in self.teams}
        problems.extend(
            f"practitioner {p.id} is in unknown team {p.team_code}"
            for p in self.practitioners
            if p.team_code not in team_codes
        )
        if problems:
            raise ValueError("; ".join(problems))

    def team(self, code: str) -> Team:
        for team in self.teams:
            if team.code == code:
                return team
        raise KeyError(code)

    def practitioners_in(self, team_code: str) -> tuple[Practitioner, ...]:
        return tuple(p for p in self.practitioners if p.team_code == team_code)


@dataclass(frozen=True, slots=True)
class Area:
    name: str
    seed: int
    organisations: tuple[Organisation, ...]

    def __post_init__(self) -> None:
        codes = [o.code for o in self.organisations]
        if len(set(codes)) != len(codes):
            raise ValueError("organisation codes must be unique")
        ids = [p.id for p in self.practitioners()]
        if len(set(ids)) != len(ids):
            raise ValueError("practitioner ids must be unique")

    def org(self, code: str) -> Organisation:
        for org in self.organisations:
            if org.code == code:
                return org
        raise KeyError(code)

    def practitioners(self) -> Iterator[Practitioner]:
        for org in self.organisations:
            yield from org.practitioners

    def teams(self) -> Iterator[Team]:
        for org in self.organisations:
            yield from org.teams


@dataclass(frozen=True, slots=True)
class _OrgSpec:
    code: str
    name: str
    kind: OrgKind
    client_id: str
    system_name: str
    local_id: str
    teams: tuple[tuple[str, str, tuple[tuple[ProfessionalRole, int], ...]], ...]


_R = ProfessionalRole
_IG = ("IG", "Information governance", ((_R.IG_LEAD, 1),))

ORG_SPECS: tuple[_OrgSpec, ...] = (
    _OrgSpec(
        "JHUB", "Wessex Shared Care Record (the hub operating joinedup)", OrgKind.HUB,
        "jhub-console", "Shared care record console", "jhub",
        (
            ("IG", "Information governance", ((_R.IG_LEAD, 1),)),
            ("DS", "Data stewards", ((_R.DATA_STEWARD, 2),)),
            ("INT", "Integration", ((_R.INTEGRATION_ENGINEER, 2),)),
        ),
    ),
    _OrgSpec(
        "RWX", "Wessex University Hospitals NHS Foundation Trust", OrgKind.ACUTE_TRUST,
        "rwx-epr", "Hospital electronic patient record and PAS interface engine", "rwx-mrn",
        (
            ("ED", "Emergency department", ((_R.CLINICIAN, 4), (_R.NURSE, 3), (_R.ADMIN, 1))),
            ("AMU", "Acute medicine", ((_R.CLINICIAN, 3), (_R.NURSE, 3))),
            ("DIS", "Discharge team", ((_R.NURSE, 2), (_R.CARE_COORDINATOR, 1))),
            _IG,
        ),
    ),
    _OrgSpec(
        "RWM", "Wessex Mental Health NHS Foundation Trust", OrgKind.MENTAL_HEALTH_TRUST,
        "rwm-ehr", "Mental health electronic record", "rwm-patient-id",
        (
            (
                "CMHT", "Community mental health team",
                ((_R.CLINICIAN, 2), (_R.NURSE, 2), (_R.SOCIAL_WORKER, 1),
                 (_R.CARE_COORDINATOR, 2)),
            ),
            ("CRHT", "Crisis resolution and home treatment", ((_R.CLINICIAN, 1), (_R.NURSE, 2))),
            _IG,
        ),
    ),
    _OrgSpec(
        "RWC", "Wessex Community Health NHS Trust", OrgKind.COMMUNITY_TRUST,
        "rwc-ehr", "Community services record", "rwc-patient-id",
        (
            ("DN", "District nursing", ((_R.NURSE, 4),)),
            (
                "REHAB", "Community rehabilitation and falls",
                ((_R.ALLIED_HEALTH_PROFESSIONAL, 3), (_R.CLINICIAN, 1)),
            ),
            _IG,
        ),
    ),
    _OrgSpec(
        "J81001", "Riverside Medical Practice", OrgKind.GP_PRACTICE,
        "j81001-gp", "Riverside practice clinical system", "j81001-patient-id",
        (
            ("CLIN", "Practice clinical team", ((_R.CLINICIAN, 4), (_R.NURSE, 2), (_R.ADMIN, 2))),
            ("MGT", "Practice management", ((_R.IG_LEAD, 1),)),
        ),
    ),
    _OrgSpec(
        "J81002", "Castle Street Surgery", OrgKind.GP_PRACTICE,
        "j81002-gp", "Castle Street practice clinical system", "j81002-patient-id",
        (
            ("CLIN", "Practice clinical team", ((_R.CLINICIAN, 3), (_R.NURSE, 2), (_R.ADMIN, 1))),
            ("MGT", "Practice management", ((_R.IG_LEAD, 1),)),
        ),
    ),
    _OrgSpec(
        "WCCASC", "Wessex County Council Adult Social Care", OrgKind.LA_ADULT_SOCIAL_CARE,
        "wccasc-case", "Adult social care case management system", "wccasc-person-id",
        (
            ("HSW", "Hospital social work team", ((_R.SOCIAL_WORKER, 3), (_R.ADMIN, 1))),
            ("REAB", "Reablement", ((_R.ALLIED_HEALTH_PROFESSIONAL, 2), (_R.CARE_COORDINATOR, 2))),
            ("LOC", "Locality long-term support team", ((_R.SOCIAL_WORKER, 3),)),
            _IG,
        ),
    ),
    _OrgSpec(
        "WCCCS", "Wessex County Council Children's Services", OrgKind.LA_CHILDRENS_SERVICES,
        "wcccs-case", "Children's social care case management system", "wcccs-child-id",
        (
            ("MASH", "Multi-agency safeguarding hub", ((_R.SOCIAL_WORKER, 2), (_R.ADMIN, 1))),
            ("CIN", "Children in need", ((_R.SOCIAL_WORKER, 4),)),
            _IG,
        ),
    ),
    _OrgSpec(
        "WPOLICE", "Wessex Police", OrgKind.POLICE,
        "wpolice-records", "Police records management system", "wpolice-nominal",
        (
            ("PPU", "Public protection unit", ((_R.POLICE_OFFICER, 4),)),
            _IG,
        ),
    ),
    _OrgSpec(
        "WCARERS", "Wessex Carers Support (charity)", OrgKind.CHARITY,
        "wcarers-crm", "Carers support client database", "wcarers-client-ref",
        (
            ("SUP", "Carer support caseworkers", ((_R.CASEWORKER, 3), (_R.VOLUNTEER, 2))),
            _IG,
        ),
    ),
    _OrgSpec(
        "WHOMEHELP", "Homeless Help Wessex (charity)", OrgKind.CHARITY,
        "whomehelp-cases", "Outreach casework database", "whomehelp-client-id",
        (
            ("OUT", "Outreach caseworkers", ((_R.CASEWORKER, 3), (_R.VOLUNTEER, 2))),
            _IG,
        ),
    ),
)


def build_area(seed: int) -> Area:
    """The Wessex area; structure and ids are fixed, practitioner names follow ``seed``."""
    names = load_name_lists()
    rng = random.Random(f"{seed}:area")
    organisations = tuple(_build_org(spec, names, rng) for spec in ORG_SPECS)
    return Area(name="Wessex", seed=seed, organisations=organisations)


def _build_org(spec: _OrgSpec, names: NameLists, rng: random.Random) -> Organisation:
    teams = tuple(Team(f"{spec.code}-{code}", name, spec.code) for code, name, _ in spec.teams)
    practitioners: list[Practitioner] = []
    for (team_code, _name, staffing), team in zip(spec.teams, teams, strict=True):
        del team_code
        for role, count in staffing:
            for _ in range(count):
                sex = rng.choice(("female", "male"))
                cohort = rng.choice(("1965", "1985"))
                practitioners.append(
                    Practitioner(
                        id=f"{spec.code}-P{len(practitioners) + 1:03d}",
                        given_name=rng.choice(names.general_first[sex][cohort]),
                        family_name=rng.choice(names.general_surnames[:150]),
                        role=role,
                        team_code=team.code,
                        org_code=spec.code,
                    )
                )
    system = ClientSystem(
        client_id=spec.client_id,
        name=spec.system_name,
        org_code=spec.code,
        patient_id_system=f"{LOCAL_ID_BASE}/{spec.local_id}",
    )
    return Organisation(spec.code, spec.name, spec.kind, teams, tuple(practitioners), system)
