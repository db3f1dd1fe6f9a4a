"""Stewards' decisions as constraints on a re-link (pure: no I/O).

A data steward's work is evidence no model has: an accepted review pair or a
merge says some records are one person; a rejected pair or an unmerge says
some records are not. A rebuild of the estate must keep both:

- ``together``: every record of the group ends in one person;
- ``apart``: no record of one side ends in a person with a record of the other.

When decisions contradict each other (a pair accepted, then the merge it made
undone; a pair rejected, then the two persons merged by hand) the later one
wins and the earlier is dropped. Contradictions that remain through chains of
decisions (a with b, b with c, but c apart from a) are counted and "together"
wins, because records a steward joined are never split silently.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    TOGETHER = "together"
    APART = "apart"


@dataclass(frozen=True, slots=True)
class StewardDecision:
    at: datetime
    kind: Kind
    left: frozenset[str]
    right: frozenset[str]
    source: str  # e.g. "review pair 12", "merge 3", "unmerge 3", for reports

    def __post_init__(self) -> None:
        if not self.left or not self.right:
            raise ValueError(f"{self.source}: both sides need at least one record")

    @property
    def records(self) -> frozenset[str]:
        return self.left | self.right


def _splits(apart: StewardDecision, group: frozenset[str]) -> bool:
    """Would keeping ``apart`` split ``group`` (records on both of its sides)?"""
    return bool(apart.left & group) and bool(apart.right & group)


def effective(decisions: Iterable[StewardDecision]) -> list[StewardDecision]:
    """The decisions still in force: each is dropped if a later one contradicts it."""
    ordered = sorted(decisions, key=lambda d: (d.at, d.source))
    kept = []
    for i, d in enumerate(ordered):
        later = ordered[i + 1 :]
        if d.kind is Kind.TOGETHER:
            overruled = any(e.kind is Kind.APART and _splits(e, d.records) for e in later)
        else:
            overruled = any(e.kind is Kind.TOGETHER and _splits(d, e.records) for e in later)
        if not overruled:
            kept.append(d)
    return kept


@dataclass
class Placement:
    """Tracks where records go during a re-link, against the decisions in force.

    Records a steward joined form one group (union-find); the first of a group
    to be placed decides its person and the rest follow it (``person_for``).
    ``allowed`` refuses a person holding any group kept apart from the record's.
    """

    decisions: list[StewardDecision]
    _parent: dict[str, str] = field(default_factory=dict)
    _apart: set[frozenset[str]] = field(default_factory=set)
    _person_of_group: dict[str, str] = field(default_factory=dict)
    _groups_of_person: dict[str, set[str]] = field(default_factory=dict)
    conflicts: int = 0

    def __post_init__(self) -> None:
        for d in self.decisions:
            if d.kind is Kind.TOGETHER:
                first, *rest = sorted(d.records)
                for other in rest:
                    self._union(first, other)
        for d in self.decisions:
            if d.kind is Kind.APART:
                for a in d.left:
                    for b in d.right:
                        ga, gb = self.group(a), self.group(b)
                        if ga == gb:
                            self.conflicts += 1
                        else:
                            self._apart.add(frozenset((ga, gb)))

    def group(self, record_id: str) -> str:
        root = record_id
        while self._parent.get(root, root) != root:
            root = self._parent[root]
        while record_id != root:  # path compression
            self._parent[record_id], record_id = root, self._parent.get(record_id, root)
        return root

    def _union(self, a: str, b: str) -> None:
        ra, rb = self.group(a), self.group(b)
        if ra != rb:
            self._parent[max(ra, rb)] = min(ra, rb)

    def person_for(self, record_id: str) -> str | None:
        """The person a steward's decision puts this record in, if its group is placed."""
        return self._person_of_group.get(self.group(record_id))

    def allowed(self, record_id: str, person_id: str) -> bool:
        mine = self.group(record_id)
        return not any(
            frozenset((mine, theirs)) in self._apart
            for theirs in self._groups_of_person.get(person_id, ())
            if theirs != mine
        )

    def place(self, record_id: str, person_id: str) -> None:
        g = self.group(record_id)
        self._person_of_group.setdefault(g, person_id)
        self._groups_of_person.setdefault(person_id, set()).add(g)
