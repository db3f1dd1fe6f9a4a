"""Mapping targets: ``Patient.identifier[nhs]`` compiled into a function that writes a value.

A target is a resource type and a dotted path of elements; ``name[slice]``
picks (or creates) the list item carrying the slice's fixed values, e.g.
``identifier[nhs]`` is the identifier whose system is the NHS number system.
Every step is checked against the R4 models when the mapping loads, so the
per-row work is dictionary writes only. How a value lands depends on the
element's type: a date is formatted, a Coding fills a CodeableConcept, split
name parts fill a HumanName, a string appends to a repeating ``given``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.sources.mapping import fhirschema
from joinedup.sources.mapping.fhirschema import Element
from joinedup.sources.mapping.spec import Coding
from joinedup.sources.mapping.text import NameParts

UK_CORE_ETHNICITY_EXTENSION = (
    "https://fhir.hl7.org.uk/StructureDefinition/Extension-UKCore-EthnicCategory"
)
"""UK Core's ethnic category extension (value: NHS Data Dictionary ethnic category)."""

BUILT_IN_EXTENSIONS = {"ethnicity": UK_CORE_ETHNICITY_EXTENSION}
BUILT_IN_IDENTIFIERS = {"nhs": NHS_NUMBER_SYSTEM}
_FIXED_SLICES: dict[str, dict[str, dict[str, str]]] = {
    "ContactPoint": {
        "phone": {"system": "phone"},
        "mobile": {"system": "phone", "use": "mobile"},
        "home-phone": {"system": "phone", "use": "home"},
        "work-phone": {"system": "phone", "use": "work"},
        "email": {"system": "email"},
    },
    "HumanName": {u: {"use": u} for u in ("official", "usual", "maiden", "nickname", "old")},
    "Address": {u: {"use": u} for u in ("home", "work", "temp", "old")},
}
_MERGED_TYPES = frozenset({"HumanName", "Address", "Period", "Quantity", "Identifier"})
"""Repeating types that several columns fill together (the first item), not one item per value."""


@dataclass(frozen=True, slots=True)
class Ref:
    """A reference produced by the ``reference`` transform: ``Patient/<stable id>``."""

    reference: str


ValueKind = str
"""What a transform chain produces: text, date, datetime, coding, name, reference, bool, number."""

_ACCEPTS: dict[str, frozenset[str]] = {
    "string": frozenset({"text", "coding"}),
    "code": frozenset({"text", "coding"}),
    "id": frozenset({"text"}),
    "uri": frozenset({"text"}),
    "url": frozenset({"text"}),
    "canonical": frozenset({"text"}),
    "markdown": frozenset({"text"}),
    "date": frozenset({"date"}),
    "dateTime": frozenset({"date", "datetime"}),
    "instant": frozenset({"datetime"}),
    "boolean": frozenset({"bool"}),
    "integer": frozenset({"number"}),
    "positiveInt": frozenset({"number"}),
    "unsignedInt": frozenset({"number"}),
    "decimal": frozenset({"number"}),
    "Identifier": frozenset({"text"}),
    "ContactPoint": frozenset({"text"}),
    "HumanName": frozenset({"name", "text"}),
    "Address": frozenset({"text"}),
    "CodeableConcept": frozenset({"coding", "text"}),
    "Coding": frozenset({"coding", "text"}),
    "Reference": frozenset({"reference", "text"}),
    "Annotation": frozenset({"text"}),
    "Extension": frozenset({"text", "coding", "date", "datetime", "bool", "number"}),
    "Quantity": frozenset({"number"}),
}


class TargetError(ValueError):
    """A target path that does not fit the R4 models or the mapping's declared slices."""


class ValueProblem(ValueError):
    """A value that the target cannot hold (a code outside a required binding)."""


Setter = Callable[[dict[str, Any], Any], None]
Step = tuple[str, bool, dict[str, str] | None]
"""(element name, repeats, fixed values of its slice)."""


@dataclass(frozen=True, slots=True)
class Target:
    path: str
    kind: str
    leaf: Element
    accepts: frozenset[str]
    steps: tuple[Step, ...]

    @property
    def top(self) -> str:
        """The first element after the resource type (``subject``), to see what a rule fills."""
        return self.steps[0][0]

    def setter(self, value_kind: str) -> Setter:
        """A function writing a value of ``value_kind`` (text, date, coding...) at this path."""
        return _setter(self.steps, self.leaf, value_kind)


_STEP = re.compile(r"([A-Za-z][A-Za-z0-9]*)(?:\[([A-Za-z0-9_\-]+)\])?\Z")


