"""Minimisation: withheld elements masked, REDACTED labelled, input untouched."""

from __future__ import annotations

import copy

from joinedup.access.agreements import AgreementRef
from joinedup.access.decisions import Decision, Effect, Obligations, ReasonCode
from joinedup.access.minimise import (
    DATA_ABSENT_REASON_URL,
    REDACTED,
    apply_decisions,
    labels_of,
    minimise,
    redacted_stub,
)
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM, DataCategory, Sensitivity

MASKED = {"extension": [{"url": DATA_ABSENT_REASON_URL, "valueCode": "masked"}]}


def labels(*categories: str, sensitivity: str = "N") -> dict:
    return {"security": [{"system": CATEGORY_SYSTEM, "code": c} for c in categories]
            + [{"system": CONFIDENTIALITY_SYSTEM, "code": sensitivity}]}


PATIENT = {
    "resourceType": "Patient", "id": "p1", "meta": labels("demographics"),
    "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"}],
    "telecom": [{"system": "phone", "value": "01234 567890"}],
    "birthDate": "1950-01-01",
    "name": [{"family": "Smith", "given": ["Ann"]}],
}
OBSERVATION = {
    "resourceType": "Observation", "id": "o1", "status": "final",
    "meta": labels("observations", "mental-health", sensitivity="R"),
    "code": {"text": "PHQ-9"}, "subject": {"reference": "Patient/p1"},
    "valueQuantity": {"value": 21},
}


def test_minimise_masks_elements_and_labels_redacted() -> None:
    before = copy.deepcopy(PATIENT)
    out = minimise(PATIENT, ["Patient.telecom", "Patient.birthDate", "Observation.code"])
    assert before == PATIENT
    assert out["telecom"] == [MASKED]
    assert "birthDate" not in out
    assert out["_birthDate"] == MASKED
    assert out["identifier"] == PATIENT["identifier"]
    assert REDACTED in out["meta"]["security"]


def test_minimise_choice_element_uses_data_absent_reason() -> None:
    out = minimise(OBSERVATION, ["Observation.value[x]"])
    assert "valueQuantity" not in out
    assert out["dataAbsentReason"]["coding"][0]["code"] == "masked"
    assert REDACTED in out["meta"]["security"]


def test_minimise_silently_and_nothing_to_remove() -> None:
    silent = minimise(PATIENT, ["Patient.telecom"], mark=False)
    assert "telecom" not in silent
    assert REDACTED not in silent["meta"]["security"]
    assert minimise(PATIENT, ["Patient.gender"]) == PATIENT


def test_redacted_stub_keeps_only_what_says_nothing() -> None:
    stub = redacted_stub(OBSERVATION)
    assert stub["code"] == MASKED
    assert stub["status"] == "final"
    assert "valueQuantity" not in stub
    assert stub["subject"] == OBSERVATION["subject"]
    assert {"system": CONFIDENTIALITY_SYSTEM, "code": "R"} in stub["meta"]["security"]
    assert REDACTED in stub["meta"]["security"]


def test_labels_of() -> None:
    assert labels_of(OBSERVATION) == (
        frozenset({DataCategory.OBSERVATIONS, DataCategory.MENTAL_HEALTH}),
        Sensitivity.RESTRICTED)
    assert labels_of({"meta": {"security": [{"system": CONFIDENTIALITY_SYSTEM,
                                             "code": "X"}]}})[1] is Sensitivity.VERY_RESTRICTED
    assert labels_of({}) == (frozenset(), Sensitivity.NORMAL)


def _permit(*fields: str) -> Decision:
    return Decision(Effect.PERMIT, (ReasonCode.AGREEMENT,), AgreementRef("a", 1),
                    obligations=Obligations(withhold_fields=frozenset(fields)))


def _deny(mark: bool) -> Decision:
    return Decision(Effect.DENY, (ReasonCode.SENSITIVITY_ABOVE_AGREEMENT,),
                    obligations=Obligations(mark_withheld=mark))


def test_apply_decisions_needs_every_category_permitted() -> None:
    assert apply_decisions(OBSERVATION, lambda c, s: _permit()) == OBSERVATION
    out = apply_decisions(OBSERVATION, lambda c, s: _permit("Observation.value[x]"))
    assert out is not None
    assert "valueQuantity" not in out

    def mixed(c: DataCategory, s: Sensitivity) -> Decision:
        return _permit() if c is DataCategory.OBSERVATIONS else _deny(mark=True)

    stub = apply_decisions(OBSERVATION, mixed)
    assert stub is not None
    assert stub["code"] == MASKED
    assert apply_decisions(OBSERVATION, lambda c, s: _deny(mark=False)) is None


def test_unlabelled_resources_are_withheld() -> None:
    assert apply_decisions({"resourceType": "Observation"}, lambda c, s: _permit()) is None
