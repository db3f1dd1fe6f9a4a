"""Loading agreements: every problem at once, each with its YAML path and line."""

from __future__ import annotations

from datetime import date

import pytest

from joinedup.access.agreements import AgreementError, CommonLawBasis, Status
from joinedup.access.loader import load_agreement, load_agreements
from joinedup.labels import DataCategory, Sensitivity
from joinedup.orgs.vocab import ProfessionalRole

KNOWN = {"RWX", "RWM", "WCCASC", "WCARERS", "JHUB"}
TODAY = date(2026, 11, 22)

GOOD = """\
id: discharge
version: 1
title: Discharge
parties: [RWX, WCCASC]
purposes: [care-coordination]
lawful_basis:
  article_6: public-task
  article_9: health-or-social-care
  common_law: implied-consent
roles: [social-worker]
shares:
  RWX:
    max_sensitivity: N
    categories:
      - conditions
      - category: medications
        roles: [care-coordinator]
        withhold_fields: [MedicationStatement.note]
  WCCASC:
    roles: [nurse]
    categories: [housing]
start: 2026-04-01
end: 2028-03-31
review: 2027-03-31
dpia: DPIA-1
ig_contact: ig@example.org
"""


def problems(text: str, **kw: object) -> list[str]:
    with pytest.raises(AgreementError) as info:
        load_agreement(text, source="a.yaml", known_orgs=KNOWN, today=TODAY, **kw)  # type: ignore[arg-type]
    return [str(p) for p in info.value.problems]


def test_a_good_agreement_loads_with_inherited_roles() -> None:
    a = load_agreement(GOOD, known_orgs=KNOWN, today=TODAY)
    rwx = a.share("RWX")
    assert rwx is not None
    assert rwx.max_sensitivity is Sensitivity.NORMAL
    conditions = rwx.category(DataCategory.CONDITIONS)
    medications = rwx.category(DataCategory.MEDICATIONS)
    assert conditions is not None
    assert conditions.roles == {ProfessionalRole.SOCIAL_WORKER}
    assert medications is not None
    assert medications.roles == {ProfessionalRole.CARE_COORDINATOR}
    assert medications.withhold_fields == {"MedicationStatement.note"}
    wccasc = a.share("WCCASC")
    assert wccasc is not None
    assert wccasc.max_sensitivity is Sensitivity.RESTRICTED
    assert wccasc.categories[0].roles == {ProfessionalRole.NURSE}
    assert a.status is Status.ACTIVE
    assert a.conditions.relationship_required
    assert a.lawful_basis.common_law is CommonLawBasis.IMPLIED_CONSENT


def test_every_problem_is_reported_with_path_and_line() -> None:
    text = GOOD.replace("parties: [RWX, WCCASC]", "parties: [RWX, WCCASC, NOPE, RWX]")
    text = text.replace("- conditions", "- conditionz")
    text = text.replace("roles: [care-coordinator]", "roles: [surgeon]")
    text = text.replace("end: 2028-03-31", "end: 2026-01-01")
    found = problems(text)
    assert "a.yaml:4: parties[2]: unknown organisation NOPE" in found
    assert "a.yaml:4: parties[3]: RWX is listed more than once" in found
    assert any(p.startswith("a.yaml:15: shares.RWX.categories[0]: unknown data category "
                            "'conditionz'") for p in found)
    assert any(p.startswith("a.yaml:17: shares.RWX.categories[1].roles[0]: unknown role "
                            "'surgeon'") for p in found)
    assert "a.yaml:23: end: ends (2026-01-01) before it starts (2026-04-01)" in found
    assert "a.yaml:23: end: the agreement ended on 2026-01-01; it has expired" in found


def test_indexes_follow_the_yaml_after_a_bad_item_is_skipped() -> None:
    text = GOOD.replace("parties: [RWX, WCCASC]", "parties: [[x], RWX, WCCASC, WCCASC]")
    found = problems(text)
    assert "a.yaml:4: parties[0]: must be an organisation code" in found
    assert "a.yaml:4: parties[3]: WCCASC is listed more than once" in found


