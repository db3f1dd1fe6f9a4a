"""The demo area's consent directives: a handful of objections, explicit consents and
national data opt-outs, recorded by an organisation that holds a record of each person,
so that `access explain` and the FHIR API show them at work."""

from __future__ import annotations

from sqlalchemy import func, select

from joinedup.access.consent_cli import consent_from_options
from joinedup.access.consent_store import StoredConsent, change_event
from joinedup.access.models import ConsentRow
from joinedup.access.purposes import Purpose
from joinedup.audit.changes import local_actor
from joinedup.people.models import PersonRecord
from joinedup.services import Services

RECORDED_BY = "system/joinedup-demo"
DIRECTIVES: tuple[tuple[str, str | None, str | None, str | None], ...] = (
    # (kind, to organisation, category, agreement)
    ("objection", "WPOLICE", None, None),
    ("objection", None, "mental-health", None),
    ("explicit-consent", "WCARERS", None, None),
    ("explicit-consent", None, None, "homeless-outreach"),
    ("national-opt-out", None, None, None),
    ("national-opt-out", None, None, None),
)


def record_demo_consents(svc: Services) -> list[tuple[StoredConsent, str]]:
    """Record the demo's directives once (a database that has them is left alone).
    Returns each directive with the organisation that recorded it."""
    with svc.db.session() as s:
        if s.scalar(select(func.count()).select_from(ConsentRow)
                    .where(ConsentRow.recorded_by == RECORDED_BY)):
            return []
        orgs = func.count(func.distinct(PersonRecord.org_code))
        # People known to several organisations, the best-connected first (deterministic).
        persons = s.scalars(
            select(PersonRecord.person_id)
            .group_by(PersonRecord.person_id)
            .having(orgs >= 2)
            .order_by(orgs.desc(), PersonRecord.person_id)
            .limit(len(DIRECTIVES) + 1)
        ).all()
        # The first is the one `demo up`'s scripted reads look at: leave it without
        # directives so those reads show the plain case.
        chosen = persons[1:]
        records = {
            p: sorted(s.execute(
                select(PersonRecord.org_code, PersonRecord.record_id)
                .where(PersonRecord.person_id == p)
            ).all())
            for p in chosen
        }
    orgs_known = [o["code"] for o in svc.registry.list_orgs()]
    agreements = svc.access.agreement_ids()
    done = []
    for person, (kind, to_org, category, agreement) in zip(chosen, DIRECTIVES, strict=False):
        if agreement is not None and agreement not in agreements:
            continue
        org, ref = records[person][0]
        resource = consent_from_options(ref, kind, to_org, category, agreement, None, None)
        stored = svc.consents.create(
            resource, recorded_by_org=org, recorded_by=RECORDED_BY,
            known_orgs=orgs_known, known_agreements=agreements, holder_required=True,
        )
        svc.consents.audited(svc.audit.append, stored, change_event(
            stored, local_actor(org), "created", purpose=Purpose.ADMINISTRATION))
        done.append((stored, org))
    return done
