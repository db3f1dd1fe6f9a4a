"""Data sharing agreements as immutable, validated values.

An agreement is the spec an IG lead writes (YAML, see ``loader``); this module
holds the value it becomes and every rule a single agreement must satisfy on
its own. Rules that need the outside world (which organisations exist, what
day it is, the other versions of the same agreement) live in ``loader``.

Problem locations are YAML paths (``shares.RWX.categories[1]``) so the same
message reads well in the CLI, in the admin API's problem+json ``errors`` and
next to the file the IG lead is editing.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum

from joinedup.access.purposes import (
    BEYOND_INDIVIDUAL_CARE,
    INDIVIDUAL_CARE,
    RECORD_PURPOSES,
    Purpose,
)
from joinedup.errors import InvalidInput, Problem
from joinedup.labels import SEALED, SPECIAL_CATEGORY, DataCategory, Sensitivity
from joinedup.orgs.vocab import ODS_CODE, ProfessionalRole

AGREEMENT_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}$")
"""Agreement ids are stable slugs: they appear in audit events and consents."""

FHIR_ELEMENT = re.compile(r"^[A-Z][A-Za-z]+\.[a-z][A-Za-z]*(\[x\])?$")
"""A top-level FHIR element, ``Patient.telecom`` or ``Observation.value[x]``."""

EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


class Status(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    """Stopped at once (a breach, a complaint); kept for history and audit."""


class Article6Basis(StrEnum):
    """UK GDPR Article 6(1) lawful bases."""

    CONSENT = "consent"  # 6(1)(a)
    CONTRACT = "contract"  # 6(1)(b)
    LEGAL_OBLIGATION = "legal-obligation"  # 6(1)(c)
    VITAL_INTERESTS = "vital-interests"  # 6(1)(d)
    PUBLIC_TASK = "public-task"  # 6(1)(e)
    LEGITIMATE_INTERESTS = "legitimate-interests"  # 6(1)(f)


class Article9Condition(StrEnum):
    """UK GDPR Article 9(2) conditions for special-category data."""

    EXPLICIT_CONSENT = "explicit-consent"  # 9(2)(a)
    EMPLOYMENT_SOCIAL_PROTECTION = "employment-social-protection"  # 9(2)(b)
    VITAL_INTERESTS = "vital-interests"  # 9(2)(c)
    NOT_FOR_PROFIT_BODY = "not-for-profit-body"  # 9(2)(d)
    MADE_PUBLIC = "made-public"  # 9(2)(e)
    LEGAL_CLAIMS = "legal-claims"  # 9(2)(f)
    SUBSTANTIAL_PUBLIC_INTEREST = "substantial-public-interest"  # 9(2)(g), needs a DPA 2018 Sch 1 condition
    HEALTH_OR_SOCIAL_CARE = "health-or-social-care"  # 9(2)(h)
    PUBLIC_HEALTH = "public-health"  # 9(2)(i)
    ARCHIVING_RESEARCH_STATISTICS = "archiving-research-statistics"  # 9(2)(j)


class CommonLawBasis(StrEnum):
    """How the common-law duty of confidentiality is met."""

    IMPLIED_CONSENT = "implied-consent"
    """Individual care only: a reasonable expectation that carers share."""
    EXPLICIT_CONSENT = "explicit-consent"
    S251_SUPPORT = "s251-support"
    """NHS Act 2006 s251 / COPI Regulations support (HRA CAG approval)."""
    LEGAL_OBLIGATION = "legal-obligation"
    """A statute or court order requires the disclosure."""
    OVERRIDING_PUBLIC_INTEREST = "overriding-public-interest"


LAWFUL_BEYOND_INDIVIDUAL_CARE = frozenset(
    {
        CommonLawBasis.EXPLICIT_CONSENT,
        CommonLawBasis.S251_SUPPORT,
        CommonLawBasis.LEGAL_OBLIGATION,
        CommonLawBasis.OVERRIDING_PUBLIC_INTEREST,
    }
)
"""Common-law bases that can carry a use beyond individual care (planning,
research) under the national data opt-out regime. Implied consent cannot."""

OPT_OUT_EXEMPT = frozenset(
    {
        CommonLawBasis.EXPLICIT_CONSENT,
        CommonLawBasis.LEGAL_OBLIGATION,
        CommonLawBasis.OVERRIDING_PUBLIC_INTEREST,
    }
)
"""Bases to which the national data opt-out does not apply (NHS England's
opt-out policy: consent, a legal requirement, overriding public interest).
Under s251 support the opt-out IS applied: opted-out people are left out."""


@dataclass(frozen=True, slots=True)
class LawfulBasis:
    article_6: Article6Basis
    common_law: CommonLawBasis
    article_9: Article9Condition | None = None
    """Required when any shared category is special-category data."""
    schedule_1_condition: str | None = None
    """DPA 2018 Schedule 1 condition, required with Art. 9(2)(g)."""


@dataclass(frozen=True, slots=True)
class CategoryShare:
    """One data category a provider shares, and with which roles."""

    category: DataCategory
    roles: frozenset[ProfessionalRole]
    withhold_fields: frozenset[str] = frozenset()
    """FHIR elements removed even when the category is shared (``Patient.telecom``)."""


@dataclass(frozen=True, slots=True)
class Share:
    """What one providing party shares under the agreement."""

    provider: str
    categories: tuple[CategoryShare, ...]
    max_sensitivity: Sensitivity = Sensitivity.RESTRICTED
    """Data labelled above this is withheld unless the glass is broken."""

    def category(self, category: DataCategory) -> CategoryShare | None:
        for item in self.categories:
            if item.category == category:
                return item
        return None


@dataclass(frozen=True, slots=True)
class BreakGlass:
    roles: frozenset[ProfessionalRole]
    sealed_categories: bool = False
    """Whether breaking the glass may open sealed categories (with a relationship)."""


@dataclass(frozen=True, slots=True)
class Conditions:
    relationship_required: bool = True
    self_declared_relationship_allowed: bool = False
    explicit_consent_required: bool = False
    break_glass: BreakGlass | None = None
    """``None``: breaking the glass is not allowed under this agreement."""


@dataclass(frozen=True, slots=True)
class Agreement:
    """A data sharing agreement, checked on construction (see ``intrinsic_problems``)."""

    id: str
    version: int
    title: str
    parties: tuple[str, ...]
    purposes: frozenset[Purpose]
    lawful_basis: LawfulBasis
    shares: tuple[Share, ...]
    start: date
    review: date
    dpia: str
    ig_contact: str
    status: Status = Status.ACTIVE
    conditions: Conditions = field(default_factory=Conditions)
    end: date | None = None

    def __post_init__(self) -> None:
        problems = intrinsic_problems(self)
        if problems:
            raise AgreementError(f"agreement {self.id!r} is invalid", problems)

    @property
    def key(self) -> tuple[str, int]:
        return (self.id, self.version)

    @property
    def ref(self) -> AgreementRef:
        return AgreementRef(self.id, self.version)

    def in_force(self, today: date) -> bool:
        """Active and within its dates (``end`` inclusive)."""
        return (
            self.status is Status.ACTIVE
            and self.start <= today
            and (self.end is None or today <= self.end)
        )

    def recipients(self, provider: str) -> tuple[str, ...]:
        """Every other party receives what ``provider`` shares."""
        return tuple(p for p in self.parties if p != provider)

    def share(self, provider: str) -> Share | None:
        for share in self.shares:
            if share.provider == provider:
                return share
        return None

    @classmethod
    def unchecked(cls, **fields: object) -> Agreement:
        """Build without the checks, so the loader can report every problem of a
        draft at once. Never hand the result to the decision point."""
        draft = object.__new__(cls)
        defaults = {"status": Status.ACTIVE, "conditions": Conditions(), "end": None}
        for name in cls.__dataclass_fields__:
            object.__setattr__(draft, name, fields.get(name, defaults.get(name)))
        return draft


@dataclass(frozen=True, slots=True, order=True)
class AgreementRef:
    """Which agreement (and version) decided: goes into decisions and audit."""

    id: str
    version: int

    def __str__(self) -> str:
        return f"{self.id} v{self.version}"


class AgreementError(InvalidInput):
    """One or more agreements are invalid; ``problems`` lists every one with its place."""

    slug = "invalid-agreement"
    title = "Invalid data sharing agreement"


def intrinsic_problems(agreement: Agreement) -> list[Problem]:
    """Everything wrong with one agreement taken on its own."""
    return list(_intrinsic(agreement))


def _intrinsic(a: Agreement) -> Iterator[Problem]:
    if not AGREEMENT_ID.match(a.id):
        yield Problem("must be a lower-case slug of letters, digits and hyphens", "id")
    if a.version < 1:
        yield Problem("must be 1 or more", "version")
    if not a.title.strip():
        yield Problem("must not be empty", "title")
    yield from _party_problems(a)
    yield from _purpose_problems(a)
    yield from _share_problems(a)
    yield from _basis_problems(a)
    yield from _condition_problems(a)
    if a.end is not None and a.end < a.start:
        yield Problem(f"ends ({a.end}) before it starts ({a.start})", "end")
    if a.review < a.start:
        yield Problem(f"review date ({a.review}) is before the start ({a.start})", "review")
    if not a.dpia.strip():
        yield Problem("a DPIA reference is required", "dpia")
    if not EMAIL.match(a.ig_contact):
        yield Problem("must be an email address (a role mailbox, not a person)", "ig_contact")


def _party_problems(a: Agreement) -> Iterator[Problem]:
    if len(a.parties) < 2:
        yield Problem("an agreement needs at least two parties", "parties")
    seen: set[str] = set()
    for i, party in enumerate(a.parties):
        if not ODS_CODE.match(party):
            yield Problem(f"{party!r} is not an organisation code", f"parties[{i}]")
        if party in seen:
            yield Problem(f"{party} is listed more than once", f"parties[{i}]")
        seen.add(party)


def _purpose_problems(a: Agreement) -> Iterator[Problem]:
    if not a.purposes:
        yield Problem("at least one purpose is required", "purposes")
    for purpose in sorted(a.purposes):
        if purpose is Purpose.EMERGENCY:
            yield Problem(
                "emergency access is not a purpose of its own: allow it with "
                "conditions.break_glass", "purposes"
            )
        elif purpose not in RECORD_PURPOSES:
            yield Problem(f"{purpose} is not a purpose for reading care records", "purposes")
    if a.purposes & INDIVIDUAL_CARE and a.purposes & BEYOND_INDIVIDUAL_CARE:
        yield Problem(
            "mixes individual care with purposes beyond it; they need different lawful "
            "bases and the national data opt-out applies to one only: split the agreement",
            "purposes",
        )


def _share_problems(a: Agreement) -> Iterator[Problem]:
    if not a.shares:
        yield Problem("at least one party must share something", "shares")
    providers: set[str] = set()
    for share in a.shares:
        where = f"shares.{share.provider}"
        if share.provider not in a.parties:
            yield Problem(f"{share.provider} shares data but is not a party", where)
        if share.provider in providers:
            yield Problem(f"{share.provider} has more than one share", where)
        providers.add(share.provider)
        if not share.categories:
            yield Problem("lists no categories", f"{where}.categories")
        seen: set[DataCategory] = set()
        for j, item in enumerate(share.categories):
            at = f"{where}.categories[{j}]"
            if item.category in seen:
                yield Problem(f"{item.category} is listed more than once", at)
            seen.add(item.category)
            if not item.roles:
                yield Problem("no role may see it: list roles", f"{at}.roles")
            for name in sorted(item.withhold_fields):
                if not FHIR_ELEMENT.match(name):
                    yield Problem(
                        f"{name!r} is not a FHIR element like Patient.telecom",
                        f"{at}.withhold_fields",
                    )


def _shared_categories(a: Agreement) -> set[DataCategory]:
    return {item.category for share in a.shares for item in share.categories}


def _basis_problems(a: Agreement) -> Iterator[Problem]:
    basis = a.lawful_basis
    special = sorted(_shared_categories(a) & SPECIAL_CATEGORY)
    if special and basis.article_9 is None:
        yield Problem(
            f"special-category data is shared ({', '.join(special)}): an Article 9 "
            "condition is required", "lawful_basis.article_9"
        )
    if (
        basis.article_9 is Article9Condition.SUBSTANTIAL_PUBLIC_INTEREST
        and not (basis.schedule_1_condition or "").strip()
    ):
        yield Problem(
            "Art. 9(2)(g) needs the DPA 2018 Schedule 1 condition relied on",
            "lawful_basis.schedule_1_condition",
        )
    beyond = sorted(a.purposes & BEYOND_INDIVIDUAL_CARE)
    if beyond and basis.common_law not in LAWFUL_BEYOND_INDIVIDUAL_CARE:
        allowed = ", ".join(sorted(LAWFUL_BEYOND_INDIVIDUAL_CARE))
        yield Problem(
            f"{', '.join(beyond)} goes beyond individual care, where implied consent does "
            f"not reach: the common-law basis must be one that holds under the national "
            f"data opt-out ({allowed})", "lawful_basis.common_law"
        )
    consent_based = (
        basis.article_6 is Article6Basis.CONSENT
        or basis.article_9 is Article9Condition.EXPLICIT_CONSENT
        or basis.common_law is CommonLawBasis.EXPLICIT_CONSENT
    )
    if consent_based and not a.conditions.explicit_consent_required:
        yield Problem(
            "the lawful basis is consent, so conditions.explicit_consent_required must be true",
            "conditions.explicit_consent_required",
        )


def _condition_problems(a: Agreement) -> Iterator[Problem]:
    glass = a.conditions.break_glass
    if glass is not None:
        if not glass.roles:
            yield Problem("list the roles that may break the glass", "conditions.break_glass.roles")
        if a.purposes & BEYOND_INDIVIDUAL_CARE:
            yield Problem(
                "breaking the glass is for emergency care, not for purposes beyond "
                "individual care", "conditions.break_glass"
            )
    opens_sealed = glass is not None and glass.sealed_categories
    for share in a.shares:
        for j, item in enumerate(share.categories):
            if item.category in SEALED and not opens_sealed:
                yield Problem(
                    f"{item.category} is sealed: only its owner sees it, unless "
                    "conditions.break_glass.sealed_categories is true; remove it or allow that",
                    f"shares.{share.provider}.categories[{j}]",
                )
