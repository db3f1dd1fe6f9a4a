"""ITI-67 Find Document References and ITI-66 Find Document Lists, parsed: pure, no I/O.

``parse_document_search`` and ``parse_list_search`` turn the parameters of a
GET query string or a POST ``_search`` form into a frozen query, or raise
``UserError`` listing every unknown or malformed parameter. Nothing here
looks at the data, so the answer to a bad search is the same whoever asks
and whichever patient it names: a bad search never tells anyone anything.

Semantics (FHIR R4 search): repeating a parameter is AND, commas are OR;
tokens are ``system|code``, ``code``, ``|code`` (no system) or ``system|``;
references are ``Type/id``, an absolute URL, or ``id``; dates take the
prefixes ``eq ne gt ge lt le sa eb`` and any precision from a year to an
instant (a date without a zone is UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from joinedup.documents.index import relative
from joinedup.errors import Problem, UserError

STATUSES = ("current", "superseded", "entered-in-error")
LIST_STATUSES = ("current", "retired", "entered-in-error")
PREFIXES = ("eq", "ne", "gt", "ge", "lt", "le", "sa", "eb")
MAX_COUNT = 1000
DEFAULT_COUNT = 50
IGNORED = frozenset({"_format", "_pretty", "_summary", "_total", "_elements"})

DOCUMENT_TOKENS = ("type", "category", "event", "setting", "facility", "format",
                   "securityLabel", "identifier")
DOCUMENT_REFERENCES = ("author", "related")
LIST_TOKENS = ("code", "designationType", "identifier")
PATIENT = ("patient", "patient.identifier")
PAGING = ("_count", "_offset")


class BadSearch(UserError):
    """An unknown or malformed search parameter (FHIR: 400 with an OperationOutcome)."""

    status = 400
    slug = "bad-search"
    title = "The search cannot be run"


@dataclass(frozen=True, slots=True)
class TokenMatch:
    """One alternative of a token or reference parameter."""

    system: str | None
    """None: any system; "": no system."""
    value: str | None
    """None: any value (``system|``)."""
    reference: bool = False
    """A reference id: matches ``Type/<value>`` as well as the value itself."""


@dataclass(frozen=True, slots=True)
class DateMatch:
    prefix: str
    low: datetime
    high: datetime
    """The value's precision as the half-open interval [low, high)."""


TokenCriterion = tuple[str, tuple[TokenMatch, ...]]
"""(parameter name, alternatives): one repetition of a parameter."""


@dataclass(frozen=True, slots=True)
class Patient:
    """Whose documents: a Patient id, or a ``system|value`` identifier."""

    kind: Literal["id", "identifier"]
    value: str


