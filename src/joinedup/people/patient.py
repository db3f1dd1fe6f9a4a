"""From a canonical FHIR Patient to what matching compares."""

from __future__ import annotations

from typing import Any

from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.people.matching.normalise import MatchFeatures, PersonRecord, features_of


def _official_name(resource: dict[str, Any]) -> dict[str, Any]:
    names = [n for n in resource.get("name", []) if isinstance(n, dict)]
    for use in ("official", "usual", None):
        for name in names:
            if name.get("use") == use or use is None:
                return name
    return {}


def _current_address(resource: dict[str, Any]) -> dict[str, Any]:
    addresses = [a for a in resource.get("address", []) if isinstance(a, dict)]
    for address in addresses:
        if address.get("use") in (None, "home") and not address.get("period", {}).get("end"):
            return address
    return addresses[0] if addresses else {}


def person_record(record_id: str, resource: dict[str, Any]) -> PersonRecord:
    """The demographics of ``resource`` (a Patient) as a matching PersonRecord."""
    name = _official_name(resource)
    address = _current_address(resource)
    nhs = next(
        (
            i.get("value")
            for i in resource.get("identifier", [])
            if isinstance(i, dict) and i.get("system") == NHS_NUMBER_SYSTEM
        ),
        None,
    )
    return PersonRecord(
        record_id=record_id,
        given_names=tuple(str(g) for g in name.get("given", [])),
        family_name=name.get("family"),
        birth_date=resource.get("birthDate"),
        sex=resource.get("gender"),
        postcode=address.get("postalCode"),
        address_lines=tuple(str(line) for line in address.get("line", [])),
        nhs_number=nhs,
        city=address.get("city"),
        region=address.get("state"),
    )


def patient_features(record_id: str, resource: dict[str, Any]) -> MatchFeatures:
    return features_of(person_record(record_id, resource))