def test_special_category_data_needs_an_article_9_condition() -> None:
    found = problems(GOOD.replace("  article_9: health-or-social-care\n", ""))
    assert any("lawful_basis.article_9: special-category data is shared "
               "(conditions, medications)" in p for p in found)


def test_no_article_9_needed_without_special_category_data() -> None:
    text = GOOD.replace("  article_9: health-or-social-care\n", "")
    text = text.replace("      - conditions\n", "      - demographics\n")
    text = text.replace("category: medications", "category: carers")
    assert load_agreement(text, known_orgs=KNOWN, today=TODAY).lawful_basis.article_9 is None


def test_beyond_individual_care_needs_a_basis_other_than_implied_consent() -> None:
    text = GOOD.replace("[care-coordination]", "[planning]")
    found = problems(text)
    assert any("lawful_basis.common_law: planning goes beyond individual care" in p
               for p in found)
    ok = text.replace("implied-consent", "s251-support")
    assert load_agreement(ok, known_orgs=KNOWN, today=TODAY).purposes == {"planning"}


def test_consent_basis_requires_the_explicit_consent_condition() -> None:
    found = problems(GOOD.replace("common_law: implied-consent", "common_law: explicit-consent"))
    assert any("conditions.explicit_consent_required must be true" in p for p in found)


def test_sealed_category_needs_break_glass_into_sealed() -> None:
    text = GOOD.replace("categories: [housing]", "categories: [adoption]")
    assert any("shares.WCCASC.categories[0]: adoption is sealed" in p for p in problems(text))


def test_unknown_fields_duplicates_and_bad_types() -> None:
    text = GOOD + "colour: red\nversion: 2\n"
    text = text.replace("title: Discharge", "title: 7")
    found = problems(text)
    assert "a.yaml:27: colour: unknown field 'colour'" in found
    assert "a.yaml:28: version: is given more than once" in found
    assert "a.yaml:3: title: must be text" in found


def test_missing_fields_are_all_listed() -> None:
    found = problems("id: x1\n")
    for field in ("version", "title", "parties", "purposes", "lawful_basis", "shares",
                  "start", "review", "dpia", "ig_contact"):
        assert any(f": {field}: is required" in p for p in found), field


def test_not_yaml_and_not_a_mapping() -> None:
    assert problems("id: [unclosed\n")[0].startswith("a.yaml:2: not valid YAML")
    assert problems("- a list\n") == ["a.yaml: must be a YAML mapping (id:, version:, parties: ...)"]


def test_overlapping_active_versions_in_a_set() -> None:
    v2 = (GOOD.replace("version: 1", "version: 2")
          .replace("start: 2026-04-01", "start: 2027-04-01")
          .replace("review: 2027-03-31", "review: 2028-01-31"))
    with pytest.raises(AgreementError) as info:
        load_agreements([("v1.yaml", GOOD), ("v2.yaml", v2)], known_orgs=KNOWN)
    [problem] = info.value.problems
    assert problem.location == "v2.yaml: start"
    assert "overlaps version 1" in problem.message
    suspended = GOOD.replace("title: Discharge", "title: Discharge\nstatus: suspended")
    loaded = load_agreements([("v1.yaml", suspended), ("v2.yaml", v2)], known_orgs=KNOWN)
    assert [a.version for a in loaded] == [1, 2]


def test_the_same_version_twice_in_a_set() -> None:
    with pytest.raises(AgreementError) as info:
        load_agreements([("a.yaml", GOOD), ("b.yaml", GOOD)])
    assert [p.message for p in info.value.problems] == [
        "discharge version 1 is also defined in a.yaml"]


def test_problems_become_problem_json_errors() -> None:
    with pytest.raises(AgreementError) as info:
        load_agreement(GOOD.replace("dpia: DPIA-1", "dpia: ''"))
    error = info.value
    assert error.status == 422
    assert error.slug == "invalid-agreement"
    assert [p.as_dict() for p in error.problems] == [
        {"location": "dpia (line 25)", "message": "a DPIA reference is required"}]
