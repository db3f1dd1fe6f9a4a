"""Consent directives to and from FHIR R4 Consent JSON.

fhir.resources 8 ships R5 by default; its R4B models are used to validate,
since Consent did not change between R4 and R4B. The mapping:

| directive | Consent |
|---|---|
| objection to an organisation | policyRule OPTOUT; provision.type deny; provision.actor IRCP = the organisation |
| objection to a category | policyRule OPTOUT; provision.type deny; provision.securityLabel = the category |
| explicit consent | policyRule OPTIN; provision.type permit; actor IRCP and/or policy.uri = the agreement |
| national data opt-out | policyRule OPTOUT; policy.uri = the NDOO page; provision.type deny; provision.purpose planning, research |
"""

from __future__ import annotations

from datetime import date
from typing import Any

from joinedup.access.consent import ConsentDirective, DirectiveKind, DirectiveStatus
from joinedup.access.purposes import BEYOND_INDIVIDUAL_CARE, PURPOSE_SYSTEM
from joinedup.errors import InvalidInput, Problem
from joinedup.labels import CATEGORY_SYSTEM, DataCategory

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SCOPE_SYSTEM = "http://terminology.hl7.org/CodeSystem/consentscope"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"
PARTICIPATION_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ParticipationType"
LOINC = "http://loinc.org"
NATIONAL_OPT_OUT_POLICY = "https://digital.nhs.uk/services/national-data-opt-out"
AGREEMENT_URN = "urn:joinedup:agreement:"


class ConsentError(InvalidInput):
    slug = "invalid-consent"
    title = "Invalid consent directive"


def _coding(system: str, code: str) -> dict[str, Any]:
    return {"coding": [{"system": system, "code": code}]}


def to_fhir(d: ConsentDirective) -> dict[str, Any]:
    """The directive as an R4 Consent resource (a JSON-ready dict)."""
    provision: dict[str, Any] = {
        "type": "permit" if d.kind is DirectiveKind.EXPLICIT_CONSENT else "deny"
    }
    if d.start or d.end:
        provision["period"] = {
            k: v.isoformat() for k, v in (("start", d.start), ("end", d.end)) if v is not None
        }
    policy: list[dict[str, str]] = []
    if d.organisation is not None:
        provision["actor"] = [{
            "role": _coding(PARTICIPATION_SYSTEM, "IRCP"),
            "reference": {"identifier": {"system": ODS_SYSTEM, "value": d.organisation}},
        }]
    if d.category is not None:
        provision["securityLabel"] = [{"system": CATEGORY_SYSTEM, "code": d.category.value}]
    if d.agreement_id is not None:
        policy.append({"uri": AGREEMENT_URN + d.agreement_id})
    if d.kind is DirectiveKind.NATIONAL_OPT_OUT:
        policy.append({"uri": NATIONAL_OPT_OUT_POLICY})
        provision["purpose"] = [
            {"system": PURPOSE_SYSTEM, "code": p.value} for p in sorted(BEYOND_INDIVIDUAL_CARE)
        ]
    resource: dict[str, Any] = {
        "resourceType": "Consent",
        "id": d.id,
        "status": d.status.value,
        "scope": _coding(SCOPE_SYSTEM, "patient-privacy"),
        "category": [_coding(LOINC, "59284-0")],
        "patient": {"reference": f"Patient/{d.person}"},
        "dateTime": d.recorded.isoformat(),
        "policyRule": _coding(
            ACT_CODE_SYSTEM, "OPTIN" if d.kind is DirectiveKind.EXPLICIT_CONSENT else "OPTOUT"
        ),
        "provision": provision,
    }
    if policy:
        resource["policy"] = policy
    return resource


