"""Typed search queries over the record store: pure values, validated on construction.

A :class:`Query` names a resource type and criteria; each criterion is one
search parameter with one or more values (OR), and criteria combine with AND,
as in FHIR. :func:`parse_query` builds one from FHIR-style request
parameters and reports every problem at once. Two engines answer a query:
the SQL compiler (:mod:`joinedup.records.search`) and the plain in-memory
reference (:mod:`joinedup.records.reference`); property tests hold them equal.

Values:

* token ``code``, ``system|code``, ``|code`` (no system), ``system|`` (any code);
* string: prefix match on the folded value (:mod:`joinedup.records.normalise`);
  ``:exact`` matches the whole folded value or word;
* date: FHIR prefixes ``eq ne lt gt le ge sa eb`` + a FHIR date/dateTime;
* reference: ``id`` or ``Type/id``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum

from joinedup.errors import InvalidInput, Problem
from joinedup.records.dates import DatePrefix, date_range
from joinedup.records.normalise import fold, postcode
from joinedup.records.params import SEARCH_PARAMS, Kind, SearchParam

MAX_COUNT = 1000


@dataclass(frozen=True, slots=True)
class TokenValue:
    code: str | None
    """None: any code (``system|``)."""
    system: str | None = None
    """None: any system; "": no system (``|code``)."""

    @classmethod
    def parse(cls, text: str) -> TokenValue:
        if "|" not in text:
            if not text:
                raise ValueError("empty token")
            return cls(text, None)
        system, _, code = text.partition("|")
        if not code and not system:
            raise ValueError("a token needs a code, a system, or both")
        return cls(code or None, system)


@dataclass(frozen=True, slots=True)
class StringValue:
    text: str
    exact: bool = False

    def key(self, param: SearchParam) -> str:
        """The value as the index holds it for ``param``."""
        return postcode(self.text) if param.postcode else fold(self.text)


@dataclass(frozen=True, slots=True)
class DateValue:
    prefix: DatePrefix
    text: str

    @property
    def range(self) -> tuple[int, int]:
        return date_range(self.text)

    @classmethod
    def parse(cls, text: str) -> DateValue:
        head = text[:2]
        if head in DatePrefix._value2member_map_:
            value = cls(DatePrefix(head), text[2:])
        else:
            value = cls(DatePrefix.EQ, text)
        value.range  # noqa: B018 - raises ValueError for a bad date
        return value


@dataclass(frozen=True, slots=True)
class ReferenceValue:
    id: str
    type: str | None = None

    @classmethod
    def parse(cls, text: str) -> ReferenceValue:
        kind, sep, ident = text.rpartition("/")
        if not ident:
            raise ValueError("a reference needs an id")
        if sep and "/" in kind:
            kind = kind.rsplit("/", 1)[1]  # absolute URL: keep Type/id
        return cls(ident, kind or None)


Value = TokenValue | StringValue | DateValue | ReferenceValue
_KIND_VALUES: dict[Kind, type] = {
    Kind.TOKEN: TokenValue,
    Kind.STRING: StringValue,
    Kind.DATE: DateValue,
    Kind.REFERENCE: ReferenceValue,
    Kind.SUBJECT: ReferenceValue,
}


@dataclass(frozen=True, slots=True)
class Criterion:
    param: str
    values: tuple[Value, ...]
    """Any of these (OR)."""


@dataclass(frozen=True, slots=True)
class Include:
    """``_include=<type>:<param>[:<target type>]``: also return what the matches'
    ``param`` references point at (``param`` "*": every reference parameter)."""

    param: str
    target_type: str | None = None

    @classmethod
    def parse(cls, resource_type: str, text: str) -> Include:
        parts = text.split(":")
        if len(parts) not in (2, 3) or not all(parts):
            raise ValueError("must be <type>:<parameter> or <type>:<parameter>:<target type>")
        source, param = parts[0], parts[1]
        if source not in ("*", resource_type):
            raise ValueError(f"a {resource_type} search can only include {resource_type}:...")
        return cls(param, parts[2] if len(parts) == 3 else None)


class Sort(StrEnum):
    ID = "_id"
    LAST_UPDATED = "_lastUpdated"
    LAST_UPDATED_DESC = "-_lastUpdated"


@dataclass(frozen=True, slots=True)
class Query:
    """A search: criteria AND-ed, each criterion's values OR-ed, then sorted and paged."""

    resource_type: str
    criteria: tuple[Criterion, ...] = ()
    ids: tuple[str, ...] = ()
    """Restrict to these ids (``_id``); empty: no restriction."""
    last_updated: tuple[DateValue, ...] = ()
    """``_lastUpdated`` conditions, all of which must hold."""
    active_only: bool = False
    """Leave out records marked inactive (e.g. withdrawn by their source)."""
    sort: Sort = Sort.ID
    count: int = 50
    offset: int = 0
    includes: tuple[Include, ...] = ()
    """``_include``: resources the matches reference, returned beside them (not counted)."""

    def __post_init__(self) -> None:
        problems = check(self)
        if problems:
            raise InvalidInput("invalid search", problems)

    def param(self, name: str) -> SearchParam:
        return SEARCH_PARAMS[self.resource_type][name]


def check(q: Query) -> list[Problem]:
    params = SEARCH_PARAMS.get(q.resource_type)
    if params is None:
        return [Problem(f"the store holds no {q.resource_type!r} resources", "resourceType")]
    problems = []
    for c in q.criteria:
        p = params.get(c.param)
        if p is None:
            problems.append(Problem(_unknown(q.resource_type, c.param), c.param))
            continue
        if not c.values:
            problems.append(Problem("needs at least one value", c.param))
        for v in c.values:
            if not isinstance(v, _KIND_VALUES[p.kind]):
                problems.append(Problem(f"is a {p.kind.value} parameter", c.param))
            elif isinstance(v, StringValue) and not v.key(p):
                problems.append(Problem("needs at least one letter or digit", c.param))
    for inc in q.includes:
        problems.extend(_include_problems(q.resource_type, inc))
    if not 0 <= q.count <= MAX_COUNT:
        problems.append(Problem(f"must be between 0 and {MAX_COUNT}", "_count"))
    if q.offset < 0:
        problems.append(Problem("must not be negative", "_offset"))
    return problems


