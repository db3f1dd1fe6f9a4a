"""``AccessService``: the decision point bound to the configured agreements, the
registry, the records and the person index, for the partner API.

For one token and one person it gives a :class:`PersonAccess`: every decision
about that person, the SQL filter that lets through exactly the rows those
decisions allow (or allow to be marked as withheld), and the minimiser. A
route then reads with the filter in the query, minimises what comes back, and
records what it served with :class:`Served`, whose events are written to the
audit log before the answer goes out.

Agreements are YAML files in ``Settings.effective_agreements_dir``, loaded
and compiled on first use and again each day (agreements start and end on
dates) or on :meth:`AccessService.reload`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Connection,
    Table,
    and_,
    bindparam,
    false,
    literal_column,
    or_,
    select,
)

from joinedup.access.consent import PersonConsents
from joinedup.access.consent_store import directives_and_declarations, person_context
from joinedup.access.decisions import (
    Action,
    Decision,
    DecisionSummary,
    Requester,
    summarise,
)
from joinedup.access.engine import DecisionPoint, PersonDecisions
from joinedup.access.explain import Explanation, explain
from joinedup.access.loader import load_agreement_files
from joinedup.access.minimise import AsStored, apply_decisions, serve_plan
from joinedup.access.purposes import Purpose
from joinedup.access.read_cache import Answer, PersonEntry, ReadCache, RequesterContext
from joinedup.access.relationships import Relationships
from joinedup.access.world import (
    EVIDENCE_TYPES,
    RECENT_DAYS,
    Who,
    relationships_from,
    requester_for,
)
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, NotFound, Unavailable, UserError
from joinedup.labels import DataCategory, Sensitivity
from joinedup.logs import get_logger
from joinedup.orgs.registry import Registry
from joinedup.orgs.vocab import OrgKind, ProfessionalRole
from joinedup.people.index import PersonIndex
from joinedup.people.models import Person, PersonRecord
from joinedup.records.search import Filter
from joinedup.records.store import RecordStore, StoredResource

log = get_logger("joinedup.access")


def _visible_rows(
    decisions: Mapping[tuple[str, DataCategory, Sensitivity], Decision],
) -> dict[str, dict[frozenset[str], set[str]]]:
    """owner -> {sensitivities -> categories} of rows the requester gets something of:
    permitted, or denied with permission to mark it withheld (a REDACTED stub)."""
    shown: dict[tuple[str, str], set[str]] = {}
    for (owner, category, sensitivity), d in decisions.items():
        if d.permitted or d.obligations.mark_withheld:
            shown.setdefault((owner, category.value), set()).add(sensitivity.value)
    grouped: dict[str, dict[frozenset[str], set[str]]] = {}
    for (owner, code), levels in shown.items():
        grouped.setdefault(owner, {}).setdefault(frozenset(levels), set()).add(code)
    return grouped


class Visibility:
    """owner -> {sensitivities -> categories} a requester gets something of (see
    ``_visible_rows``), and its SQL condition per table, built once: building it
    costs more than running the query it goes into."""

    __slots__ = ("_conditions", "filter", "rows")

    def __init__(self, rows: dict[str, dict[frozenset[str], set[str]]]) -> None:
        self.rows = rows
        self._conditions: dict[Table, ColumnElement[bool]] = {}
        self.filter: Filter = self.condition if rows else _nothing
        """:meth:`condition` as one long-lived object (bound methods are made afresh
        on each access), so a store can keep the statement built with it."""

    def condition(self, table: Table) -> ColumnElement[bool]:
        """(organisation, category, sensitivity) is one the requester may see."""
        found = self._conditions.get(table)
        if found is None:
            c = table.c
            found = or_(*(
                and_(_is(c.org_code, [owner]), or_(*(
                    and_(_is(c.category, cats), _is(c.sensitivity, levels))
                    for levels, cats in sorted(by.items(), key=lambda kv: sorted(kv[0]))
                )))
                for owner, by in sorted(self.rows.items())
            ))
            self._conditions[table] = found
        return found


_CODE = re.compile(r"[A-Za-z0-9._-]{1,64}")
"""What organisation, category and sensitivity codes look like: nothing to quote."""


def _is(column: ColumnElement[str], values: Iterable[str]) -> ColumnElement[bool]:
    """``column`` is one of ``values``, written into the SQL text when every value is
    a plain code (no quote, no backslash, nothing to escape), else as bound parameters.

    As bound parameters, a table's ~60 codes were expanded into the statement's text
    on every execution and sent as ~60 parameters, which cost more CPU than the rest
    of the records query; as text the statement compiles once and stays prepared."""
    codes = sorted(set(values))
    if all(_CODE.fullmatch(v) for v in codes):
        if len(codes) == 1:
            return column == literal_column(f"'{codes[0]}'")
        return column.in_([literal_column(f"'{v}'") for v in codes])
    return column.in_(codes)


@dataclass(frozen=True)
class PersonAccess:
    """One requester's access to one person's records."""

    person_id: str
    patient_ids: tuple[str, ...]
    """Ids of every Patient record linked to the person (any organisation)."""
    decisions: PersonDecisions = field(repr=False)
    visible: Visibility | None = field(default=None, repr=False, compare=False)
    """The rows the decisions let through, when already worked out (the decision cache)."""

    def where(self) -> Filter:
        """Rows about this person the decisions let through, as one SQL condition
        on (subject, organisation, category, sensitivity)."""
        visible = self.visible or Visibility(_visible_rows(self.decisions.decisions))
        patients = sorted(self.patient_ids)

        def condition(table: Table) -> ColumnElement[bool]:
            if not visible.rows or not patients:
                return false()
            return and_(table.c.subject_id.in_(patients), visible.condition(table))

        return condition

    def visible_rows(self) -> Filter:
        """The part of :meth:`where` about (organisation, category, sensitivity), for
        a read already restricted to :attr:`patient_ids` (``RecordStore.by_subject_on``).
        With a cached decision table it is the same object on every request
        (``shared_where``)."""
        visible = self.visible or Visibility(_visible_rows(self.decisions.decisions))
        return visible.filter

    def decisions_for(self, stored: StoredResource) -> Decision:
        return self.decisions.decision(
            stored.org_code, DataCategory(stored.category), Sensitivity(stored.sensitivity)
        )

    def minimise(self, stored: StoredResource) -> dict[str, Any] | None:
        owner = stored.org_code
        return apply_decisions(
            stored.resource, lambda c, s: self.decisions.decision(owner, c, s)
        )

    def serve_plan(self, stored: StoredResource) -> dict[str, Any] | AsStored | None:
        """:meth:`minimise` without a copy when none is needed: ``AS_STORED`` means
        the stored JSON text (``stored.body``) is the answer as it is."""
        owner = stored.org_code
        return serve_plan(stored.resource, lambda c, s: self.decisions.decision(owner, c, s))


def _still_valid(context: RequesterContext, today: date, now: datetime) -> bool:
    """A kept requester context stands on its day, until its first declaration expires."""
    return context.today == today and (context.until is None or now < context.until)


def _rows_key(access: PersonAccess) -> Hashable:
    """The rows a person's decisions let through, as a value (for keeping the records
    read with them when the decision table is not a shared one)."""
    rows = _visible_rows(access.decisions.decisions)
    return tuple(sorted(
        (owner, tuple(sorted((tuple(sorted(levels)), tuple(sorted(cats)))
                             for levels, cats in by.items())))
        for owner, by in rows.items()
    ))


def _nothing(table: Table) -> ColumnElement[bool]:
    return false()


def union_filter(accesses: Sequence[PersonAccess]) -> Filter:
    """Rows any of these persons' decisions let through (a search across persons)."""
    filters = [a.where() for a in accesses]

    def condition(table: Table) -> ColumnElement[bool]:
        if not filters:
            return false()
        return or_(*(f(table) for f in filters))

    return condition