def compile_target(
    path: str,
    identifier_systems: Mapping[str, str],
    extensions: Mapping[str, str],
) -> Target:
    """Check ``path`` against the models and build its setter; TargetError says what is wrong."""
    kind, _, rest = path.partition(".")
    if not fhirschema.is_resource_type(kind):
        raise TargetError(f"{kind!r} is not a FHIR R4 resource type")
    if not rest:
        raise TargetError("a target needs an element after the resource type")
    steps: list[tuple[str, bool, dict[str, str] | None]] = []
    type_name = kind
    leaf: Element | None = None
    parts = rest.split(".")
    for index, part in enumerate(parts):
        match = _STEP.match(part)
        if not match:
            raise TargetError(f"{part!r} is not an element name (optionally with [slice])")
        name, slice_name = match.group(1), match.group(2)
        element = fhirschema.element(type_name, name)
        if element is None:
            raise TargetError(f"{type_name} has no element {name!r}")
        if element.primitive and index < len(parts) - 1:
            raise TargetError(f"{type_name}.{name} is a {element.type}; it has no elements")
        fixed = None
        if slice_name is not None:
            if not element.repeats:
                raise TargetError(f"{type_name}.{name} does not repeat, so it has no slices")
            fixed = _slice(element.type, slice_name, identifier_systems, extensions)
        elif element.type == "Extension":
            raise TargetError("an extension target needs a slice naming it: extension[name]")
        steps.append((name, element.repeats, fixed))
        type_name, leaf = element.type, element
    assert leaf is not None
    return Target(path, kind, leaf, _ACCEPTS.get(leaf.type, frozenset()), tuple(steps))


def _slice(
    type_name: str,
    slice_name: str,
    identifier_systems: Mapping[str, str],
    extensions: Mapping[str, str],
) -> dict[str, str]:
    if type_name == "Identifier":
        systems = {**BUILT_IN_IDENTIFIERS, **identifier_systems}
        if slice_name not in systems:
            raise TargetError(
                f"unknown identifier slice {slice_name!r}: declare it under identifier_systems"
                f" (known: {', '.join(sorted(systems))})"
            )
        return {"system": systems[slice_name]}
    if type_name == "Extension":
        urls = {**BUILT_IN_EXTENSIONS, **extensions}
        if slice_name not in urls:
            raise TargetError(
                f"unknown extension {slice_name!r}: declare it under extensions"
                f" (known: {', '.join(sorted(urls))})"
            )
        return {"url": urls[slice_name]}
    known = _FIXED_SLICES.get(type_name, {})
    if slice_name not in known:
        raise TargetError(
            f"{type_name} has no slice {slice_name!r}"
            + (f" (known: {', '.join(sorted(known))})" if known else "")
        )
    return known[slice_name]


def _setter(steps: tuple[Step, ...], leaf: Element, value_kind: str) -> Setter:
    *parents, (leaf_name, _, leaf_fixed) = steps
    write = _writer(leaf, leaf_fixed, value_kind)
    if not parents:
        return lambda resource, value: write(resource, leaf_name, value)
    if len(parents) == 1:
        step = _step(*parents[0])
        return lambda resource, value: write(step(resource), leaf_name, value)
    chain = tuple(_step(*p) for p in parents)

    def set_value(resource: dict[str, Any], value: Any) -> None:
        node = resource
        for step in chain:
            node = step(node)
        write(node, leaf_name, value)

    return set_value


def _step(name: str, repeats: bool, fixed: dict[str, str] | None) -> Callable[[dict[str, Any]], dict[str, Any]]:
    """One step down a path, specialised (this runs for most fields of every row)."""
    if not repeats:
        def into(node: dict[str, Any]) -> dict[str, Any]:
            child: dict[str, Any] | None = node.get(name)
            if child is None:
                child = node[name] = {}
            return child
        return into
    if fixed is None:
        def into_first(node: dict[str, Any]) -> dict[str, Any]:
            items = node.get(name)
            if items:
                return items[0]  # type: ignore[no-any-return]
            item: dict[str, Any] = {}
            node[name] = [item]
            return item
        return into_first
    if len(fixed) == 1:
        ((key, wanted),) = fixed.items()

        def into_slice(node: dict[str, Any]) -> dict[str, Any]:
            items = node.get(name)
            if items is None:
                item = {key: wanted}
                node[name] = [item]
                return item
            for item in items:
                if item.get(key) == wanted:
                    return item  # type: ignore[no-any-return]
            item = {key: wanted}
            items.append(item)
            return item
        return into_slice
    return lambda node: _child(node, name, True, fixed, merge=True)


def _child(
    node: dict[str, Any], name: str, repeats: bool, fixed: dict[str, str] | None, merge: bool
) -> dict[str, Any]:
    if not repeats:
        child: dict[str, Any] | None = node.get(name)
        if child is None:
            child = node[name] = {}
        return child
    items = node.get(name)
    if items is None:
        item = dict(fixed) if fixed is not None else {}
        node[name] = [item]
        return item
    if fixed is not None:
        for item in items:
            if all(item.get(k) == v for k, v in fixed.items()):
                return item  # type: ignore[no-any-return]
        item = dict(fixed)
    elif merge and items:
        return items[0]  # type: ignore[no-any-return]
    else:
        item = {}
    items.append(item)
    return item


