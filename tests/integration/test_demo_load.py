"""Loading the demo area into the registry: complete, idempotent, and usable for tokens."""

from __future__ import annotations

from pathlib import Path

from joinedup.auth.grants import TokenRequest
from joinedup.demo import DEFAULT_SEED
from joinedup.demo.area import build_area
from joinedup.demo.load import load_area
from joinedup.services import Services


def test_load_is_complete_and_idempotent(services: Services, tmp_path: Path) -> None:
    area = build_area(DEFAULT_SEED)
    first = load_area(services, area, tmp_path / "clients")
    expected = first.organisations + first.teams + first.practitioners + first.systems
    assert first.added == expected
    assert load_area(services, area, tmp_path / "clients").added == 0
    codes = {o["code"] for o in services.registry.list_orgs()}
    assert codes == {o.code for o in area.organisations}
    rwx = services.registry.show_org("RWX")
    assert len(rwx.practitioners) == len(area.org("RWX").practitioners)
    keys = list((tmp_path / "clients").glob("*.jwk.json"))
    assert len(keys) == len(area.organisations)
    assert all(k.stat().st_mode & 0o077 == 0 for k in keys)


def test_demo_practitioner_can_get_a_token(services: Services, tmp_path: Path) -> None:
    area = build_area(DEFAULT_SEED)
    load_area(services, area, tmp_path / "clients")
    clinician = next(p for p in area.org("RWX").practitioners if p.role == "clinician")
    issued = services.tokens.mint(
        client_id="rwx-epr",
        request=TokenRequest(purpose="direct-care", practitioner=clinician.id),
    )
    token = services.verifier().verify(issued.access_token)
    assert (token.org, token.role) == ("RWX", "clinician")