def include_params(resource_type: str, inc: Include) -> list[SearchParam]:
    """The reference parameters ``inc`` follows (``*``: all of the type's)."""
    params = SEARCH_PARAMS[resource_type]
    if inc.param == "*":
        return [p for _, p in sorted(params.items()) if p.kind in _REFERENCE_KINDS]
    p = params.get(inc.param)
    return [p] if p is not None and p.kind in _REFERENCE_KINDS else []


_REFERENCE_KINDS = (Kind.REFERENCE, Kind.SUBJECT)


def _include_problems(resource_type: str, inc: Include) -> list[Problem]:
    if not include_params(resource_type, inc):
        names = ", ".join(
            n for n, p in sorted(SEARCH_PARAMS[resource_type].items()) if p.kind in _REFERENCE_KINDS
        )
        return [Problem(
            f"{resource_type} has no reference parameter {inc.param!r} to include "
            f"(it has: {names or 'none'}, or *)", "_include"
        )]
    if inc.target_type is not None and inc.target_type not in SEARCH_PARAMS:
        return [Problem(f"the store holds no {inc.target_type!r} resources", "_include")]
    return []


def _unknown(resource_type: str, name: str) -> str:
    known = ", ".join(sorted(SEARCH_PARAMS[resource_type]))
    return f"{resource_type} has no search parameter {name!r} (it has: {known})"


def parse_query(
    resource_type: str, params: Mapping[str, Sequence[str]] | Iterable[tuple[str, str]]
) -> Query:
    """A query from FHIR-style parameters (``name=smi``, ``birthdate=ge1980``, ``a=x,y``).

    A parameter given twice is two criteria (AND); commas separate values (OR).
    Every problem is reported together.
    """
    pairs: list[tuple[str, str]] = (
        [(k, v) for k, vs in params.items() for v in vs]
        if isinstance(params, Mapping)
        else list(params)
    )
    known = SEARCH_PARAMS.get(resource_type)
    if known is None:
        raise InvalidInput(
            "invalid search", [Problem(f"the store holds no {resource_type!r} resources", "type")]
        )
    problems: list[Problem] = []
    criteria: list[Criterion] = []
    ids: list[str] = []
    last_updated: list[DateValue] = []
    includes: list[Include] = []
    sort, count, offset, active_only = Sort.ID, 50, 0, False
    for raw_name, raw in pairs:
        name, _, modifier = raw_name.partition(":")
        try:
            if name in _UNSUPPORTED:
                problems.append(Problem(_UNSUPPORTED[name], raw_name))
            elif name == "_include":
                if modifier:
                    raise ValueError(f"_include:{modifier} is not supported (no iteration)")
                inc = Include.parse(resource_type, raw)
                found = _include_problems(resource_type, inc)
                problems.extend(Problem(f.message, raw_name) for f in found)
                includes.append(inc)
            elif name == "_id":
                ids += [v for v in raw.split(",") if v]
            elif name == "_lastUpdated":
                last_updated.append(DateValue.parse(raw))
            elif name == "_sort":
                sort = Sort(raw)
            elif name == "_count":
                count = _integer(raw)
            elif name == "_offset":
                offset = _integer(raw)
            elif name == "_active":
                active_only = raw == "true"
            elif name not in known:
                problems.append(Problem(_unknown(resource_type, name), raw_name))
            else:
                criteria.append(_criterion(known[name], modifier, raw))
        except ValueError as exc:
            problems.append(Problem(str(exc).splitlines()[0], raw_name))
    if problems:
        raise InvalidInput("invalid search", problems)
    return Query(
        resource_type,
        tuple(criteria),
        tuple(ids),
        tuple(last_updated),
        active_only,
        sort,
        count,
        offset,
        tuple(includes),
    )


_UNSUPPORTED = {
    "_revinclude": "is not supported; search the other type with patient=<id> instead",
    "_has": "is not supported",
    "_elements": "is not supported",
    "_contained": "is not supported",
    "_query": "is not supported",
    "_filter": "is not supported",
    "_text": "is not supported",
    "_content": "is not supported",
}
"""FHIR result parameters this server does not implement: refused, not ignored,
so a caller never mistakes an unfiltered answer for a filtered one."""


def _integer(raw: str) -> int:
    if not raw.isdigit():
        raise ValueError("must be a whole number")
    return int(raw)


def _criterion(p: SearchParam, modifier: str, raw: str) -> Criterion:
    if modifier and not (p.kind is Kind.STRING and modifier == "exact"):
        raise ValueError(f"modifier :{modifier} is not supported here")
    parts = raw.split(",")
    values: list[Value] = []
    for part in parts:
        if p.kind is Kind.TOKEN:
            values.append(TokenValue.parse(part))
        elif p.kind is Kind.STRING:
            values.append(StringValue(part, exact=modifier == "exact"))
        elif p.kind is Kind.DATE:
            values.append(DateValue.parse(part))
        else:
            values.append(ReferenceValue.parse(part))
    return Criterion(p.name, tuple(values))


__all__ = [
    "MAX_COUNT",
    "Criterion",
    "DateValue",
    "Include",
    "Query",
    "ReferenceValue",
    "Sort",
    "StringValue",
    "TokenValue",
    "Value",
    "include_params",
    "parse_query",
]
