"""An ITI-65 Provide Document Bundle, read and checked: pure, no I/O.

``parse_submission`` turns the transaction Bundle (one SubmissionSet List,
DocumentReferences, and a Binary per document) into a :class:`Submission`
of immutable values, or raises ``InvalidInput`` listing *every* problem with
its location (``entry[2].resource.securityLabel``), so a client fixes its
bundle in one round. Everything that needs no database is checked here: the
shape, the codes, the author organisation against the submitter's, dates,
content type and language, security labels, and the content's size and
SHA-1 against the attachment (FHIR R4 ``Attachment.hash`` is the base64 of
the SHA-1). Whether the subject is known and whether a ``replaces`` target
may be replaced are the registry's checks (they need the records).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from joinedup.errors import InvalidInput, Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM, DataCategory, Sensitivity
from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.nhs_number import is_valid as is_nhs_number

ODS_SYSTEM = "https://fhir.nhs.uk/Id/ods-organization-code"
SUBMISSION_SET_SYSTEM = "https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"
DEFAULT_CONTENT_TYPES = (
    "application/pdf",
    "text/plain",
    "application/fhir+json",
    "application/fhir+xml",
    "text/xml",
    "image/png",
    "image/jpeg",
)
_LANGUAGE = re.compile(r"[a-z]{2,3}(-[A-Za-z0-9]{1,8})*")
_REF = re.compile(r"(?:.*/)?(Patient|Organization|DocumentReference)/([A-Za-z0-9\-.]{1,64})")
_UPLOAD = re.compile(r"(?:.*/)?Binary/([0-9a-f]{32})")


@dataclass(frozen=True, slots=True)
class SubjectRef:
    """Who the document is about, as given: a Patient id or an NHS number."""

    patient_id: str | None = None
    nhs_number: str | None = None


@dataclass(frozen=True, slots=True)
class Coding:
    system: str
    code: str


@dataclass(frozen=True, slots=True)
class DocumentEntry:
    """One DocumentReference with its content, checked."""

    full_url: str
    resource: Mapping[str, Any] = field(repr=False)
    master_identifier: str
    subject: SubjectRef
    type: Coding
    class_: Coding
    category: DataCategory
    sensitivity: Sensitivity
    date: datetime
    content_type: str
    data: bytes | None = field(repr=False)
    """The Binary's bytes, or None when the content was uploaded ahead (``upload``)."""
    replaces: str | None
    size: int = 0
    sha1: bytes = b""
    """The declared size and raw SHA-1 (checked against ``data`` when it is here)."""
    upload: str | None = None
    """Content id of content streamed in ahead by ``POST /fhir/Binary``."""


def sha1_of(data: bytes) -> bytes:
    """The raw SHA-1: FHIR R4 fixes it for ``Attachment.hash`` (integrity, not security)."""
    return hashlib.sha1(data).digest()  # noqa: S324


@dataclass(frozen=True, slots=True)
class FolderEntry:
    """A Folder List in the bundle and the fullUrls of the documents it files."""

    full_url: str
    resource: Mapping[str, Any] = field(repr=False)
    documents: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Submission:
    full_url: str
    submission_set: Mapping[str, Any] = field(repr=False)
    documents: tuple[DocumentEntry, ...]
    folders: tuple[FolderEntry, ...] = ()