def requester_identity(token: AccessToken) -> tuple[str, ProfessionalRole]:
    """Record reads act for a practitioner in a role; a token without one reads nothing.
    Refused the same way whatever is asked, so it reveals nothing about the data."""
    if not token.practitioner or not token.role:
        raise Forbidden("reading care records needs a token for a practitioner with a role")
    try:
        return token.practitioner, ProfessionalRole(token.role)
    except ValueError:
        raise Forbidden("the token's role is not a professional role") from None


class AccessService:
    def __init__(
        self,
        agreements_dir: Path,
        registry: Registry,
        records: RecordStore,
        people: PersonIndex,
        *,
        today: Callable[[], date] = date.today,
        recent_days: int = RECENT_DAYS,
        read_cache: ReadCache | None = None,
    ) -> None:
        self.agreements_dir = agreements_dir
        self.read_cache = read_cache
        """What ``Patient/$everything`` reads, kept across requests (PostgreSQL only)."""
        self._registry = registry
        self._records = records
        self._people = people
        self._today = today
        self.recent_days = recent_days
        self._lock = threading.Lock()
        self._compiled: DecisionPoint | None = None
        self._cache: _DecisionCache | None = None
        self._agreement_ids: frozenset[str] = frozenset()

    # -- the compiled agreements ---------------------------------------------------
    def point(self) -> DecisionPoint:
        """The decision point for today, compiled on first use each day."""
        today = self._today()
        compiled = self._compiled
        if compiled is not None and compiled.today == today:
            return compiled
        with self._lock:
            if self._compiled is None or self._compiled.today != today:
                self._compiled = self._compile(today)
            return self._compiled

    def reload(self) -> None:
        """Drop the compiled agreements (after a change); the next request recompiles."""
        with self._lock:
            self._compiled = None

    def _compile(self, today: date) -> DecisionPoint:
        organisations = {o["code"]: OrgKind(o["kind"]) for o in self._registry.list_orgs()}
        paths = sorted(self.agreements_dir.glob("*.yaml")) if self.agreements_dir.is_dir() else []
        try:
            # No ``today`` here: an agreement past its end is refused when an operator
            # checks or applies it (``joinedup agreements check``), but one that ends
            # while the service runs only stops granting (``DecisionPoint`` compiles the
            # agreements in force on ``today``); refusing the whole set at midnight would
            # stop every read under every other agreement.
            agreements = load_agreement_files(paths, known_orgs=organisations)
        except UserError as exc:  # a bad file is the operator's problem, not the caller's
            raise Unavailable(
                "the data sharing agreements cannot be loaded; the operator can run "
                "`joinedup agreements check` to see why"
            ) from exc
        self._agreement_ids = frozenset(a.id for a in agreements)
        ended = sorted(f"{a.id} v{a.version}" for a in agreements
                       if a.end is not None and a.end < today)
        if ended:  # agreement ids and dates only: no personal data
            log.warning("agreements_ended", agreements=ended, today=today.isoformat(),
                        hint="retire them: they grant nothing since their end date")
        return DecisionPoint(agreements, organisations, today)

    def agreement_ids(self) -> frozenset[str]:
        """Ids of every agreement loaded (in force or not), for checking references to them."""
        self.point()
        return self._agreement_ids

    # -- one person ----------------------------------------------------------------
    def for_patient(
        self, token: AccessToken, patient_id: str, action: Action = Action.READ
    ) -> PersonAccess | None:
        """The requester's access to the person behind ``Patient/<patient_id>``,
        or None if the person index does not know that record."""
        with self._records.read_connection() as conn:
            return self.for_patient_on(conn, token, patient_id, action)

    def for_patient_on(
        self, conn: Connection, token: AccessToken, patient_id: str, action: Action = Action.READ
    ) -> PersonAccess | None:
        """:meth:`for_patient` inside the caller's connection: two statements (the
        person with their Patient records; the relationship evidence)."""
        found = _person_and_patients(conn, f"Patient/{patient_id}")
        if found is None:
            return None
        person_id, patients = found
        if not person_id:  # a merged person (records are moved on merge, so rare)
            try:
                view = self._people.person(self._people.person_of(f"Patient/{patient_id}"))
            except NotFound:
                return None
            person_id = view.person_id
            patients = tuple(sorted(
                ref.split("/", 1)[1] for refs in view.records.values() for ref in refs
                if ref.startswith("Patient/")
            ))
        return self._access(conn, token, person_id, patients, action)

    def for_patients(
        self, token: AccessToken, patient_ids: Iterable[str], action: Action = Action.SEARCH
    ) -> list[PersonAccess]:
        """One PersonAccess per distinct person behind these Patient ids."""
        seen: dict[str, PersonAccess] = {}
        with self._records.read_connection() as conn:
            for pid in patient_ids:
                if any(pid in a.patient_ids for a in seen.values()):
                    continue
                found = self.for_patient_on(conn, token, pid, action)
                if found is not None:
                    seen.setdefault(found.person_id, found)
        return list(seen.values())

    def _access(
        self,
        conn: Connection,
        token: AccessToken,
        person_id: str,
        patients: tuple[str, ...],
        action: Action,
    ) -> PersonAccess:
        practitioner, role = requester_identity(token)
        point = self.point()
        requester = requester_for(
            org=token.org, practitioner=practitioner, role=role, purpose=token.purpose,
            person=person_id, reason=token.reason, action=action,
        )
        evidence = self._records.by_subject_on(conn, patients, types=EVIDENCE_TYPES)
        # Read afresh on every request (no cache), so a new directive or declaration
        # takes effect on the next read in every worker.
        consents, declared = directives_and_declarations(
            conn, person_id, patients, org=token.org, practitioner=practitioner,
            today=point.today,
        )
        relationships = relationships_from(
            (s.resource for s in evidence),
            Who(token.org, practitioner, token.team),
            point.today,
            recent_days=self.recent_days,
            declared=declared,
        )
        return self._person_access(point, requester, person_id, patients, consents,
                                   relationships)

    def everything(
        self,
        token: AccessToken,
        patient_id: str,
        answer: Callable[[PersonAccess, Sequence[StoredResource]], Answer],
        answer_key: Hashable,
    ) -> tuple[str, Answer] | None:
        """``Patient/$everything``: (person id, what to serve) for the person behind
        ``Patient/<patient_id>``, or None if the person index does not know it.

        ``answer`` turns the records the decisions let through into the Bundle
        entries; ``answer_key`` is what else they depend on (the base URL). With a
        read cache (:mod:`joinedup.access.read_cache`) the database is read only for
        what is not kept; the decision is made afresh on every call either way."""
        cache = self.read_cache
        if cache is None:
            return self._everything_uncached(token, patient_id, answer)
        practitioner, role = requester_identity(token)
        point = self.point()
        ticket = cache.ticket()
        entry = cache.get(patient_id) if ticket is not None else None
        with ExitStack() as stack:
            opened: list[Connection] = []

            def conn() -> Connection:
                if not opened:
                    opened.append(stack.enter_context(self._records.read_connection()))
                return opened[0]

            if entry is None:
                if cache.unknown(patient_id):  # no SQL, as for a known one kept
                    return None
                found = _person_and_patients(conn(), f"Patient/{patient_id}")
                if found is None:
                    cache.put_unknown(ticket, patient_id)
                    return None
                person_id, patients = found
                if not person_id:  # merged away (rare): the uncached path asks the index
                    return self._everything_uncached(token, patient_id, answer)
                evidence = self._records.by_subject_on(conn(), patients, types=EVIDENCE_TYPES)
                entry = PersonEntry(patient_id, person_id, patients,
                                    tuple(s.resource for s in evidence))
                cache.put(ticket, entry)
            who = Who(token.org, practitioner, token.team)
            context = entry.contexts.get(who)
            now = datetime.now(UTC)
            if context is None or not _still_valid(context, point.today, now):
                consents, declared, until = person_context(
                    conn(), entry.person_id, entry.patients, org=token.org,
                    practitioner=practitioner, today=point.today, now=now,
                )
                relationships = relationships_from(
                    entry.evidence, who, point.today, recent_days=self.recent_days,
                    declared=declared,
                )
                context = RequesterContext(consents, declared, relationships, point.today, until)
                cache.add_context(ticket, entry, who, context)
            access = self._cached_read_access(point, token, practitioner, role, entry, context)
            visible = access.visible
            if visible is not None:
                kept = entry.answers.get((visible, answer_key))
                if kept is not None:
                    return entry.person_id, kept
            records_key: Hashable = visible if visible is not None else _rows_key(access)
            records = entry.records.get(records_key)
            if records is None:
                records = tuple(self._records.by_subject_on(
                    conn(), entry.patients, where=access.visible_rows(),
                    shared_where=visible is not None,
                ))
                cache.add_records(ticket, entry, records_key, records)
        served = answer(access, records)
        if visible is not None:
            cache.add_answer(ticket, entry, (visible, answer_key), served)
        return entry.person_id, served

    def everything_in_memory(
        self, token: AccessToken, patient_id: str, answer_key: Hashable, *, count: bool = True
    ) -> tuple[str, Answer] | None:
        """:meth:`everything` when the read cache holds the whole answer for this
        requester (no I/O: cheap enough for the event loop), else None (ask
        :meth:`everything`). Decides afresh either way. ``count``: add a hit to the
        cache's count (a caller that may still hand the request on counts it itself,
        once it serves the answer)."""
        cache = self.read_cache
        if cache is None:
            return None
        point = self._compiled
        if point is None or point.today != self._today():
            return None  # compiling reads files and the registry: not in the event loop
        entry = cache.get(patient_id, count=False)
        if entry is None:
            return None
        practitioner, role = requester_identity(token)
        context = entry.contexts.get(Who(token.org, practitioner, token.team))
        if context is None or not _still_valid(context, point.today, datetime.now(UTC)):
            return None
        access = self._cached_read_access(point, token, practitioner, role, entry, context)
        if access.visible is None:
            return None
        kept = entry.answers.get((access.visible, answer_key))
        if kept is None:
            return None
        if count:
            cache.hit()
        return entry.person_id, kept

    def _everything_uncached(
        self,
        token: AccessToken,
        patient_id: str,
        answer: Callable[[PersonAccess, Sequence[StoredResource]], Answer],
    ) -> tuple[str, Answer] | None:
        with self._records.read_connection() as conn:
            access = self.for_patient_on(conn, token, patient_id, Action.READ)
            if access is None:
                return None
            found = self._records.by_subject_on(
                conn, access.patient_ids, where=access.visible_rows(),
                shared_where=access.visible is not None,
            )
        return access.person_id, answer(access, found)

    def _cached_read_access(
        self,
        point: DecisionPoint,
        token: AccessToken,
        practitioner: str,
        role: ProfessionalRole,
        entry: PersonEntry,
        context: RequesterContext,
    ) -> PersonAccess:
        """The read decisions for ``token``'s requester about a cached person, decided
        afresh from the cached inputs."""
        requester = requester_for(
            org=token.org, practitioner=practitioner, role=role, purpose=token.purpose,
            person=entry.person_id, reason=token.reason, action=Action.READ,
        )
        return self._person_access(
            point, requester, entry.person_id, entry.patients, context.consents,
            context.relationships,
        )

    def _person_access(
        self,
        point: DecisionPoint,
        requester: Requester,
        person_id: str,
        patients: tuple[str, ...],
        consents: PersonConsents,
        relationships: Relationships,
    ) -> PersonAccess:
        decided = self._decided(point, requester, consents, relationships)
        if decided is None:
            decisions = point.decide_for_person(requester, consents, relationships)
            return PersonAccess(person_id, patients, decisions)
        table, visible = decided
        decisions = PersonDecisions(point, requester, consents, relationships, table)
        return PersonAccess(person_id, patients, decisions, visible)

    def explain(self, token: AccessToken, person: str) -> Explanation:
        """Every decision ``token``'s requester gets about ``person`` (a person index id
        or a Patient id), made exactly as a read makes them, for each organisation
        holding a record of the person. ``NotFound`` for an unknown person."""
        try:
            view = self._people.person(person)
        except NotFound:
            try:
                view = self._people.person(
                    self._people.person_of(f"Patient/{person.removeprefix('Patient/')}"))
            except NotFound:
                raise NotFound(f"no person or Patient {person!r} is known") from None
        patients = tuple(sorted(
            ref.split("/", 1)[1] for refs in view.records.values() for ref in refs
            if ref.startswith("Patient/")
        ))
        with self._records.read_connection() as conn:
            access = self._access(conn, token, view.person_id, patients, Action.READ)
        return explain(access.decisions, view.records)

    def _decided(
        self,
        point: DecisionPoint,
        requester: Requester,
        consents: PersonConsents,
        relationships: Relationships,
    ) -> tuple[Mapping[_Key, Decision], Visibility] | None:
        """The decision table for a requester and a person without directives, shared
        by every such person with the same relationships (the decision point reads
        nothing else of them), and the rows it lets through. None for a person with
        directives: decided afresh each time."""
        if consents.has_objections or consents.opted_out is not None or consents.consents:
            return None
        key = (requester.org, requester.role, requester.purpose,
               requester.break_glass_reason, relationships)
        cache = self._cache
        if cache is None or cache.point is not point:
            cache = self._cache = _DecisionCache(point)
        hit = cache.tables.get(key)
        if hit is None:
            decided = point.decide_for_person(requester, consents, relationships)
            table = MappingProxyType(dict(decided.decisions))
            hit = (table, Visibility(_visible_rows(table)))
            if len(cache.tables) >= _CACHE_SIZE:
                cache.tables.clear()
            cache.tables[key] = hit
        return hit


