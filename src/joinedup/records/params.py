"""Search parameters per resource type, and the index rows a resource gives.

Each parameter is data (its FHIR name, kind and the element paths it reads),
like a FHIR SearchParameter: the SQL index, the query compiler and the
in-memory reference all read the same definitions. Paths are dotted element
names; lists are walked transparently, and a choice element is listed once
per type it can take (``onsetDateTime``, ``onsetPeriod``).

Two things are columns of the resource row rather than index rows, because
nearly every query needs them: the subject (``patient`` / ``subject``: the
Patient a resource is about, and a Patient's own id) and the labels.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from joinedup.records.dates import date_range, period_range
from joinedup.records.normalise import postcode, text_keys


class Kind(StrEnum):
    TOKEN = "token"  # noqa: S105 - a FHIR search parameter kind
    STRING = "string"
    DATE = "date"
    REFERENCE = "reference"
    SUBJECT = "subject"
    """The resource row's subject column (patient / subject)."""


@dataclass(frozen=True, slots=True)
class SearchParam:
    name: str
    kind: Kind
    paths: tuple[str, ...] = ()
    postcode: bool = False
    """String parameter normalised as a postcode rather than as text."""
    union: tuple[str, ...] = ()
    """For a parameter that searches others' index rows (``name`` = family or given)."""


def _p(name: str, kind: Kind, *paths: str, postcode: bool = False) -> SearchParam:
    return SearchParam(name, kind, tuple(paths), postcode=postcode)


_IDENTIFIER = _p("identifier", Kind.TOKEN, "identifier")
_SUBJECT = (SearchParam("patient", Kind.SUBJECT), SearchParam("subject", Kind.SUBJECT))
_PERIOD_DATE = _p("date", Kind.DATE, "period")
_STATUS = _p("status", Kind.TOKEN, "status")
_CATEGORY = _p("category", Kind.TOKEN, "category")
_CODE = _p("code", Kind.TOKEN, "code")
_ENCOUNTER = _p("encounter", Kind.REFERENCE, "encounter")
_NAME_PARTS = (
    _p("family", Kind.STRING, "name.family"),
    _p("given", Kind.STRING, "name.given"),
    SearchParam("name", Kind.STRING, union=("family", "given")),
)


def _table(*params: SearchParam) -> dict[str, SearchParam]:
    return {p.name: p for p in params}


SEARCH_PARAMS: dict[str, dict[str, SearchParam]] = {
    "Patient": _table(
        _IDENTIFIER,
        *_NAME_PARTS,
        _p("birthdate", Kind.DATE, "birthDate"),
        _p("address-postalcode", Kind.STRING, "address.postalCode", postcode=True),
        _p("gender", Kind.TOKEN, "gender"),
        _p("general-practitioner", Kind.REFERENCE, "generalPractitioner"),
    ),
    "RelatedPerson": _table(
        _IDENTIFIER, *_SUBJECT, *_NAME_PARTS, _p("relationship", Kind.TOKEN, "relationship")
    ),
    "Encounter": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _PERIOD_DATE,
        _STATUS,
        _p("class", Kind.TOKEN, "class"),
        _p("type", Kind.TOKEN, "type"),
        _p("service-provider", Kind.REFERENCE, "serviceProvider"),
        _p("episode-of-care", Kind.REFERENCE, "episodeOfCare"),
    ),
    "EpisodeOfCare": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _PERIOD_DATE,
        _STATUS,
        _p("type", Kind.TOKEN, "type"),
        _p("organization", Kind.REFERENCE, "managingOrganization"),
        _p("care-manager", Kind.REFERENCE, "careManager"),
    ),
    "Condition": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CODE,
        _CATEGORY,
        _ENCOUNTER,
        _p("clinical-status", Kind.TOKEN, "clinicalStatus"),
        _p("onset-date", Kind.DATE, "onsetDateTime", "onsetPeriod"),
        _p("recorded-date", Kind.DATE, "recordedDate"),
    ),
    "AllergyIntolerance": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CODE,
        _CATEGORY,
        _p("clinical-status", Kind.TOKEN, "clinicalStatus"),
        _p("date", Kind.DATE, "recordedDate"),
    ),
    "MedicationStatement": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _STATUS,
        _CATEGORY,
        _p("code", Kind.TOKEN, "medicationCodeableConcept"),
        _p("effective", Kind.DATE, "effectiveDateTime", "effectivePeriod"),
    ),
    "CarePlan": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CATEGORY,
        _STATUS,
        _PERIOD_DATE,
        _p("care-team", Kind.REFERENCE, "careTeam"),
    ),
    "CareTeam": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CATEGORY,
        _STATUS,
        _PERIOD_DATE,
        _p("participant", Kind.REFERENCE, "participant.member"),
    ),
    "Flag": _table(_IDENTIFIER, *_SUBJECT, _CODE, _CATEGORY, _STATUS, _PERIOD_DATE),
    "Observation": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CODE,
        _CATEGORY,
        _STATUS,
        _ENCOUNTER,
        _p("date", Kind.DATE, "effectiveDateTime", "effectivePeriod", "effectiveInstant"),
    ),
    "Procedure": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CODE,
        _CATEGORY,
        _STATUS,
        _ENCOUNTER,
        _p("date", Kind.DATE, "performedDateTime", "performedPeriod"),
    ),
    "ServiceRequest": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CODE,
        _CATEGORY,
        _STATUS,
        _p("authored", Kind.DATE, "authoredOn"),
        _p("requester", Kind.REFERENCE, "requester"),
        _p("performer", Kind.REFERENCE, "performer"),
    ),
    "DocumentReference": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CATEGORY,
        _STATUS,
        _p("type", Kind.TOKEN, "type"),
        _p("date", Kind.DATE, "date"),
    ),
    "Consent": _table(
        _IDENTIFIER,
        *_SUBJECT,
        _CATEGORY,
        _STATUS,
        _p("date", Kind.DATE, "dateTime"),
    ),
}
"""Every resource type the store holds, with the parameters it can be searched by."""

