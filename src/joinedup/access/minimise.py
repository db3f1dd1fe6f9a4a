"""Minimisation: return only what a decision allows, and say what was withheld.

Withheld elements are replaced by the FHIR data-absent-reason ``masked`` (so
a practitioner knows something exists) and the resource gets the
``REDACTED`` security label, unless the caller asks for silent removal
(``mark=False``) because even the hint would say too much. Pure functions on
JSON dicts; the input is never modified. A result may share unchanged
elements with its input (copying whole resources cost more than the rest of a
read), so treat both as read-only.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from joinedup.access.decisions import Decision
from joinedup.labels import (
    CATEGORY_SYSTEM,
    CONFIDENTIALITY_SYSTEM,
    OBSERVATION_VALUE_SYSTEM,
    DataCategory,
    Sensitivity,
)

REDACTED = {"system": OBSERVATION_VALUE_SYSTEM, "code": "REDACTED", "display": "redacted"}
DATA_ABSENT_REASON_URL = "http://hl7.org/fhir/StructureDefinition/data-absent-reason"
DATA_ABSENT_REASON_SYSTEM = "http://terminology.hl7.org/CodeSystem/data-absent-reason"
_MASKED_EXTENSION = {"url": DATA_ABSENT_REASON_URL, "valueCode": "masked"}

_HAS_DATA_ABSENT_REASON = frozenset({"Observation"})
"""Resources with a dataAbsentReason element of their own (used for value[x])."""

_STUB_KEEP = ("resourceType", "id", "status", "intent", "subject", "patient")
"""Elements of a withheld resource that say nothing about the person's care."""

_STUB_REQUIRED: dict[str, tuple[str, ...]] = {
    "Observation": ("code",),
    "Condition": (),
    "MedicationStatement": ("medicationCodeableConcept",),
    "Encounter": ("class",),
    "AllergyIntolerance": (),
    "CarePlan": (),
    "Procedure": (),
}
"""Required (1..1) elements a stub fills with data-absent-reason, to stay valid FHIR."""


def _masked() -> dict[str, Any]:
    return {"extension": [dict(_MASKED_EXTENSION)]}


def _with_redacted_label(resource: dict[str, Any]) -> None:
    meta = resource.setdefault("meta", {})
    security = meta.setdefault("security", [])
    if not any(
        s.get("system") == OBSERVATION_VALUE_SYSTEM and s.get("code") == "REDACTED"
        for s in security
    ):
        security.append(dict(REDACTED))


def _matching_keys(resource: Mapping[str, Any], element: str) -> list[str]:
    if element.endswith("[x]"):
        stem = element[:-3]
        return [
            k for k in resource
            if k.startswith(stem) and len(k) > len(stem) and k[len(stem)].isupper()
        ]
    return [element] if element in resource else []


def _mask(resource: dict[str, Any], key: str) -> None:
    value = resource.pop(key)
    resource.pop(f"_{key}", None)
    if isinstance(value, dict):
        resource[key] = _masked()
    elif isinstance(value, list):
        if value and all(isinstance(v, dict) for v in value):
            resource[key] = [_masked()]
        else:  # a list of primitives: the extension goes in the _key twin
            resource[key] = [None]
            resource[f"_{key}"] = [_masked()]
    else:
        resource[f"_{key}"] = _masked()