_Key = tuple[str, DataCategory, Sensitivity]
_CACHE_SIZE = 4096
"""Decision tables kept per compiled decision point (one per requester, purpose and
relationship set in use); a full cache is emptied, not evicted piecemeal."""


@dataclass
class _DecisionCache:
    """Decision tables for one compiled decision point: replaced with the point
    (each day, or on reload), so a table never outlives the agreements it came from."""

    point: DecisionPoint
    tables: dict[tuple[Any, ...], tuple[Mapping[_Key, Decision], Visibility]] = field(
        default_factory=dict
    )


def _person_and_patients_select() -> Any:
    mine = PersonRecord.__table__.alias("mine")
    linked = PersonRecord.__table__.alias("linked")
    person = Person.__table__
    return (
        select(person.c.id, person.c.state, person.c.merged_into, linked.c.record_id)
        .select_from(
            mine.join(person, person.c.id == mine.c.person_id)
            .outerjoin(linked, linked.c.person_id == person.c.id)
        )
        .where(mine.c.record_id == bindparam("record_id"))
    )


_PERSON_AND_PATIENTS = _person_and_patients_select()
"""Built once: building a statement with aliases costs more than running it."""


def _person_and_patients(conn: Connection, record_ref: str) -> tuple[str, tuple[str, ...]] | None:
    """(person id, ids of the person's Patient records) for a linked record, in one
    statement; None if the person index does not know the record; ("", ()) if the
    record's person has been merged away (the caller asks the person index)."""
    rows = conn.execute(_PERSON_AND_PATIENTS, {"record_id": record_ref}).all()
    if not rows:
        return None
    person_id, state, merged_into = rows[0][0], rows[0][1], rows[0][2]
    if state == "merged" and merged_into:
        return "", ()
    patients = tuple(sorted(
        ref.split("/", 1)[1] for *_, ref in rows if ref is not None and ref.startswith("Patient/")
    ))
    return person_id, patients


