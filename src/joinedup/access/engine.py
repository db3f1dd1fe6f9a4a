"""The decision point: agreements compiled into dictionaries, so that a decision
is a handful of lookups.

It implements exactly the rules of ``reference`` (read that to learn them);
property tests hold the two to the same decisions and reasons. Everything
that can be worked out before a request arrives is: the candidate grants for
each (owner, requester, purpose, category), sorted, in one flat dict; and the
Decision objects themselves, interned, so the common outcomes allocate nothing.

A ``DecisionPoint`` is compiled for one day (agreements start and end on
dates). Build a new one when agreements change, and at midnight.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import TypeVar

from joinedup.access.agreements import OPT_OUT_EXEMPT, Agreement, AgreementRef, CategoryShare
from joinedup.access.consent import PersonConsents, opt_out_applies_to
from joinedup.access.decisions import (
    Alert,
    AlertKind,
    AuditLevel,
    Decision,
    Effect,
    Obligations,
    ReasonCode,
    Request,
    Requester,
)
from joinedup.access.purposes import (
    BEYOND_INDIVIDUAL_CARE,
    INDIVIDUAL_CARE,
    RECORD_PURPOSES,
    Purpose,
)
from joinedup.access.relationships import Relationships
from joinedup.labels import SEALED, DataCategory, Sensitivity
from joinedup.orgs.vocab import OrgKind, ProfessionalRole

T = TypeVar("T")
_R = ReasonCode
_EMERGENCY = Purpose.EMERGENCY
_SAFEGUARDING = Purpose.SAFEGUARDING
_INDIVIDUAL = INDIVIDUAL_CARE
_BEYOND = BEYOND_INDIVIDUAL_CARE
_RECORD = RECORD_PURPOSES
_SEALED = SEALED
_STANDARD = AuditLevel.STANDARD
_GLASS = AuditLevel.BREAK_GLASS


_DENY_OBLIGATIONS = {
    (level, mark): Obligations(audit_level=level, mark_withheld=mark)
    for level in AuditLevel for mark in (False, True)
}


def _deny(code: ReasonCode, level: AuditLevel, agreement: AgreementRef | None = None,
          consent: str | None = None) -> Decision:
    return Decision(
        Effect.DENY, (code,), agreement, consent,
        _DENY_OBLIGATIONS[level, code is _R.SENSITIVITY_ABOVE_AGREEMENT],
    )


DENY_PURPOSE = _deny(_R.PURPOSE_NOT_FOR_CARE_RECORDS, _STANDARD)
DENY_PURPOSE_GLASS = _deny(_R.PURPOSE_NOT_FOR_CARE_RECORDS, _GLASS)
DENY_NO_REASON = _deny(_R.BREAK_GLASS_REASON_REQUIRED, _GLASS)
DENY_SEALED = _deny(_R.SEALED_CATEGORY, _STANDARD)
DENY_NO_AGREEMENT = _deny(_R.NO_AGREEMENT, _STANDARD)
DENY_NO_AGREEMENT_GLASS = _deny(_R.NO_AGREEMENT, _GLASS)
PERMIT_OWN = Decision(Effect.PERMIT, (_R.OWN_ORGANISATION,), obligations=Obligations())
PERMIT_OWN_GLASS = Decision(Effect.PERMIT, (_R.OWN_ORGANISATION,),
                            obligations=Obligations(audit_level=_GLASS))


class _Grant:
    """One (agreement, provider, category) with its checks and its outcomes,
    decided in advance."""

    # Hot fields first: they share the object's first cache lines.
    __slots__ = (  # noqa: RUF023
        "roles", "rel_required", "self_ok", "ceiling", "consent_required", "opt_out",
        "permit", "permit_self", "deny_role", "deny_no_rel", "deny_self", "deny_sensitivity",
        "deny_consent", "agreement_id", "ref", "key", "bg_roles", "bg_sealed", "bg_permit",
        "bg_permit_self", "deny_bg", "deny_bg_sealed", "deny_bg_no_rel", "deny_bg_self",
        "deny_bg_consent",
    )

    def __init__(self, a: Agreement, provider: str, item: CategoryShare, ceiling: int,
                 opt_out: bool, denials: _Denials) -> None:
        intern = denials.intern
        ref = a.ref
        c = a.conditions
        glass = c.break_glass
        self.key = a.key
        self.ref = ref
        self.agreement_id = a.id
        self.roles: frozenset[ProfessionalRole] = intern(item.roles)
        self.ceiling = ceiling
        self.rel_required = c.relationship_required
        self.self_ok = c.self_declared_relationship_allowed
        self.consent_required = c.explicit_consent_required
        self.opt_out = opt_out
        self.bg_roles: frozenset[ProfessionalRole] = intern(
            glass.roles if glass is not None else frozenset()
        )
        self.bg_sealed = glass is not None and glass.sealed_categories
        fields = intern(item.withhold_fields)
        self.permit = intern(
            Decision(Effect.PERMIT, (_R.AGREEMENT,), ref, None, intern(Obligations(fields))))
        self_alert = intern(Alert(AlertKind.SELF_DECLARED_RELATIONSHIP, provider))
        self.permit_self = intern(Decision(
            Effect.PERMIT, (_R.AGREEMENT, _R.SELF_DECLARED_RELATIONSHIP), ref, None,
            intern(Obligations(fields, self_alert, AuditLevel.ELEVATED)),
        ))
        glass_alert = intern(Alert(AlertKind.BREAK_GLASS, provider))
        glass_obligations = intern(Obligations(fields, glass_alert, _GLASS))
        self.bg_permit = intern(
            Decision(Effect.PERMIT, (_R.BREAK_GLASS,), ref, None, glass_obligations))
        self.bg_permit_self = intern(Decision(
            Effect.PERMIT, (_R.BREAK_GLASS, _R.SELF_DECLARED_RELATIONSHIP), ref, None,
            glass_obligations,
        ))
        d = denials.get
        self.deny_role = d(_R.ROLE_NOT_PERMITTED, _STANDARD, ref)
        self.deny_no_rel = d(_R.NO_LEGITIMATE_RELATIONSHIP, _STANDARD, ref)
        self.deny_self = d(_R.SELF_DECLARED_RELATIONSHIP_NOT_ACCEPTED, _STANDARD, ref)
        self.deny_sensitivity = d(_R.SENSITIVITY_ABOVE_AGREEMENT, _STANDARD, ref)
        self.deny_consent = d(_R.EXPLICIT_CONSENT_REQUIRED, _STANDARD, ref)
        self.deny_bg = d(_R.BREAK_GLASS_NOT_PERMITTED, _GLASS, ref)
        self.deny_bg_sealed = d(_R.SEALED_CATEGORY, _GLASS, ref)
        self.deny_bg_no_rel = d(_R.NO_LEGITIMATE_RELATIONSHIP, _GLASS, ref)
        self.deny_bg_self = d(_R.SELF_DECLARED_RELATIONSHIP_NOT_ACCEPTED, _GLASS, ref)
        self.deny_bg_consent = d(_R.EXPLICIT_CONSENT_REQUIRED, _GLASS, ref)


class _Denials:
    """Interns values while compiling: one object per distinct decision, role set
    or obligation, so the compiled index is small and stays in the CPU's caches."""

    def __init__(self) -> None:
        self._cache: dict[tuple[ReasonCode, AuditLevel, AgreementRef], Decision] = {}
        self._values: dict[object, object] = {}

    def intern(self, value: T) -> T:
        return self._values.setdefault(value, value)  # type: ignore[return-value]

    def get(self, code: ReasonCode, level: AuditLevel, ref: AgreementRef) -> Decision:
        key = (code, level, ref)
        found = self._cache.get(key)
        if found is None:
            found = self._cache[key] = _deny(code, level, ref)
        return found