def _top_level_copy(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A copy that :func:`minimise` may change: it only replaces top-level elements
    and appends to ``meta.security``, so those two are copied and the rest is
    shared with the input (which stays unmodified). Cheaper than a deep copy."""
    out = dict(resource)
    meta = out.get("meta")
    if isinstance(meta, dict):
        out["meta"] = meta = dict(meta)
        if isinstance(meta.get("security"), list):
            meta["security"] = list(meta["security"])
    return out


def minimise(
    resource: Mapping[str, Any], withhold_fields: Iterable[str], *, mark: bool = True
) -> dict[str, Any]:
    """A copy of ``resource`` without the listed elements (``Patient.telecom``,
    ``Observation.value[x]``; elements of other resource types are ignored)."""
    out = _top_level_copy(resource)
    rtype = out.get("resourceType", "")
    removed = False
    for path in sorted(withhold_fields):
        owner, _, element = path.partition(".")
        if owner != rtype or not element:
            continue
        for key in _matching_keys(out, element):
            removed = True
            if not mark:
                out.pop(key)
                out.pop(f"_{key}", None)
            elif element.endswith("[x]") and rtype in _HAS_DATA_ABSENT_REASON:
                out.pop(key)
                out.pop(f"_{key}", None)
                out["dataAbsentReason"] = {
                    "coding": [{"system": DATA_ABSENT_REASON_SYSTEM, "code": "masked"}]
                }
            else:
                _mask(out, key)
    if removed and mark:
        _with_redacted_label(out)
    return out


def redacted_stub(resource: Mapping[str, Any]) -> dict[str, Any]:
    """A placeholder for a withheld resource: it exists, nothing more.

    Keeps the type, id, status and subject; fills required elements with
    data-absent-reason; carries the REDACTED label beside the original labels
    (so the practitioner sees *why*: e.g. very restricted)."""
    stub = {k: copy.deepcopy(resource[k]) for k in _STUB_KEEP if k in resource}
    for key in _STUB_REQUIRED.get(str(resource.get("resourceType", "")), ()):
        stub[key] = _masked()
    labels = [
        dict(s) for s in (resource.get("meta") or {}).get("security") or []
        if s.get("system") in (CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM)
    ]
    stub["meta"] = {"security": labels}
    _with_redacted_label(stub)
    return stub


def labels_of(resource: Mapping[str, Any]) -> tuple[frozenset[DataCategory], Sensitivity]:
    """The categories and sensitivity in ``meta.security``. Unknown category codes
    are ignored; no sensitivity label means normal (HL7's default, N)."""
    categories: set[DataCategory] = set()
    sensitivity = Sensitivity.NORMAL
    for s in (resource.get("meta") or {}).get("security") or []:
        if s.get("system") == CATEGORY_SYSTEM:
            try:
                categories.add(DataCategory(s.get("code")))
            except ValueError:
                continue
        elif s.get("system") == CONFIDENTIALITY_SYSTEM:
            try:
                found = Sensitivity(s.get("code"))
            except ValueError:
                found = Sensitivity.VERY_RESTRICTED  # unknown: assume the worst
            if found.rank > sensitivity.rank:
                sensitivity = found
    return frozenset(categories), sensitivity


class AsStored:
    """The resource is served exactly as stored (see :func:`serve_plan`)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "AS_STORED"


AS_STORED: Final = AsStored()


def serve_plan(
    resource: Mapping[str, Any], decide: Callable[[DataCategory, Sensitivity], Decision]
) -> dict[str, Any] | AsStored | None:
    """:func:`apply_decisions` without copying what needs no change: ``AS_STORED``
    when every decision permits and withholds nothing (so a caller holding the
    stored JSON text can serve that text as it is), otherwise what
    :func:`apply_decisions` returns."""
    categories, sensitivity = labels_of(resource)
    if not categories:
        return None
    decisions = [decide(c, sensitivity) for c in sorted(categories)]
    denied = [d for d in decisions if not d.permitted]
    if denied:
        if all(d.obligations.mark_withheld for d in denied):
            return redacted_stub(resource)
        return None
    fields = frozenset().union(*(d.obligations.withhold_fields for d in decisions))
    return minimise(resource, fields) if fields else AS_STORED


def apply_decisions(
    resource: Mapping[str, Any], decide: Callable[[DataCategory, Sensitivity], Decision]
) -> dict[str, Any] | None:
    """What the requester gets of one resource, or ``None`` for nothing at all.

    ``decide(category, sensitivity)`` is the decision for the resource's owner
    (e.g. ``lambda c, s: person_decisions.decision(owner, c, s)``). Every
    category on the resource must be permitted; a resource with no category
    is withheld (deny by default). A denied resource becomes a stub only if
    every denial allows marking it as withheld.
    """
    plan = serve_plan(resource, decide)
    return copy.deepcopy(dict(resource)) if isinstance(plan, AsStored) else plan
