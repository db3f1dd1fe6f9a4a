"""Decision tables: every access rule as readable rows, run as tests and
rendered as docs/reference/access-decisions.md.

The world is the demo area's agreements (src/joinedup/demo/agreements) plus a
few written here to show rules the demo does not need (a suspended
agreement, an opt-out-exempt basis, children's social care planning, two
agreements covering the same data).

Regenerate the doc after changing a row:

    .venv/bin/python tests/spec/access/access_decision_tables.py
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "reference" / "access-decisions.md"
sys.path.insert(0, str(ROOT / "src"))

from joinedup.access.agreements import Agreement  # noqa: E402
from joinedup.access.consent import (  # noqa: E402
    ConsentDirective,
    DirectiveKind,
    DirectiveStatus,
)
from joinedup.access.decisions import REASON_DESCRIPTIONS, Decision, ReasonCode  # noqa: E402
from joinedup.access.loader import load_agreement  # noqa: E402
from joinedup.access.relationships import Relationship, RelationshipKind  # noqa: E402
from joinedup.demo.agreements import demo_organisations, load_demo_agreements  # noqa: E402
from joinedup.labels import DataCategory  # noqa: E402

TODAY = date(2026, 11, 22)
PERSON = "person-1"

_COMMON = """
start: 2026-04-01
end: 2029-03-31
review: 2027-03-31
dpia: DPIA-SPEC
ig_contact: ig@wessex-shcr.example
"""

SPEC_AGREEMENTS = {
    "suspended-pilot": """
id: suspended-pilot
version: 1
title: A pilot suspended after a complaint
status: suspended
parties: [RWC, WHOMEHELP]
purposes: [care-coordination]
lawful_basis: {article_6: public-task, common_law: explicit-consent}
shares:
  RWC:
    categories: [{category: demographics, roles: [caseworker]}]
conditions: {explicit_consent_required: true}
""",
    "future-pilot": """
id: future-pilot
version: 1
title: A pilot that has not started yet
parties: [RWM, WCCASC]
purposes: [care-coordination]
lawful_basis: {article_6: public-task, article_9: health-or-social-care,
               common_law: implied-consent}
shares:
  RWM:
    categories: [{category: mental-health, roles: [social-worker]}]
start: 2027-01-01
end: 2029-03-31
review: 2027-06-30
dpia: DPIA-SPEC
ig_contact: ig@wessex-shcr.example
""",
    "mental-health-returns": """
id: mental-health-returns
version: 1
title: Statutory mental health returns (a legal obligation)
parties: [RWM, JHUB]
purposes: [research]
lawful_basis: {article_6: legal-obligation, article_9: archiving-research-statistics,
               common_law: legal-obligation}
shares:
  RWM:
    categories: [{category: mental-health, roles: [data-steward]}]
conditions: {relationship_required: false}
""",
    "children-planning": """
id: children-planning
version: 1
title: Planning children's services
parties: [WCCCS, JHUB]
purposes: [planning]
lawful_basis: {article_6: public-task, common_law: s251-support}
shares:
  WCCCS:
    categories: [{category: social-care-episodes, roles: [data-steward]}]
conditions: {relationship_required: false}
""",
    "community-gp-pilot": """
id: community-gp-pilot
version: 1
title: Practice admin staff see community care plans (no relationship needed)
parties: [RWC, J81001]
purposes: [direct-care]
lawful_basis: {article_6: public-task, article_9: health-or-social-care,
               common_law: implied-consent}
shares:
  RWC:
    categories: [{category: care-plans, roles: [admin]}]