def from_fhir(resource: dict[str, Any]) -> ConsentDirective:
    """Read a directive from R4 Consent JSON; ``ConsentError`` lists every problem."""
    from fhir.resources.R4B.consent import Consent  # heavy import: only when used
    from pydantic import ValidationError

    try:
        Consent.model_validate(resource)
    except ValidationError as exc:
        raise ConsentError("not a valid FHIR R4 Consent", [
            Problem(str(e["msg"]), ".".join(str(p) for p in e["loc"]))
            for e in exc.errors(include_url=False, include_input=False)
        ]) from None
    problems: list[Problem] = []
    provision = resource.get("provision") or {}
    policies = [p.get("uri", "") for p in resource.get("policy") or []]
    rule = _codes(resource.get("policyRule"), ACT_CODE_SYSTEM)
    ptype = provision.get("type")
    if NATIONAL_OPT_OUT_POLICY in policies:
        kind = DirectiveKind.NATIONAL_OPT_OUT
    elif "OPTIN" in rule or ptype == "permit":
        kind = DirectiveKind.EXPLICIT_CONSENT
    else:
        kind = DirectiveKind.OBJECTION
    expected = "permit" if kind is DirectiveKind.EXPLICIT_CONSENT else "deny"
    if ptype != expected:
        problems.append(Problem(f"must be {expected!r} for {kind}", "provision.type"))
    person = (resource.get("patient") or {}).get("reference", "")
    if not person.startswith("Patient/"):
        problems.append(Problem("must reference Patient/{id}", "patient.reference"))
    orgs, agreements = named(resource)
    if len(orgs) > 1:
        problems.append(Problem("name at most one organisation", "provision.actor"))
    labels = [
        s.get("code") for s in provision.get("securityLabel") or []
        if s.get("system") == CATEGORY_SYSTEM
    ]
    category = None
    if len(labels) > 1:
        problems.append(Problem("name at most one category", "provision.securityLabel"))
    elif labels:
        try:
            category = DataCategory(labels[0])
        except ValueError:
            problems.append(Problem(f"unknown category {labels[0]!r}", "provision.securityLabel"))
    if len(agreements) > 1:
        problems.append(Problem("name at most one agreement", "policy.uri"))
    period = provision.get("period") or {}
    status = resource.get("status")
    if status not in ("active", "inactive"):
        problems.append(Problem("only active and inactive consents are directives", "status"))
    if not resource.get("id"):
        problems.append(Problem("is required", "id"))
    recorded = _day(resource.get("dateTime"), "dateTime", problems, required=True)
    start = _day(period.get("start"), "provision.period.start", problems)
    end = _day(period.get("end"), "provision.period.end", problems)
    if recorded is not None and resource.get("id") and person.startswith("Patient/") and not (
            labels and category is None):  # else its own rules would repeat those problems
        try:  # the directive's own rules (what an objection or a consent names, dates)
            directive = ConsentDirective(
                id=resource["id"],
                person=person.removeprefix("Patient/"),
                kind=kind,
                recorded=recorded,
                status=DirectiveStatus.INACTIVE if status == "inactive" else
                DirectiveStatus.ACTIVE,
                organisation=orgs[0] if orgs else None,
                category=category,
                agreement_id=agreements[0] if agreements else None,
                start=start,
                end=end,
            )
        except ValueError as exc:
            problems += [Problem(p, "provision") for p in str(exc).split("; ")]
        else:
            if not problems:
                return directive
    raise ConsentError("the Consent is not a directive joinedup understands", problems)


def _day(value: Any, where: str, problems: list[Problem], *, required: bool = False
         ) -> date | None:
    """A full date from a FHIR date or dateTime; a partial one (``2024``, ``2024-05``)
    is refused rather than guessed at, since it decides when a directive is in force."""
    if not value:
        if required:
            problems.append(Problem("is required", where))
        return None
    try:
        return date.fromisoformat(str(value)[:10])
    except ValueError:
        problems.append(Problem("must be a full date (YYYY-MM-DD) or date and time", where))
        return None


def named(resource: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(ODS codes of the organisations, ids of the agreements) a Consent names, read
    leniently so they can be checked even in a Consent with other problems."""
    found = resource.get("provision")
    provision: dict[str, Any] = found if isinstance(found, dict) else {}
    orgs: list[str] = []
    for a in _list(provision.get("actor")):
        ident = ((a.get("reference") if isinstance(a, dict) else None) or {}).get("identifier")
        if isinstance(ident, dict) and ident.get("system") == ODS_SYSTEM:
            value = ident.get("value")
            orgs.append(value if isinstance(value, str) else "")
    uris = [p.get("uri", "") for p in _list(resource.get("policy")) if isinstance(p, dict)]
    agreements = [u.removeprefix(AGREEMENT_URN) for u in uris
                  if isinstance(u, str) and u.startswith(AGREEMENT_URN)]
    return orgs, agreements


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _codes(concept: dict[str, Any] | None, system: str) -> set[str]:
    return {
        c.get("code", "") for c in (concept or {}).get("coding") or [] if c.get("system") == system
    }