def parse_submission(
    bundle: Any,
    *,
    submitter_org: str,
    content_types: Collection[str] = DEFAULT_CONTENT_TYPES,
    max_bytes: int,
    now: datetime | None = None,
) -> Submission:
    """The submission in ``bundle``, or ``InvalidInput`` with every problem found."""
    problems: list[Problem] = []
    if not isinstance(bundle, dict) or bundle.get("resourceType") != "Bundle":
        raise InvalidInput("not a FHIR Bundle", [Problem("must be Bundle", "resourceType")])
    if bundle.get("type") != "transaction":
        problems.append(Problem("an ITI-65 bundle is a transaction", "type"))
    entries = bundle.get("entry")
    if not isinstance(entries, list) or not entries:
        raise InvalidInput("the bundle has no entries", [*problems, Problem("required", "entry")])
    lists: list[tuple[str, dict[str, Any]]] = []
    folders: list[tuple[int, str, dict[str, Any]]] = []
    refs: list[tuple[int, str, dict[str, Any]]] = []
    binaries: dict[str, tuple[int, dict[str, Any]]] = {}
    for i, entry in enumerate(entries):
        where = f"entry[{i}]"
        resource = entry.get("resource") if isinstance(entry, dict) else None
        full_url = entry.get("fullUrl") if isinstance(entry, dict) else None
        if not isinstance(resource, dict) or not isinstance(full_url, str) or not full_url:
            problems.append(Problem("needs a fullUrl and a resource", where))
            continue
        kind = resource.get("resourceType")
        if kind == "List" and _list_code(resource) == "folder":
            folders.append((i, full_url, resource))
        elif kind == "List":
            lists.append((full_url, resource))
        elif kind == "DocumentReference":
            refs.append((i, full_url, resource))
        elif kind == "Binary":
            binaries[full_url] = (i, resource)
        else:
            problems.append(Problem(f"{kind!r} does not belong in an ITI-65 bundle", where))
    if len(lists) != 1:
        problems.append(Problem("exactly one SubmissionSet List is required", "entry"))
    if not refs:
        problems.append(Problem("at least one DocumentReference is required", "entry"))
    now = now or datetime.now(UTC)
    documents: list[DocumentEntry] = []
    used: set[str] = set()
    for i, full_url, resource in refs:
        doc = _document(
            i, full_url, resource, binaries, submitter_org, content_types, max_bytes, now,
            used, problems,
        )
        if doc is not None:
            documents.append(doc)
    for url, (i, _) in sorted(binaries.items(), key=lambda kv: kv[1][0]):
        if url not in used:
            problems.append(Problem("no DocumentReference points at this Binary", f"entry[{i}]"))
    if lists:
        _check_list(lists[0][1], [d.full_url for d in documents], problems)
    filed = []
    urls = {d.full_url for d in documents} | {u for _, u, _ in refs}
    for i, full_url, resource in folders:
        listed = _listed(resource)
        if not listed:
            problems.append(Problem("a Folder lists at least one document", f"entry[{i}].entry"))
        for url in listed:
            if url not in urls:
                problems.append(Problem(f"{url} is not a DocumentReference in this bundle",
                                        f"entry[{i}].entry"))
        filed.append(FolderEntry(full_url, resource, tuple(listed)))
    masters = [d.master_identifier for d in documents]
    if len(set(masters)) != len(masters):
        problems.append(Problem("masterIdentifier values must differ", "entry"))
    uploads = [d.upload for d in documents if d.upload]
    if len(set(uploads)) != len(uploads):
        problems.append(Problem("two documents name the same uploaded Binary", "entry"))
    if problems:
        raise InvalidInput("the document bundle cannot be accepted", problems)
    return Submission(lists[0][0], lists[0][1], tuple(documents), tuple(filed))


def _list_code(resource: dict[str, Any]) -> str | None:
    codes = [c.code for c in _codings(resource.get("code")) if c.system == SUBMISSION_SET_SYSTEM]
    return codes[0] if codes else None


def _listed(resource: Mapping[str, Any]) -> list[str]:
    return [
        str(e["item"]["reference"])
        for e in resource.get("entry", []) or []
        if isinstance(e, dict) and isinstance(e.get("item"), dict)
        and isinstance(e["item"].get("reference"), str)
    ]


def _check_list(resource: dict[str, Any], doc_urls: list[str], problems: list[Problem]) -> None:
    codes = _codings(resource.get("code"))
    if not any(c.system == SUBMISSION_SET_SYSTEM and c.code == "submissionset" for c in codes):
        problems.append(Problem(f"must be {SUBMISSION_SET_SYSTEM}|submissionset", "List.code"))
    listed = set(_listed(resource))
    missing = [u for u in doc_urls if u not in listed]
    if missing:
        problems.append(Problem(f"does not list {', '.join(missing)}", "List.entry"))


def _codings(concept: Any) -> list[Coding]:
    if not isinstance(concept, dict):
        return []
    return [
        Coding(str(c["system"]), str(c["code"]))
        for c in concept.get("coding", [])
        if isinstance(c, dict) and c.get("system") and c.get("code")
    ]


