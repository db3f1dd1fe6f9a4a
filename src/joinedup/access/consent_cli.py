"""``joinedup consent``: record, list and withdraw a person's consent directives.

For operators and IG staff on the server (the FHIR API is the route for
organisations' own systems). ``--org`` names the organisation recording the
directive, acting for the person; every change is a ``consent.change``
audit event naming it, with the client ``joinedup-cli``.
"""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from joinedup.access.consent import ConsentDirective, DirectiveKind, DirectiveStatus
from joinedup.access.consent_changes import record_directive, revoke_directive
from joinedup.access.consent_fhir import ConsentError, to_fhir
from joinedup.access.consent_store import StoredConsent
from joinedup.access.purposes import Purpose
from joinedup.audit.changes import local_actor
from joinedup.errors import NotFound, Problem
from joinedup.labels import DataCategory
from joinedup.services import running

app = typer.Typer(
    help="A person's consent directives (FHIR Consent): objections, explicit consent, "
    "the national data opt-out.",
    no_args_is_help=True,
)
out = Console()


def _date(text: str | None, where: str, problems: list[Problem]) -> date | None:
    if text is None:
        return None
    try:
        return date.fromisoformat(text)
    except ValueError:
        problems.append(Problem("must be a date, YYYY-MM-DD", where))
        return None


def consent_from_options(
    patient: str, kind: str, to_org: str | None, category: str | None,
    agreement: str | None, start: str | None, end: str | None,
) -> dict[str, Any]:
    """A FHIR Consent built from command options; every problem listed."""
    problems: list[Problem] = []
    try:
        kind_ = DirectiveKind(kind)
    except ValueError:
        problems.append(Problem("must be one of " + ", ".join(k.value for k in DirectiveKind),
                                "--kind"))
        kind_ = None
    cat = None
    if category is not None:
        try:
            cat = DataCategory(category)
        except ValueError:
            problems.append(Problem(f"unknown category {category!r}", "--category"))
    first, last = _date(start, "--start", problems), _date(end, "--end", problems)
    if problems or kind_ is None:
        raise ConsentError("the directive is not valid", problems)
    try:
        directive = ConsentDirective(
            id="new", person=patient.removeprefix("Patient/"), kind=kind_,
            recorded=date.today(), organisation=to_org, category=cat, agreement_id=agreement,
            start=first, end=last,
        )
    except ValueError as exc:
        raise ConsentError("the directive is not valid",
                           [Problem(p) for p in str(exc).split("; ")]) from None
    return to_fhir(directive)


def _row(c: StoredConsent) -> list[str]:
    d = c.directive
    target = d.organisation or (d.category.value if d.category else "") or ""
    if d.agreement_id:
        target = f"{target} under {d.agreement_id}".strip()
    period = f"{d.start or ''}…{d.end or ''}" if d.start or d.end else ""
    return [d.id, d.kind.value, target, d.status.value, period, d.recorded.isoformat(),
            c.recorded_by_org, f"Patient/{d.person}"]


def _print(stored: StoredConsent, as_json: bool) -> None:
    if as_json:
        out.print_json(json.dumps({**stored.as_dict(), "resource": stored.resource}))
        return
    d = stored.directive
    out.print(f"Consent/{d.id}  {d.kind.value}  {d.status.value}  (version {stored.version})")


@app.command("add")
def add(
    org: Annotated[str, typer.Option(help="The organisation recording it, acting for the "
                                     "person (ODS code).")],
    patient: Annotated[str | None, typer.Option(help="A Patient id of the person.")] = None,
    kind: Annotated[str | None, typer.Option(
        help="objection | explicit-consent | national-opt-out")] = None,
    to_org: Annotated[str | None, typer.Option(
        "--to-org", help="Objection: not to share with this organisation; consent: to share "
        "with it.")] = None,
    category: Annotated[str | None, typer.Option(
        help="Objection: not to share this data category.")] = None,
    agreement: Annotated[str | None, typer.Option(
        help="Explicit consent to sharing under this agreement id.")] = None,
    start: Annotated[str | None, typer.Option(help="In effect from (YYYY-MM-DD).")] = None,
    end: Annotated[str | None, typer.Option(help="In effect until (YYYY-MM-DD).")] = None,
    file: Annotated[Path | None, typer.Option(
        help="A FHIR R4 Consent (JSON) instead of the options above.")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Record a directive; every problem is listed if it is refused."""
    if file is not None:
        try:
            resource = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise ConsentError("cannot read the Consent file", [Problem(str(exc), str(file))]
                               ) from None
    else:
        problems = [Problem("is required (or give --file)", n)
                    for n, v in (("--patient", patient), ("--kind", kind)) if v is None]
        if problems:
            raise ConsentError("the directive is not valid", problems)
        assert patient is not None
        assert kind is not None
        resource = consent_from_options(patient, kind, to_org, category, agreement, start, end)
    with running() as svc:
        svc.registry.show_org(org)  # the recording organisation must exist
        stored = record_directive(svc, resource, org=org, actor=local_actor(org),
                                  holder_required=False, purpose=Purpose.ADMINISTRATION)
    _print(stored, as_json)


@app.command("list")
def list_(
    patient: Annotated[str | None, typer.Option(help="A Patient id of the person.")] = None,
    person: Annotated[str | None, typer.Option(help="The person index id.")] = None,
    status: Annotated[str | None, typer.Option(help="active | inactive")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """A person's directives (every Patient record linked to them)."""
    if (patient is None) == (person is None):
        raise ConsentError("say whose directives", [Problem("give exactly one", "--patient")])
    if status is not None and status not in {s.value for s in DirectiveStatus}:
        raise ConsentError("unknown status", [Problem("must be active or inactive", "--status")])
    with running() as svc:
        if person is not None:
            patients = svc.consents.patients_of_person(person)
            if patients is None:
                raise NotFound(f"no person {person}")
        else:
            assert patient is not None
            found = svc.consents.person_of_patient(patient.removeprefix("Patient/"))
            if found is None:
                raise NotFound(f"Patient/{patient} is not in the person index")
            patients = [p for ids in found[1].values() for p in ids]
        consents = svc.consents.for_patients(
            patients, status=None if status is None else DirectiveStatus(status))
    if as_json:
        out.print_json(json.dumps([{**c.as_dict(), "resource": c.resource} for c in consents]))
        return
    table = Table("id", "kind", "to / of", "status", "period", "recorded", "by", "made on",
                  title=f"{len(consents)} directive(s)")
    for c in consents:
        table.add_row(*_row(c))
    out.print(table)


@app.command("revoke")
def revoke(
    consent_id: Annotated[str, typer.Argument(help="The directive's id.")],
    org: Annotated[str, typer.Option(help="The organisation recording the withdrawal.")],
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Withdraw a directive: it stays, inactive, and stops applying at once."""
    with running() as svc:
        svc.registry.show_org(org)
        stored = revoke_directive(svc, consent_id, org=org, actor=local_actor(org),
                                  purpose=Purpose.ADMINISTRATION)
    _print(stored, as_json)
