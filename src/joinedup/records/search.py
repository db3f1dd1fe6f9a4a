"""Compiling a :class:`~joinedup.records.query.Query` to SQL over the search index.

Each criterion becomes ``resources.id IN (SELECT resource_id FROM search_x
WHERE resource_type = ? AND param = ? AND <value condition>)``, each keyed on
the index table's primary key, so the database narrows by the most selective
criterion first. A caller's access filter is just one more WHERE clause on
the resource row's (organisation, data category) columns: filtering happens
in the query, so totals and pages never include what the caller may not see.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    Select,
    Table,
    and_,
    false,
    not_,
    or_,
    select,
    true,
)

from joinedup.records.dates import DatePrefix
from joinedup.records.normalise import prefix_upper_bound
from joinedup.records.params import Kind, SearchParam
from joinedup.records.query import (
    DateValue,
    Query,
    ReferenceValue,
    Sort,
    StringValue,
    TokenValue,
    Value,
)
from joinedup.records.tables import (
    date_index,
    reference_index,
    resources,
    string_index,
    token_index,
)

Filter = Callable[[Table], ColumnElement[bool]]
"""An extra condition on a resource or history table, e.g. :func:`allowed_pairs`.

It receives the table so the same filter applies to current resources and to
past versions (whose labels may differ)."""


def allowed_pairs(pairs: Iterable[tuple[str, str]]) -> Filter:
    """Only resources whose (owning organisation, data category) is one of ``pairs``.

    Grouped by organisation (``org = ? AND category IN (...)`` OR ...), which
    both backends answer with plain comparisons; no pairs means nothing.
    """
    by_org: dict[str, set[str]] = defaultdict(set)
    for org, category in pairs:
        by_org[org].add(str(category))

    def condition(table: Table) -> ColumnElement[bool]:
        if not by_org:
            return false()
        c = table.c
        return or_(
            *(
                and_(c.org_code == org, c.category.in_(sorted(categories)))
                for org, categories in sorted(by_org.items())
            )
        )

    return condition


def _date_condition(
    low: ColumnElement[int], high: ColumnElement[int], prefix: DatePrefix, s: tuple[int, int]
) -> ColumnElement[bool]:
    """The FHIR prefix semantics of :func:`joinedup.records.dates.matches`, as SQL."""
    s_low, s_high = s
    contained = and_(low >= s_low, high <= s_high)
    if prefix is DatePrefix.EQ:
        return contained
    if prefix is DatePrefix.NE:
        return not_(contained)
    if prefix is DatePrefix.GT:
        return high > s_high
    if prefix is DatePrefix.LT:
        return low < s_low
    if prefix is DatePrefix.GE:
        return or_(high > s_high, contained)
    if prefix is DatePrefix.LE:
        return or_(low < s_low, contained)
    if prefix is DatePrefix.SA:
        return low > s_high
    return high < s_low


def _in_index(
    table: Table, rtype: str, params: Iterable[str], *conds: ColumnElement[bool]
) -> ColumnElement[bool]:
    c = table.c
    names = list(params)
    param_cond = c.param == names[0] if len(names) == 1 else c.param.in_(names)
    sub = select(c.resource_id).where(c.resource_type == rtype, param_cond, *conds)
    return resources.c.id.in_(sub)


def _value_condition(rtype: str, p: SearchParam, v: Value) -> ColumnElement[bool]:
    if p.kind is Kind.SUBJECT:
        assert isinstance(v, ReferenceValue)
        if v.type not in (None, "Patient"):
            return false()
        return resources.c.subject_id == v.id
    if p.kind is Kind.TOKEN:
        assert isinstance(v, TokenValue)
        t = token_index.c
        conds = []
        if v.code is not None:
            conds.append(t.code == v.code)
        if v.system is not None:
            conds.append(t.system == v.system)
        return _in_index(token_index, rtype, [p.name], *conds)
    if p.kind is Kind.STRING:
        assert isinstance(v, StringValue)
        s = string_index.c
        key = v.key(p)
        names = p.union or (p.name,)
        if v.exact:
            return _in_index(string_index, rtype, names, s.value == key)
        return _in_index(
            string_index, rtype, names, s.value >= key, s.value < prefix_upper_bound(key)
        )
    if p.kind is Kind.DATE:
        assert isinstance(v, DateValue)
        d = date_index.c
        return _in_index(
            date_index, rtype, [p.name], _date_condition(d.low, d.high, v.prefix, v.range)
        )
    assert isinstance(v, ReferenceValue)
    r = reference_index.c
    conds = [r.target_id == v.id]
    if v.type is not None:
        conds.append(r.target_type == v.type)
    return _in_index(reference_index, rtype, [p.name], *conds)


def _last_updated_condition(v: DateValue) -> ColumnElement[bool]:
    """``_lastUpdated`` on the resource row: an instant, compared at whole seconds."""
    col = resources.c.last_updated
    s_low, s_high = v.range
    low = datetime.fromtimestamp(s_low, UTC)
    after_high = datetime.fromtimestamp(s_high, UTC) + timedelta(seconds=1)
    within = and_(col >= low, col < after_high)
    prefix = v.prefix
    if prefix is DatePrefix.EQ:
        return within
    if prefix is DatePrefix.NE:
        return not_(within)
    if prefix in (DatePrefix.GT, DatePrefix.SA):
        return col >= after_high
    if prefix in (DatePrefix.LT, DatePrefix.EB):
        return col < low
    if prefix is DatePrefix.GE:
        return col >= low
    return col < after_high  # LE


def where_clauses(q: Query, where: Filter | None = None) -> list[ColumnElement[bool]]:
    """The WHERE of ``q`` on the ``resources`` table, plus the caller's filter."""
    c = resources.c
    clauses: list[ColumnElement[bool]] = [c.resource_type == q.resource_type]
    if q.ids:
        clauses.append(c.id.in_(sorted(set(q.ids))))
    if q.active_only:
        clauses.append(c.active.is_(True))
    for criterion in q.criteria:
        p = q.param(criterion.param)
        ors = [_value_condition(q.resource_type, p, v) for v in criterion.values]
        clauses.append(ors[0] if len(ors) == 1 else or_(*ors))
    clauses.extend(_last_updated_condition(v) for v in q.last_updated)
    if where is not None:
        clauses.append(where(resources))
    return clauses or [true()]


def order_by(q: Query) -> list[ColumnElement[object]]:
    c = resources.c
    if q.sort is Sort.LAST_UPDATED:
        return [c.last_updated, c.id]
    if q.sort is Sort.LAST_UPDATED_DESC:
        return [c.last_updated.desc(), c.id]
    return [c.id]


def keys_statement(q: Query, where: Filter | None = None) -> Select[tuple[str, str, int]]:
    """The page of (type, id, version) ``q`` selects, in order."""
    c = resources.c
    return (
        select(c.resource_type, c.id, c.version_id)
        .where(*where_clauses(q, where))
        .order_by(*order_by(q))
        .limit(q.count)
        .offset(q.offset)
    )