def _document(
    i: int,
    full_url: str,
    resource: dict[str, Any],
    binaries: Mapping[str, tuple[int, dict[str, Any]]],
    submitter_org: str,
    content_types: Collection[str],
    max_bytes: int,
    now: datetime,
    used: set[str],
    problems: list[Problem],
) -> DocumentEntry | None:
    at = f"entry[{i}].resource"
    before = len(problems)

    def bad(message: str, where: str) -> None:
        problems.append(Problem(message, f"{at}.{where}"))

    master = resource.get("masterIdentifier")
    master_value = master.get("value") if isinstance(master, dict) else None
    if not isinstance(master_value, str) or not master_value or len(master_value) > 300:
        bad("a masterIdentifier value (up to 300 characters) is required", "masterIdentifier")
    if resource.get("status", "current") != "current":
        bad("a new document is published as current", "status")
    subject = _subject(resource.get("subject"))
    if subject is None:
        bad("a Patient reference or an NHS number identifier is required", "subject")
    types = _codings(resource.get("type"))
    if not types:
        bad("a coded type is required", "type")
    classes = [c for cat in resource.get("category") or [] for c in _codings(cat)]
    if not classes:
        bad("a coded category (class) is required", "category")
    _check_authors(resource.get("author"), submitter_org, bad)
    category, sensitivity = _labels(resource.get("securityLabel"), bad)
    date = _date(resource.get("date"), now, bad)
    replaces = _replaces(resource.get("relatesTo"), bad)
    content = _content(resource.get("content"), binaries, content_types, max_bytes, used, bad)
    if len(problems) > before or content is None:
        return None
    data, content_type, size, sha1, upload = content
    assert subject is not None
    assert category is not None
    assert sensitivity is not None
    assert date is not None
    return DocumentEntry(
        full_url,
        resource,
        str(master_value),
        subject,
        types[0],
        classes[0],
        category,
        sensitivity,
        date,
        content_type,
        data,
        replaces,
        size,
        sha1,
        upload,
    )


def _subject(value: Any) -> SubjectRef | None:
    if not isinstance(value, dict):
        return None
    ref = value.get("reference")
    if isinstance(ref, str):
        match = _REF.fullmatch(ref)
        return SubjectRef(patient_id=match.group(2)) if match and match[1] == "Patient" else None
    ident = value.get("identifier")
    if isinstance(ident, dict) and ident.get("system") == NHS_NUMBER_SYSTEM:
        number = str(ident.get("value", "")).replace(" ", "")
        return SubjectRef(nhs_number=number) if is_nhs_number(number) else None
    return None


def _check_authors(value: Any, submitter_org: str, bad: Any) -> None:
    orgs: list[str] = []
    for author in value if isinstance(value, list) else []:
        if not isinstance(author, dict):
            continue
        ref = author.get("reference")
        match = _REF.fullmatch(ref) if isinstance(ref, str) else None
        ident = author.get("identifier")
        if match and match[1] == "Organization":
            orgs.append(match[2])
        elif isinstance(ident, dict) and ident.get("system") == ODS_SYSTEM:
            orgs.append(str(ident.get("value")))
    if not orgs:
        bad("an author Organization (reference or ODS code identifier) is required", "author")
    elif any(o != submitter_org for o in orgs):
        bad(f"the author organisation must be the submitter's own ({submitter_org})", "author")


def _labels(value: Any, bad: Any) -> tuple[DataCategory | None, Sensitivity | None]:
    codes = [c for label in value or [] for c in _codings(label)]
    categories = [c.code for c in codes if c.system == CATEGORY_SYSTEM]
    levels = [c.code for c in codes if c.system == CONFIDENTIALITY_SYSTEM]
    category = sensitivity = None
    if len(categories) != 1 or categories[0] not in DataCategory._value2member_map_:
        bad(f"exactly one data category from {CATEGORY_SYSTEM} is required", "securityLabel")
    else:
        category = DataCategory(categories[0])
    if len(levels) != 1 or levels[0] not in Sensitivity._value2member_map_:
        bad(f"exactly one confidentiality (N, R or V) from {CONFIDENTIALITY_SYSTEM} is required",
            "securityLabel")
    else:
        sensitivity = Sensitivity(levels[0])
    return category, sensitivity