Writer = Callable[[dict[str, Any], str, Any], None]


def _writer(leaf: Element, fixed: dict[str, str] | None, value_kind: str) -> Writer:
    if leaf.primitive:
        return _primitive_writer(leaf, value_kind)
    fill = _FILLERS.get(leaf.type, _fill_text_only)
    if not leaf.repeats:
        def write_one(node: dict[str, Any], name: str, value: Any) -> None:
            child = node.get(name)
            if child is None:
                child = node[name] = {}
            fill(child, value)
        return write_one
    if fixed is not None:
        pairs = tuple(fixed.items())

        def write_slice(node: dict[str, Any], name: str, value: Any) -> None:
            items = node.get(name)
            if items is None:
                item = dict(pairs)
                node[name] = [item]
            else:
                for item in items:
                    if all(item.get(k) == v for k, v in pairs):
                        break
                else:
                    item = dict(pairs)
                    items.append(item)
            fill(item, value)
        return write_slice
    if leaf.type in _MERGED_TYPES:
        def write_first(node: dict[str, Any], name: str, value: Any) -> None:
            items = node.get(name)
            if items:
                fill(items[0], value)
            else:
                item: dict[str, Any] = {}
                node[name] = [item]
                fill(item, value)
        return write_first

    def write_new(node: dict[str, Any], name: str, value: Any) -> None:
        item: dict[str, Any] = {}
        node.setdefault(name, []).append(item)
        fill(item, value)

    return write_new


def _primitive_writer(leaf: Element, value_kind: str) -> Writer:
    """Specialised by the kind of value: plain text is a bare assignment."""
    convert: Callable[[Any], Any] | None = None
    if value_kind in ("date", "datetime"):
        convert = _isoformat
    elif value_kind == "coding":
        convert = _code_of
    enum = leaf.enum
    if enum:
        inner = convert

        def check(value: Any) -> Any:
            if inner is not None:
                value = inner(value)
            if value not in enum:
                raise ValueProblem(f"{value!r} is not one of {', '.join(sorted(enum))}")
            return value

        convert = check
    if leaf.repeats:
        if value_kind == "words":
            return lambda node, name, value: node.setdefault(name, []).extend(value)
        if convert is None:
            return lambda node, name, value: node.setdefault(name, []).append(value)
        conv = convert
        return lambda node, name, value: node.setdefault(name, []).append(conv(value))
    if convert is None:
        return _assign
    conv2 = convert

    def assign(node: dict[str, Any], name: str, value: Any) -> None:
        node[name] = conv2(value)

    return assign


def _assign(node: dict[str, Any], name: str, value: Any) -> None:
    node[name] = value


def _isoformat(value: date | datetime) -> str:
    return value.isoformat()


def _code_of(value: Coding) -> str:
    return value.code


def _fill_identifier(node: dict[str, Any], value: Any) -> None:
    node["value"] = value


def _fill_name(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, NameParts):
        node["family"] = value.family
        if value.given:
            node.setdefault("given", []).extend(value.given)
    else:
        node["text"] = value


def _fill_concept(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, Coding):
        node.setdefault("coding", []).append(value.as_fhir())
    else:
        node["text"] = value


def _fill_coding(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, Coding):
        node.update(value.as_fhir())
    else:
        node["code"] = value


def _fill_reference(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, Ref):
        node["reference"] = value.reference
    else:
        node["display"] = value


def _fill_extension(node: dict[str, Any], value: Any) -> None:
    if isinstance(value, Coding):
        node["valueCodeableConcept"] = {"coding": [value.as_fhir()]}
    elif isinstance(value, bool):
        node["valueBoolean"] = value
    elif isinstance(value, datetime):
        node["valueDateTime"] = value.isoformat()
    elif isinstance(value, date):
        node["valueDate"] = value.isoformat()
    elif isinstance(value, int | float):
        node["valueDecimal"] = value
    else:
        node["valueString"] = value


def _fill_quantity(node: dict[str, Any], value: Any) -> None:
    node["value"] = value


def _fill_text_only(node: dict[str, Any], value: Any) -> None:
    node["text"] = value


_FILLERS: dict[str, Callable[[dict[str, Any], Any], None]] = {
    "Identifier": _fill_identifier,
    "ContactPoint": _fill_identifier,
    "HumanName": _fill_name,
    "Address": _fill_text_only,
    "Annotation": _fill_text_only,
    "CodeableConcept": _fill_concept,
    "Coding": _fill_coding,
    "Reference": _fill_reference,
    "Extension": _fill_extension,
    "Quantity": _fill_quantity,
}
