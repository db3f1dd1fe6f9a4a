from __future__ import annotations

import re
from dataclasses import replace

import pytest

from joinedup.demo.area import build_area
from joinedup.orgs.vocab import OrgKind, ProfessionalRole

EXPECTED = {
    "JHUB": ("Wessex Shared Care Record (the hub operating joinedup)", OrgKind.HUB),
    "RWX": ("Wessex University Hospitals NHS Foundation Trust", OrgKind.ACUTE_TRUST),
    "RWM": ("Wessex Mental Health NHS Foundation Trust", OrgKind.MENTAL_HEALTH_TRUST),
    "RWC": ("Wessex Community Health NHS Trust", OrgKind.COMMUNITY_TRUST),
    "J81001": ("Riverside Medical Practice", OrgKind.GP_PRACTICE),
    "J81002": ("Castle Street Surgery", OrgKind.GP_PRACTICE),
    "WCCASC": ("Wessex County Council Adult Social Care", OrgKind.LA_ADULT_SOCIAL_CARE),
    "WCCCS": ("Wessex County Council Children's Services", OrgKind.LA_CHILDRENS_SERVICES),
    "WPOLICE": ("Wessex Police", OrgKind.POLICE),
    "WCARERS": ("Wessex Carers Support (charity)", OrgKind.CHARITY),
    "WHOMEHELP": ("Homeless Help Wessex (charity)", OrgKind.CHARITY),
}


def test_the_eleven_organisations_are_exactly_the_agreed_ones() -> None:
    area = build_area(1)
    assert {o.code: (o.name, o.kind) for o in area.organisations} == EXPECTED


def test_every_organisation_has_an_ig_lead_and_the_hub_its_stewards() -> None:
    area = build_area(1)
    for org in area.organisations:
        assert any(p.role is ProfessionalRole.IG_LEAD for p in org.practitioners), org.code
    hub_roles = {p.role for p in area.org("JHUB").practitioners}
    assert {
        ProfessionalRole.IG_LEAD,
        ProfessionalRole.DATA_STEWARD,
        ProfessionalRole.INTEGRATION_ENGINEER,
    } <= hub_roles


def test_named_teams_exist() -> None:
    area = build_area(1)
    names = {(t.org_code, t.name) for t in area.teams()}
    for expected in [
        ("RWX", "Emergency department"),
        ("RWX", "Acute medicine"),
        ("RWX", "Discharge team"),
        ("WCCASC", "Hospital social work team"),
        ("WCCASC", "Reablement"),
        ("WCCCS", "Multi-agency safeguarding hub"),
        ("WCCCS", "Children in need"),
        ("RWM", "Community mental health team"),
        ("WPOLICE", "Public protection unit"),
        ("JHUB", "Data stewards"),
    ]:
        assert expected in names


def test_practitioner_ids_are_stable_unique_and_in_known_teams() -> None:
    a, b = build_area(1), build_area(2)
    ids_a = [p.id for p in a.practitioners()]
    assert ids_a == [p.id for p in b.practitioners()]
    assert len(set(ids_a)) == len(ids_a)
    assert all(re.fullmatch(r"[A-Z0-9]+-P\d{3}", i) for i in ids_a)
    assert "RWX-P001" in ids_a
    for org in a.organisations:
        teams = {t.code for t in org.teams}
        assert all(p.team_code in teams for p in org.practitioners)


def test_one_client_system_per_organisation() -> None:
    area = build_area(1)
    client_ids = [o.system.client_id for o in area.organisations]
    assert len(set(client_ids)) == len(area.organisations)
    assert area.org("RWX").system.client_id == "rwx-epr"


def test_same_seed_same_area_and_names_follow_the_seed() -> None:
    assert build_area(5) == build_area(5)
    names = {p.display_name for p in build_area(5).practitioners()}
    assert names != {p.display_name for p in build_area(6).practitioners()}


def test_an_organisation_without_ig_lead_is_refused() -> None:
    org = build_area(1).org("RWX")
    without = tuple(p for p in org.practitioners if p.role is not ProfessionalRole.IG_LEAD)
    with pytest.raises(ValueError, match="no ig-lead"):
        replace(org, practitioners=without)
