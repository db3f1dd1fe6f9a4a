"""`joinedup demo up | load | client-token`: run the demo care system end to end."""

from __future__ import annotations

import contextlib
import time
import uuid
from pathlib import Path
from typing import Annotated

import httpx
import typer
from joserfc import jwt
from rich.console import Console

from joinedup.auth.grants import ASSERTION_TYPE, TokenRequest
from joinedup.auth.permissions import Permission
from joinedup.config import Settings, load_settings
from joinedup.demo import DEFAULT_SEED
from joinedup.demo.area import build_area
from joinedup.demo.cli import app
from joinedup.demo.load import LoadSummary, client_key, load_area
from joinedup.errors import Unavailable
from joinedup.services import Services, build
from joinedup.storage.migrate import upgrade

demo_app = app
"""`joinedup demo`: the generator's commands plus up, load and client-token."""
out = Console(soft_wrap=True)


def _prepare(settings: Settings, seed: int) -> tuple[Services, LoadSummary]:
    from joinedup.audit.config import keys_dir
    from joinedup.audit.keys import AuditKeyStore

    svc = build(settings)
    upgrade(svc.db)
    svc.keys.ensure()
    AuditKeyStore(keys_dir(settings)).init()
    _install_agreements(settings)
    summary = load_area(svc, build_area(seed), settings.data_dir / "demo-clients")
    return svc, summary


def _install_agreements(settings: Settings) -> None:
    """Copy the demo area's agreements into the configured folder (never over an edited one)."""
    import shutil

    from joinedup.demo.agreements import agreement_files

    target = settings.effective_agreements_dir
    target.mkdir(parents=True, exist_ok=True)
    for path in agreement_files():
        if not (target / path.name).exists():
            shutil.copy(path, target / path.name)


@app.command("load")
def load(seed: Annotated[int, typer.Option(help="Seed of the demo area")] = DEFAULT_SEED) -> None:
    """Migrate the database and register the demo area's organisations, staff and systems."""
    svc, summary = _prepare(load_settings(), seed)
    svc.close()
    out.print(
        f"{summary.organisations} organisations, {summary.teams} teams, "
        f"{summary.practitioners} practitioners, {summary.systems} client systems "
        f"({summary.added} added now)"
    )


def _guide(svc: Services, base: str) -> str:
    def mint(client: str, purpose: str, practitioner: str | None = None) -> str:
        req = TokenRequest(purpose=purpose, practitioner=practitioner)
        return svc.tokens.mint(client_id=client, request=req).access_token

    clinician = mint("rwx-epr", "direct-care", "RWX-P001")
    admin = mint("jhub-console", "administration")
    return (
        f"joinedup is serving the Wessex demo care system at [bold]{base}[/bold]\n"
        f"API docs (OpenAPI): {base}/docs    health: {base}/health\n\n"
        "Try (tokens last 10 minutes; mint more with `joinedup token`):\n"
        f"  export ADMIN={admin}\n"
        f'  curl -s -H "Authorization: Bearer $ADMIN" {base}/admin/orgs\n'
        f'  curl -s -H "Authorization: Bearer $ADMIN" {base}/admin/orgs/RWX\n'
        f"  curl -s {base}/admin/orgs        # no token: 401 problem+json\n\n"
        f"  export CLINICIAN={clinician}\n"
        "  .venv/bin/joinedup token --org RWX --practitioner RWX-P001 --purpose direct-care\n"
        "  .venv/bin/joinedup demo client-token --client rwx-epr --practitioner RWX-P001"
        "   # real private_key_jwt\n"
        "  .venv/bin/joinedup orgs list"
    )


@app.command("up")
def up(
    seed: Annotated[int, typer.Option(help="Seed of the demo area and population")] = DEFAULT_SEED,
    people: Annotated[int, typer.Option(help="Size of the synthetic population")] = 10_000,
    serve: Annotated[bool, typer.Option(help="Start the service after loading")] = True,
) -> None:
    """Set up everything the demo needs, then serve it (what `make demo` runs)."""
    import uvicorn

    settings = load_settings()
    svc, summary = _prepare(settings, seed)
    out.print(
        f"registry: {summary.organisations} organisations, {summary.practitioners} practitioners"
    )
    exports = settings.data_dir / "demo-exports"
    _ensure_exports(exports, seed, people)
    ingest_exports(svc, exports)
    if _link_with_trained_model(settings):
        scripted_activity(settings, seed)
    _publish_documents(svc, settings, seed)
    base = f"http://{settings.host}:{settings.port}"
    _record_consents(svc)
    out.rule("joinedup demo")
    out.print(_guide(svc, base))
    out.rule()
    svc.close()
    if serve:
        uvicorn.run(
            "joinedup.api.asgi:app",
            host=settings.host,
            port=settings.port,
            access_log=False,
            log_level="warning",
        )


