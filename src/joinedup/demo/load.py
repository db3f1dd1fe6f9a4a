"""Loading the demo care system into a running joinedup: the registry, client keys, exports.

Idempotent: running it again on the same data folder adds nothing twice. Each
demo client system gets its own key pair; the private half stays in
``<data_dir>/demo-clients/`` (as an organisation's system would keep it) and
only the public half is registered, so the private_key_jwt flow can be tried
for real.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from joserfc.jwk import ECKey

from joinedup.auth.permissions import ALL, PARTNER_DEFAULT, Permission, format_scope
from joinedup.demo.area import Area
from joinedup.errors import Conflict
from joinedup.orgs.specs import OrgSpec, PractitionerSpec, SystemSpec, TeamSpec
from joinedup.orgs.vocab import OrgKind
from joinedup.services import Services

GOVERNANCE = frozenset(
    {
        Permission.AUDIT_READ,
        Permission.AUDIT_REVIEW,
        Permission.AGREEMENTS_READ,
        Permission.CONSENTS_WRITE,
    }
)


@dataclass(frozen=True)
class LoadSummary:
    organisations: int
    teams: int
    practitioners: int
    systems: int
    added: int


def scopes_for(kind: OrgKind) -> str:
    """The hub's console may do everything; partners' systems get the partner set."""
    if kind is OrgKind.HUB:
        return format_scope(ALL)
    return format_scope(PARTNER_DEFAULT | GOVERNANCE | {Permission.FEEDS_WRITE})


def client_key(folder: Path, client_id: str) -> ECKey:
    """The demo client's private key, created on first use (file mode 0600)."""
    path = folder / f"{client_id}.jwk.json"
    if path.exists():
        return ECKey.import_key(json.loads(path.read_text()))
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ECKey.generate_key("P-256", parameters={"kid": f"{client_id}-1"}, private=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        json.dump(key.as_dict(private=True), handle)
    return key


def load_area(svc: Services, area: Area, clients_dir: Path) -> LoadSummary:
    added = 0

    def attempt(action: object) -> None:
        nonlocal added
        try:
            action()  # type: ignore[operator]
            added += 1
        except Conflict:
            pass

    reg = svc.registry
    for org in area.organisations:
        attempt(lambda o=org: reg.add_org(OrgSpec(code=o.code, name=o.name, kind=o.kind)))
        for team in org.teams:
            attempt(
                lambda t=team: reg.add_team(TeamSpec(id=t.code, org_code=t.org_code, name=t.name))
            )
        for p in org.practitioners:
            attempt(
                lambda p=p: reg.add_practitioner(
                    PractitionerSpec(
                        id=p.id,
                        org_code=p.org_code,
                        name=p.display_name,
                        role=p.role,
                        team_id=p.team_code,
                    )
                )
            )
        key = client_key(clients_dir, org.system.client_id)
        attempt(
            lambda o=org, k=key: reg.add_system(
                SystemSpec(
                    client_id=o.system.client_id,
                    org_code=o.code,
                    name=o.system.name,
                    jwks={"keys": [k.as_dict(private=False)]},
                    scopes=scopes_for(o.kind),
                )
            )
        )
    return LoadSummary(
        organisations=len(area.organisations),
        teams=sum(len(o.teams) for o in area.organisations),
        practitioners=sum(len(o.practitioners) for o in area.organisations),
        systems=len(area.organisations),
        added=added,
    )
