"""Checks every adapter applies to a Patient, whatever the feed's format.

The R4 models check structure, not meaning: an NHS number that fails the
Modulus 11 check, or a birth date after today, is valid FHIR. A CSV mapping
states these checks per column; FHIR and HL7 v2 feeds get them here.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from joinedup import nhs_number
from joinedup.nhs_number import NHS_NUMBER_SYSTEM

OLDEST_PLAUSIBLE_YEARS = 120


def check_patient(
    patient: dict[str, Any], today: date, drop_invalid_nhs: bool
) -> tuple[list[str], list[str]]:
    """(problems, warnings) for a Patient dict; normalises NHS numbers in place, and drops
    an invalid one (with a warning) when ``drop_invalid_nhs``."""
    problems: list[str] = []
    warnings: list[str] = []
    identifiers = patient.get("identifier")
    if isinstance(identifiers, list):
        kept = []
        for identifier in identifiers:
            if isinstance(identifier, dict) and identifier.get("system") == NHS_NUMBER_SYSTEM:
                try:
                    identifier["value"] = nhs_number.validate(str(identifier.get("value", "")))
                except ValueError as exc:
                    if drop_invalid_nhs:
                        warnings.append(f"Patient.identifier: {exc}; NHS number left out")
                        continue
                    problems.append(f"Patient.identifier: {exc}")
            kept.append(identifier)
        patient["identifier"] = kept
    birth = patient.get("birthDate")
    if isinstance(birth, str) and birth:
        year, _, rest = birth.partition("-")
        month, _, day = rest.partition("-")
        try:
            born = date(int(year), int(month or 1), int(day or 1))
        except ValueError:
            born = None
        if born is not None and born > today:
            problems.append("Patient.birthDate is in the future")
        elif born is not None and today.year - born.year > OLDEST_PLAUSIBLE_YEARS:
            warnings.append(f"Patient.birthDate is more than {OLDEST_PLAUSIBLE_YEARS} years ago")
    return problems, warnings
