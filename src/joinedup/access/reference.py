"""The reference model: the access rules written as plainly as possible.

It scans every agreement and directive on every call, so it is slow and
obviously right; the compiled ``engine.DecisionPoint`` must agree with it on
every decision and every reason (tests/generative/access checks that).
Read this file to learn the rules; ``docs/adr/0101-decision-point.md`` says why.

The rules, in order (the first that applies decides):

1. A purpose that is not for care records (governance, administration,
   transparency) is denied.
2. Emergency access (break-glass) without a reason is denied.
3. Own organisation: a practitioner sees their own organisation's data for
   any purpose of individual care.
4. A sealed category is denied, except by breaking the glass.
5. The candidate agreements are those in force where the owner shares the
   category with the requesting organisation (for the request's purpose;
   for break-glass, for any purpose). None: denied, no agreement.
6. Each candidate is checked step by step. If any passes, the one with the
   lowest (id, version) decides. If none passes, the one that got furthest
   decides, with the step it failed (ties: lowest id, version).
7. Objections: to the requesting organisation, then to the category. They
   deny, except for safeguarding, which overrides them (and says so).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from joinedup.access.agreements import OPT_OUT_EXEMPT, Agreement, CategoryShare, Share
from joinedup.access.consent import ConsentDirective, DirectiveKind, opt_out_applies_to
from joinedup.access.decisions import (
    Alert,
    AlertKind,
    AuditLevel,
    Decision,
    Effect,
    Obligations,
    ReasonCode,
    Request,
)
from joinedup.access.purposes import (
    BEYOND_INDIVIDUAL_CARE,
    INDIVIDUAL_CARE,
    RECORD_PURPOSES,
    Purpose,
)
from joinedup.access.relationships import Relationship, RelationshipKind
from joinedup.labels import SEALED
from joinedup.orgs.vocab import OrgKind

PASSED = 7
"""The step number of a candidate that passed every check."""


@dataclass(frozen=True)
class _Outcome:
    agreement: Agreement
    item: CategoryShare
    step: int
    failure: ReasonCode | None
    relied_on_self_declared: bool = False
    consent: str | None = None


def reference_decide(
    request: Request,
    *,
    agreements: Sequence[Agreement],
    organisations: Mapping[str, OrgKind],
    today: date,
    directives: Sequence[ConsentDirective],
    relationships: Sequence[Relationship],
) -> Decision:
    r = request
    emergency = r.purpose == Purpose.EMERGENCY
    level = AuditLevel.BREAK_GLASS if emergency else AuditLevel.STANDARD

    def deny(code: ReasonCode, outcome: _Outcome | None = None,
             consent: str | None = None) -> Decision:
        return Decision(
            Effect.DENY, (code,),
            agreement=None if outcome is None else outcome.agreement.ref,
            consent=consent,
            obligations=Obligations(
                audit_level=level,
                mark_withheld=code == ReasonCode.SENSITIVITY_ABOVE_AGREEMENT,
            ),
        )

    # 1, 2
    if r.purpose not in RECORD_PURPOSES:
        return deny(ReasonCode.PURPOSE_NOT_FOR_CARE_RECORDS)
    if emergency and not (r.break_glass_reason or "").strip():
        return deny(ReasonCode.BREAK_GLASS_REASON_REQUIRED)
    # 3
    if r.owning_org == r.org and r.purpose in INDIVIDUAL_CARE:
        return Decision(Effect.PERMIT, (ReasonCode.OWN_ORGANISATION,),
                        obligations=Obligations(audit_level=level))
    # 4
    if r.category in SEALED and not emergency:
        return deny(ReasonCode.SEALED_CATEGORY)

    in_effect = [d for d in directives if d.in_effect(today)]
    # 5
    outcomes: list[_Outcome] = []
    for agreement in sorted(agreements, key=lambda a: a.key):
        if not agreement.in_force(today):
            continue
        if r.org not in agreement.recipients(r.owning_org):
            continue
        share = agreement.share(r.owning_org)
        item = share.category(r.category) if share is not None else None
        if share is None or item is None:
            continue
        if not emergency and r.purpose not in agreement.purposes:
            continue
        check = _check_break_glass if emergency else _check
        outcomes.append(check(r, agreement, share, item, in_effect, relationships, organisations))
    if not outcomes:
        return deny(ReasonCode.NO_AGREEMENT)

    # 6
    passed = [o for o in outcomes if o.step == PASSED]
    if not passed:
        furthest = max(o.step for o in outcomes)
        first = next(o for o in outcomes if o.step == furthest)
        assert first.failure is not None
        return deny(first.failure, first, first.consent)
    chosen = passed[0]

    # 7
    reasons = [ReasonCode.BREAK_GLASS if emergency else ReasonCode.AGREEMENT]
    if chosen.relied_on_self_declared:
        reasons.append(ReasonCode.SELF_DECLARED_RELATIONSHIP)
    overridden: str | None = None
    objections = [d for d in in_effect if d.kind == DirectiveKind.OBJECTION]
    for code, ids in (
        (ReasonCode.OBJECTION_TO_ORGANISATION,
         sorted(d.id for d in objections if d.organisation == r.org)),
        (ReasonCode.OBJECTION_TO_CATEGORY,
         sorted(d.id for d in objections if d.category == r.category)),
    ):
        if not ids:
            continue
        if r.purpose != Purpose.SAFEGUARDING:
            return deny(code, consent=ids[0])
        if overridden is None:
            overridden = ids[0]
            reasons.append(ReasonCode.OBJECTION_OVERRIDDEN_FOR_SAFEGUARDING)

    if emergency:
        audit, alert = AuditLevel.BREAK_GLASS, Alert(AlertKind.BREAK_GLASS, r.owning_org)
    elif chosen.relied_on_self_declared:
        audit = AuditLevel.ELEVATED
        alert = Alert(AlertKind.SELF_DECLARED_RELATIONSHIP, r.owning_org)
    elif overridden is not None:
        audit, alert = AuditLevel.ELEVATED, None
    else:
        audit, alert = AuditLevel.STANDARD, None
    return Decision(
        Effect.PERMIT, tuple(reasons), chosen.agreement.ref, overridden,
        Obligations(withhold_fields=chosen.item.withhold_fields, alert=alert, audit_level=audit),
    )


def _relationship(
    agreement: Agreement, relationships: Sequence[Relationship]
) -> tuple[ReasonCode | None, bool]:
    """(failure or None, whether it relied on a self-declared relationship)."""
    kinds = {rel.kind for rel in relationships}
    if kinds - {RelationshipKind.SELF_DECLARED}:
        return None, False
    if RelationshipKind.SELF_DECLARED in kinds:
        if agreement.conditions.self_declared_relationship_allowed:
            return None, True
        return ReasonCode.SELF_DECLARED_RELATIONSHIP_NOT_ACCEPTED, False
    return ReasonCode.NO_LEGITIMATE_RELATIONSHIP, False


def _consented(r: Request, agreement: Agreement, in_effect: Sequence[ConsentDirective]) -> bool:
    return any(
        d.kind == DirectiveKind.EXPLICIT_CONSENT
        and (d.organisation is None or d.organisation == r.org)
        and (d.agreement_id is None or d.agreement_id == agreement.id)
        for d in in_effect
    )


def _check(
    r: Request, a: Agreement, share: Share, item: CategoryShare,
    in_effect: Sequence[ConsentDirective], relationships: Sequence[Relationship],
    organisations: Mapping[str, OrgKind],
) -> _Outcome:
    if r.role not in item.roles:
        return _Outcome(a, item, 1, ReasonCode.ROLE_NOT_PERMITTED)
    self_declared = False
    if r.purpose in INDIVIDUAL_CARE and a.conditions.relationship_required:
        failure, self_declared = _relationship(a, relationships)
        if failure is not None:
            return _Outcome(a, item, 3, failure)
    if r.sensitivity.rank > share.max_sensitivity.rank:
        return _Outcome(a, item, 4, ReasonCode.SENSITIVITY_ABOVE_AGREEMENT)
    if a.conditions.explicit_consent_required and not _consented(r, a, in_effect):
        return _Outcome(a, item, 5, ReasonCode.EXPLICIT_CONSENT_REQUIRED)
    if (
        r.purpose in BEYOND_INDIVIDUAL_CARE
        and a.lawful_basis.common_law not in OPT_OUT_EXEMPT
        and opt_out_applies_to(r.owning_org, organisations)
    ):
        opt_outs = sorted(
            d.id for d in in_effect if d.kind == DirectiveKind.NATIONAL_OPT_OUT
        )
        if opt_outs:
            return _Outcome(a, item, 6, ReasonCode.NATIONAL_DATA_OPT_OUT, consent=opt_outs[0])
    return _Outcome(a, item, PASSED, None, self_declared)


def _check_break_glass(
    r: Request, a: Agreement, share: Share, item: CategoryShare,
    in_effect: Sequence[ConsentDirective], relationships: Sequence[Relationship],
    organisations: Mapping[str, OrgKind],
) -> _Outcome:
    glass = a.conditions.break_glass
    if glass is None or r.role not in glass.roles:
        return _Outcome(a, item, 1, ReasonCode.BREAK_GLASS_NOT_PERMITTED)
    self_declared = False
    if r.category in SEALED:
        if not glass.sealed_categories:
            return _Outcome(a, item, 2, ReasonCode.SEALED_CATEGORY)
        failure, self_declared = _relationship(a, relationships)
        if failure is not None:
            return _Outcome(a, item, 3, failure)
    if a.conditions.explicit_consent_required and not _consented(r, a, in_effect):
        return _Outcome(a, item, 5, ReasonCode.EXPLICIT_CONSENT_REQUIRED)
    return _Outcome(a, item, PASSED, None, self_declared)
