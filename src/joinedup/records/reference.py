"""The in-memory reference search: plain Python over FHIR JSON, obviously right.

It answers a :class:`~joinedup.records.query.Query` by looking at each
resource's elements directly (no index rows, no SQL), applying the FHIR
matching rules as written. The SQL engine must give exactly the same ids,
order and total: tests/integration/records/test_search_differential.py holds
the two together with Hypothesis on both databases.
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from joinedup.records.dates import DatePrefix, matches
from joinedup.records.normalise import postcode, text_keys
from joinedup.records.params import (
    Kind,
    SearchParam,
    ranges,
    references,
    subject_id,
    tokens,
    walk,
)
from joinedup.records.query import (
    DateValue,
    Query,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
    Value,
)


@dataclass(frozen=True, slots=True)
class Record:
    """What the reference needs of a stored resource."""

    resource: dict[str, Any]
    org_code: str
    category: str
    active: bool
    last_updated: datetime

    @property
    def key(self) -> tuple[str, str]:
        return (str(self.resource["resourceType"]), str(self.resource["id"]))


def _strings(resource: dict[str, Any], p: SearchParam) -> set[str]:
    keys: set[str] = set()
    for path in p.paths:
        for value in walk(resource, path):
            if isinstance(value, str):
                if p.postcode:
                    keys.add(postcode(value))
                else:
                    keys |= text_keys(value)
    keys.discard("")
    return keys


def _value_matches(
    resource: dict[str, Any], p: SearchParam, params: dict[str, SearchParam], v: Value
) -> bool:
    if p.kind is Kind.SUBJECT:
        assert isinstance(v, ReferenceValue)
        return v.type in (None, "Patient") and subject_id(resource) == v.id
    if p.kind is Kind.TOKEN:
        assert isinstance(v, TokenValue)
        return any(
            code and (v.code is None or code == v.code) and (v.system is None or system == v.system)
            for path in p.paths
            for value in walk(resource, path)
            for system, code in tokens(value)
        )
    if p.kind is Kind.STRING:
        assert isinstance(v, StringValue)
        wanted = v.key(p)
        members = [params[name] for name in p.union] if p.union else [p]
        keys = set().union(*(_strings(resource, m) for m in members))
        return any(k == wanted if v.exact else k.startswith(wanted) for k in keys)
    if p.kind is Kind.DATE:
        assert isinstance(v, DateValue)
        return any(
            matches(v.prefix, r, v.range)
            for path in p.paths
            for value in walk(resource, path)
            for r in ranges(value)
        )
    assert isinstance(v, ReferenceValue)
    return any(
        ident == v.id and (v.type is None or kind == v.type)
        for path in p.paths
        for value in walk(resource, path)
        for kind, ident in references(value)
    )


def _updated_matches(record: Record, v: DateValue) -> bool:
    second = calendar.timegm(record.last_updated.utctimetuple())
    prefix = v.prefix
    if prefix is DatePrefix.SA:
        prefix = DatePrefix.GT
    elif prefix is DatePrefix.EB:
        prefix = DatePrefix.LT
    return matches(prefix, (second, second), v.range)


def _selected(record: Record, q: Query, allowed: frozenset[tuple[str, str]] | None) -> bool:
    resource = record.resource
    if resource.get("resourceType") != q.resource_type:
        return False
    if q.ids and resource.get("id") not in q.ids:
        return False
    if q.active_only and not record.active:
        return False
    if allowed is not None and (record.org_code, record.category) not in allowed:
        return False
    from joinedup.records.params import SEARCH_PARAMS

    params = SEARCH_PARAMS[q.resource_type]
    for criterion in q.criteria:
        p = params[criterion.param]
        if not any(_value_matches(resource, p, params, v) for v in criterion.values):
            return False
    return all(_updated_matches(record, v) for v in q.last_updated)


def search(
    records: Iterable[Record], q: Query, allowed: frozenset[tuple[str, str]] | None = None
) -> tuple[int, list[tuple[str, str]]]:
    """(total, keys of the page) for ``q`` over ``records``, optionally limited to
    resources whose (organisation, category) is in ``allowed``."""
    hits = [r for r in records if _selected(r, q, allowed)]
    if q.sort is Sort.LAST_UPDATED:
        hits.sort(key=lambda r: (r.last_updated, r.key[1]))
    elif q.sort is Sort.LAST_UPDATED_DESC:
        hits.sort(key=lambda r: r.key[1])
        hits.sort(key=lambda r: r.last_updated, reverse=True)
    else:
        hits.sort(key=lambda r: r.key[1])
    page = hits[q.offset : q.offset + q.count]
    return len(hits), [r.key for r in page]


def included(
    records: Iterable[Record],
    q: Query,
    page: Iterable[tuple[str, str]],
    allowed: frozenset[tuple[str, str]] | None = None,
) -> list[tuple[str, str]]:
    """Keys of what ``q.includes`` reach from the ``page`` of matches, among
    ``records`` (and ``allowed``), sorted by type and id, the matches left out."""
    from joinedup.records.params import SEARCH_PARAMS

    by_key = {r.key: r for r in records}
    page_keys = list(page)
    params = SEARCH_PARAMS[q.resource_type]
    wanted: set[tuple[str, str]] = set()
    for key in page_keys:
        resource = by_key[key].resource
        for inc in q.includes:
            names = sorted(params) if inc.param == "*" else [inc.param]
            for name in names:
                p = params[name]
                if p.kind is Kind.SUBJECT:
                    ident = subject_id(resource)
                    targets = {("Patient", ident)} if ident else set()
                elif p.kind is Kind.REFERENCE:
                    targets = {
                        ref for path in p.paths for value in walk(resource, path)
                        for ref in references(value)
                    }
                else:
                    continue
                wanted |= {t for t in targets if inc.target_type in (None, t[0])}
    found = [
        k for k in wanted - set(page_keys)
        if k in by_key
        and (allowed is None or (by_key[k].org_code, by_key[k].category) in allowed)
    ]
    return sorted(found)
