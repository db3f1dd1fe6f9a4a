"""``joinedup audit``: verify, checkpoints, archives, IG reports, reviews, keys.

Mounted by the main CLI (``app.add_typer(audit.cli.app, name="audit")``).
User errors are raised as ``UserError`` subclasses; the main entry point
prints them and exits with their code. ``verify`` exits with code 10 when the
log fails verification.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, ClassVar

import typer
from rich.console import Console

from joinedup.audit.check import default_jobs
from joinedup.audit.config import keys_dir
from joinedup.audit.events import Actor, AuditAction, AuditEvent, Outcome, ReviewOutcome
from joinedup.audit.export import read_export
from joinedup.audit.keys import AuditKeyStore, PublicKeys
from joinedup.audit.reports import REPORTS
from joinedup.audit.retention import verify_archive
from joinedup.audit.service import AuditLog, build_audit_log
from joinedup.audit.verify import VerifyReport
from joinedup.errors import InvalidInput, NotFound, Problem, UserError

app = typer.Typer(
    help="The audit log: verify, checkpoints, archives, IG reports, break-glass reviews, keys.",
    no_args_is_help=True,
)
keys_app = typer.Typer(help="Audit signing keys (Ed25519).", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

out = Console()
CLI_CLIENT = "joinedup-cli"


class VerificationFailed(UserError):
    """The log (or an archive) did not verify: the message names the first problem."""

    status: ClassVar[int] = 409
    exit_code: ClassVar[int] = 10
    slug: ClassVar[str] = "audit-verification-failed"
    title: ClassVar[str] = "Audit log failed verification"


@contextmanager
def _audit(*, migrated: bool = True) -> Iterator[AuditLog]:
    from joinedup.config import load_settings
    from joinedup.services import build
    from joinedup.storage.migrate import ensure_migrated

    svc = build(load_settings())
    try:
        if migrated:
            ensure_migrated(svc.db)
        log = build_audit_log(svc.settings, svc.db)
        try:
            yield log
        finally:
            log.close()
    finally:
        svc.close()


def _instant(value: str, name: str, *, end: bool = False) -> datetime:
    """YYYY-MM-DD (a UTC day; as an end, the day is included) or a date-time with a zone."""
    try:
        if len(value) == 10:
            start = datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
            return start + timedelta(days=1) if end else start
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"--{name} is not a date", [
            Problem("expected YYYY-MM-DD or an ISO 8601 date-time with a zone", f"--{name}")
        ]) from None
    if parsed.tzinfo is None:
        raise InvalidInput(f"--{name} needs a zone", [Problem("add Z or +01:00", f"--{name}")])
    return parsed.astimezone(UTC)


def _show(report: VerifyReport, as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(report.as_dict()) + "\n")
    else:
        out.print(report.summary(), highlight=False)
        for note in report.notes:
            out.print(f"note: {note}", highlight=False)
    if not report.ok:
        raise VerificationFailed(report.summary())


@app.command()
def verify(
    against: Annotated[Path | None, typer.Option(
        help="A checkpoint export held by a third party: check the log still matches it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON")] = False,
    jobs: Annotated[int | None, typer.Option(
        help="Processes for a long log (default: the CPU count, at most 4)")] = None,
) -> None:
    """Recompute the whole chain and check every checkpoint; name the first problem."""
    exported = read_export(against) if against is not None else None
    with _audit() as log:
        report = log.verify(against=exported, jobs=jobs or default_jobs())
    _show(report, as_json)


@app.command("verify-archive")
def verify_archive_command(
    archive: Annotated[Path, typer.Argument(help="An archive written by `audit archive`")],
    keys: Annotated[Path | None, typer.Option(
        help="Trusted public keys: a checkpoint export or a JWK Set file "
             "(default: the keys inside the archive)")] = None,
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Check an archive file offline (no database needed)."""
    trusted = _trusted_keys(keys) if keys is not None else None
    _show(verify_archive(archive, trusted), as_json)


def _trusted_keys(path: Path) -> PublicKeys:
    try:
        text = path.read_text()
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    if '"audit-log"' in first:
        return read_export(path).keys
    try:
        return PublicKeys.from_jwks(json.loads(text), where=path.name)
    except json.JSONDecodeError:
        raise InvalidInput(f"{path} is neither a checkpoint export nor a JWK Set") from None


@app.command()
def checkpoint() -> None:
    """Sign a checkpoint of the current chain head now."""
    with _audit() as log:
        made = log.checkpoint()
    if made is None:
        out.print("nothing new to checkpoint", highlight=False)
    else:
        out.print(f"checkpoint at seq {made.seq} ({made.hash}) signed by {made.kid}",
                  highlight=False)


@app.command("export-checkpoints")
def export_checkpoints(
    out_file: Annotated[Path, typer.Argument(metavar="OUT", help="File to write ('-' for stdout)")],
) -> None:
    """Export signed checkpoints with the public keys, for a third party to keep."""
    with _audit() as log:
        if str(out_file) == "-":
            count = log.export_checkpoints(sys.stdout.buffer)
        else:
            with out_file.open("wb") as handle:
                count = log.export_checkpoints(handle)
    if str(out_file) != "-":
        out.print(f"{count} signed statements written to {out_file}", highlight=False)


