"""Explaining access: every decision one requester gets about one person, by
(owner organisation, data category, sensitivity), with its reasons, for an IG lead.

Pure: it reads a ``PersonDecisions`` (made by the same path a read takes:
relationships from the records, directives and declarations from the consent
store) and lays it out. Rows whose decisions are the same for several
sensitivities of one (owner, category) are shown once, with those
sensitivities together.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from joinedup.access.decisions import REASON_DESCRIPTIONS, Decision
from joinedup.access.engine import PersonDecisions
from joinedup.access.purposes import Purpose
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.auth.tokens import AccessToken
from joinedup.labels import DataCategory, Sensitivity


@dataclass(frozen=True)
class ExplainRow:
    owner: str
    category: DataCategory
    sensitivities: tuple[Sensitivity, ...]
    decision: Decision

    def as_dict(self) -> dict[str, Any]:
        return {
            "owner": self.owner,
            "category": self.category.value,
            "sensitivities": [s.value for s in self.sensitivities],
            **self.decision.as_dict(),
        }

    def obligations_text(self) -> str:
        ob = self.decision.obligations
        parts = []
        if ob.withhold_fields:
            parts.append("withhold " + ", ".join(sorted(ob.withhold_fields)))
        if ob.alert is not None:
            parts.append(f"alert {ob.alert.to_org} IG ({ob.alert.kind.value})")
        if ob.audit_level.value != "standard":
            parts.append(f"audit {ob.audit_level.value}")
        if ob.mark_withheld:
            parts.append("marked as withheld")
        return "; ".join(parts)


@dataclass(frozen=True)
class Explanation:
    person: str
    requester: dict[str, Any]
    owners: tuple[str, ...]
    consents: dict[str, Any]
    relationships: tuple[str, ...]
    rows: tuple[ExplainRow, ...]

    def as_dict(self) -> dict[str, Any]:
        codes = sorted({r for row in self.rows for r in row.decision.reasons})
        return {
            "person": self.person,
            "requester": self.requester,
            "owners": list(self.owners),
            "consents": self.consents,
            "relationships": list(self.relationships),
            "decisions": [row.as_dict() for row in self.rows],
            "reasons": {c.value: REASON_DESCRIPTIONS[c] for c in codes},
        }


def explain(decisions: PersonDecisions, owners: Iterable[str]) -> Explanation:
    """Every (owner, category, sensitivity) decision for the person's record holders."""
    r = decisions.requester
    c = decisions.consents
    rows: list[ExplainRow] = []
    for owner in sorted(set(owners)):
        for category in DataCategory:
            group: list[Sensitivity] = []
            current: Decision | None = None
            for sensitivity in Sensitivity:
                d = decisions.decision(owner, category, sensitivity)
                if current is not None and d != current:
                    rows.append(ExplainRow(owner, category, tuple(group), current))
                    group = []
                current = d
                group.append(sensitivity)
            if current is not None:
                rows.append(ExplainRow(owner, category, tuple(group), current))
    return Explanation(
        person=r.person,
        requester={
            "org": r.org, "practitioner": r.practitioner, "role": r.role.value,
            "purpose": r.purpose.value, "break_glass_reason": r.break_glass_reason,
        },
        owners=tuple(sorted(set(owners))),
        consents={
            "objections_to_organisations": dict(sorted(c.objected_orgs.items())),
            "objections_to_categories": {k.value: v for k, v in
                                         sorted(c.objected_categories.items())},
            "national_data_opt_out": c.opted_out,
            "explicit_consents": sorted(
                [{"organisation": o, "agreement": a} for o, a in c.consents],
                key=lambda x: (x["organisation"] or "", x["agreement"] or "")),
        },
        relationships=tuple(sorted({rel.kind.value for rel in decisions.relationships.items})),
        rows=tuple(rows),
    )


def explain_event(
    actor: Actor,
    token: AccessToken,
    *,
    person: str | None,
    purpose: Purpose,
    request_id: str | None = None,
) -> AuditEvent:
    """The ``access.explain`` event: who asked, about whose access (the explained
    token's requester), to which person (none when the person was not found)."""
    return AuditEvent(
        action=AuditAction.ACCESS_EXPLAIN,
        actor=actor,
        outcome=Outcome.SUCCESS if person else Outcome.FAILURE,
        purpose=purpose,
        persons=(person,) if person else (),
        request_id=request_id,
        detail={"explained": {k: v for k, v in {
            "org": token.org, "client_id": token.client_id,
            "practitioner": token.practitioner, "role": token.role,
            "purpose": token.purpose.value,
        }.items() if v is not None}},
    )
