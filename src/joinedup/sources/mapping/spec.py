"""The feed specs users write, as immutable values.

A ``CsvMapping`` says how one organisation's CSV export becomes canonical
FHIR resources; a ``FhirFeedConfig`` and an ``Hl7v2FeedConfig`` say how a
FHIR or HL7 v2 feed is labelled and how its identifiers are read. They are
built only by :mod:`joinedup.sources.mapping.load`, which checks everything
(targets against the R4 models, transforms against targets, code maps,
columns) and reports every problem at once; a value of these types is
therefore always one that compiles. Compiling into the object that runs per
row is :mod:`joinedup.sources.mapping.compile`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any

from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM, DataCategory, Sensitivity


class FeedFormat(StrEnum):
    CSV = "csv"
    FHIR = "fhir"
    HL7V2 = "hl7v2"


class Encoding(StrEnum):
    UTF8 = "utf-8"
    """UTF-8, with or without a byte order mark."""
    WINDOWS_1252 = "windows-1252"
    AUTO = "auto"
    """UTF-8 if the file has a BOM or its first non-ASCII line is UTF-8, else Windows-1252."""


class Unmapped(StrEnum):
    """What a code map does with a code it has no entry for."""

    REJECT = "reject"
    WARN = "warn"
    """Accept the row without the field, with a warning."""
    PASS_THROUGH = "pass-through"  # noqa: S105 - a policy name, not a password
    """Keep the local code (with the map's source system)."""


class OnInvalid(StrEnum):
    """What a field does when its value cannot be transformed (bad date, bad NHS number)."""

    REJECT = "reject"
    WARN = "warn"
    """Accept the row without the field, with a warning."""


class ExtraColumns(StrEnum):
    WARN = "warn"
    IGNORE = "ignore"
    REJECT = "reject"
    """Refuse the file: the export's layout changed."""


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str
    display: str = ""

    def as_fhir(self) -> dict[str, str]:
        out = {"system": self.system, "code": self.code}
        if self.display:
            out["display"] = self.display
        return out


@dataclass(frozen=True, slots=True)
class Label:
    """The data category and sensitivity one output resource carries in ``meta.security``."""

    category: DataCategory
    sensitivity: Sensitivity = Sensitivity.NORMAL

    def security(self) -> list[dict[str, str]]:
        """Fresh ``meta.security`` codings (fresh so callers may mutate their resource)."""
        return [
            {"system": CATEGORY_SYSTEM, "code": self.category.value},
            {"system": CONFIDENTIALITY_SYSTEM, "code": self.sensitivity.value},
        ]


@dataclass(frozen=True, slots=True)
class CodeMap:
    """A ConceptMap-like table from one local code system to a national one."""

    name: str
    target_system: str
    entries: Mapping[str, Coding]
    """Local code (upper-cased unless ``case_sensitive``) -> target coding."""
    source_system: str = ""
    unmapped: Unmapped = Unmapped.REJECT
    case_sensitive: bool = False
    description: str = ""

    def lookup(self, code: str) -> Coding | None:
        return self.entries.get(code if self.case_sensitive else code.upper())

    def as_concept_map(self) -> dict[str, Any]:
        """The table as a FHIR R4 ConceptMap, for publishing alongside the feed."""
        groups: dict[str, list[dict[str, Any]]] = {}
        for code, target in self.entries.items():
            groups.setdefault(target.system, []).append(
                {
                    "code": code,
                    "target": [
                        {"code": target.code, "display": target.display, "equivalence": "equivalent"}
                        if target.display
                        else {"code": target.code, "equivalence": "equivalent"}
                    ],
                }
            )
        mode = {"reject": None, "warn": None, "pass-through": "provided"}[self.unmapped.value]
        group_list: list[dict[str, Any]] = []
        for system, elements in groups.items():
            group: dict[str, Any] = {"target": system, "element": elements}
            if self.source_system:
                group["source"] = self.source_system
            if mode:
                group["unmapped"] = {"mode": mode}
            group_list.append(group)
        return {
            "resourceType": "ConceptMap",
            "name": self.name,
            "status": "active",
            "description": self.description or None,
            "group": group_list,
        }


@dataclass(frozen=True, slots=True)
class Transform:
    name: str
    args: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True, slots=True)
class FieldRule:
    """One column (or constant) written to one target path."""

    target: str
    column: str | None = None
    value: Any = None
    """A constant written to every resource instead of a column's value."""
    transforms: tuple[Transform, ...] = ()
    required: bool = False
    """An empty value rejects the row."""
    on_invalid: OnInvalid = OnInvalid.REJECT
    when: str | None = None
    """Write this field only when this column is non-empty (``value: finished, when: END_DATE``)."""
    unless: str | None = None
    """Write this field only when this column is empty."""
    where: str = ""
    """The rule's place in the mapping file, for messages."""