def _date(value: Any, now: datetime, bad: Any) -> datetime | None:
    if value is None:
        return now
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        bad("must be an instant with a time zone", "date")
        return None
    if parsed > now + timedelta(days=1):
        bad("is in the future", "date")
        return None
    return parsed.astimezone(UTC)


def _replaces(value: Any, bad: Any) -> str | None:
    targets: list[str] = []
    for j, relation in enumerate(value or []):
        if not isinstance(relation, dict) or relation.get("code") != "replaces":
            bad("only 'replaces' relations are supported", f"relatesTo[{j}].code")
            continue
        ref = relation.get("target", {}).get("reference") if isinstance(
            relation.get("target"), dict) else None
        match = _REF.fullmatch(ref) if isinstance(ref, str) else None
        if not match or match[1] != "DocumentReference":
            bad("must reference a DocumentReference", f"relatesTo[{j}].target")
        else:
            targets.append(match[2])
    if len(targets) > 1:
        bad("a document replaces at most one other", "relatesTo")
    return targets[0] if len(targets) == 1 else None


def _content(
    value: Any,
    binaries: Mapping[str, tuple[int, dict[str, Any]]],
    content_types: Collection[str],
    max_bytes: int,
    used: set[str],
    bad: Any,
) -> tuple[bytes | None, str, int, bytes, str | None] | None:
    """(data or None, content type, declared size, declared raw SHA-1, upload content id)."""
    if not isinstance(value, list) or len(value) != 1 or not isinstance(value[0], dict):
        bad("exactly one content attachment is required", "content")
        return None
    attachment = value[0].get("attachment")
    if not isinstance(attachment, dict):
        bad("an attachment is required", "content[0].attachment")
        return None
    where = "content[0].attachment"
    content_type = attachment.get("contentType")
    if content_type not in content_types:
        bad(f"content type {content_type!r} is not accepted; accepted: "
            f"{', '.join(sorted(content_types))}", f"{where}.contentType")
    language = attachment.get("language")
    if language is not None and not (isinstance(language, str) and _LANGUAGE.fullmatch(language)):
        bad("must be a BCP 47 language tag", f"{where}.language")
    size, digest = attachment.get("size"), attachment.get("hash")
    declared_size = size if isinstance(size, int) and not isinstance(size, bool) else None
    if declared_size is None:
        bad("the size in bytes is required", f"{where}.size")
    elif declared_size > max_bytes:
        bad(f"the content is over the limit of {max_bytes} bytes", f"{where}.size")
    declared_sha1 = _sha1(digest)
    if declared_sha1 is None:
        bad("the SHA-1 hash (base64 of 20 bytes) is required", f"{where}.hash")
    url = attachment.get("url")
    upload = _UPLOAD.fullmatch(url) if isinstance(url, str) and url not in binaries else None
    if upload is not None:  # streamed in ahead: checked against the upload by the registry
        if declared_size is None or declared_sha1 is None:
            return None
        return None, str(content_type), declared_size, declared_sha1, upload[1]
    if not isinstance(url, str) or url not in binaries:
        bad("must be the fullUrl of a Binary in this bundle, or Binary/<id> of an upload",
            f"{where}.url")
        return None
    used.add(url)
    _, binary = binaries[url]
    if binary.get("contentType") != content_type:
        bad("differs from the Binary's contentType", f"{where}.contentType")
    try:
        data = base64.b64decode(str(binary.get("data", "")), validate=True)
    except (binascii.Error, ValueError):
        bad("the Binary's data is not base64", f"{where}.url")
        return None
    if len(data) > max_bytes:
        bad(f"the content is over the limit of {max_bytes} bytes", f"{where}.size")
    if declared_size is not None and declared_size != len(data):
        bad(f"declared {declared_size} bytes, the content has {len(data)}", f"{where}.size")
    actual = sha1_of(data)
    if declared_sha1 is not None and declared_sha1 != actual:
        bad("the SHA-1 hash does not match the content", f"{where}.hash")
    return data, str(content_type), len(data), actual, None


def _sha1(digest: Any) -> bytes | None:
    if not isinstance(digest, str):
        return None
    try:
        raw = base64.b64decode(digest, validate=True)
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 20 else None
