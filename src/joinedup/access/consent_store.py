"""The consent store: a person's consent directives as FHIR R4 Consent, in the database.

A directive is recorded against one of the person's **Patient records** (the
``Consent.patient`` reference), by an organisation acting for the person, and
applies to the person as a whole: the decision point is handed the
directives of every Patient record linked to the person (see
``directives_and_declarations``), so a directive follows its record through
merges and unmerges.

What is stored is joinedup's reading of the Consent (``consent_fhir.to_fhir``
of the parsed directive, with ``organization`` = the recording organisation
and ``meta``), not the client's JSON: what is shown is what is enforced.

Nothing here caches: every decision reads the directives in effect from the
database (one statement together with the self-declared relationships), so a
change takes effect on the next request in every worker process.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from typing import Any

from sqlalchemy import (
    Connection,
    Date,
    String,
    and_,
    bindparam,
    cast,
    literal,
    null,
    select,
    union_all,
)

from joinedup.access.consent import (
    ConsentDirective,
    DirectiveKind,
    DirectiveStatus,
    PersonConsents,
)
from joinedup.access.consent_fhir import ODS_SYSTEM, ConsentError, from_fhir, named, to_fhir
from joinedup.access.models import ConsentRow, DeclaredRelationshipRow
from joinedup.access.purposes import Purpose
from joinedup.access.relationships import Relationship, RelationshipKind
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome
from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.labels import DataCategory
from joinedup.people.models import Person, PersonRecord
from joinedup.storage.base import utcnow
from joinedup.storage.engine import Database

MAX_DECLARATION_HOURS = 7 * 24
"""A self-declared relationship lasts at most a week; it is declared again if still true."""
DEFAULT_DECLARATION_HOURS = 24


@dataclass(frozen=True)
class StoredConsent:
    directive: ConsentDirective
    """``person`` is the Patient record id the directive was made against."""
    person_id: str
    """The person index's person the Patient record is linked to (when read)."""
    recorded_by_org: str
    recorded_by: str
    version: int
    updated_at: datetime
    resource: dict[str, Any]

    def as_dict(self) -> dict[str, Any]:
        d = self.directive
        return {
            "id": d.id,
            "patient": d.person,
            "person": self.person_id,
            "kind": d.kind.value,
            "status": d.status.value,
            "organisation": d.organisation,
            "category": None if d.category is None else d.category.value,
            "agreement": d.agreement_id,
            "recorded": d.recorded.isoformat(),
            "start": None if d.start is None else d.start.isoformat(),
            "end": None if d.end is None else d.end.isoformat(),
            "recorded_by_org": self.recorded_by_org,
            "recorded_by": self.recorded_by,
            "version": self.version,
        }


@dataclass(frozen=True)
class Declaration:
    id: str
    patient_id: str
    person_id: str
    org_code: str
    practitioner: str
    reason: str
    declared_at: datetime
    expires_at: datetime

    def as_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "patient": self.patient_id,
            "person": self.person_id,
            "org": self.org_code,
            "practitioner": self.practitioner,
            "reason": self.reason,
            "declared_at": self.declared_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
        }


def _directive(row: ConsentRow) -> ConsentDirective:
    return ConsentDirective(
        id=row.id,
        person=row.patient_id,
        kind=DirectiveKind(row.kind),
        recorded=row.recorded,
        status=DirectiveStatus(row.status),
        organisation=row.organisation,
        category=None if row.category is None else DataCategory(row.category),
        agreement_id=row.agreement_id,
        start=row.start,
        end=row.end,
    )