conditions: {relationship_required: false}
""",
}


def spec_agreements() -> tuple[Agreement, ...]:
    extra = tuple(
        load_agreement(text if "start:" in text else text + _COMMON, source=name,
                       known_orgs=demo_organisations())
        for name, text in SPEC_AGREEMENTS.items()
    )
    return load_demo_agreements() + extra


@dataclass(frozen=True)
class Row:
    """One case: who asks, for what, about which data, in which circumstances,
    and what must come out."""

    case: str
    org: str
    role: str
    purpose: str
    owner: str
    category: str
    expect: str
    reasons: tuple[str, ...]
    agreement: str | None = None
    sensitivity: str = "N"
    relationship: str = "care-team"
    consents: tuple[str, ...] = ()
    """``objects-to:ORG``, ``objects-to:CATEGORY``, ``opted-out``,
    ``consents-to:ORG``, ``consents-under:AGREEMENT``; prefixed ``withdrawn:`` (made
    inactive), ``from:YYYY-MM-DD:`` or ``until:YYYY-MM-DD:`` (its period)."""
    reason: str | None = None
    """The break-glass reason given, if any."""
    obligations: str = ""
    """Expected obligations, in the short form ``summary()`` gives (checked when set)."""


def directives(row: Row) -> list[ConsentDirective]:
    out = []
    for n, item in enumerate(row.consents):
        common: dict[str, Any] = {"id": f"c{n}", "person": PERSON, "recorded": TODAY}
        while item.startswith(("withdrawn:", "from:", "until:")):
            prefix, _, item = item.partition(":")
            if prefix == "withdrawn":
                common["status"] = DirectiveStatus.INACTIVE
            else:
                when, _, item = item.partition(":")
                common["start" if prefix == "from" else "end"] = date.fromisoformat(when)
        kind, _, target = item.partition(":")
        if kind == "opted-out":
            out.append(ConsentDirective(kind=DirectiveKind.NATIONAL_OPT_OUT, **common))
        elif kind == "objects-to" and target in {c.value for c in DataCategory}:
            out.append(ConsentDirective(kind=DirectiveKind.OBJECTION,
                                        category=DataCategory(target), **common))
        elif kind == "objects-to":
            out.append(ConsentDirective(kind=DirectiveKind.OBJECTION, organisation=target,
                                        **common))
        elif kind == "consents-to":
            out.append(ConsentDirective(kind=DirectiveKind.EXPLICIT_CONSENT,
                                        organisation=target, **common))
        elif kind == "consents-under":
            out.append(ConsentDirective(kind=DirectiveKind.EXPLICIT_CONSENT,
                                        agreement_id=target, **common))
        else:
            raise ValueError(f"unknown consent shorthand {item!r}")
    return out


def relationships(row: Row) -> list[Relationship]:
    if row.relationship == "none":
        return []
    kind = RelationshipKind(row.relationship)
    return [Relationship(kind, "covering the ward tonight"
                         if kind is RelationshipKind.SELF_DECLARED else None)]


def summary(d: Decision) -> str:
    """Obligations in a few words, for the tables."""
    ob = d.obligations
    parts = []
    if ob.withhold_fields:
        parts.append("withhold " + ", ".join(sorted(ob.withhold_fields)))
    if ob.alert is not None:
        parts.append(f"alert {ob.alert.to_org} IG ({ob.alert.kind})")
    if ob.audit_level.value != "standard":
        parts.append(f"audit {ob.audit_level}")
    if ob.mark_withheld:
        parts.append("mark as withheld")
    return "; ".join(parts)


GP_READS_HOSPITAL = {"org": "J81001", "role": "clinician", "purpose": "direct-care",
                     "owner": "RWX"}

TABLES: dict[str, tuple[str, list[Row]]] = {
    "Purposes that never read care records": (
        "Governance, administration and transparency work with audit, the registry "
        "and agreements, never with care records.",
        [
            Row("IG lead doing governance", "RWX", "ig-lead", "governance", "RWX",
                "conditions", "deny", ("purpose-not-for-care-records",)),
            Row("integration engineer operating the service", "JHUB", "integration-engineer",
                "administration", "RWX", "demographics", "deny",
                ("purpose-not-for-care-records",)),
            Row("a transparency (access report) token", "RWX", "clinician", "transparency",
                "RWX", "demographics", "deny", ("purpose-not-for-care-records",)),
        ],
    ),
    "Break-glass needs a reason": (
        "Emergency access must say why; the attempt is audited at the break-glass level.",
        [
            Row("no reason given", "RWX", "clinician", "emergency", "J81001",
                "medications", "deny", ("break-glass-reason-required",),
                obligations="audit break-glass"),
            Row("a blank reason", "RWX", "clinician", "emergency", "J81001",
                "medications", "deny", ("break-glass-reason-required",), reason="   ",
                obligations="audit break-glass"),
        ],
    ),
    "Own organisation": (
        "A practitioner sees their own organisation's records for any purpose of "
        "individual care: no agreement, relationship or consent check applies (the "
        "organisation already holds the data as controller; its own system's access "
        "rules govern its staff). Beyond individual care there is no such rule.",
        [
            Row("hospital clinician, hospital data", "RWX", "clinician", "direct-care",
                "RWX", "conditions", "permit", ("own-organisation",), relationship="none"),
            Row("own sealed data", "RWX", "clinician", "direct-care", "RWX",
                "sexual-health", "permit", ("own-organisation",), sensitivity="V"),
            Row("own data despite an objection to the organisation", "RWX", "nurse",
                "direct-care", "RWX", "medications", "permit", ("own-organisation",),
                consents=("objects-to:RWX",)),
            Row("own data for planning: no agreement grants an organisation to itself",
                "RWX", "data-steward", "planning", "RWX", "conditions", "deny",
                ("no-agreement",)),
        ],
    ),
    "Sealed categories": (
        "Sexual health, gender identity history and adoption are seen only by their "
        "owner, unless a clinician with a relationship breaks the glass where an "
        "agreement opens sealed categories.",
        [
            Row("GP asks for hospital sexual health for direct care", **GP_READS_HOSPITAL,
                category="sexual-health", expect="deny", reasons=("sealed-category",)),
            Row("GP breaks the glass, with a relationship", "J81001", "clinician",
                "emergency", "RWX", "sexual-health", "permit", ("break-glass",),
                agreement="wessex-direct-care", reason="suspected sepsis, patient confused",
                obligations="alert RWX IG (break-glass); audit break-glass"),
            Row("GP breaks the glass without a relationship", "J81001", "clinician",
                "emergency", "RWX", "sexual-health", "deny", ("no-legitimate-relationship",),
                agreement="wessex-direct-care", reason="suspected sepsis",
                relationship="none", obligations="audit break-glass"),
            Row("GP breaks the glass on a self-declared relationship", "J81001",
                "clinician", "emergency", "RWX", "sexual-health", "permit",
                ("break-glass", "self-declared-relationship"), agreement="wessex-direct-care",
                reason="suspected sepsis", relationship="self-declared",
                obligations="alert RWX IG (break-glass); audit break-glass"),
            Row("a nurse may not break the glass", "J81001", "nurse", "emergency", "RWX",
                "sexual-health", "deny", ("break-glass-not-permitted",),
                agreement="wessex-direct-care", reason="suspected sepsis",
                obligations="audit break-glass"),
        ],
    ),
    "Break-glass": (
        "Breaking the glass replaces the relationship and sensitivity checks, for the "
        "roles an agreement names, and always alerts the data owner's IG lead.",
        [
            Row("ED clinician, no relationship yet, very restricted data", "RWX",
                "clinician", "emergency", "RWM", "mental-health", "permit", ("break-glass",),
                agreement="wessex-direct-care", reason="unconscious, overdose suspected",
                relationship="none", sensitivity="V",
                obligations="alert RWM IG (break-glass); audit break-glass"),
            Row("no agreement between the two allows break-glass", "WCCASC",
                "social-worker", "emergency", "RWX", "conditions", "deny",
                ("break-glass-not-permitted",), agreement="hospital-social-care-discharge",
                reason="urgent", obligations="audit break-glass"),
            Row("no agreement between the two at all", "WPOLICE", "police-officer",
                "emergency", "RWC", "conditions", "deny", ("no-agreement",),
                reason="urgent", obligations="audit break-glass"),
            Row("own organisation in an emergency", "RWX", "nurse", "emergency", "RWX",
                "medications", "permit", ("own-organisation",), reason="cardiac arrest",
                obligations="audit break-glass"),
        ],
    ),
    "An agreement must cover it": (
        "An agreement in force, where the owner shares the category with the "
        "requesting organisation for the request's purpose. Deny by default.",
        [
            Row("GP reads hospital medications", **GP_READS_HOSPITAL, category="medications",
                expect="permit", reasons=("agreement",), agreement="wessex-direct-care"),
            Row("police ask the hospital for conditions for direct care", "WPOLICE",
                "police-officer", "direct-care", "RWX", "conditions", "deny",
                ("no-agreement",)),
            Row("a category the owner does not share", "WCARERS", "caseworker",
                "care-coordination", "RWX", "medications", "deny", ("no-agreement",),
                consents=("consents-to:WCARERS",)),
            Row("a purpose the agreement does not cover", "WCCASC", "social-worker",
                "direct-care", "RWX", "conditions", "deny", ("no-agreement",)),
            Row("a suspended agreement", "WHOMEHELP", "caseworker", "care-coordination",
                "RWC", "demographics", "deny", ("no-agreement",),
                consents=("consents-to:WHOMEHELP",)),
            Row("an agreement that has not started", "WCCASC", "social-worker",
                "care-coordination", "RWM", "mental-health", "deny", ("no-agreement",)),
        ],
    ),
    "Roles": (
        "The agreement names the roles that may see each category.",
        [
            Row("practice admin staff may not see hospital medications", "J81001", "admin",
                "direct-care", "RWX", "medications", "deny", ("role-not-permitted",),
                agreement="wessex-direct-care"),
            Row("social worker reads hospital conditions for discharge", "WCCASC",
                "social-worker", "care-coordination", "RWX", "conditions", "permit",
                ("agreement",), agreement="hospital-social-care-discharge"),
            Row("police officer may see hospital demographics for safeguarding",
                "WPOLICE", "police-officer", "safeguarding", "RWX", "demographics",
                "permit", ("agreement",), agreement="wessex-safeguarding",
                relationship="none"),
            Row("but not hospital encounters", "WPOLICE", "police-officer", "safeguarding",
                "RWX", "encounters", "deny", ("role-not-permitted",),
                agreement="wessex-safeguarding", relationship="none"),
        ],
    ),
    "Legitimate relationship": (
        "For individual care, where the agreement requires it, the practitioner's team "
        "must be caring for the person (care team, open episode, referral, recent "
        "encounter), or say so with a reason where the agreement accepts that.",
        [
            Row("no relationship", **GP_READS_HOSPITAL, category="medications",
                expect="deny", reasons=("no-legitimate-relationship",),
                agreement="wessex-direct-care", relationship="none"),
            Row("a referral", **GP_READS_HOSPITAL, category="medications", expect="permit",
                reasons=("agreement",), agreement="wessex-direct-care",
                relationship="referral"),
            Row("self-declared, accepted by the agreement", **GP_READS_HOSPITAL,
                category="medications", expect="permit",
                reasons=("agreement", "self-declared-relationship"),
                agreement="wessex-direct-care", relationship="self-declared",
                obligations="alert RWX IG (self-declared-relationship); audit elevated"),
            Row("self-declared, not accepted by the agreement", "WCCASC", "social-worker",
                "care-coordination", "RWX", "conditions", "deny",
                ("self-declared-relationship-not-accepted",),
                agreement="hospital-social-care-discharge", relationship="self-declared"),
            Row("not required for safeguarding under this agreement", "WCCCS",
                "social-worker", "safeguarding", "J81001", "safeguarding", "permit",
                ("agreement",), agreement="wessex-safeguarding", relationship="none"),
        ],
    ),
    "Sensitivity": (
        "Each provider's share has a ceiling (default restricted). Data above it is "
        "withheld, and the practitioner is told something is there.",
        [
            Row("restricted mental health, ceiling restricted", "RWX", "clinician",
                "direct-care", "RWM", "mental-health", "permit", ("agreement",),
                agreement="wessex-direct-care", sensitivity="R"),
            Row("very restricted mental health", "RWX", "clinician", "direct-care", "RWM",
                "mental-health", "deny", ("sensitivity-above-agreement",),
                agreement="wessex-direct-care", sensitivity="V",
                obligations="mark as withheld"),
            Row("planning sees normal data only", "JHUB", "data-steward", "planning", "RWX",
                "conditions", "deny", ("sensitivity-above-agreement",),
                agreement="population-planning", sensitivity="R", relationship="none",
                obligations="mark as withheld"),
        ],
    ),
    "Explicit consent": (
        "Agreements that need explicit consent (typical for charities) permit only "
        "with it: consent to the organisation, or under the agreement.",
        [
            Row("carers charity without consent", "WCARERS", "caseworker",
                "care-coordination", "RWX", "carers", "deny", ("explicit-consent-required",),
                agreement="carers-support"),
            Row("carers charity with consent to it", "WCARERS", "caseworker",
                "care-coordination", "RWX", "carers", "permit", ("agreement",),
                agreement="carers-support", consents=("consents-to:WCARERS",)),
            Row("demographics come without the NHS number and phone", "WCARERS",
                "caseworker", "care-coordination", "RWX", "demographics", "permit",
                ("agreement",), agreement="carers-support",
                consents=("consents-to:WCARERS",),
                obligations="withhold Patient.identifier, Patient.telecom"),
            Row("consent under the agreement", "WHOMEHELP", "caseworker",
                "care-coordination", "WCCASC", "housing", "permit", ("agreement",),
                agreement="homeless-outreach", consents=("consents-under:homeless-outreach",)),
            Row("consent to a different charity does not count", "WHOMEHELP", "caseworker",
                "care-coordination", "WCCASC", "housing", "deny",
                ("explicit-consent-required",), agreement="homeless-outreach",
                consents=("consents-to:WCARERS",)),
        ],
    ),
    "National data opt-out": (
        "Applies to purposes beyond individual care, for data from health and adult "
        "social care, where the basis is s251 support; not to direct care, not to "
        "children's social care, not where a legal obligation or consent is the basis.",
        [
            Row("planning, opted out", "JHUB", "data-steward", "planning", "RWX",
                "conditions", "deny", ("national-data-opt-out",),
                agreement="population-planning", consents=("opted-out",),
                relationship="none"),
            Row("planning, not opted out", "JHUB", "data-steward", "planning", "RWX",
                "conditions", "permit", ("agreement",), agreement="population-planning",
                relationship="none"),
            Row("adult social care data, opted out", "JHUB", "data-steward", "planning",
                "WCCASC", "social-care-episodes", "deny", ("national-data-opt-out",),
                agreement="population-planning", consents=("opted-out",),
                relationship="none"),
            Row("children's social care data, opted out", "JHUB", "data-steward",
                "planning", "WCCCS", "social-care-episodes", "permit", ("agreement",),
                agreement="children-planning", consents=("opted-out",),
                relationship="none"),
            Row("a legal obligation, opted out", "JHUB", "data-steward", "research", "RWM",
                "mental-health", "permit", ("agreement",), agreement="mental-health-returns",
                consents=("opted-out",), relationship="none"),
            Row("direct care, opted out", **GP_READS_HOSPITAL, category="conditions",
                expect="permit", reasons=("agreement",), agreement="wessex-direct-care",
                consents=("opted-out",)),
        ],
    ),
    "Objections": (
        "A person's objection to an organisation, or to a category, stops sharing "
        "(break-glass included), except for safeguarding, which overrides it and says so.",
        [
            Row("objects to the requesting practice", **GP_READS_HOSPITAL,
                category="medications", expect="deny", reasons=("objection-to-organisation",),
                consents=("objects-to:J81001",)),
            Row("objects to sharing mental health", "RWX", "clinician", "direct-care", "RWM",
                "mental-health", "deny", ("objection-to-category",),
                consents=("objects-to:mental-health",)),
            Row("objects to another organisation", **GP_READS_HOSPITAL,
                category="medications", expect="permit", reasons=("agreement",),
                agreement="wessex-direct-care", consents=("objects-to:WPOLICE",)),
            Row("break-glass respects an objection", "RWX", "clinician", "emergency",
                "J81001", "medications", "deny", ("objection-to-organisation",),
                consents=("objects-to:RWX",), reason="unconscious",
                obligations="audit break-glass"),
            Row("safeguarding overrides an objection", "WPOLICE", "police-officer",
                "safeguarding", "WCCCS", "safeguarding", "permit",
                ("agreement", "objection-overridden-for-safeguarding"),
                agreement="wessex-safeguarding", consents=("objects-to:WPOLICE",),
                relationship="none", obligations="audit elevated"),
        ],
    ),
    "Directives over time and in conflict": (
        "A directive applies while it is active and within its period; a withdrawn one "
        "is kept (for history) but decides nothing. When directives conflict, the "
        "denial wins: an objection to an organisation beats an explicit consent to it.",
        [
            Row("a withdrawn objection no longer applies", **GP_READS_HOSPITAL,
                category="medications", expect="permit", reasons=("agreement",),
                agreement="wessex-direct-care", consents=("withdrawn:objects-to:J81001",)),
            Row("an objection from a later date does not apply yet", **GP_READS_HOSPITAL,
                category="medications", expect="permit", reasons=("agreement",),
                agreement="wessex-direct-care",
                consents=("from:2027-01-01:objects-to:J81001",)),
            Row("an objection that has ended no longer applies", **GP_READS_HOSPITAL,
                category="medications", expect="permit", reasons=("agreement",),
                agreement="wessex-direct-care",
                consents=("until:2026-11-21:objects-to:J81001",)),
            Row("an objection in its period applies", **GP_READS_HOSPITAL,
                category="medications", expect="deny", reasons=("objection-to-organisation",),
                consents=("from:2026-11-01:until:2026-12-31:objects-to:J81001",)),
            Row("an objection beats an explicit consent to the same organisation",
                "WCARERS", "caseworker", "care-coordination", "RWX", "carers", "deny",
                ("objection-to-organisation",),
                consents=("consents-to:WCARERS", "objects-to:WCARERS")),
            Row("a withdrawn explicit consent no longer counts", "WCARERS", "caseworker",
                "care-coordination", "RWX", "carers", "deny", ("explicit-consent-required",),
                agreement="carers-support", consents=("withdrawn:consents-to:WCARERS",)),
            Row("a withdrawn opt-out no longer applies", "JHUB", "data-steward", "planning",
                "RWX", "conditions", "permit", ("agreement",), agreement="population-planning",
                consents=("withdrawn:opted-out",), relationship="none"),
        ],
    ),
    "Several agreements": (
        "When several agreements cover a request, any one that passes decides (the "
        "lowest id and version first). If none passes, the one that got furthest "
        "through the checks decides, and its failure is the reason.",
        [
            Row("admin: direct care agreement refuses the role, the pilot permits",
                "J81001", "admin", "direct-care", "RWC", "care-plans", "permit",
                ("agreement",), agreement="community-gp-pilot", relationship="none"),
            Row("nurse without relationship: the direct care agreement got further",
                "J81001", "nurse", "direct-care", "RWC", "care-plans", "deny",
                ("no-legitimate-relationship",), agreement="wessex-direct-care",
                relationship="none"),
        ],
    ),
}


def render() -> str:
    """The Markdown of docs/reference/access-decisions.md."""
    from joinedup.access import reference

    lines = [
        "# Access decisions",
        "",
        "<!-- Generated by tests/spec/access/access_decision_tables.py: edit the rows "
        "there, then run it. -->",
        "",
        "Every access rule, as the rows the tests run. Each row is a request to the "
        "decision point and the decision it must give; the same rows run against the "
        "compiled decision point and the reference model. The world is the demo "
        "area's agreements (`src/joinedup/demo/agreements/`) plus a few defined in the "
        f"tables; the date is {TODAY}.",
        "",
        "## The rules, in order",
        "",
    ]
    doc = reference.__doc__ or ""
    start = doc.index("The rules, in order")
    body = doc[start:].split("\n", 2)[2]
    lines += body.strip().splitlines()
    lines += [
        "",
        "## Reason codes",
        "",
        "Stable values: they go into audit events and reports. The first reason "
        "decides; on a permit, later ones note what else applied.",
        "",
        "| code | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{code.value}` | {REASON_DESCRIPTIONS[code]} |" for code in ReasonCode]
    lines += [
        "",
        "Obligations: fields to withhold; an alert to the data owner's IG lead "
        "(break-glass, self-declared relationship); the audit level (standard, elevated, "
        "break-glass); whether a denial may be shown as a REDACTED placeholder.",
        "",
        "## Where the inputs come from",
        "",
        "In the service, a person's consent directives come from the consent store and "
        "a practitioner's relationships from the person's records (care teams, open "
        "episodes, referrals, recent encounters) and from their own declarations, all "
        "read afresh for each request ([consent.md](consent.md)). To see every decision "
        "a real requester gets about a real person, with these reasons: "
        "`joinedup access explain --token T --person P` (or `--org O --practitioner X "
        "--purpose P [--reason R]` to simulate a practitioner of the registry; the role "
        "and team come from the registry) or `POST /admin/access/explain` with "
        "`{\"token\": T, \"person\": P}` (`audit:read`). It decides exactly as a read "
        "does and lists, per owner organisation holding a record of the person, each "
        "category and sensitivity with the decision, reason codes, agreement, the consent "
        "directive that decided and the obligations, and the meaning of each reason code. "
        "Explaining is audited (`access.explain`); an unknown person is not found. "
        "Through the admin API the hub's IG staff explain anyone's access; a partner "
        "organisation's IG lead explains only its own organisation's tokens about a person "
        "it holds a record of (the answer names every record holder and directive of the "
        "person), and anything else is answered as an unknown person.",
        "",
        "## Agreements in the tables",
        "",
        "| agreement | parties | purposes | common-law basis | conditions |",
        "|---|---|---|---|---|",
    ]
    for a in sorted(spec_agreements(), key=lambda a: a.key):
        c = a.conditions
        conditions = [
            "relationship required" if c.relationship_required else "no relationship needed",
        ]
        if c.self_declared_relationship_allowed:
            conditions.append("self-declared accepted")
        if c.explicit_consent_required:
            conditions.append("explicit consent")
        if c.break_glass is not None:
            conditions.append(
                "break-glass: " + ", ".join(sorted(c.break_glass.roles))
                + (" (sealed too)" if c.break_glass.sealed_categories else "")
            )
        status = "" if a.in_force(TODAY) else f" ({a.status}, from {a.start})"
        lines.append(
            f"| `{a.id}`{status} | {', '.join(a.parties)} | {', '.join(sorted(a.purposes))} "
            f"| {a.lawful_basis.common_law} | {'; '.join(conditions)} |"
        )
    for title, (intro, rows) in TABLES.items():
        lines += [
            "",
            f"## {title}",
            "",
            intro,
            "",
            "| case | requester | purpose | data | relationship | consent | decision "
            "| reasons | agreement | obligations |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            purpose = r.purpose + (f" (reason: “{r.reason.strip()}”)" if r.reason and
                                   r.reason.strip() else "")
            data = f"{r.owner} {r.category} ({r.sensitivity})"
            lines.append(
                f"| {r.case} | {r.org} {r.role} | {purpose} | {data} | {r.relationship} "
                f"| {', '.join(r.consents) or '—'} | **{r.expect}** "
                f"| {', '.join(f'`{x}`' for x in r.reasons)} | {r.agreement or '—'} "
                f"| {r.obligations or '—'} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text(render(), encoding="utf-8")
    print(f"wrote {DOC.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
