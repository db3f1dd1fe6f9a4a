"""Search values of DocumentReferences and Lists: pure, no I/O.

Each token or reference search parameter of ITI-67 and ITI-66 becomes rows of
``(name, system, value)`` in ``document_search_tokens``, so any of them is one
indexed ``EXISTS`` in the query. References are kept as ``Type/id`` with an
empty system; identifiers as ``system|value``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any

Token = tuple[str, str, str]
"""(parameter name, system, value)."""

MAX_VALUE = 300


def _codings(concept: Any) -> Iterator[tuple[str, str]]:
    if isinstance(concept, Mapping):
        for coding in concept.get("coding") or []:
            if isinstance(coding, Mapping) and coding.get("code"):
                yield str(coding.get("system") or ""), str(coding["code"])


def relative(ref: str) -> str:
    """``Type/id`` of a relative or absolute reference (``…/fhir/Organization/X`` too)."""
    parts = ref.split("/_history/")[0].rstrip("/").split("/")
    if len(parts) >= 2 and parts[-2][:1].isupper():
        return f"{parts[-2]}/{parts[-1]}"
    return ref


def _reference(value: Any) -> Iterator[tuple[str, str]]:
    if not isinstance(value, Mapping):
        return
    ref = value.get("reference")
    if isinstance(ref, str) and ref:
        yield "", relative(ref)
    ident = value.get("identifier")
    if isinstance(ident, Mapping) and ident.get("value"):
        yield str(ident.get("system") or ""), str(ident["value"])


def _identifiers(values: Any) -> Iterator[tuple[str, str]]:
    for ident in values if isinstance(values, list) else [values]:
        if isinstance(ident, Mapping) and ident.get("value"):
            yield str(ident.get("system") or ""), str(ident["value"])


def _clip(tokens: Iterator[Token]) -> list[Token]:
    seen: dict[Token, None] = {}
    for name, system, value in tokens:
        seen[(name, system[:MAX_VALUE], value[:MAX_VALUE])] = None
    return list(seen)


def _named(name: str, pairs: Iterable[tuple[str, str]]) -> Iterator[Token]:
    for system, value in pairs:
        yield name, system, value


def _each(items: Any, values: Callable[[Any], Iterator[tuple[str, str]]]
          ) -> Iterator[tuple[str, str]]:
    """``values`` of every element of a repeating element (absent: none)."""
    for item in items or []:
        yield from values(item)


def document_tokens(resource: Mapping[str, Any]) -> list[Token]:
    """Every token and reference search value of a DocumentReference."""

    def gen() -> Iterator[Token]:
        yield from _named("type", _codings(resource.get("type")))
        yield from _named("category", _each(resource.get("category"), _codings))
        yield from _named("securityLabel", _each(resource.get("securityLabel"), _codings))
        yield from _named("author", _each(resource.get("author"), _reference))
        yield from _named("identifier", _identifiers(resource.get("masterIdentifier")))
        yield from _named("identifier", _identifiers(resource.get("identifier")))
        for content in resource.get("content") or []:
            if isinstance(content, Mapping) and isinstance(content.get("format"), Mapping):
                fmt = content["format"]
                if fmt.get("code"):
                    yield "format", str(fmt.get("system") or ""), str(fmt["code"])
        context = resource.get("context")
        if isinstance(context, Mapping):
            yield from _named("event", _each(context.get("event"), _codings))
            yield from _named("setting", _codings(context.get("practiceSetting")))
            yield from _named("facility", _codings(context.get("facilityType")))
            yield from _named("related", _each(context.get("related"), _reference))

    return _clip(gen())


def list_tokens(resource: Mapping[str, Any]) -> list[Token]:
    """Token values of a SubmissionSet or Folder List (ITI-66)."""

    def gen() -> Iterator[Token]:
        yield from _named("code", _codings(resource.get("code")))
        yield from _named("identifier", _identifiers(resource.get("identifier")))
        for extension in resource.get("extension") or []:
            if not isinstance(extension, Mapping):
                continue
            url = str(extension.get("url", ""))
            if url.endswith("designationType"):
                yield from _named("designationType",
                                  _codings(extension.get("valueCodeableConcept")))

    return _clip(gen())


def list_source_id(resource: Mapping[str, Any]) -> str | None:
    for extension in resource.get("extension") or []:
        if isinstance(extension, Mapping) and str(extension.get("url", "")).endswith("sourceId"):
            ident = extension.get("valueIdentifier")
            if isinstance(ident, Mapping) and ident.get("value"):
                return str(ident["value"])[:MAX_VALUE]
    return None


def instant(value: Any) -> datetime | None:
    """A FHIR dateTime as a UTC instant (a partial date is its first moment), or None."""
    if not isinstance(value, str) or not value:
        return None
    text = value.replace("Z", "+00:00")
    text = {4: f"{text}-01-01", 7: f"{text}-01"}.get(len(text), text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def period_of(resource: Mapping[str, Any]) -> tuple[datetime | None, datetime | None]:
    context = resource.get("context")
    period = context.get("period") if isinstance(context, Mapping) else None
    if not isinstance(period, Mapping):
        return None, None
    return instant(period.get("start")), instant(period.get("end"))