SUPPORTED_TYPES = frozenset(SEARCH_PARAMS)
_SUBJECT_ELEMENTS = ("subject", "patient")


def walk(value: Any, path: str) -> Iterator[Any]:
    """Every value at a dotted ``path`` below ``value``, flattening lists on the way."""
    head, _, rest = path.partition(".")
    items = value if isinstance(value, list) else [value]
    for item in items:
        if not isinstance(item, dict) or head not in item:
            continue
        child = item[head]
        if rest:
            yield from walk(child, rest)
        elif isinstance(child, list):
            yield from child
        else:
            yield child


def tokens(value: Any) -> Iterator[tuple[str, str]]:
    """``(system, code)`` pairs of a code, Coding, CodeableConcept, Identifier or boolean."""
    if isinstance(value, bool):
        yield "", "true" if value else "false"
    elif isinstance(value, str):
        yield "", value
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"] or []:
                yield from tokens(coding)
        elif isinstance(value.get("value"), str):  # Identifier
            yield str(value.get("system") or ""), value["value"]
        elif isinstance(value.get("code"), str):  # Coding
            yield str(value.get("system") or ""), value["code"]


def ranges(value: Any) -> Iterator[tuple[int, int]]:
    """Date ranges of a date/dateTime/instant string or a Period; unparseable values are skipped."""
    try:
        if isinstance(value, str):
            yield date_range(value)
        elif isinstance(value, dict):
            found = period_range(value)
            if found is not None:
                yield found
    except ValueError:
        return


def references(value: Any) -> Iterator[tuple[str, str]]:
    """``(type, id)`` of a relative literal reference ``Type/id``; others are not indexed."""
    if isinstance(value, dict) and isinstance(value.get("reference"), str):
        kind, sep, ident = value["reference"].partition("/")
        if sep and ident and "/" not in ident and kind[:1].isupper():
            yield kind, ident


def subject_id(resource: dict[str, Any]) -> str | None:
    """The id of the Patient a resource is about (a Patient's own id)."""
    if resource.get("resourceType") == "Patient":
        ident = resource.get("id")
        return ident if isinstance(ident, str) else None
    for element in _SUBJECT_ELEMENTS:
        for kind, ident in references(resource.get(element)):
            if kind == "Patient":
                return ident
    return None


@dataclass(frozen=True, slots=True)
class IndexRows:
    """The search index rows of one resource, as plain tuples (no resource key)."""

    tokens: set[tuple[str, str, str]]
    """(param, system, code)"""
    strings: set[tuple[str, str]]
    """(param, normalised value)"""
    dates: set[tuple[str, int, int]]
    """(param, low, high)"""
    refs: set[tuple[str, str, str]]
    """(param, target type, target id)"""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (type(self), (self.tokens, self.strings, self.dates, self.refs))


def _values_at(resource: dict[str, Any], parts: tuple[str, ...]) -> list[Any]:
    """Like :func:`walk`, without generators: this runs for every resource of every batch."""
    nodes: list[Any] = [resource]
    for part in parts:
        found: list[Any] = []
        for node in nodes:
            if isinstance(node, dict):
                value = node.get(part)
                if value is None:
                    continue
                if isinstance(value, list):
                    found.extend(value)
                else:
                    found.append(value)
        if not found:
            return found
        nodes = found
    return nodes


