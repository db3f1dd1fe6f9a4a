"""Consent directives: validation, the per-person summary, and FHIR Consent."""

from __future__ import annotations

from datetime import date

import pytest
from fhir.resources.R4B.consent import Consent

from joinedup.access.consent import (
    ConsentDirective,
    DirectiveKind,
    DirectiveStatus,
    PersonConsents,
    opt_out_applies_to,
)
from joinedup.access.consent_fhir import ConsentError, from_fhir, to_fhir
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.labels import DataCategory
from joinedup.orgs.vocab import OrgKind

TODAY = date(2026, 11, 22)
K = DirectiveKind


def directive(id_: str, kind: DirectiveKind, **kw: object) -> ConsentDirective:
    return ConsentDirective(id_, "p1", kind, TODAY, **kw)  # type: ignore[arg-type]


@pytest.mark.parametrize(("kind", "fields", "message"), [
    (K.OBJECTION, {}, "exactly one of an organisation or a category"),
    (K.OBJECTION, {"organisation": "RWX", "category": DataCategory.HOUSING}, "exactly one"),
    (K.OBJECTION, {"organisation": "RWX", "agreement_id": "a"}, "cannot name an agreement"),
    (K.EXPLICIT_CONSENT, {}, "names an organisation or an agreement"),
    (K.EXPLICIT_CONSENT, {"organisation": "X", "category": DataCategory.HOUSING}, "not a category"),
    (K.NATIONAL_OPT_OUT, {"organisation": "RWX"}, "names no organisation"),
    (K.NATIONAL_OPT_OUT, {"start": date(2026, 2, 1), "end": date(2026, 1, 1)}, "ends before"),
])
def test_invalid_directives_are_refused(kind: DirectiveKind, fields: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        directive("c1", kind, **fields)


def test_summary_cites_the_lowest_id_and_ignores_what_is_not_in_effect() -> None:
    consents = PersonConsents.of("p1", [
        directive("c9", K.OBJECTION, organisation="WPOLICE"),
        directive("c2", K.OBJECTION, organisation="WPOLICE"),
        directive("c3", K.OBJECTION, category=DataCategory.MENTAL_HEALTH,
                  status=DirectiveStatus.INACTIVE),
        directive("c4", K.NATIONAL_OPT_OUT, start=date(2027, 1, 1)),
        directive("c5", K.EXPLICIT_CONSENT, organisation="WCARERS"),
        directive("c6", K.EXPLICIT_CONSENT, agreement_id="homeless-outreach"),
        directive("c7", K.EXPLICIT_CONSENT, organisation="WHOMEHELP", agreement_id="pilot"),
    ], TODAY)
    assert consents.objected_orgs == {"WPOLICE": "c2"}
    assert consents.objected_categories == {}
    assert consents.opted_out is None
    assert consents.has_objections
    assert consents.has_consented("WCARERS", "anything")
    assert consents.has_consented("ANYONE", "homeless-outreach")
    assert consents.has_consented("WHOMEHELP", "pilot")
    assert not consents.has_consented("WHOMEHELP", "other")


def test_directives_of_another_person_are_refused() -> None:
    other = ConsentDirective("c1", "p2", K.NATIONAL_OPT_OUT, TODAY)
    with pytest.raises(ValueError, match="another person"):
        PersonConsents.of("p1", [other], TODAY)


def test_opt_out_scope_is_health_and_adult_social_care() -> None:
    kinds = {"A": OrgKind.GP_PRACTICE, "B": OrgKind.LA_CHILDRENS_SERVICES,
             "C": OrgKind.LA_ADULT_SOCIAL_CARE, "D": OrgKind.CHARITY}
    assert [opt_out_applies_to(o, kinds) for o in "ABCDE"] == [True, False, True, False, True]


def test_relationships() -> None:
    with pytest.raises(ValueError, match="needs a reason"):
        Relationship(RelationshipKind.SELF_DECLARED, " ")
    rels = Relationships.of([Relationship(RelationshipKind.SELF_DECLARED, "on call")])
    assert rels.self_declared
    assert not rels.established
    assert Relationships.of([Relationship(RelationshipKind.REFERRAL)]).established


@pytest.mark.parametrize("d", [
    directive("c1", K.OBJECTION, organisation="WPOLICE"),
    directive("c2", K.OBJECTION, category=DataCategory.SEXUAL_HEALTH,
              start=date(2026, 1, 1), end=date(2027, 1, 1)),
    directive("c3", K.EXPLICIT_CONSENT, organisation="WCARERS"),
    directive("c4", K.EXPLICIT_CONSENT, agreement_id="homeless-outreach",
              status=DirectiveStatus.INACTIVE),
    directive("c5", K.EXPLICIT_CONSENT, organisation="WHOMEHELP", agreement_id="pilot"),
    directive("c6", K.NATIONAL_OPT_OUT),
])
def test_fhir_round_trip_and_valid_r4(d: ConsentDirective) -> None:
    resource = to_fhir(d)
    Consent.model_validate(resource)  # valid FHIR (R4B Consent = R4 Consent)
    assert from_fhir(resource) == d


def test_fhir_shape_for_an_objection() -> None:
    resource = to_fhir(directive("c1", K.OBJECTION, organisation="WPOLICE"))
    assert resource["provision"]["type"] == "deny"
    assert resource["provision"]["actor"][0]["reference"]["identifier"]["value"] == "WPOLICE"
    assert resource["policyRule"]["coding"][0]["code"] == "OPTOUT"
    assert resource["patient"] == {"reference": "Patient/p1"}


def test_fhir_problems_are_all_listed() -> None:
    resource = to_fhir(directive("c1", K.OBJECTION, organisation="WPOLICE"))
    resource["provision"]["type"] = "permit"
    resource["policyRule"]["coding"][0]["code"] = "OPTOUT"
    resource["patient"] = {"reference": "Group/x"}
    resource["status"] = "draft"
    resource["provision"]["securityLabel"] = [
        {"system": "https://joinedup.dev/fhir/CodeSystem/data-category", "code": "nope"}]
    with pytest.raises(ConsentError) as info:
        from_fhir(resource)
    locations = {p.location for p in info.value.problems}
    assert {"patient.reference", "status", "provision.securityLabel"} <= locations


def test_fhir_that_is_not_a_consent_is_refused() -> None:
    with pytest.raises(ConsentError, match="not a valid FHIR R4 Consent"):
        from_fhir({"resourceType": "Consent", "status": 7})


def test_fhir_problems_include_the_directives_own_rules_dates_and_agreements() -> None:
    """Every problem at once: a bad status, two agreements, a partial date, and an
    objection naming both an organisation and a category."""
    resource = to_fhir(directive("c1", K.OBJECTION, organisation="WPOLICE"))
    resource["status"] = "draft"
    resource["policy"] = [{"uri": "urn:joinedup:agreement:a"},
                          {"uri": "urn:joinedup:agreement:b"}]
    resource["provision"]["securityLabel"] = [
        {"system": "https://joinedup.dev/fhir/CodeSystem/data-category", "code": "housing"}]
    resource["provision"]["period"] = {"start": "2026"}
    with pytest.raises(ConsentError) as info:
        from_fhir(resource)
    locations = {p.location for p in info.value.problems}
    assert locations == {"status", "policy.uri", "provision.period.start", "provision"}
    messages = " ".join(p.message for p in info.value.problems)
    assert "exactly one of an organisation or a category" in messages
    assert "cannot name an agreement" in messages


def test_a_consent_naming_two_agreements_is_refused_not_read_as_the_first() -> None:
    resource = to_fhir(directive("c1", K.EXPLICIT_CONSENT, organisation="WPOLICE"))
    resource["policy"] = [{"uri": "urn:joinedup:agreement:a"},
                          {"uri": "urn:joinedup:agreement:b"}]
    with pytest.raises(ConsentError) as info:
        from_fhir(resource)
    assert [p.location for p in info.value.problems] == ["policy.uri"]


def test_names_are_read_leniently_from_a_malformed_consent() -> None:
    from joinedup.access.consent_fhir import named

    assert named({"provision": {"actor": 5}, "policy": "x"}) == ([], [])
    assert named({"provision": "x"}) == ([], [])