def _fhir_resource(d: ConsentDirective, by_org: str, version: int, at: datetime) -> dict[str, Any]:
    resource = to_fhir(d)
    resource["organization"] = [{"identifier": {"system": ODS_SYSTEM, "value": by_org}}]
    resource["meta"] = {
        "versionId": str(version),
        "lastUpdated": at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    return {"resourceType": "Consent", "id": d.id, "meta": resource.pop("meta"),
            **{k: v for k, v in resource.items() if k not in ("resourceType", "id")}}


class ConsentStore:
    """Consent directives and self-declared relationships, on the configured database."""

    def __init__(self, db: Database, *, today: Callable[[], date] = date.today) -> None:
        self._db = db
        self._today = today

    # -- the person index ----------------------------------------------------
    def person_of_patient(self, patient_id: str) -> tuple[str, dict[str, list[str]]] | None:
        """(person id, org -> Patient ids) of the person a Patient record is linked to."""
        with self._db.session() as s:
            rec = s.get(PersonRecord, f"Patient/{patient_id}")
            if rec is None:
                return None
            person = s.get(Person, rec.person_id)
            while person is not None and person.state == "merged" and person.merged_into:
                person = s.get(Person, person.merged_into)
            if person is None:
                return None
            rows = s.execute(
                select(PersonRecord.org_code, PersonRecord.record_id).where(
                    PersonRecord.person_id == person.id
                )
            ).all()
        by_org: dict[str, list[str]] = {}
        for org, ref in sorted(rows):
            if ref.startswith("Patient/"):
                by_org.setdefault(org, []).append(ref.removeprefix("Patient/"))
        return person.id, by_org

    def patients_of_person(self, person_id: str) -> list[str] | None:
        """Ids of the person's Patient records; None for an unknown person."""
        with self._db.session() as s:
            person = s.get(Person, person_id)
            while person is not None and person.state == "merged" and person.merged_into:
                person = s.get(Person, person.merged_into)
            if person is None:
                return None
            refs = s.scalars(
                select(PersonRecord.record_id).where(PersonRecord.person_id == person.id)
            ).all()
        return sorted(r.removeprefix("Patient/") for r in refs if r.startswith("Patient/"))

    # -- consents --------------------------------------------------------------
    def create(
        self,
        resource: Any,
        *,
        recorded_by_org: str,
        recorded_by: str,
        known_orgs: Iterable[str],
        known_agreements: Iterable[str],
        holder_required: bool,
    ) -> StoredConsent:
        """Parse, check and store a new directive; ``ConsentError`` lists every problem.

        ``holder_required``: the recording organisation must hold a Patient record
        of the person (the partner API's rule). The answer for a Patient it does not
        hold is the one for a Patient that does not exist."""
        if not isinstance(resource, dict):
            raise ConsentError("the body must be a FHIR Consent resource (a JSON object)")
        body = dict(resource)
        problems: list[Problem] = []
        if body.get("resourceType") != "Consent":
            problems.append(Problem("must be 'Consent'", "resourceType"))
        body["resourceType"] = "Consent"
        body["id"] = str(uuid.uuid4())  # the server names what it creates (FHIR create)
        body.pop("meta", None)
        body.pop("organization", None)  # the recording organisation is the caller's
        body.setdefault("dateTime", self._today().isoformat())
        directive: ConsentDirective | None = None
        try:
            directive = from_fhir(body)
        except ConsentError as exc:
            problems += exc.problems or [Problem(exc.detail)]
        ref = (body.get("patient") or {}).get("reference") if isinstance(body.get("patient"), dict) else None
        person: tuple[str, dict[str, list[str]]] | None = None
        if isinstance(ref, str) and ref.startswith("Patient/"):
            person = self.person_of_patient(ref.removeprefix("Patient/"))
            if person is None or (holder_required and recorded_by_org not in person[1]):
                problems.append(Problem(
                    f"{ref} is not a patient {recorded_by_org} holds a record of"
                    if holder_required else f"{ref} is not in the person index",
                    "patient.reference",
                ))
        # The names are checked even when the Consent has other problems: all at once.
        named_orgs, named_agreements = named(body)
        orgs, agreements = set(known_orgs), set(known_agreements)
        problems += [Problem(f"unknown organisation {o!r}", "provision.actor")
                     for o in named_orgs if o not in orgs]
        problems += [Problem(f"unknown agreement {a!r}", "policy.uri")
                     for a in named_agreements if a not in agreements]
        if directive is not None and directive.status is not DirectiveStatus.ACTIVE:
            problems.append(Problem("a new directive must be active", "status"))
        if problems or directive is None or person is None:
            raise ConsentError("the Consent is not a directive joinedup can record", problems)
        now = utcnow()
        row = ConsentRow(
            id=directive.id,
            patient_id=directive.person,
            kind=directive.kind.value,
            status=directive.status.value,
            organisation=directive.organisation,
            category=None if directive.category is None else directive.category.value,
            agreement_id=directive.agreement_id,
            recorded=directive.recorded,
            start=directive.start,
            end=directive.end,
            recorded_by_org=recorded_by_org,
            recorded_by=recorded_by,
            version=1,
            updated_at=now,
            resource=_fhir_resource(directive, recorded_by_org, 1, now),
        )
        with self._db.session() as s:
            s.add(row)
        return self._stored(row, person[0])

    def _stored(self, row: ConsentRow, person_id: str) -> StoredConsent:
        return StoredConsent(
            _directive(row), person_id, row.recorded_by_org, row.recorded_by, row.version,
            row.updated_at, dict(row.resource),
        )

    def read(self, consent_id: str) -> StoredConsent | None:
        with self._db.session() as s:
            row = s.get(ConsentRow, consent_id)
        if row is None:
            return None
        found = self.person_of_patient(row.patient_id)
        return self._stored(row, found[0] if found else "")

    def for_patients(
        self, patient_ids: Sequence[str], *, status: DirectiveStatus | None = None
    ) -> list[StoredConsent]:
        """Directives made against any of these Patient records, oldest first."""
        if not patient_ids:
            return []
        stmt = select(ConsentRow).where(ConsentRow.patient_id.in_(sorted(set(patient_ids))))
        if status is not None:
            stmt = stmt.where(ConsentRow.status == status.value)
        with self._db.session() as s:
            rows = s.scalars(stmt.order_by(ConsentRow.recorded, ConsentRow.id)).all()
        persons: dict[str, str] = {}
        out = []
        for row in rows:
            if row.patient_id not in persons:
                found = self.person_of_patient(row.patient_id)
                persons[row.patient_id] = found[0] if found else ""
            out.append(self._stored(row, persons[row.patient_id]))
        return out

    def revoke(self, consent_id: str, *, by_org: str, by: str) -> StoredConsent:
        """Withdraw a directive (status inactive; kept, with its history in the audit log)."""
        with self._db.session() as s:
            row = s.get(ConsentRow, consent_id, with_for_update=True)
            if row is None:
                raise NotFound(f"Consent/{consent_id} is not known")
            if row.status != DirectiveStatus.ACTIVE.value:
                raise Conflict(f"Consent/{consent_id} is already withdrawn")
            now = utcnow()
            row.status = DirectiveStatus.INACTIVE.value
            row.version += 1
            row.updated_at = now
            row.resource = _fhir_resource(_directive(row), row.recorded_by_org, row.version, now)
            s.flush()
        found = self.person_of_patient(row.patient_id)
        return self._stored(row, found[0] if found else "")

    def undo(self, stored: StoredConsent, change: str) -> None:
        """Take back a change whose audit event could not be written, so that no
        change stands without its event: a creation is deleted, a withdrawal reverted."""
        with self._db.session() as s:
            row = s.get(ConsentRow, stored.directive.id, with_for_update=True)
            if row is None or row.version != stored.version:
                return  # changed again since: leave it
            if change == "created":
                s.delete(row)
            elif change == "revoked":
                row.status = DirectiveStatus.ACTIVE.value
                row.version -= 1
                row.updated_at = utcnow()
                row.resource = _fhir_resource(_directive(row), row.recorded_by_org, row.version,
                                              row.updated_at)

    def audited(self, append: Callable[[list[AuditEvent]], object], stored: StoredConsent,
                event: AuditEvent) -> None:
        """Write the change's audit event; if the log refuses it, undo the change and
        re-raise (the caller gets 503 / exit 69 and nothing changed)."""
        try:
            append([event])
        except BaseException:
            self.undo(stored, str(event.detail.get("change")))
            raise

    # -- self-declared relationships -----------------------------------------
    def declare(
        self,
        patient_id: str,
        *,
        org: str,
        practitioner: str,
        reason: str,
        hours: int = DEFAULT_DECLARATION_HOURS,
    ) -> Declaration:
        """Record that ``practitioner`` says they care for the person, and why."""
        problems = []
        if not reason or not reason.strip():
            problems.append(Problem("a self-declared relationship needs a reason", "reason"))
        elif len(reason) > 1000:
            problems.append(Problem("at most 1000 characters", "reason"))
        if not 1 <= hours <= MAX_DECLARATION_HOURS:
            problems.append(Problem(f"must be 1 to {MAX_DECLARATION_HOURS} hours", "hours"))
        if problems:  # before the lookup, so a bad request says nothing about the Patient
            raise InvalidInput("the declaration is not valid", problems)
        found = self.person_of_patient(patient_id)
        if found is None:
            raise NotFound(f"Patient/{patient_id} is not known")
        now = utcnow()
        row = DeclaredRelationshipRow(
            id=str(uuid.uuid4()), patient_id=patient_id, org_code=org,
            practitioner=practitioner, reason=reason.strip(), declared_at=now,
            expires_at=now + timedelta(hours=hours),
        )
        with self._db.session() as s:
            s.add(row)
        return Declaration(row.id, patient_id, found[0], org, practitioner, row.reason,
                           row.declared_at, row.expires_at)

    def withdraw_declaration(self, declaration_id: str) -> None:
        """Undo a declaration that turned out to give nothing (the caller then says 404)."""
        with self._db.session() as s:
            row = s.get(DeclaredRelationshipRow, declaration_id)
            if row is not None:
                s.delete(row)


def change_event(
    stored: StoredConsent,
    actor: Actor,
    change: str,
    *,
    purpose: Purpose | None = None,
    request_id: str | None = None,
) -> AuditEvent:
    """The ``consent.change`` audit event for a directive created or withdrawn: ids
    and codes only, the same from the FHIR API, the admin API and the CLI."""
    d = stored.directive
    detail = {
        "change": change, "kind": d.kind.value, "status": d.status.value,
        "version": stored.version, "organisation": d.organisation,
        "category": None if d.category is None else d.category.value,
        "agreement": d.agreement_id, "recorded_by_org": stored.recorded_by_org,
    }
    return AuditEvent(
        action=AuditAction.CONSENT_CHANGE,
        actor=actor,
        outcome=Outcome.SUCCESS,
        purpose=purpose,
        persons=(stored.person_id,) if stored.person_id else (),
        resources=(f"Consent/{d.id}", f"Patient/{d.person}"),
        request_id=request_id,
        detail={k: v for k, v in detail.items() if v is not None},
    )


# -- what the decision point reads -------------------------------------------------
_C = ConsentRow.__table__.c
_R = DeclaredRelationshipRow.__table__.c
_SELF = literal(RelationshipKind.SELF_DECLARED.value, String)


def _context_select() -> Any:
    """Directives of the person's Patient records and the requester's live declarations
    about them, as one statement (one round trip on the read path)."""
    directives = select(
        _C.id, _C.patient_id, _C.kind, _C.status, _C.organisation, _C.category,
        _C.agreement_id, _C.recorded, _C.start, _C.end, cast(null(), String).label("reason"),
        cast(null(), _R.expires_at.type).label("expires_at"),
    ).where(_C.patient_id.in_(bindparam("patients", expanding=True)))
    declared = select(
        _R.id, _R.patient_id, _SELF, literal("active", String), null(), null(), null(),
        cast(null(), Date), cast(null(), Date), cast(null(), Date), _R.reason, _R.expires_at,
    ).where(and_(
        _R.patient_id.in_(bindparam("patients_r", expanding=True)),
        _R.org_code == bindparam("org"),
        _R.practitioner == bindparam("practitioner"),
        _R.expires_at > bindparam("now"),
    ))
    return union_all(directives, declared)


_CONTEXT = _context_select()
"""Built once: building a statement costs more than running it."""


def directives_and_declarations(
    conn: Connection,
    person: str,
    patients: Sequence[str],
    *,
    org: str,
    practitioner: str,
    today: date,
    now: datetime | None = None,
) -> tuple[PersonConsents, tuple[Relationship, ...]]:
    """The person's consent summary for ``today`` and the requester's self-declared
    relationships in force, read in one statement on the caller's connection."""
    consents, declared, _until = person_context(
        conn, person, patients, org=org, practitioner=practitioner, today=today, now=now)
    return consents, declared


def person_context(
    conn: Connection,
    person: str,
    patients: Sequence[str],
    *,
    org: str,
    practitioner: str,
    today: date,
    now: datetime | None = None,
) -> tuple[PersonConsents, tuple[Relationship, ...], datetime | None]:
    """:func:`directives_and_declarations` and when the earliest declaration in it
    expires (None if there is none): until then, and on ``today``, the answer stands
    unless a row changes."""
    if not patients:
        return PersonConsents.none(person), (), None
    stamp = now or datetime.now(UTC)
    rows = conn.execute(_CONTEXT, {
        "patients": list(patients), "patients_r": list(patients), "org": org,
        "practitioner": practitioner, "now": stamp,
    }).all()
    if not rows:
        return PersonConsents.none(person), (), None
    directives: list[ConsentDirective] = []
    declared: list[Relationship] = []
    until: datetime | None = None
    for (id_, _patient, kind, status, organisation, category, agreement, recorded, start,
         end, reason, expires_at) in rows:
        if kind == RelationshipKind.SELF_DECLARED.value:
            declared.append(Relationship(RelationshipKind.SELF_DECLARED, reason))
            if expires_at is not None and (until is None or expires_at < until):
                until = expires_at
            continue
        directives.append(ConsentDirective(
            id=id_, person=person, kind=DirectiveKind(kind), recorded=_as_date(recorded),
            status=DirectiveStatus(status), organisation=organisation,
            category=None if category is None else DataCategory(category),
            agreement_id=agreement, start=_as_date(start) if start else None,
            end=_as_date(end) if end else None,
        ))
    consents = PersonConsents.of(person, directives, today) if directives else \
        PersonConsents.none(person)
    # One declaration is enough; several with different reasons would make the decision
    # cache key (the Relationships value) needlessly distinct.
    first = sorted(declared, key=lambda r: r.reason or "")[:1]
    return consents, tuple(first), until


def _as_date(value: Any) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])
