"""What a change to the agreements would grant or revoke, before it is applied.

A grant is one (provider, requester, role, purpose, category) that some
agreement allows; break-glass appears as the purpose ``emergency``. The diff
compares the sets of grants, so moving a grant from one agreement to another
is no change, and conditions (relationship, consent) are not grants.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date

from joinedup.access.agreements import Agreement, Status
from joinedup.access.purposes import RECORD_PURPOSES, Purpose
from joinedup.labels import DataCategory
from joinedup.orgs.vocab import ProfessionalRole


@dataclass(frozen=True, slots=True, order=True)
class Grant:
    provider: str
    requester: str
    role: ProfessionalRole
    purpose: Purpose
    category: DataCategory


@dataclass(frozen=True, slots=True)
class AgreementDiff:
    added: tuple[Grant, ...]
    revoked: tuple[Grant, ...]

    @property
    def unchanged(self) -> bool:
        return not self.added and not self.revoked


def grants(agreements: Iterable[Agreement], as_of: date | None = None) -> frozenset[Grant]:
    """Every grant of the active agreements (in force on ``as_of``, if given)."""
    out: set[Grant] = set()
    for a in agreements:
        if a.status is not Status.ACTIVE or (as_of is not None and not a.in_force(as_of)):
            continue
        purposes = [p for p in a.purposes if p in RECORD_PURPOSES and p is not Purpose.EMERGENCY]
        glass = a.conditions.break_glass
        for share in a.shares:
            for recipient in a.recipients(share.provider):
                for item in share.categories:
                    for purpose in purposes:
                        for role in item.roles:
                            out.add(Grant(share.provider, recipient, role, purpose, item.category))
                    if glass is not None:
                        for role in glass.roles:
                            out.add(Grant(share.provider, recipient, role, Purpose.EMERGENCY,
                                          item.category))
    return frozenset(out)


def diff(old: Iterable[Agreement], new: Iterable[Agreement],
         as_of: date | None = None) -> AgreementDiff:
    before, after = grants(old, as_of), grants(new, as_of)
    return AgreementDiff(added=tuple(sorted(after - before)),
                         revoked=tuple(sorted(before - after)))


def render_markdown(d: AgreementDiff) -> str:
    """The diff as a Markdown table, one row per grant, added first."""
    if d.unchanged:
        return "No change: the new agreements grant exactly what the old ones did.\n"
    lines = [
        "| change | provider | requester | role | purpose | category |",
        "|---|---|---|---|---|---|",
    ]
    for change, rows in (("added", d.added), ("revoked", d.revoked)):
        for g in rows:
            lines.append(
                f"| {change} | {g.provider} | {g.requester} | {g.role} | {g.purpose} "
                f"| {g.category} |"
            )
    lines.append("")
    lines.append(f"{len(d.added)} added, {len(d.revoked)} revoked.")
    return "\n".join(lines) + "\n"