class DecisionPoint:
    """Compiled agreements for one day. Immutable once built; share it freely."""

    __slots__ = ("_glass", "_grants", "_providers", "organisations", "today")

    def __init__(self, agreements: Iterable[Agreement], organisations: Mapping[str, OrgKind],
                 today: date) -> None:
        self.today = today
        self.organisations: Mapping[str, OrgKind] = dict(organisations)
        # One flat dict each: a decision is then one probe, not a chain of them.
        grants: dict[tuple[str, str, Purpose, DataCategory], list[_Grant]] = {}
        glass: dict[tuple[str, str, DataCategory], list[_Grant]] = {}
        denials = _Denials()
        in_force = sorted((a for a in agreements if a.in_force(today)), key=lambda a: a.key)
        for a in in_force:
            exempt = a.lawful_basis.common_law in OPT_OUT_EXEMPT
            purposes = [p for p in sorted(a.purposes) if p in _RECORD and p is not _EMERGENCY]
            for share in a.shares:
                provider = share.provider
                opt_out = not exempt and opt_out_applies_to(provider, organisations)
                ceiling = share.max_sensitivity.rank
                for item in share.categories:
                    grant = _Grant(a, provider, item, ceiling, opt_out, denials)
                    for recipient in a.recipients(provider):
                        glass.setdefault((provider, recipient, item.category), []).append(grant)
                        for purpose in purposes:
                            grants.setdefault(
                                (provider, recipient, purpose, item.category), []
                            ).append(grant)
        self._grants = {key: tuple(found) for key, found in grants.items()}
        self._glass = {key: tuple(found) for key, found in glass.items()}
        providers: dict[str, set[str]] = {}
        for provider, recipient, _ in self._glass:
            providers.setdefault(recipient, set()).add(provider)
        self._providers = {k: frozenset(v) for k, v in providers.items()}

    # -- one decision ----------------------------------------------------------

    def decide(self, r: Request, consents: PersonConsents, relationships: Relationships
               ) -> Decision:
        """Decide one request. ``consents`` must be the requested person's."""
        if consents.person != r.person:
            raise ValueError("consents are for a different person than the request")
        return self.decide_parts(
            r.org, r.role, r.purpose, r.owning_org, r.category, r.sensitivity_rank,
            r.break_glass_reason, consents, relationships,
        )

    def decide_parts(
        self, org: str, role: ProfessionalRole, purpose: Purpose, owner: str,
        category: DataCategory, rank: int, reason: str | None,
        consents: PersonConsents, rels: Relationships,
    ) -> Decision:
        """``decide`` without the Request object, for callers deciding many
        (owner, category, sensitivity) at once. The caller vouches that
        ``consents`` belong to the person asked about."""
        if purpose is _EMERGENCY:
            return self._break_glass(org, role, owner, category, reason, consents, rels)
        if purpose not in _RECORD:
            return DENY_PURPOSE
        if owner == org and purpose in _INDIVIDUAL:
            return PERMIT_OWN
        if category in _SEALED:
            return DENY_SEALED
        grants = self._grants.get((owner, org, purpose, category))
        if grants is None:
            return DENY_NO_AGREEMENT
        individual = purpose in _INDIVIDUAL
        chosen: _Grant | None = None
        denial = DENY_NO_AGREEMENT
        furthest = 0
        for g in grants:
            if role not in g.roles:
                step, why = 1, g.deny_role
            elif (g.rel_required and individual and not rels.established
                  and not (rels.self_declared and g.self_ok)):
                step = 3
                why = g.deny_self if rels.self_declared else g.deny_no_rel
            elif rank > g.ceiling:
                step, why = 4, g.deny_sensitivity
            elif g.consent_required and not consents.has_consented(org, g.agreement_id):
                step, why = 5, g.deny_consent
            elif g.opt_out and consents.opted_out is not None and purpose in _BEYOND:
                step = 6
                why = _deny(_R.NATIONAL_DATA_OPT_OUT, _STANDARD, g.ref, consents.opted_out)
            else:
                chosen = g
                break
            if step > furthest:
                furthest, denial = step, why
        if chosen is None:
            return denial
        self_declared = chosen.rel_required and individual and not rels.established
        if not consents.has_objections:
            return chosen.permit_self if self_declared else chosen.permit
        return _objections(chosen, org, purpose, category, consents, self_declared, False)

    def _break_glass(
        self, org: str, role: ProfessionalRole, owner: str, category: DataCategory,
        reason: str | None, consents: PersonConsents, rels: Relationships,
    ) -> Decision:
        if not reason or not reason.strip():
            return DENY_NO_REASON
        if owner == org:
            return PERMIT_OWN_GLASS
        grants = self._glass.get((owner, org, category))
        if grants is None:
            return DENY_NO_AGREEMENT_GLASS
        sealed = category in _SEALED
        chosen: _Grant | None = None
        denial = DENY_NO_AGREEMENT_GLASS
        furthest = 0
        for g in grants:
            if role not in g.bg_roles:
                step, why = 1, g.deny_bg
            elif sealed and not g.bg_sealed:
                step, why = 2, g.deny_bg_sealed
            elif sealed and not rels.established and not (rels.self_declared and g.self_ok):
                step = 3
                why = g.deny_bg_self if rels.self_declared else g.deny_bg_no_rel
            elif g.consent_required and not consents.has_consented(org, g.agreement_id):
                step, why = 5, g.deny_bg_consent
            else:
                chosen = g
                break
            if step > furthest:
                furthest, denial = step, why
        if chosen is None:
            return denial
        self_declared = sealed and not rels.established
        if not consents.has_objections:
            return chosen.bg_permit_self if self_declared else chosen.bg_permit
        return _objections(chosen, org, _EMERGENCY, category, consents, self_declared, True)

    # -- many decisions --------------------------------------------------------

    def providers_to(self, org: str) -> frozenset[str]:
        """Organisations that share anything with ``org`` under an agreement in force."""
        return self._providers.get(org, frozenset())

    def decide_for_person(
        self, requester: Requester, consents: PersonConsents, relationships: Relationships,
        owners: Iterable[str] | None = None,
    ) -> PersonDecisions:
        """Decide every (owner, category, sensitivity) for one requester and person.

        ``owners``: the organisations holding records about the person; by
        default, the requester's own organisation and every one that shares
        anything with it (no other owner can be permitted anything).
        """
        if consents.person != requester.person:
            raise ValueError("consents are for a different person than the request")
        if owners is None:
            owners = self.providers_to(requester.org) | {requester.org}
        org, role, purpose = requester.org, requester.role, requester.purpose
        reason = requester.break_glass_reason
        decisions: dict[tuple[str, DataCategory, Sensitivity], Decision] = {}
        for owner in sorted(set(owners)):
            for category in DataCategory:
                for sensitivity in Sensitivity:
                    decisions[(owner, category, sensitivity)] = self.decide_parts(
                        org, role, purpose, owner, category, sensitivity.rank, reason,
                        consents, relationships,
                    )
        return PersonDecisions(self, requester, consents, relationships, decisions)