def _ensure_exports(folder: Path, seed: int, people: int) -> None:
    from joinedup.demo import generate_to

    if (folder / "manifest.json").exists():
        out.print(f"demo exports already in {folder}")
        return
    generate_to(folder, seed=seed, people=people)
    out.print(f"demo exports written to {folder}")


def ingest_exports(svc: Services, folder: Path) -> None:
    """Register a feed per shipped demo mapping and ingest every export file, in order."""
    import json

    from rich.table import Table

    from joinedup.audit.changes import batch_event, local_actor
    from joinedup.errors import Conflict
    from joinedup.sources.feeds import spec_from_mapping
    from joinedup.sources.mapping import bundled_mappings, demo_feed_for

    for path in bundled_mappings().values():
        with contextlib.suppress(Conflict):
            svc.ingestion.feeds.register(spec_from_mapping(path))
    manifest = json.loads((folder / "manifest.json").read_text())
    table = Table("file", "feed", "status", "read", "accepted", "rejected", "warnings")
    totals = [0, 0, 0]
    for item in manifest["files"]:
        name = demo_feed_for(item["path"])
        if name is None:
            continue
        result = svc.ingestion.ingest_file(name.split("/")[1], folder / item["path"])
        svc.audit.append([batch_event(result.event(), local_actor(result.org))])
        c = result.counts
        read, accepted, rejected = c.get("read", 0), c.get("accepted", 0), c.get("rejected", 0)
        totals = [totals[0] + read, totals[1] + accepted, totals[2] + rejected]
        table.add_row(
            item["path"],
            name,
            result.status.value,
            str(read),
            str(accepted),
            str(rejected),
            str(c.get("warnings", 0)),
        )
    out.print(table)
    out.print(
        f"ingested: read {totals[0]}, accepted {totals[1]}, rejected {totals[2]} "
        "(rejections are in quarantine: `joinedup quarantine list`)"
    )


def _link_with_trained_model(settings: Settings) -> bool:
    """First load: train the estate's model on what was ingested, then re-link with it.

    Returns whether it ran (it does nothing once a model exists)."""
    from joinedup.people.estate import rebuild, save_model, train_model
    from joinedup.people.matcher import matcher_from_file

    path = settings.effective_matching_model
    if path.exists():
        return False
    svc = build(settings)
    try:
        out.print("training the matching model on the demo's records (first run only)...")
        save_model(train_model(svc.db), path)
        report = rebuild(svc.db, matcher_from_file(path))
    finally:
        svc.close()
    out.print(
        f"person index: {report.records} records -> {report.persons_after} persons, "
        f"{report.multi_record_persons} with records from more than one source, "
        f"{report.open_reviews} pairs awaiting review"
    )
    return True


def _publish_documents(svc: Services, settings: Settings, seed: int) -> None:
    """The document master key if none exists, then the demo's documents (once). The
    services' content store opens its keys on first use, so ``svc`` sees a new key."""
    from joinedup.demo.documents import ensure_document_key, publish_demo_documents

    kid = ensure_document_key(settings)
    if kid is not None:
        out.print(f"document master key {kid} created in {settings.effective_document_keys_dir}")
    published = publish_demo_documents(svc, build_area(seed))
    out.print(f"documents (IHE MHD): {len(published)}")
    for doc, doc_id in published:
        out.print(f"  {doc.title} by {doc.org} for Patient/{doc.patient}: "
                  f"DocumentReference/{doc_id}")
    if published:
        doc, doc_id = published[0]
        out.print(
            f"  find: .venv/bin/joinedup documents find --org {doc.org} --practitioner "
            f"{doc.org}-P001 --patient {doc.patient}\n"
            f"  get:  .venv/bin/joinedup documents get {doc_id} --out var/{doc_id}.pdf "
            f"--org {doc.org} --practitioner {doc.org}-P001")