NOTHING_SERVED = "nothing-served"
"""Reason on a denial event: nothing asked for exists or is permitted (the two are
not told apart here, as they are not to the caller)."""


def served_key(stored: StoredResource) -> tuple[str, str, str]:
    """What a read's audit event files the decision that served ``stored`` under: its
    owner, data category and sensitivity (one decision each)."""
    return (stored.org_code, stored.category, stored.sensitivity)


@dataclass
class Served:
    """What one request served, for its audit events. Ids and codes only."""

    token: AccessToken
    action: AuditAction
    request_id: str | None
    asked: str
    """What was asked for: ``Patient/<id>``, ``Patient/<id>/$everything``, ``Observation?``."""
    persons: set[str] = field(default_factory=set)
    resources: list[str] = field(default_factory=list)
    decisions: dict[tuple[str, str, str], Decision] = field(default_factory=dict)
    redacted: int = 0
    considered: set[str] = field(default_factory=set)
    """Persons whose records were decided on (served or not)."""

    def add(
        self,
        access: PersonAccess,
        stored: StoredResource,
        result: dict[str, Any],
        *,
        reference: str | None = None,
    ) -> None:
        """``reference``: what to list as served, if not ``Type/id`` (a version)."""
        self.summary = None
        self.persons.add(access.person_id)
        self.resources.append(reference or stored.reference)
        decision = access.decisions_for(stored)
        self.decisions[served_key(stored)] = decision
        if not decision.permitted:
            self.redacted += 1

    summary: DecisionSummary | None = None
    """``decisions`` summarised, when they came whole from one answer that carries its
    summary (``add_answer``); None: summarised when the events are built."""

    def add_answer(
        self, person_id: str, resources: Sequence[str],
        decisions: Mapping[tuple[str, str, str], Decision], redacted: int,
        summary: DecisionSummary,
    ) -> None:
        """What one prepared answer served (``summary``: ``summarise(decisions)``)."""
        self.summary = summary if not self.decisions else None
        self.persons.add(person_id)
        self.resources.extend(resources)
        self.decisions.update(decisions)
        self.redacted += redacted

    def events(self) -> list[AuditEvent]:
        """The read (or the denial) and, under break-glass, the break-glass event."""
        token = self.token
        actor = Actor(token.org, token.client_id, token.practitioner, token.role)
        glass = token.purpose is Purpose.EMERGENCY
        reason = token.reason if glass else None
        summary = self.summary or summarise(self.decisions.values())
        reasons, agreements, obligations = summary.reasons, summary.agreements, summary.obligations
        detail = {"asked": self.asked, "agreements": agreements, "redacted": self.redacted,
                  "served": len(self.resources)}
        common: dict[str, Any] = {
            "actor": actor, "purpose": token.purpose, "request_id": self.request_id,
            "break_glass": glass, "break_glass_reason": reason,
        }
        served = bool(self.resources)
        if served:
            main = AuditEvent(
                action=self.action, outcome=Outcome.SUCCESS, persons=tuple(self.persons),
                resources=tuple(self.resources), reasons=tuple(reasons),
                obligations=obligations, detail=detail, **common,
            )
        else:
            main = AuditEvent(
                action=AuditAction.ACCESS_DECISION, outcome=Outcome.DENY,
                persons=tuple(self.considered), reasons=(NOTHING_SERVED,),
                detail=detail, **common,
            )
        events = [main]
        if glass:
            events.append(AuditEvent(
                action=AuditAction.BREAK_GLASS,
                outcome=Outcome.PERMIT if served else Outcome.DENY,
                persons=tuple(self.persons | self.considered), reasons=tuple(reasons),
                obligations=obligations, detail=detail, **common,
            ))
        return events
