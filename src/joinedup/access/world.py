"""What the decision point needs to know about one requester and one person,
worked out from the records: who is asking, the person's consents, and the
legitimate relationships the records evidence.

Relationships come from the person's own records, whoever owns them:

* a **care team** (``CareTeam``, not ended) naming the requester's practitioner,
  team or organisation as a participant or manager;
* an **open episode of care** (``EpisodeOfCare`` active / on hold / waitlisted /
  planned and not ended) managed by the organisation or care-managed by the
  practitioner;
* a **referral** (``ServiceRequest`` active, on hold or draft, or authored within
  the recent window) to the requester's organisation or team (``performer``);
* a **recent encounter** (``Encounter`` in progress, or ended within the recent
  window) at the organisation (``serviceProvider``) or with the practitioner.

A match is on the identifier value of the reference (ODS code, practitioner
id, team code), so organisation-level evidence counts: a clinician of the
trust that is treating the person has a relationship. That is the shared care
record framework's usual reading; a per-team reading is a setting to add.

**Consents and self-declared relationships** are read from the consent
store (``consent_store.directives_and_declarations``) and handed in here:
``relationships_from(..., declared=...)`` adds the declarations.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from joinedup.access.consent import PersonConsents
from joinedup.access.decisions import Action, Requester
from joinedup.access.purposes import NEEDS_REASON, Purpose
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.orgs.vocab import ProfessionalRole

EVIDENCE_TYPES = ("CareTeam", "EpisodeOfCare", "Encounter", "ServiceRequest")
"""Resource types whose records can evidence a legitimate relationship."""

RECENT_DAYS = 90
"""How recent an encounter or referral must be to count."""

_OPEN_EPISODE = frozenset({"active", "onhold", "waitlist", "planned"})
_OPEN_REFERRAL = frozenset({"active", "on-hold", "draft"})
_ENDED_TEAM = frozenset({"inactive", "entered-in-error"})


@dataclass(frozen=True, slots=True)
class Who:
    """The requester's identities that records may name."""

    org: str
    practitioner: str | None = None
    team: str | None = None

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(x for x in (self.org, self.practitioner, self.team) if x)


def requester_for(
    *,
    org: str,
    practitioner: str,
    role: str,
    purpose: Purpose,
    person: str,
    reason: str | None,
    action: Action = Action.READ,
) -> Requester:
    """The decision point's Requester; a reason travels only with break-glass."""
    return Requester(
        org,
        practitioner,
        ProfessionalRole(role),
        purpose,
        person,
        action,
        reason if purpose in NEEDS_REASON else None,
    )


def consents_for(person: str) -> PersonConsents:
    """A person who has made no directives (for tools and tests; the service reads
    the consent store)."""
    return PersonConsents.none(person)


def _named(value: Any) -> Iterator[str]:
    """Identifier values of a Reference (or a list of them)."""
    if isinstance(value, list):
        for item in value:
            yield from _named(item)
    elif isinstance(value, dict):
        ident = value.get("identifier")
        if isinstance(ident, dict) and isinstance(ident.get("value"), str):
            yield ident["value"]
        elif isinstance(ident, list):
            for i in ident:
                if isinstance(i, dict) and isinstance(i.get("value"), str):
                    yield i["value"]


def _day(text: Any) -> date | None:
    if not isinstance(text, str) or len(text) < 10:
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def _not_ended(period: Any, today: date) -> bool:
    end = _day(period.get("end")) if isinstance(period, dict) else None
    return end is None or end >= today


def _latest(period: Any) -> date | None:
    if not isinstance(period, dict):
        return None
    return _day(period.get("end")) or _day(period.get("start"))


def _evidence(r: Mapping[str, Any], ids: frozenset[str], today: date, since: date
              ) -> RelationshipKind | None:
    kind = r.get("resourceType")
    status = r.get("status")
    if kind == "CareTeam":
        named = {*_named({"identifier": r.get("identifier")}),  # the team's own code
                 *_named([p.get("member") for p in r.get("participant") or []
                          if isinstance(p, dict)]),
                 *_named(r.get("managingOrganization"))}
        if status not in _ENDED_TEAM and _not_ended(r.get("period"), today) and named & ids:
            return RelationshipKind.CARE_TEAM
    elif kind == "EpisodeOfCare":
        named = {*_named(r.get("managingOrganization")), *_named(r.get("careManager"))}
        if status in _OPEN_EPISODE and _not_ended(r.get("period"), today) and named & ids:
            return RelationshipKind.OPEN_EPISODE
    elif kind == "ServiceRequest":
        authored = _day(r.get("authoredOn"))
        live = status in _OPEN_REFERRAL or (authored is not None and authored >= since)
        if live and set(_named(r.get("performer"))) & ids:
            return RelationshipKind.REFERRAL
    elif kind == "Encounter":
        named = {*_named(r.get("serviceProvider")),
                 *_named([p.get("individual") for p in r.get("participant") or []
                          if isinstance(p, dict)])}
        latest = _latest(r.get("period"))
        recent = status == "in-progress" or (latest is not None and since <= latest <= today)
        if recent and named & ids:
            return RelationshipKind.RECENT_ENCOUNTER
    return None


def relationships_from(
    records: Iterable[Mapping[str, Any]],
    who: Who,
    today: date,
    *,
    recent_days: int = RECENT_DAYS,
    declared: Iterable[Relationship] = (),
) -> Relationships:
    """The relationships ``who`` has with the person these records are about.

    ``records``: the person's records of the ``EVIDENCE_TYPES`` (FHIR JSON),
    from every organisation. Pure: no I/O, so it can be tested on its own.
    """
    ids = who.ids
    since = today - timedelta(days=recent_days)
    found = {Relationship(k) for r in records if (k := _evidence(r, ids, today, since))}
    return Relationships.of([*found, *declared])