def scripted_activity(settings: Settings, seed: int) -> None:
    """A morning in Wessex: reads of one person's joined-up record, one of them break-glass,
    through the real FHIR API in-process, so the audit log and access report have content."""
    from fastapi.testclient import TestClient
    from sqlalchemy import func, select

    from joinedup.access.purposes import Purpose
    from joinedup.api.app import create_app
    from joinedup.people.models import PersonRecord

    area = build_area(seed)
    svc = build(settings)
    try:
        with svc.db.session() as s:
            orgs = func.count(func.distinct(PersonRecord.org_code))
            person = s.scalars(
                select(PersonRecord.person_id)
                .group_by(PersonRecord.person_id)
                .having(orgs >= 3)
                .order_by(orgs.desc(), PersonRecord.person_id)
                .limit(1)
            ).first()
            if person is None:
                return
            records = s.execute(
                select(PersonRecord.org_code, PersonRecord.record_id).where(
                    PersonRecord.person_id == person
                )
            ).all()
        by_org = {org: rid.removeprefix("Patient/") for org, rid in records}
        org = "RWX" if "RWX" in by_org else sorted(by_org)[0]
        patient = by_org[org]

        def staff(code: str, role: str) -> str | None:
            return next((p.id for p in area.org(code).practitioners if p.role == role), None)

        visits = [
            (org, staff(org, "clinician") or staff(org, "nurse"), Purpose.DIRECT_CARE, None),
            ("WCCASC", staff("WCCASC", "social-worker"), Purpose.CARE_COORDINATION, None),
            (
                "RWX",
                staff("RWX", "clinician"),
                Purpose.EMERGENCY,
                "Collapsed in ED, unable to give a history",
            ),
        ]
        with TestClient(create_app(svc)) as client:
            for code, practitioner, purpose, reason in visits:
                if practitioner is None:
                    continue
                token = svc.issuer.issue(
                    org=code,
                    client_id=area.org(code).system.client_id,
                    purpose=purpose,
                    scopes=frozenset({Permission.RECORDS_READ}),
                    practitioner=practitioner,
                    role=next(
                        p.role for p in area.org(code).practitioners if p.id == practitioner
                    ).value,
                    reason=reason,
                )
                client.get(
                    f"/fhir/Patient/{patient}/$everything",
                    headers={"Authorization": f"Bearer {token.access_token}"},
                )
    finally:
        svc.close()
    out.print(
        f"scripted activity: 3 reads of person {person}'s record (Patient/{patient}), "
        "one break-glass.\n  See who looked: .venv/bin/joinedup audit access-report "
        f"{person}\n  or GET /fhir/Patient/{patient}/$access-report with an IG lead's token "
        "(joinedup token --org JHUB --purpose governance)"
    )


def _record_consents(svc: Services) -> None:
    from joinedup.demo.consents import record_demo_consents

    made = record_demo_consents(svc)
    for stored, org in made:
        d = stored.directive
        what = d.organisation or (d.category.value if d.category else "") or d.agreement_id or ""
        out.print(f"consent: {d.kind.value} {what} for person {stored.person_id} "
                  f"(recorded by {org})")
    if made:
        person = made[0][0].person_id
        out.print(f"  See them: .venv/bin/joinedup consent list --person {person}\n"
                  "  What a practitioner may see, and why: .venv/bin/joinedup access explain "
                  f"--token $CLINICIAN --person {person}")


@app.command("client-token")
def client_token(
    client: Annotated[str, typer.Option(help="Demo client id, e.g. rwx-epr")],
    purpose: Annotated[str, typer.Option()] = "direct-care",
    practitioner: Annotated[str | None, typer.Option()] = None,
    reason: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Get a token from the running service the way a client system does: private_key_jwt."""
    settings = load_settings()
    key = client_key(settings.data_dir / "demo-clients", client)
    now = int(time.time())
    claims = {
        "iss": client,
        "sub": client,
        "aud": settings.token_endpoint,
        "iat": now,
        "exp": now + 60,
        "jti": uuid.uuid4().hex,
    }
    assertion = jwt.encode({"alg": "ES256", "kid": key.kid}, claims, key)
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion,
        "purpose": purpose,
    }
    form |= {k: v for k, v in {"practitioner": practitioner, "reason": reason}.items() if v}
    try:
        r = httpx.post(settings.token_endpoint, data=form, timeout=10)
    except httpx.HTTPError as exc:
        raise Unavailable(
            f"cannot reach {settings.token_endpoint}: is `make demo` running? ({exc})"
        ) from None
    if r.status_code != 200:
        raise Unavailable(f"token endpoint answered {r.status_code}: {r.text}")
    typer.echo(r.json()["access_token"])
