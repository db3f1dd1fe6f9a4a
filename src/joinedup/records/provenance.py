"""Provenance and labels on a stored resource: ``meta.source``, ``meta.security``, content hash.

``meta.source`` names where a version came from as a URI:

    urn:joinedup:source:{org}/{feed}/{batch}#{unit}

e.g. ``urn:joinedup:source:WCCASC/wccasc-clients/b20261122T101500-3f2a#17``
is unit (CSV data row, bundle entry, HL7 message) 17 of batch
``b20261122T101500-3f2a`` of feed ``wccasc-clients`` of Wessex County Council
Adult Social Care. Every part is an identifier joinedup issued, never personal
data. ``meta.security`` carries exactly one data category
(:data:`joinedup.labels.CATEGORY_SYSTEM`) and one sensitivity (HL7 v3
Confidentiality). The content hash covers the resource without the fields the
store itself sets (versionId, lastUpdated, source), so re-ingesting the same
content is recognised as "no change".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Any

import orjson

from joinedup.errors import Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM, DataCategory, Sensitivity

SOURCE_PREFIX = "urn:joinedup:source:"
RECORD_STATE_SYSTEM = "https://joinedup.dev/fhir/CodeSystem/record-state"
WITHDRAWN = "withdrawn-by-source"
"""meta.tag code on a version made because the source stopped sending the record."""

FHIR_ID = re.compile(r"^[A-Za-z0-9\-.]{1,64}$")
_SOURCE = re.compile(r"^urn:joinedup:source:([^/]+)/([^/]+)/([^#]+)#(\d+)$")
_VOLATILE_META = ("versionId", "lastUpdated", "source")


@dataclass(frozen=True, slots=True)
class SourceRef:
    org: str
    feed: str
    batch: str
    unit: int

    @property
    def uri(self) -> str:
        return f"{SOURCE_PREFIX}{self.org}/{self.feed}/{self.batch}#{self.unit}"

    @classmethod
    def parse(cls, uri: str) -> SourceRef:
        m = _SOURCE.match(uri)
        if m is None:
            raise ValueError("not a joinedup source URI")
        return cls(m[1], m[2], m[3], int(m[4]))


@dataclass(frozen=True, slots=True)
class Labels:
    category: DataCategory
    sensitivity: Sensitivity

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (type(self), (self.category, self.sensitivity))


def read_labels(resource: dict[str, Any], where: str = "") -> tuple[Labels | None, list[Problem]]:
    """The data category and sensitivity in ``meta.security``, or the problems found.

    A missing sensitivity is not a problem: it means normal (N), and the caller
    writes it in so every stored version states it.
    """
    security = (resource.get("meta") or {}).get("security") or []
    if isinstance(security, list) and len(security) == 2:  # as adapters write them
        category, sensitivity = security
        if (
            isinstance(category, dict)
            and isinstance(sensitivity, dict)
            and category.get("system") == CATEGORY_SYSTEM
            and sensitivity.get("system") == CONFIDENTIALITY_SYSTEM
        ):
            known = _LABELS_BY_CODE.get((category.get("code"), sensitivity.get("code")))
            if known is not None:
                return known, []
    at = f"{where}meta.security"
    categories: list[str] = []
    sensitivities: list[str] = []
    for coding in security if isinstance(security, list) else []:
        if not isinstance(coding, dict):
            continue
        if coding.get("system") == CATEGORY_SYSTEM:
            categories.append(str(coding.get("code")))
        elif coding.get("system") == CONFIDENTIALITY_SYSTEM:
            sensitivities.append(str(coding.get("code")))
    problems: list[Problem] = []
    if len(categories) != 1:
        problems.append(
            Problem(f"needs exactly one data category label, has {len(categories)}", at)
        )
    elif categories[0] not in DataCategory._value2member_map_:
        problems.append(Problem(f"unknown data category {categories[0]!r}", at))
    if len(sensitivities) > 1:
        problems.append(Problem("has more than one sensitivity label", at))
    elif sensitivities and sensitivities[0] not in Sensitivity._value2member_map_:
        problems.append(Problem(f"unknown sensitivity {sensitivities[0]!r} (N, R or V)", at))
    if problems:
        return None, problems
    return _LABELS[(categories[0], sensitivities[0] if sensitivities else "N")], []


_LABELS = {(c.value, s.value): Labels(c, s) for c in DataCategory for s in Sensitivity}
"""Every label pair, built once: read for every resource of every batch."""
_LABELS_BY_CODE: dict[Any, Labels] = dict(_LABELS)
"""The same, looked up by whatever the codings hold (a non-string code is simply not found)."""
ALL_LABELS = tuple(_LABELS.values())


def security_codings(labels: Labels) -> list[dict[str, str]]:
    """The canonical ``meta.security`` codings of ``labels``: category, then sensitivity."""
    return [
        {"system": CATEGORY_SYSTEM, "code": labels.category.value},
        {"system": CONFIDENTIALITY_SYSTEM, "code": labels.sensitivity.value},
    ]


def content_hash(resource: dict[str, Any]) -> str:
    """A digest of everything in the resource except what the store sets itself."""
    meta = resource.get("meta")
    if isinstance(meta, dict) and not meta.keys().isdisjoint(_VOLATILE_META):
        resource = {**resource, "meta": {k: v for k, v in meta.items() if k not in _VOLATILE_META}}
    data = orjson.dumps(resource, option=orjson.OPT_SORT_KEYS)
    return hashlib.blake2b(data, digest_size=16).hexdigest()


def is_withdrawn(resource: dict[str, Any]) -> bool:
    tags = (resource.get("meta") or {}).get("tag") or []
    return any(t.get("system") == RECORD_STATE_SYSTEM and t.get("code") == WITHDRAWN for t in tags)


ACTIVE_ELEMENT_TYPES = frozenset(
    {"Patient", "RelatedPerson", "Practitioner", "PractitionerRole", "Organization"}
)
"""Resource types with an ``active`` element, set to false when the source withdraws one."""


def withdrawn(resource: dict[str, Any]) -> dict[str, Any]:
    """The resource as the source no longer sends it: tagged, and inactive where FHIR can say so."""
    meta = dict(resource.get("meta") or {})
    tags = [t for t in meta.get("tag") or [] if t.get("system") != RECORD_STATE_SYSTEM]
    meta["tag"] = [*tags, {"system": RECORD_STATE_SYSTEM, "code": WITHDRAWN}]
    out = {**resource, "meta": meta}
    if resource.get("resourceType") in ACTIVE_ELEMENT_TYPES:
        out["active"] = False
    return out