_Compiled = tuple[tuple[str, Kind, bool, tuple[tuple[str, ...], ...]], ...]
_COMPILED: dict[str, _Compiled] = {
    rtype: tuple(
        (p.name, p.kind, p.postcode, tuple(tuple(path.split(".")) for path in p.paths))
        for p in params.values()
        if p.paths
    )
    for rtype, params in SEARCH_PARAMS.items()
}


def _add_tokens(add: Any, name: str, value: Any, rtype: str, rid: str) -> None:
    """:func:`tokens` of ``value`` with a non-empty code, added as a ``search_token`` row
    ``(code, system, name, rtype, rid)``.

    The same rules as :func:`tokens` (which the reference search uses), written
    without generators: this runs for every coded element of every batch.
    """
    if isinstance(value, bool):
        add(("true" if value else "false", "", name, rtype, rid))
    elif isinstance(value, str):
        if value:
            add((value, "", name, rtype, rid))
    elif isinstance(value, dict):
        if "coding" in value:
            for coding in value["coding"] or []:
                _add_tokens(add, name, coding, rtype, rid)
            return
        code = value.get("value")
        if not isinstance(code, str):  # not an Identifier: a Coding?
            code = value.get("code")
            if not isinstance(code, str):
                return
        if code:
            add((code, str(value.get("system") or ""), name, rtype, rid))


@dataclass(frozen=True, slots=True)
class TableRows:
    """The search index rows of one resource exactly as the index tables take them.

    Built where the resource is staged (a worker process for a big file), so
    the writer only concatenates and sorts them.
    """

    tokens: set[tuple[str, str, str, str, str]]
    """``search_token``: (code, system, param, resource type, resource id)"""
    strings: set[tuple[str, str, str, str]]
    """``search_string``: (resource type, param, normalised value, resource id)"""
    dates: set[tuple[str, str, int, int, str]]
    """``search_date``: (resource type, param, low, high, resource id)"""
    refs: set[tuple[str, str, str, str, str]]
    """``search_reference``: (target id, target type, param, resource type, resource id)"""

    def __reduce__(self) -> tuple[Any, tuple[Any, ...]]:
        # plain positional pickling: the slotted dataclass default (fields() per object)
        # costs more than the staging it ships between processes
        return (type(self), (self.tokens, self.strings, self.dates, self.refs))


def index_rows(resource: dict[str, Any]) -> IndexRows:
    """The index rows of ``resource`` without its key (what each parameter indexes)."""
    t = table_rows(resource)
    return IndexRows(
        {(p, s, c) for c, s, p, _, _ in t.tokens},
        {(p, v) for _, p, v, _ in t.strings},
        {(p, lo, hi) for _, p, lo, hi, _ in t.dates},
        {(p, tt, ti) for ti, tt, p, _, _ in t.refs},
    )


def table_rows(resource: dict[str, Any]) -> TableRows:
    """The index table rows of ``resource`` (keyed by its ``resourceType`` and ``id``)."""
    rtype = str(resource.get("resourceType"))
    rid = str(resource.get("id"))
    rows = TableRows(set(), set(), set(), set())
    for name, kind, is_postcode, paths in _COMPILED.get(rtype, ()):
        for parts in paths:
            if len(parts) == 1:  # a top-level element: the commonest path
                value = resource.get(parts[0])
                if value is None:
                    continue
                values = value if isinstance(value, list) else [value]
            else:
                values = _values_at(resource, parts)
            if not values:
                continue
            if kind is Kind.TOKEN:
                add_token = rows.tokens.add
                for value in values:
                    _add_tokens(add_token, name, value, rtype, rid)
            elif kind is Kind.STRING:
                add_string = rows.strings.add
                for value in values:
                    if not isinstance(value, str):
                        continue
                    if is_postcode:
                        key = postcode(value)
                        if key:
                            add_string((rtype, name, key, rid))
                    else:
                        for k in text_keys(value):
                            add_string((rtype, name, k, rid))
            elif kind is Kind.DATE:
                add_date = rows.dates.add
                for value in values:
                    if isinstance(value, str):  # date, dateTime, instant: as ranges() does
                        try:
                            low, high = date_range(value)
                        except ValueError:
                            continue
                        add_date((rtype, name, low, high, rid))
                    else:
                        for low, high in ranges(value):
                            add_date((rtype, name, low, high, rid))
            else:
                for value in values:
                    rows.refs.update((i, t, name, rtype, rid) for t, i in references(value))
    return rows