@app.command()
def archive(
    out_file: Annotated[Path, typer.Option("--out", help="The archive file to write")],
    before: Annotated[str | None, typer.Option(
        help="Archive events before this date (default: now minus the retention period)")] = None,
) -> None:
    """Move old events to a signed archive file; what remains still verifies."""
    with _audit() as log:
        cutoff = _instant(before, "before") if before else log.retention_cutoff()
        if cutoff is None:
            raise InvalidInput("no cut-off: pass --before or set JOINEDUP_AUDIT_RETENTION_DAYS")
        result = log.archive(before=cutoff, out=out_file,
                             actor=Actor(org=None, client_id=CLI_CLIENT))
    if result is None:
        out.print("no events old enough to archive", highlight=False)
    else:
        out.print(f"archived events {result.first_seq}..{result.last_seq} to {result.path} "
                  f"(sha256 {result.sha256})", highlight=False)


@app.command()
def report(
    kind: Annotated[str, typer.Argument(metavar="KIND", help=" | ".join(REPORTS))],
    from_: Annotated[str, typer.Option("--from", help="YYYY-MM-DD or date-time with zone")],
    to: Annotated[str, typer.Option("--to", help="YYYY-MM-DD (included) or date-time")],
    as_csv: Annotated[bool, typer.Option("--csv", help="CSV instead of JSON")] = False,
) -> None:
    """An IG report for a date range: break-glass, denials, self-declared, volume."""
    since, until = _instant(from_, "from"), _instant(to, "to", end=True)
    with _audit() as log:
        log.append([AuditEvent(
            action=AuditAction.AUDIT_QUERY, actor=Actor(org=None, client_id=CLI_CLIENT),
            outcome=Outcome.SUCCESS, detail={"operation": f"report:{kind}"},
        )])
        result = log.report(kind, since, until)
    if as_csv:
        sys.stdout.write(result.to_csv())
    else:
        sys.stdout.write(json.dumps(result.as_dict(), default=str, indent=2) + "\n")


@app.command()
def review(
    seq: Annotated[int, typer.Argument(help="The break-glass event's seq")],
    outcome: Annotated[str, typer.Option(help=" | ".join(o.value for o in ReviewOutcome))],
    by: Annotated[str, typer.Option(help="The reviewer's practitioner id")],
    org: Annotated[str | None, typer.Option(help="The reviewer's organisation code")] = None,
    note: Annotated[str | None, typer.Option(help="A short note (no personal data)")] = None,
) -> None:
    """Record the outcome of an IG review of a break-glass event."""
    with _audit() as log:
        reviewed = log.review(seq, outcome=outcome, note=note,
                              reviewer=Actor(org=org, client_id=CLI_CLIENT, practitioner=by))
    assert reviewed.review is not None
    out.print(f"break-glass event {seq} reviewed: {reviewed.review.outcome.value} "
              f"(audit event {reviewed.review.review_seq})", highlight=False)


@app.command("access-report")
def access_report(
    person: Annotated[str, typer.Argument(help="The person index id")],
    staff_names: Annotated[bool | None, typer.Option(
        "--staff-names/--no-staff-names", help="Override the area's policy")] = None,
) -> None:
    """Who looked at a person's record (what the person sees at $access-report)."""
    with _audit() as log:
        log.append([AuditEvent(
            action=AuditAction.AUDIT_QUERY, actor=Actor(org=None, client_id=CLI_CLIENT),
            outcome=Outcome.SUCCESS, persons=(person,), detail={"operation": "access-report"},
        )])
        result = log.access_report(person, show_staff_names=staff_names)
    sys.stdout.write(json.dumps(result.as_dict(), indent=2) + "\n")


@keys_app.command("init")
def keys_init() -> None:
    """Create the first audit signing key (no-op if one exists)."""
    _new_key(rotate=False)


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Create a new signing key; older keys stay to verify what they signed."""
    _new_key(rotate=True)


def _new_key(*, rotate: bool) -> None:
    from joinedup.config import load_settings

    store = AuditKeyStore(keys_dir(load_settings()))
    if rotate:
        key, created = store.generate(), True
    else:
        key, created = store.init()
    out.print(f"audit signing key {key.kid} {'created' if created else 'exists'} in {store.folder}",
              highlight=False)
    if created:
        _record_key_change(key.kid)


def _record_key_change(kid: str) -> None:
    """Audit the new key if the database is there; a fresh install may have none yet."""
    from joinedup.errors import ConfigError, Unavailable

    try:
        with _audit() as log:
            log.append([AuditEvent(
                action=AuditAction.KEY_CHANGE, actor=Actor(org=None, client_id=CLI_CLIENT),
                outcome=Outcome.SUCCESS, detail={"kind": "audit-signing-key", "kid": kid},
            )])
    except (ConfigError, Unavailable):
        out.print("(database not migrated yet: the key change is not in the audit log)",
                  highlight=False)


@keys_app.command("export")
def keys_export() -> None:
    """Print the public keys (a JWK Set) for third parties."""
    from joinedup.config import load_settings

    sys.stdout.write(json.dumps(AuditKeyStore(keys_dir(load_settings())).public_jwks()) + "\n")

