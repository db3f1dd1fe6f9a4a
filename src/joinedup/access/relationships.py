"""Legitimate relationships between a practitioner (or their team) and a person.

The decision point is handed the relationships already found; working them
out from care teams, episodes, referrals and encounters in the records is the
records layer's job. Self-declared relationships carry a reason, are audited
at a raised level and are reported to the data owner's IG lead.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum


class RelationshipKind(StrEnum):
    CARE_TEAM = "care-team"
    OPEN_EPISODE = "open-episode"
    REFERRAL = "referral"
    RECENT_ENCOUNTER = "recent-encounter"
    SELF_DECLARED = "self-declared"
    """The practitioner says they are caring for the person, and why."""


ESTABLISHED = frozenset(RelationshipKind) - {RelationshipKind.SELF_DECLARED}
"""Kinds evidenced by the records themselves."""


@dataclass(frozen=True, slots=True)
class Relationship:
    kind: RelationshipKind
    reason: str | None = None
    """Required for a self-declared relationship; goes to audit, never to logs."""

    def __post_init__(self) -> None:
        if self.kind is RelationshipKind.SELF_DECLARED and not (self.reason or "").strip():
            raise ValueError("a self-declared relationship needs a reason")


@dataclass(frozen=True, slots=True)
class Relationships:
    """The relationships one practitioner has with one person, summarised for
    the decision point (which only asks: any established one? any self-declared?)."""

    items: frozenset[Relationship]
    established: bool
    self_declared: bool

    @classmethod
    def of(cls, relationships: Iterable[Relationship] = ()) -> Relationships:
        items = frozenset(relationships)
        kinds = {r.kind for r in items}
        return cls(
            items,
            established=bool(kinds & ESTABLISHED),
            self_declared=RelationshipKind.SELF_DECLARED in kinds,
        )


NO_RELATIONSHIP = Relationships.of()