@dataclass(frozen=True, slots=True)
class DocumentSearch:
    patient: Patient
    statuses: tuple[str, ...] = ("current",)
    tokens: tuple[TokenCriterion, ...] = ()
    dates: tuple[tuple[DateMatch, ...], ...] = ()
    periods: tuple[tuple[DateMatch, ...], ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0


@dataclass(frozen=True, slots=True)
class ListSearch:
    patient: Patient
    statuses: tuple[str, ...] = ("current",)
    tokens: tuple[TokenCriterion, ...] = ()
    dates: tuple[tuple[DateMatch, ...], ...] = ()
    source_ids: tuple[tuple[str, ...], ...] = ()
    count: int = DEFAULT_COUNT
    offset: int = 0


Params = Sequence[tuple[str, str]]


def _group(params: Params) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for name, value in params:
        if name not in IGNORED:
            grouped.setdefault(name, []).append(value)
    return grouped


def _alternatives(value: str) -> list[str]:
    return [v.strip() for v in value.split(",")]


def parse_token(text: str, *, reference: bool = False) -> TokenMatch | None:
    if not text:
        return None
    if "|" in text:
        system, _, value = text.partition("|")
        if not system and not value:
            return None
        return TokenMatch(system, value or None)
    if reference:
        return TokenMatch("", relative(text), reference="/" not in text)
    return TokenMatch(None, text)


def _upper(low: datetime, digits: int) -> datetime:
    if digits == 4:
        return low.replace(year=low.year + 1)
    if digits == 7:
        return low.replace(year=low.year + (low.month == 12), month=low.month % 12 + 1)
    if digits == 10:
        return low + timedelta(days=1)
    return low + timedelta(seconds=1)


def parse_date(text: str) -> DateMatch | None:
    prefix, rest = (text[:2], text[2:]) if text[:2] in PREFIXES else ("eq", text)
    body = rest.replace("Z", "+00:00")
    digits = len(body)
    padded = {4: f"{body}-01-01", 7: f"{body}-01"}.get(digits, body)
    if digits < 4 or (digits > 10 and "T" not in body):
        return None
    try:
        low = datetime.fromisoformat(padded)
    except ValueError:
        return None
    low = low.astimezone(UTC) if low.tzinfo else low.replace(tzinfo=UTC)
    if digits > 10 and low.microsecond:
        return DateMatch(prefix, low, low + timedelta(microseconds=1))
    return DateMatch(prefix, low, _upper(low, min(digits, 11)))


def _count(values: list[str] | None, default: int, name: str,
           problems: list[Problem]) -> int:
    if not values:
        return default
    if len(values) > 1 or not values[0].isdigit():
        problems.append(Problem("must be one whole number", name))
        return default
    return int(values[0])


def _patient(params: dict[str, list[str]], problems: list[Problem]) -> Patient | None:
    ids = [v for v in params.get("patient", [])]
    identifiers = params.get("patient.identifier", [])
    if len(ids) + len(identifiers) != 1:
        problems.append(Problem("give exactly one patient or patient.identifier", "patient"))
        return None
    if ids:
        value = relative(ids[0]).removeprefix("Patient/")
        if not value or "/" in value or "," in value:
            problems.append(Problem("must be one Patient id or Patient/<id>", "patient"))
            return None
        return Patient("id", value)
    value = identifiers[0]
    system, bar, code = value.partition("|")
    if not bar or not system or not code or "," in value:
        problems.append(Problem("must be one system|value", "patient.identifier"))
        return None
    return Patient("identifier", value)


def _statuses(values: list[str] | None, allowed: Sequence[str],
              problems: list[Problem]) -> tuple[str, ...]:
    if not values:
        return ("current",)
    found: list[str] = []
    for value in values:
        alternatives = _alternatives(value)
        for status in alternatives:
            if status not in allowed:
                problems.append(Problem(
                    f"unknown status {status!r}; one of {', '.join(allowed)}", "status"))
        found = [s for s in alternatives if s in allowed] if not found else [
            s for s in found if s in alternatives]
    return tuple(found) or ("none",)


def _tokens(params: dict[str, list[str]], names: Sequence[str], references: Sequence[str],
            problems: list[Problem]) -> tuple[TokenCriterion, ...]:
    criteria: list[TokenCriterion] = []
    for name in (*names, *references):
        for value in params.get(name, []):
            matches = []
            for text in _alternatives(value):
                match = parse_token(text, reference=name in references)
                if match is None:
                    problems.append(Problem(
                        "must be system|code, code or |code" if name in names else
                        "must be Type/id, an absolute reference, id or system|value", name))
                else:
                    matches.append(match)
            criteria.append((name, tuple(matches)))
    return tuple(criteria)


def _dates(values: list[str], name: str, problems: list[Problem]
           ) -> tuple[tuple[DateMatch, ...], ...]:
    out = []
    for value in values:
        matches = []
        for text in _alternatives(value):
            match = parse_date(text)
            if match is None:
                problems.append(Problem(
                    "must be a date or date-time (YYYY, YYYY-MM, YYYY-MM-DD, or an instant), "
                    f"optionally prefixed {'/'.join(PREFIXES)}", name))
            else:
                matches.append(match)
        out.append(tuple(matches))
    return tuple(out)


def _unknown(params: dict[str, list[str]], known: Sequence[str]) -> list[Problem]:
    return [Problem("not a supported search parameter", name)
            for name in sorted(params) if name not in known]


def parse_document_search(params: Params) -> DocumentSearch:
    """An ITI-67 query, or ``BadSearch`` with every problem found."""
    grouped = _group(params)
    known = (*PATIENT, "status", "date", "period", *DOCUMENT_TOKENS, *DOCUMENT_REFERENCES,
             *PAGING)
    problems = _unknown(grouped, known)
    patient = _patient(grouped, problems)
    statuses = _statuses(grouped.get("status"), STATUSES, problems)
    tokens = _tokens(grouped, DOCUMENT_TOKENS, DOCUMENT_REFERENCES, problems)
    dates = _dates(grouped.get("date", []), "date", problems)
    periods = _dates(grouped.get("period", []), "period", problems)
    count = min(_count(grouped.get("_count"), DEFAULT_COUNT, "_count", problems), MAX_COUNT)
    offset = _count(grouped.get("_offset"), 0, "_offset", problems)
    if problems or patient is None:
        raise BadSearch("the DocumentReference search cannot be run", problems)
    return DocumentSearch(patient, statuses, tokens, dates, periods, count, offset)


def parse_list_search(params: Params) -> ListSearch:
    """An ITI-66 query, or ``BadSearch`` with every problem found."""
    grouped = _group(params)
    known = (*PATIENT, "status", "date", "sourceId", *LIST_TOKENS, *PAGING)
    problems = _unknown(grouped, known)
    patient = _patient(grouped, problems)
    statuses = _statuses(grouped.get("status"), LIST_STATUSES, problems)
    tokens = _tokens(grouped, LIST_TOKENS, (), problems)
    dates = _dates(grouped.get("date", []), "date", problems)
    sources = []
    for value in grouped.get("sourceId", []):
        alternatives = tuple(v.rpartition("|")[2] for v in _alternatives(value))
        if not all(alternatives):
            problems.append(Problem("must be a source id (or system|value)", "sourceId"))
        sources.append(alternatives)
    count = min(_count(grouped.get("_count"), DEFAULT_COUNT, "_count", problems), MAX_COUNT)
    offset = _count(grouped.get("_offset"), 0, "_offset", problems)
    if problems or patient is None:
        raise BadSearch("the List search cannot be run", problems)
    return ListSearch(patient, statuses, tokens, dates, tuple(sources), count, offset)


def capability_resources() -> list[dict[str, Any]]:
    """The CapabilityStatement entries of the MHD Document Recipient and Responder."""
    tokens = {"type", "category", "event", "setting", "facility", "format", "securityLabel",
              "identifier", "status", "code", "designationType"}

    def params(names: Sequence[str]) -> list[dict[str, str]]:
        kinds = {"date": "date", "period": "date", "patient": "reference",
                 "author": "reference", "related": "reference", "sourceId": "token",
                 "patient.identifier": "token"}
        return [{"name": n, "type": "token" if n in tokens else kinds[n]} for n in names]

    doc_params = (*PATIENT, "status", "date", "period", *DOCUMENT_TOKENS, *DOCUMENT_REFERENCES)
    return [
        {"type": "Binary", "interaction": [{"code": "read"}, {"code": "create"}]},
        {"type": "DocumentReference",
         "interaction": [{"code": "read"}, {"code": "vread"}, {"code": "history-instance"},
                         {"code": "search-type"}],
         "versioning": "versioned", "readHistory": True,
         "searchParam": params(sorted(doc_params)),
         "operation": [{"name": "status",
                        "definition": "https://joinedup.dev/fhir/OperationDefinition/"
                                      "DocumentReference-status"}]},
        {"type": "List", "interaction": [{"code": "search-type"}],
         "searchParam": params(sorted((*PATIENT, "status", "date", "sourceId",
                                       *LIST_TOKENS)))},
    ]


MHD_CAPABILITIES = (
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentRecipient",
    "https://profiles.ihe.net/ITI/MHD/CapabilityStatement/IHE.MHD.DocumentResponder",
)
