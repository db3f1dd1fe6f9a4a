"""``joinedup documents``: publish, find and get documents, change their status, keys.

Each command acts as a practitioner (or system) of an organisation: it mints
a token exactly as ``joinedup token`` does and goes through the same sharing
service as the MHD API (``joinedup.documents.sharing``), so the agreements
decide and the audit log records as for any partner request.
"""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from joinedup.auth.tokens import AccessToken
from joinedup.documents.errors import ContentIntegrityError
from joinedup.documents.query import parse_document_search
from joinedup.documents.sharing import DocumentSharing
from joinedup.documents.submission import ODS_SYSTEM, SUBMISSION_SET_SYSTEM
from joinedup.errors import InvalidInput, NotFound, Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.services import Services, running

app = typer.Typer(help="IHE MHD documents: publish, find, get, status; master keys.",
                  no_args_is_help=True)
keys_app = typer.Typer(help="Document master keys (wrap every document's data key).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
out = Console()
err = Console(stderr=True)
CLI_CLIENT = "joinedup-cli"
BLOCK = 1024 * 1024

Org = Annotated[str, typer.Option(help="Acting organisation's code, e.g. RWX")]
Practitioner = Annotated[
    str | None, typer.Option(help="Acting practitioner's id (reads need one)")]
Purpose = Annotated[str, typer.Option(help="Purpose of use")]
Patient = Annotated[str | None, typer.Option(help="Patient id")]
Nhs = Annotated[str | None, typer.Option("--nhs-number", help="NHS number")]


def _token(svc: Services, org: str, practitioner: str | None, purpose: str) -> AccessToken:
    from joinedup.auth.grants import TokenRequest

    detail = svc.registry.show_org(org)
    if not detail.systems:
        raise NotFound(f"organisation {org!r} has no client system: add one first")
    issued = svc.tokens.mint(client_id=detail.systems[0]["client_id"], request=TokenRequest(
        purpose=purpose, scope="documents:read documents:publish", practitioner=practitioner))
    return svc.verifier().verify(issued.access_token)


@contextmanager
def _acting(org: str, practitioner: str | None, purpose: str
            ) -> Iterator[tuple[Services, AccessToken, DocumentSharing]]:
    with running() as svc:
        yield svc, _token(svc, org, practitioner, purpose), DocumentSharing(svc)


def _coding(text: str, what: str) -> dict[str, str]:
    system, bar, code = text.rpartition("|")
    if not bar or not system or not code:
        raise InvalidInput(f"--{what} must be system|code", [Problem(text, what)])
    return {"system": system, "code": code}


def _subject(patient: str | None, nhs: str | None) -> dict[str, Any]:
    if (patient is None) == (nhs is None):
        raise InvalidInput("give --patient or --nhs-number", [Problem("exactly one", "subject")])
    if patient is not None:
        return {"reference": f"Patient/{patient}"}
    return {"identifier": {"system": NHS_NUMBER_SYSTEM, "value": nhs}}


def sha1_of_file(path: Path) -> tuple[int, bytes]:
    digest = hashlib.sha1()  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
    size = 0
    with path.open("rb") as file:
        while block := file.read(BLOCK):
            digest.update(block)
            size += len(block)
    return size, digest.digest()


def document_bundle(
    *, subject: dict[str, Any], org: str, type_: dict[str, str], class_: dict[str, str],
    category: str, confidentiality: str, content_type: str, size: int, sha1: bytes,
    upload: str, title: str | None, replaces: str | None, date: str | None = None,
    master: str | None = None, extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An ITI-65 bundle for one document whose content was uploaded ahead as ``upload``."""
    doc: dict[str, Any] = {
        "resourceType": "DocumentReference",
        "masterIdentifier": {"system": "urn:ietf:rfc:3986",
                             "value": master or f"urn:uuid:{uuid.uuid4()}"},
        "status": "current", "subject": subject, "type": {"coding": [type_]},
        "category": [{"coding": [class_]}],
        "author": [{"identifier": {"system": ODS_SYSTEM, "value": org}}],
        "securityLabel": [{"coding": [{"system": CATEGORY_SYSTEM, "code": category}]},
                          {"coding": [{"system": CONFIDENTIALITY_SYSTEM,
                                       "code": confidentiality}]}],
        "content": [{"attachment": {
            "contentType": content_type, "url": f"Binary/{upload}", "size": size,
            "hash": base64.b64encode(sha1).decode(), **({"title": title} if title else {}),
        }}],
        **(extra or {}),
    }
    if date:
        doc["date"] = date
    if replaces:
        doc["relatesTo"] = [{"code": "replaces",
                             "target": {"reference": f"DocumentReference/{replaces}"}}]
    submission = {
        "resourceType": "List", "status": "current", "mode": "working",
        "code": {"coding": [{"system": SUBMISSION_SET_SYSTEM, "code": "submissionset"}]},
        "subject": subject, "entry": [{"item": {"reference": "urn:uuid:doc"}}],
    }
    return {"resourceType": "Bundle", "type": "transaction", "entry": [
        {"fullUrl": "urn:uuid:set", "resource": submission,
         "request": {"method": "POST", "url": "List"}},
        {"fullUrl": "urn:uuid:doc", "resource": doc,
         "request": {"method": "POST", "url": "DocumentReference"}},
    ]}


@app.command("publish")
def publish(
    file: Annotated[Path, typer.Argument(help="The document's file", exists=True,
                                         dir_okay=False, readable=True)],
    org: Org,
    type_: Annotated[str, typer.Option("--type", help="Document type, system|code")],
    class_: Annotated[str, typer.Option("--class", help="Document class (category), system|code")],
    category: Annotated[str, typer.Option(help="Data category security label")] = "documents",
    confidentiality: Annotated[str, typer.Option(help="N, R or V")] = "N",
    patient: Patient = None,
    nhs_number: Nhs = None,
    content_type: Annotated[str | None, typer.Option(help="Default: from the file name")] = None,
    title: Annotated[str | None, typer.Option()] = None,
    replaces: Annotated[str | None, typer.Option(help="DocumentReference id it replaces")] = None,
    practitioner: Practitioner = None,
    purpose: Purpose = "direct-care",
) -> None:
    """Publish a file for a person (streamed into the store, then ITI-65)."""
    kind = content_type or mimetypes.guess_type(file.name)[0] or ""
    subject = _subject(patient, nhs_number)
    size, sha1 = sha1_of_file(file)
    with _acting(org, practitioner, purpose) as (_, token, sharing):
        with file.open("rb") as source:
            upload = sharing.upload(token, source, content_type=kind, expected_size=size,
                                    request_id=None)
        bundle = document_bundle(
            subject=subject, org=org, type_=_coding(type_, "type"),
            class_=_coding(class_, "class"), category=category,
            confidentiality=confidentiality, content_type=kind, size=size, sha1=sha1,
            upload=upload.content_id, title=title or file.name, replaces=replaces)
        published = sharing.publish(token, bundle, request_id=None)
    [doc] = published.documents
    out.print_json(json.dumps({"id": doc.id, "status": doc.status, "size": doc.size,
                               "hash": doc.sha1, "content_type": doc.content_type,
                               "submission_set": published.submission_set_id,
                               "superseded": doc.replaces_id}))


@app.command("find")
def find(
    org: Org,
    practitioner: Annotated[str, typer.Option(help="Acting practitioner's id")],
    patient: Patient = None,
    nhs_number: Nhs = None,
    status: Annotated[str | None, typer.Option(help="e.g. current,superseded")] = None,
    type_: Annotated[str | None, typer.Option("--type", help="system|code or code")] = None,
    purpose: Purpose = "direct-care",
    as_json: Annotated[bool, typer.Option("--json")] = False,
) -> None:
    """Find a person's documents (ITI-67), as that practitioner may see them."""
    _subject(patient, nhs_number)
    params = ([("patient", patient)] if patient else
              [("patient.identifier", f"{NHS_NUMBER_SYSTEM}|{nhs_number}")])
    params += [(k, v) for k, v in (("status", status), ("type", type_)) if v]
    search = parse_document_search(params)
    with _acting(org, practitioner, purpose) as (_, token, sharing):
        found = sharing.find(token, search, request_id=None)
    rows = [{"id": v.id, "status": v.status, "date": v.date.isoformat(), "org": v.org_code,
             "type": (r.get("type", {}).get("coding") or [{}])[0].get("display")
             or (r.get("type", {}).get("coding") or [{}])[0].get("code"),
             "title": r["content"][0]["attachment"].get("title"),
             "content_type": v.content_type, "size": v.size}
            for v, r in found.items]
    if as_json:
        out.print_json(json.dumps({"total": found.total, "documents": rows}))
        return
    table = Table("id", "status", "date", "org", "type", "title", "content type", "size")
    for row in rows:
        table.add_row(*(str(row[k] or "") for k in (
            "id", "status", "date", "org", "type", "title", "content_type", "size")))
    out.print(table)
    out.print(f"{found.total} document(s)")


@app.command("get")
def get(
    document: Annotated[str, typer.Argument(help="DocumentReference id")],
    out_file: Annotated[Path, typer.Option("--out", help="Where to write the content")],
    org: Org,
    practitioner: Annotated[str, typer.Option(help="Acting practitioner's id")],
    purpose: Purpose = "direct-care",
) -> None:
    """Retrieve a document's content to a file (ITI-68); its SHA-1 is checked."""
    with _acting(org, practitioner, purpose) as (_, token, sharing):
        resource = sharing.read(token, document, request_id=None)
        attachment = resource["content"][0]["attachment"]
        content_id = str(attachment["url"]).rsplit("/", 1)[-1]
        _, reader = sharing.open(token, content_id, request_id=None)
        partial = out_file.with_name(f".{out_file.name}.{uuid.uuid4().hex[:8]}.part")
        digest = hashlib.sha1()  # noqa: S324 - FHIR R4 Attachment.hash is SHA-1
        try:
            with reader, partial.open("wb") as target:
                for chunk in reader:
                    digest.update(chunk)
                    target.write(chunk)
                target.flush()
                os.fsync(target.fileno())
            if base64.b64encode(digest.digest()).decode() != attachment["hash"]:
                raise ContentIntegrityError(content_id, "sha1", "the file written differs")
            os.replace(partial, out_file)
        finally:
            partial.unlink(missing_ok=True)
    out.print_json(json.dumps({"path": str(out_file), "size": attachment["size"],
                               "hash": attachment["hash"], "sha1_verified": True}))


@app.command("status")
def status(
    document: Annotated[str, typer.Argument(help="DocumentReference id")],
    new_status: Annotated[str, typer.Argument(
        metavar="STATUS", help="superseded (deprecate) or entered-in-error")],
    reason: Annotated[str, typer.Option(help="Why (kept in the version history)")],
    org: Org,
    practitioner: Practitioner = None,
    purpose: Purpose = "direct-care",
) -> None:
    """Deprecate a document or mark it entered-in-error (its authoring organisation only)."""
    with _acting(org, practitioner, purpose) as (_, token, sharing):
        view = sharing.change_status(token, document, new_status, reason, request_id=None)
    out.print_json(json.dumps({"id": view.id, "status": view.status, "version": view.version}))


@app.command("tidy")
def tidy() -> None:
    """Finish or undo publishes a crash interrupted, then remove unclaimed uploads and
    stale staged content (run it at start-up and hourly or daily)."""
    with running() as svc:
        finished, removed = svc.documents.recover()
        uploads, swept = svc.documents.sweep()
    out.print_json(json.dumps({"publishes_finished": finished, "publishes_undone": removed,
                               "uploads_dropped": uploads, "store_items_removed": swept}))


@keys_app.command("init")
def keys_init() -> None:
    """Create the first document master key (does nothing if one exists)."""
    from joinedup.config import load_settings
    from joinedup.documents.keyring import KEY_SUFFIX, create_master_key

    folder = load_settings().effective_document_keys_dir
    existing = sorted(folder.glob("*" + KEY_SUFFIX)) if folder.is_dir() else []
    if existing:
        out.print(f"a document master key exists in {folder}: {existing[-1].stem}")
        return
    key = create_master_key(folder)
    out.print(f"created document master key {key.kid} in {folder}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Create a new active master key and re-wrap every document's data key under it."""
    from joinedup.documents.keyring import create_master_key

    with running() as svc:
        key = create_master_key(svc.settings.effective_document_keys_dir)
        svc.documents.reset_content()
        report = svc.documents.content.rewrap_all()
    out.print(f"active key {key.kid}: {report.rewrapped} re-wrapped, "
              f"{report.already_active} already current, {len(report.failures)} failed")
    for problem in report.failures:
        err.print(f"  {problem.location}: {problem.message}")