def _objections(
    g: _Grant, org: str, purpose: Purpose, category: DataCategory,
    consents: PersonConsents, self_declared: bool, emergency: bool,
) -> Decision:
    """The rare path: the person has objections; do they apply here?"""
    by_org = consents.objected_orgs.get(org)
    by_category = consents.objected_categories.get(category)
    permit = (
        (g.bg_permit_self if self_declared else g.bg_permit) if emergency
        else (g.permit_self if self_declared else g.permit)
    )
    if by_org is None and by_category is None:
        return permit
    level = _GLASS if emergency else _STANDARD
    if purpose is not _SAFEGUARDING:
        if by_org is not None:
            return _deny(_R.OBJECTION_TO_ORGANISATION, level, consent=by_org)
        return _deny(_R.OBJECTION_TO_CATEGORY, level, consent=by_category)
    ob = permit.obligations
    return Decision(
        Effect.PERMIT, (*permit.reasons, _R.OBJECTION_OVERRIDDEN_FOR_SAFEGUARDING), g.ref,
        by_org if by_org is not None else by_category,
        Obligations(ob.withhold_fields, ob.alert,
                    ob.audit_level if ob.alert is not None else AuditLevel.ELEVATED),
    )


@dataclass(frozen=True)
class PersonDecisions:
    """Every decision for one requester about one person, for building a
    database filter and for minimising what comes back."""

    point: DecisionPoint
    requester: Requester
    consents: PersonConsents
    relationships: Relationships
    decisions: Mapping[tuple[str, DataCategory, Sensitivity], Decision] = field(repr=False)

    def decision(self, owner: str, category: DataCategory,
                 sensitivity: Sensitivity = Sensitivity.NORMAL) -> Decision:
        found = self.decisions.get((owner, category, sensitivity))
        if found is not None:
            return found
        r = self.requester
        return self.point.decide_parts(
            r.org, r.role, r.purpose, owner, category, sensitivity.rank,
            r.break_glass_reason, self.consents, self.relationships,
        )

    def visible(self) -> dict[str, dict[DataCategory, Sensitivity]]:
        """owner -> category -> the most sensitive label the requester may see.
        (Permission only shrinks as sensitivity rises, so a ceiling is enough.)
        Owners and categories absent here are invisible."""
        out: dict[str, dict[DataCategory, Sensitivity]] = {}
        for (owner, category, sensitivity), d in self.decisions.items():
            if d.permitted:
                seen = out.setdefault(owner, {})
                if category not in seen or sensitivity.rank > seen[category].rank:
                    seen[category] = sensitivity
        return out

    def alerts(self) -> frozenset[Alert]:
        """Alerts to send if anything permitted is actually read."""
        return frozenset(
            d.obligations.alert for d in self.decisions.values()
            if d.permitted and d.obligations.alert is not None
        )
