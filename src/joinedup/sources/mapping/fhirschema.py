"""What a FHIR path in a mapping points at, read from the R4 models once.

Mapping targets such as ``Patient.address.postalCode`` are checked when the
mapping is loaded, not per row: each step must be an element of the model,
and the element's cardinality and type decide how a value is written (append
to a list, fill a Coding, format a date). The models come from
``fhir.resources.R4B`` (FHIR 4.3.0), the closest release to R4 (4.0.1) that
``fhir.resources`` 8 ships; the elements joinedup maps are the same in both
(ADR 0402).
"""

from __future__ import annotations

import typing
from dataclasses import dataclass
from functools import cache
from types import NoneType, UnionType
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.resource import Resource

PRIMITIVE_TYPES = frozenset(
    {
        "string", "code", "id", "uri", "url", "canonical", "markdown", "oid", "uuid",
        "date", "dateTime", "instant", "time", "boolean", "integer", "positiveInt",
        "unsignedInt", "decimal", "base64Binary", "xhtml",
    }
)


@dataclass(frozen=True, slots=True)
class Element:
    """One element of a FHIR type: its JSON name, whether it repeats, and its type."""

    name: str
    repeats: bool
    type: str
    """A primitive (``string``, ``date``...) or a complex type (``HumanName``, ``EncounterLocation``)."""
    enum: frozenset[str] = frozenset()
    """Allowed codes when the element has a required binding the models know (``gender``)."""
    required: bool = False
    """Cardinality 1..: a resource without it is invalid."""

    @property
    def primitive(self) -> bool:
        return self.type in PRIMITIVE_TYPES


def is_resource_type(name: str) -> bool:
    """True for a FHIR resource type name the R4 models know (``Patient``, ``Flag``...)."""
    return _resource_model(name) is not None


def element(type_name: str, name: str) -> Element | None:
    """The element ``name`` of ``type_name``, or None when the type has no such element."""
    return _elements(type_name).get(name)


def element_names(type_name: str) -> tuple[str, ...]:
    return tuple(sorted(_elements(type_name)))


def required_elements(type_name: str) -> frozenset[str]:
    """Elements a valid ``type_name`` must have; a choice group appears as its prefix (``value``)."""
    out = set()
    for element in _elements(type_name).values():
        if element.required:
            out.add(_choice_prefix(type_name, element.name))
    return frozenset(out)


@cache
def _choice_groups(type_name: str) -> dict[str, str]:
    try:
        model = get_fhir_model_class(type_name)
    except ValueError:
        return {}
    groups = {}
    for field in model.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if extra.get("one_of_many"):
            groups[field.alias or ""] = str(extra["one_of_many"])
    return groups


def _choice_prefix(type_name: str, name: str) -> str:
    return _choice_groups(type_name).get(name, name)


def choice_group(type_name: str, name: str) -> str:
    """``effectiveDateTime`` -> ``effective``; other names unchanged."""
    return _choice_prefix(type_name, name)


@cache
def _resource_model(name: str) -> Any:
    if not name[:1].isupper():
        return None
    try:
        model = get_fhir_model_class(name)
    except ValueError:
        return None
    return model if issubclass(model, Resource) and model.get_resource_type() == name else None


@cache
def _elements(type_name: str) -> dict[str, Element]:
    try:
        model = get_fhir_model_class(type_name)
    except ValueError:
        return {}
    out: dict[str, Element] = {}
    for field in model.model_fields.values():
        extra = field.json_schema_extra if isinstance(field.json_schema_extra, dict) else {}
        if not extra.get("element_property"):
            continue
        name = field.alias or ""
        repeats, kind = _unwrap(field.annotation)
        raw_enum = extra.get("enum_values")
        enum = raw_enum if isinstance(raw_enum, list) else []
        out[name] = Element(
            name,
            repeats,
            kind,
            frozenset(str(v) for v in enum if v != "+"),
            bool(extra.get("element_required"))
            or bool(extra.get("one_of_many_required"))
            or field.is_required(),
        )
    return out


def _unwrap(annotation: Any) -> tuple[bool, str]:
    """(repeats, type name) from a model field annotation."""
    repeats = False
    tp = annotation
    while True:
        origin = typing.get_origin(tp)
        if origin in (typing.Union, UnionType):
            args = [a for a in typing.get_args(tp) if a is not NoneType]
            tp = args[0]
        elif origin is list:
            repeats = True
            tp = typing.get_args(tp)[0]
        elif origin is typing.Annotated:
            meta = typing.get_args(tp)[1:]
            name = type(meta[0]).__name__ if meta else "string"
            return repeats, name[:1].lower() + name[1:]
        else:
            break
    if tp is bool:
        return repeats, "boolean"
    if tp is str:
        return repeats, "string"
    name = getattr(tp, "__name__", str(tp))
    return repeats, name.removesuffix("Type")