@dataclass(frozen=True, slots=True)
class When:
    """A resource is produced only when ``column`` is non-empty (and one of ``values``, if given)."""

    column: str
    values: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class ResourceRule:
    kind: str
    label: Label
    fields: tuple[FieldRule, ...]
    name: str = ""
    """Tells apart two resources of one kind from a row; part of the stable id. Defaults to kind."""
    when: When | None = None
    id_column: str | None = None
    """The column whose value keys this resource; defaults to the feed's source id column."""
    id_namespace: str | None = None
    """Whose ids these are; defaults to the feed. A people feed's Patient and an activity
    feed's reference to it must share one namespace."""

    @property
    def key_name(self) -> str:
        return self.name or self.kind


@dataclass(frozen=True, slots=True)
class CsvSettings:
    encoding: Encoding = Encoding.UTF8
    delimiter: str = ","
    quotechar: str = '"'
    date_formats: tuple[str, ...] = ("iso",)
    two_digit_year_pivot: int | None = None
    """Two-digit years up to this are 20xx, above it 19xx."""
    timezone: str = "Europe/London"
    """For date-times exported without an offset (FHIR requires one when a time is given)."""
    null_values: frozenset[str] = frozenset({""})
    """Cell values that mean "no value" (after trimming)."""
    extra_columns: ExtraColumns = ExtraColumns.WARN
    trim: bool = True


@dataclass(frozen=True, slots=True)
class CsvMapping:
    """How one organisation's CSV export becomes canonical resources."""

    organisation: str
    feed: str
    source_id_column: str
    columns: Mapping[str, bool]
    """Declared column -> required in the header."""
    resources: tuple[ResourceRule, ...]
    settings: CsvSettings = CsvSettings()
    code_maps: Mapping[str, CodeMap] = field(default_factory=lambda: MappingProxyType({}))
    identifier_systems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Named identifier slices (``identifier[local]``) -> identifier system URI."""
    extensions: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Named extension slices (``extension[ethnicity]``) -> extension URL."""
    description: str = ""
    origin: str = ""
    """Where the mapping was read from."""

    format = FeedFormat.CSV

    @property
    def categories(self) -> frozenset[DataCategory]:
        return frozenset(r.label.category for r in self.resources)


@dataclass(frozen=True, slots=True)
class LabelRule:
    """Which label a resource from a FHIR or HL7 feed gets; the first matching rule wins."""

    resource: str
    label: Label
    systems: frozenset[str] = frozenset()
    """Match only when a coding in ``code``, ``category`` or ``type`` has one of these systems."""
    codes: frozenset[str] = frozenset()
    """... and, if given, one of these codes."""


@dataclass(frozen=True, slots=True)
class FhirFeedConfig:
    organisation: str
    feed: str
    labels: tuple[LabelRule, ...]
    identifier_systems: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))
    """Local identifier system as sent -> system to store (``urn:oid:...`` -> a URI)."""
    invalid_nhs_number: OnInvalid = OnInvalid.REJECT
    """A Patient whose NHS number fails Modulus 11: reject it, or keep it without that identifier."""
    id_namespace: str = ""
    """Whose ids these are, for stable resource ids; defaults to the feed."""
    description: str = ""
    origin: str = ""

    format = FeedFormat.FHIR

    @property
    def categories(self) -> frozenset[DataCategory]:
        return frozenset(r.label.category for r in self.labels)


@dataclass(frozen=True, slots=True)
class Hl7v2FeedConfig:
    organisation: str
    feed: str
    patient_authority: str
    """The PID-3 assigning authority whose identifier keys the Patient (``RWX``)."""
    authorities: Mapping[str, str]
    """PID-3 assigning authority -> identifier system (``NHS`` -> the NHS number system)."""
    patient_label: Label = Label(DataCategory.DEMOGRAPHICS)
    encounter_label: Label = Label(DataCategory.ENCOUNTERS)
    encoding: str = "utf-8"
    timezone: str = "Europe/London"
    invalid_nhs_number: OnInvalid = OnInvalid.REJECT
    location_system: str = ""
    """Identifier system for PV1-3 ward codes, written to Encounter.location."""
    visit_system: str = ""
    """Identifier system for PV1-19 visit numbers, written to Encounter.identifier."""
    practitioner_system: str = ""
    """Identifier system for PV1-7 attending doctor ids, written to Encounter.participant."""
    id_namespace: str = ""
    """Whose ids these are, for stable resource ids; defaults to the feed."""
    description: str = ""
    origin: str = ""

    format = FeedFormat.HL7V2

    @property
    def categories(self) -> frozenset[DataCategory]:
        return frozenset({self.patient_label.category, self.encounter_label.category})


FeedSpec = CsvMapping | FhirFeedConfig | Hl7v2FeedConfig
