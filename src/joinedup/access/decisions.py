"""Requests to the decision point and the decisions it returns.

Reason codes are a stable vocabulary: they go into audit events, IG reports
and the explain command, so a value is never renamed (add new ones instead).
``docs/reference/access-decisions.md`` documents each one.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from joinedup.access.agreements import AgreementRef
from joinedup.access.purposes import NEEDS_REASON, Purpose
from joinedup.labels import DataCategory, Sensitivity
from joinedup.orgs.vocab import ProfessionalRole


class Effect(StrEnum):
    PERMIT = "permit"
    DENY = "deny"


class Action(StrEnum):
    READ = "read"
    SEARCH = "search"


class ReasonCode(StrEnum):
    """Why a decision came out as it did. The first reason decides; on a permit,
    later ones note what else applied."""

    # permits
    OWN_ORGANISATION = "own-organisation"
    AGREEMENT = "agreement"
    BREAK_GLASS = "break-glass"
    # notes on a permit
    SELF_DECLARED_RELATIONSHIP = "self-declared-relationship"
    OBJECTION_OVERRIDDEN_FOR_SAFEGUARDING = "objection-overridden-for-safeguarding"
    # denials
    PURPOSE_NOT_FOR_CARE_RECORDS = "purpose-not-for-care-records"
    BREAK_GLASS_REASON_REQUIRED = "break-glass-reason-required"
    SEALED_CATEGORY = "sealed-category"
    NO_AGREEMENT = "no-agreement"
    ROLE_NOT_PERMITTED = "role-not-permitted"
    BREAK_GLASS_NOT_PERMITTED = "break-glass-not-permitted"
    NO_LEGITIMATE_RELATIONSHIP = "no-legitimate-relationship"
    SELF_DECLARED_RELATIONSHIP_NOT_ACCEPTED = "self-declared-relationship-not-accepted"
    SENSITIVITY_ABOVE_AGREEMENT = "sensitivity-above-agreement"
    EXPLICIT_CONSENT_REQUIRED = "explicit-consent-required"
    NATIONAL_DATA_OPT_OUT = "national-data-opt-out"
    OBJECTION_TO_ORGANISATION = "objection-to-organisation"
    OBJECTION_TO_CATEGORY = "objection-to-category"


REASON_DESCRIPTIONS: dict[ReasonCode, str] = {
    ReasonCode.OWN_ORGANISATION:
        "The data belongs to the practitioner's own organisation and the purpose is "
        "individual care.",
    ReasonCode.AGREEMENT:
        "An agreement in force covers the purpose, category, role and conditions.",
    ReasonCode.BREAK_GLASS:
        "Emergency access under an agreement that allows this role to break the glass; "
        "the data owner's IG lead is alerted.",
    ReasonCode.SELF_DECLARED_RELATIONSHIP:
        "Permitted on a self-declared relationship; audited at a raised level and "
        "reported to the data owner's IG lead.",
    ReasonCode.OBJECTION_OVERRIDDEN_FOR_SAFEGUARDING:
        "The person objected, but safeguarding overrides objections; audited at a raised level.",
    ReasonCode.PURPOSE_NOT_FOR_CARE_RECORDS:
        "Governance, administration and transparency purposes never read care records.",
    ReasonCode.BREAK_GLASS_REASON_REQUIRED:
        "Emergency (break-glass) access must state a reason.",
    ReasonCode.SEALED_CATEGORY:
        "A sealed category is seen only by its owner, or by breaking the glass where an "
        "agreement opens sealed categories.",
    ReasonCode.NO_AGREEMENT:
        "No agreement in force lets the owner share this category with the requesting "
        "organisation for this purpose.",
    ReasonCode.ROLE_NOT_PERMITTED:
        "An agreement covers the category, but not for the practitioner's role.",
    ReasonCode.BREAK_GLASS_NOT_PERMITTED:
        "No agreement covering the category lets this role break the glass.",
    ReasonCode.NO_LEGITIMATE_RELATIONSHIP:
        "The agreement requires a legitimate relationship with the person and there is none.",
    ReasonCode.SELF_DECLARED_RELATIONSHIP_NOT_ACCEPTED:
        "The only relationship is self-declared and the agreement does not accept that.",
    ReasonCode.SENSITIVITY_ABOVE_AGREEMENT:
        "The data is labelled more sensitive than the agreement shares; the practitioner "
        "is told something is withheld.",
    ReasonCode.EXPLICIT_CONSENT_REQUIRED:
        "The agreement requires the person's explicit consent and there is none.",
    ReasonCode.NATIONAL_DATA_OPT_OUT:
        "The person has opted out of uses beyond individual care, and the agreement's "
        "basis does not exempt it from the opt-out.",
    ReasonCode.OBJECTION_TO_ORGANISATION:
        "The person objects to sharing with the requesting organisation.",
    ReasonCode.OBJECTION_TO_CATEGORY:
        "The person objects to sharing this category.",
}


class AuditLevel(StrEnum):
    STANDARD = "standard"
    ELEVATED = "elevated"
    """Goes into IG review reports (self-declared relationships, overridden objections)."""
    BREAK_GLASS = "break-glass"
    """Every emergency request, permitted or not."""


class AlertKind(StrEnum):
    BREAK_GLASS = "break-glass"
    SELF_DECLARED_RELATIONSHIP = "self-declared-relationship"


@dataclass(frozen=True, slots=True)
class Alert:
    kind: AlertKind
    to_org: str
    """The organisation whose IG lead is told: the owner of the data."""


@dataclass(frozen=True, slots=True)
class Obligations:
    withhold_fields: frozenset[str] = frozenset()
    """FHIR elements to remove from permitted resources (``Patient.telecom``)."""
    alert: Alert | None = None
    audit_level: AuditLevel = AuditLevel.STANDARD
    mark_withheld: bool = False
    """On a denial: the caller may show a REDACTED placeholder, so the practitioner
    knows something exists. False where even that would say too much."""


NO_OBLIGATIONS = Obligations()


@dataclass(frozen=True, slots=True)
class Decision:
    effect: Effect
    reasons: tuple[ReasonCode, ...]
    agreement: AgreementRef | None = None
    """The agreement that decided, if one did."""
    consent: str | None = None
    """The consent directive that decided (or was overridden), if one did."""
    obligations: Obligations = field(default=NO_OBLIGATIONS)

    @property
    def permitted(self) -> bool:
        return self.effect is Effect.PERMIT

    def as_dict(self) -> dict[str, Any]:
        """For audit events and the explain command."""
        ob = self.obligations
        return {
            "effect": self.effect.value,
            "reasons": [r.value for r in self.reasons],
            "agreement": None if self.agreement is None else {
                "id": self.agreement.id, "version": self.agreement.version},
            "consent": self.consent,
            "obligations": {
                "withhold_fields": sorted(ob.withhold_fields),
                "alert": None if ob.alert is None else {
                    "kind": ob.alert.kind.value, "to_org": ob.alert.to_org},
                "audit_level": ob.audit_level.value,
                "mark_withheld": ob.mark_withheld,
            },
        }


@dataclass(frozen=True, slots=True)
class Requester:
    """Who is asking, about whom, and why: everything but the data asked for.
    Built once per API request from the verified token."""

    org: str
    practitioner: str
    role: ProfessionalRole
    purpose: Purpose
    person: str
    action: Action = Action.READ
    break_glass_reason: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "role", ProfessionalRole(self.role))
        object.__setattr__(self, "purpose", Purpose(self.purpose))
        object.__setattr__(self, "action", Action(self.action))
        if self.break_glass_reason is not None and self.purpose not in NEEDS_REASON:
            raise ValueError("a break-glass reason comes only with the emergency purpose")

    def asking(self, owning_org: str, category: DataCategory,
               sensitivity: Sensitivity = Sensitivity.NORMAL) -> Request:
        return Request(
            self.org, self.practitioner, self.role, self.purpose, self.person, owning_org,
            category, sensitivity, self.action, self.break_glass_reason,
        )


@dataclass(frozen=True, slots=True)
class Request:
    """One question: may this requester see this owner's data of this category
    and sensitivity? Flat (not nested) because the decision point reads it a
    million times a second."""

    org: str
    practitioner: str
    role: ProfessionalRole
    purpose: Purpose
    person: str
    owning_org: str
    category: DataCategory
    sensitivity: Sensitivity = Sensitivity.NORMAL
    action: Action = Action.READ
    break_glass_reason: str | None = None
    sensitivity_rank: int = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "role", ProfessionalRole(self.role))
        set_(self, "purpose", Purpose(self.purpose))
        set_(self, "category", DataCategory(self.category))
        set_(self, "sensitivity", Sensitivity(self.sensitivity))
        set_(self, "action", Action(self.action))
        set_(self, "sensitivity_rank", self.sensitivity.rank)
        if self.break_glass_reason is not None and self.purpose not in NEEDS_REASON:
            raise ValueError("a break-glass reason comes only with the emergency purpose")

    @property
    def requester(self) -> Requester:
        return Requester(self.org, self.practitioner, self.role, self.purpose, self.person,
                         self.action, self.break_glass_reason)


_AUDIT_LEVELS = (AuditLevel.STANDARD, AuditLevel.ELEVATED, AuditLevel.BREAK_GLASS)


@dataclass(frozen=True, slots=True)
class DecisionSummary:
    """What a read's audit event says of the decisions that served it: reasons in the
    order first decided, agreements (``id@version``), and obligations (the highest
    audit level, the alerts owed). A value of the decisions alone, so an answer kept
    in the read cache computes it once rather than on every request."""

    reasons: tuple[str, ...]
    agreements: tuple[str, ...]
    obligations: dict[str, Any]


def summarise(decisions: Iterable[Decision]) -> DecisionSummary:
    decided = list(decisions)
    reasons: list[str] = []
    for d in decided:
        reasons += [r.value for r in d.reasons if r.value not in reasons]
    agreements = tuple(sorted({f"{d.agreement.id}@{d.agreement.version}"
                               for d in decided if d.agreement is not None}))
    alerts = sorted({(d.obligations.alert.kind.value, d.obligations.alert.to_org)
                     for d in decided if d.permitted and d.obligations.alert is not None})
    level = max((d.obligations.audit_level for d in decided),
                key=_AUDIT_LEVELS.index, default=AuditLevel.STANDARD)
    obligations = {"audit_level": level.value,
                   "alerts": [{"kind": k, "to_org": o} for k, o in alerts]}
    return DecisionSummary(tuple(reasons), agreements, obligations)
