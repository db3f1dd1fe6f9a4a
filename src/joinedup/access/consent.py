"""A person's consent directives (objections, explicit consent, the national
data opt-out) as pure values, and the per-person summary the decision point reads.

Directives are modelled on FHIR Consent (see ``consent_fhir`` for conversion).
When directives conflict, the denial wins: an objection to an organisation
beats an explicit consent to it, until the objection is withdrawn (made
inactive). That is the safe reading of a muddled record and needs no
ordering by date.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from joinedup.labels import DataCategory
from joinedup.orgs.vocab import OrgKind


class DirectiveKind(StrEnum):
    OBJECTION = "objection"
    """Do not share with a named organisation, or do not share a category."""
    EXPLICIT_CONSENT = "explicit-consent"
    """Yes, share with this organisation (or under this agreement)."""
    NATIONAL_OPT_OUT = "national-opt-out"
    """The national data opt-out: no use beyond individual care."""


class DirectiveStatus(StrEnum):
    ACTIVE = "active"
    INACTIVE = "inactive"
    """Withdrawn by the person, or superseded; kept for history."""


OPT_OUT_SCOPE_KINDS = frozenset(
    {
        OrgKind.ACUTE_TRUST,
        OrgKind.MENTAL_HEALTH_TRUST,
        OrgKind.COMMUNITY_TRUST,
        OrgKind.GP_PRACTICE,
        OrgKind.LA_ADULT_SOCIAL_CARE,
    }
)
"""Organisations whose data the national data opt-out covers: health and adult
social care. Not children's social care, police or charities. An organisation
of unknown kind is treated as in scope (the safer reading)."""


def opt_out_applies_to(org: str, organisations: Mapping[str, OrgKind]) -> bool:
    kind = organisations.get(org)
    return kind is None or kind in OPT_OUT_SCOPE_KINDS


@dataclass(frozen=True, slots=True)
class ConsentDirective:
    """One directive a person made, checked on construction."""

    id: str
    person: str
    kind: DirectiveKind
    recorded: date
    status: DirectiveStatus = DirectiveStatus.ACTIVE
    organisation: str | None = None
    """Objection: the organisation not to share with. Consent: the one to share with."""
    category: DataCategory | None = None
    """Objection only: the category not to share with anyone outside its owner."""
    agreement_id: str | None = None
    """Explicit consent only: consent to sharing under this agreement (with
    ``organisation`` too: with that organisation under that agreement only)."""
    start: date | None = None
    end: date | None = None

    def __post_init__(self) -> None:
        problems = directive_problems(self)
        if problems:
            raise ValueError("; ".join(problems))

    def in_effect(self, today: date) -> bool:
        return (
            self.status is DirectiveStatus.ACTIVE
            and (self.start is None or self.start <= today)
            and (self.end is None or today <= self.end)
        )


def directive_problems(d: ConsentDirective) -> list[str]:
    problems = []
    if not d.id or not d.person:
        problems.append("a directive needs an id and a person")
    if d.kind is DirectiveKind.OBJECTION:
        if (d.organisation is None) == (d.category is None):
            problems.append("an objection names exactly one of an organisation or a category")
        if d.agreement_id is not None:
            problems.append("an objection cannot name an agreement")
    elif d.kind is DirectiveKind.EXPLICIT_CONSENT:
        if d.organisation is None and d.agreement_id is None:
            problems.append("explicit consent names an organisation or an agreement")
        if d.category is not None:
            problems.append("explicit consent is to an organisation or agreement, not a category")
    elif d.organisation or d.category or d.agreement_id:
        problems.append("the national data opt-out names no organisation, category or agreement")
    if d.start and d.end and d.end < d.start:
        problems.append("ends before it starts")
    return problems


@dataclass(frozen=True, slots=True)
class PersonConsents:
    """What a person's directives in effect on one day add up to.

    Each mapping points at the directive that decides (the lowest id when
    several say the same), so a decision can cite it.
    """

    person: str
    objected_orgs: Mapping[str, str]
    objected_categories: Mapping[DataCategory, str]
    opted_out: str | None
    consents: frozenset[tuple[str | None, str | None]]
    """(organisation, agreement id) pairs consented to; ``None`` on one side
    means any: ``(q, None)`` is consent to sharing with q under any agreement."""

    has_objections: bool = field(init=False, compare=False, repr=False)
    _orgs: frozenset[str] = field(init=False, compare=False, repr=False)
    _agreements: frozenset[str] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        # Derived once, so the decision point's checks are single lookups.
        set_ = object.__setattr__
        set_(self, "has_objections", bool(self.objected_orgs or self.objected_categories))
        set_(self, "_orgs", frozenset(o for o, a in self.consents if a is None and o))
        set_(self, "_agreements", frozenset(a for o, a in self.consents if o is None and a))

    def has_consented(self, org: str, agreement_id: str) -> bool:
        return (
            org in self._orgs or agreement_id in self._agreements
            or (org, agreement_id) in self.consents
        )

    @classmethod
    def of(cls, person: str, directives: Iterable[ConsentDirective], today: date) -> PersonConsents:
        orgs: dict[str, str] = {}
        categories: dict[DataCategory, str] = {}
        opted_out: str | None = None
        consents: set[tuple[str | None, str | None]] = set()
        for d in sorted(directives, key=lambda d: d.id, reverse=True):
            if d.person != person:
                raise ValueError("a directive for another person was passed in")
            if not d.in_effect(today):
                continue
            if d.kind is DirectiveKind.OBJECTION:
                if d.organisation is not None:
                    orgs[d.organisation] = d.id
                if d.category is not None:
                    categories[d.category] = d.id
            elif d.kind is DirectiveKind.NATIONAL_OPT_OUT:
                opted_out = d.id
            else:
                consents.add((d.organisation, d.agreement_id))
        return cls(person, orgs, categories, opted_out, frozenset(consents))

    @classmethod
    def none(cls, person: str) -> PersonConsents:
        """A person who has made no directives."""
        return cls(person, {}, {}, None, frozenset())
