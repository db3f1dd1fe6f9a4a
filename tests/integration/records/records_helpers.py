"""Builders shared by the record store and batch tests: FHIR resources, outcomes, a feed."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from joinedup.errors import Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.nhs_number import NHS_NUMBER_SYSTEM, check_digit
from joinedup.orgs.registry import Registry
from joinedup.orgs.specs import OrgSpec
from joinedup.orgs.vocab import OrgKind
from joinedup.sources.batches import BatchLoader
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.feeds import FeedRegistry, FeedSpec
from joinedup.storage.engine import Database

LOCAL_SYSTEM = "https://fhir.wessex.example/Id/wccasc-client"


def labels(category: str = "demographics", sensitivity: str | None = "N") -> dict[str, Any]:
    security = [{"system": CATEGORY_SYSTEM, "code": category}]
    if sensitivity is not None:
        security.append({"system": CONFIDENTIALITY_SYSTEM, "code": sensitivity})
    return {"security": security}


def nhs_number(seed: int) -> str:
    """A valid NHS number derived from ``seed`` (the first nine digits that have a check digit)."""
    n = 400_000_000 + seed * 7919
    while True:
        nine = f"{n % 1_000_000_000:09d}"
        digit = check_digit(nine)
        if digit is not None and len(set(nine)) > 1:
            return nine + str(digit)
        n += 1


def patient(
    pid: str,
    *,
    family: str = "Smith",
    given: Iterable[str] = ("Anne",),
    birth: str | None = "1950-03-14",
    postcode: str | None = "SO23 1AA",
    nhs: str | None = None,
    category: str = "demographics",
    **extra: Any,
) -> dict[str, Any]:
    resource: dict[str, Any] = {
        "resourceType": "Patient",
        "id": pid,
        "meta": labels(category),
        "identifier": [{"system": LOCAL_SYSTEM, "value": pid.upper()}],
        "name": [{"family": family, "given": list(given)}],
        "gender": "female",
    }
    if nhs is not None:
        resource["identifier"].insert(0, {"system": NHS_NUMBER_SYSTEM, "value": nhs})
    if birth is not None:
        resource["birthDate"] = birth
    if postcode is not None:
        resource["address"] = [{"postalCode": postcode}]
    resource.update(extra)
    return resource


def condition(cid: str, patient_id: str, code: str = "44054006", **extra: Any) -> dict[str, Any]:
    resource = {
        "resourceType": "Condition",
        "id": cid,
        "meta": labels("conditions", "R"),
        "subject": {"reference": f"Patient/{patient_id}"},
        "code": {"coding": [{"system": "http://snomed.info/sct", "code": code}]},
        "category": [
            {
                "coding": [
                    {
                        "system": "http://terminology.hl7.org/CodeSystem/condition-category",
                        "code": "problem-list-item",
                    }
                ]
            }
        ],
        "recordedDate": "2024-02-01",
    }
    resource.update(extra)
    return resource


def accepted(
    unit: int,
    *resources: dict[str, Any],
    source_id: str | None = None,
    warnings: tuple[Warning_, ...] = (),
) -> Accepted:
    return Accepted(unit, source_id or f"S{unit}", tuple(resources), warnings)


def rejected(
    unit: int,
    raw: str = "bad,row",
    *,
    source_id: str | None = None,
    message: str = "date of birth is not a date",
    location: str = "column dob",
) -> Rejected:
    return Rejected(
        unit, raw, (Problem(message, location),), source_id if source_id is not None else f"S{unit}"
    )


def patients(n: int, *, start: int = 1, family: str = "Smith") -> Iterator[Outcome]:
    for i in range(start, start + n):
        yield accepted(i, patient(f"p{i}", family=family, nhs=nhs_number(i)), source_id=f"S{i}")


def add_org(
    db: Database, code: str = "WCCASC", kind: OrgKind = OrgKind.LA_ADULT_SOCIAL_CARE
) -> None:
    Registry(db).add_org(OrgSpec(code=code, name=f"Org {code}", kind=kind))


def make_feed(
    db: Database,
    feed_id: str = "wccasc-clients",
    org: str = "WCCASC",
    *,
    categories: tuple[str, ...] = ("demographics", "conditions"),
    **policies: Any,
) -> FeedRegistry:
    registry = FeedRegistry(db)
    registry.register(
        FeedSpec.model_validate(
            {"id": feed_id, "org": org, "format": "fhir", "categories": categories, **policies}
        )
    )
    return registry


def loader(db: Database, *, chunk_units: int = 1000, **policies: Any) -> BatchLoader:
    """A loader for a WCCASC feed ``wccasc-clients`` with the given policies."""
    add_org(db)
    return BatchLoader(db, make_feed(db, **policies), chunk_units=chunk_units)
