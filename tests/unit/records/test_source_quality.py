"""Data quality measures and redaction of offending values (joinedup.sources.quality)."""

from __future__ import annotations

import re
from datetime import date

from hypothesis import given
from hypothesis import strategies as st

from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.sources.quality import Quality, check_resource, describe, scrub, shape

TODAY = date(2026, 11, 1)


def test_shapes_say_enough_to_fix_and_no_more() -> None:
    assert shape("943 476 5919") == "999 999 9999"
    assert shape("12/31/1980") == "99/99/9999"
    assert shape("O'Brien") == "X'Xxxxx"
    assert describe("99X-XXX") == "shape 99X-XXX, length 7"


@given(st.text(alphabet="0123456789 -/", min_size=1))
def test_scrub_leaves_no_long_run_of_digits(text: str) -> None:
    """Runs of five or more digits and separators (NHS numbers, dates) keep only their shape;
    a unit number or a year stays readable."""
    scrubbed = scrub(f"value {text} is bad")
    for run in re.finditer(r"\d[\d \-/.:]{3,}\d", scrubbed):
        assert set(run.group(0)) <= set("9 -/.:"), scrubbed
    assert scrub("row 12: year 2027") == "row 12: year 2027"


def test_patient_quality_counts_and_findings() -> None:
    q = Quality()
    good = {
        "resourceType": "Patient",
        "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}],
        "birthDate": "1950-01-01",
        "address": [{"postalCode": "SO23 1AA"}],
    }
    assert check_resource(good, q, TODAY) == []
    findings = check_resource(
        {
            "resourceType": "Patient",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765918"}],
            "birthDate": "2027-01-01",
        },
        q,
        TODAY,
        where="unit 2, ",
    )
    assert [f.location for f in findings] == [
        "unit 2, Patient.identifier",
        "unit 2, Patient.birthDate",
    ]
    assert "9434765918" not in str(findings)
    assert "year 2027" in findings[1].message
    old = check_resource({"resourceType": "Condition", "recordedDate": "1850-01-01"}, q, TODAY)
    assert "implausibly old" in old[0].message
    assert (q.patients, q.nhs_number_present, q.nhs_number_valid, q.birthdate_present) == (
        2,
        2,
        1,
        2,
    )
    assert (q.postcode_present, q.future_dates, q.implausibly_old_dates) == (1, 1, 1)
    assert q.as_dict()["completeness"]["postcode"] == 0.5
    assert (q + q).patients == 4
    assert Quality.from_dict(q.as_dict()) == q
