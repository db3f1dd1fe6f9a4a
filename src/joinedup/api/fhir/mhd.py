"""IHE MHD on the partner API: ITI-65 publish, ITI-66/67 find, ITI-68 retrieve, lifecycle.

* ``POST /fhir`` with a transaction Bundle (SubmissionSet List, optional Folder
  Lists, DocumentReferences, a Binary each or ``Binary/<id>`` of an upload):
  accepted whole or refused whole with an OperationOutcome listing every
  problem (``documents:publish``). The body is limited
  (``JOINEDUP_DOCUMENT_BUNDLE_MAX_BYTES``): larger content is streamed first.
* ``POST /fhir/Binary`` with the raw bytes: streamed into the store, staged,
  until a bundle names it (``documents:publish``).
* ``GET|POST /fhir/DocumentReference[/_search]`` (ITI-67), ``GET|POST
  /fhir/List[/_search]`` (ITI-66), ``GET /fhir/DocumentReference/{id}[/_history[/{vid}]]``
  and ``GET /fhir/Binary/{id}`` (ITI-68, streamed, ``ETag``, single ``Range``)
  (``documents:read`` and a practitioner with a role).
* ``POST /fhir/DocumentReference/{id}/$status`` (Parameters ``status``,
  ``reason``): deprecate or mark entered-in-error (``documents:publish``; the
  authoring organisation only).

What is decided and audited, and how, is ``joinedup.documents.sharing``;
this module is only HTTP.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from joinedup.api.deps import Token, authenticated, fhir_base, public_url, require, services
from joinedup.auth.permissions import Permission
from joinedup.documents.errors import ContentTooLarge
from joinedup.documents.query import parse_document_search, parse_list_search
from joinedup.documents.ranges import content_range, parse_range
from joinedup.documents.reader import ContentReader
from joinedup.documents.registry import DocumentView, Published
from joinedup.documents.sharing import DocumentSharing
from joinedup.errors import InvalidInput, Problem
from joinedup.services import Services

router = APIRouter(tags=["fhir: documents (IHE MHD)"], dependencies=[Depends(authenticated)])
"""Mounted on the /fhir router before the records router, whose ``/{type}`` would
otherwise answer ``/DocumentReference``; auth is declared here once."""

FHIR_JSON = "application/fhir+json"
Svc = Annotated[Services, Depends(services)]
UPLOAD_BLOCK = 1024 * 1024
_reader = [Depends(require(Permission.DOCUMENTS_READ))]
_publisher = [Depends(require(Permission.DOCUMENTS_PUBLISH))]


def _sharing(svc: Services) -> DocumentSharing:
    return DocumentSharing(svc)


def _absolute(base: str, resource: dict[str, Any]) -> dict[str, Any]:
    for content in resource.get("content", []):
        attachment = content.get("attachment", {})
        url = attachment.get("url")
        if isinstance(url, str) and url.startswith("Binary/"):
            attachment["url"] = f"{base}/{url}"
    return resource


def _request_id(request: Request) -> str | None:
    return getattr(request.state, "request_id", None)


def _fhir(body: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
          ) -> JSONResponse:
    return JSONResponse(body, status_code=status, media_type=FHIR_JSON, headers=headers)


async def _body(request: Request, limit: int, what: str, hint: str) -> bytes:
    """The request body, refused with 413 as soon as it passes ``limit`` bytes."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise ContentTooLarge(f"{what} is over the limit of {limit} bytes", [Problem(hint, "body")])
    parts, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ContentTooLarge(f"{what} is over the limit of {limit} bytes",
                                  [Problem(hint, "body")])
        parts.append(chunk)
    return b"".join(parts)


async def _params(request: Request) -> list[tuple[str, str]]:
    """Search parameters of a GET, or of a POST ``_search`` (form body and query string)."""
    params = list(request.query_params.multi_items())
    if request.method == "POST":
        kind = request.headers.get("content-type", "").split(";")[0].strip()
        if kind not in ("application/x-www-form-urlencoded", ""):
            raise InvalidInput("a _search body is a form", [Problem(
                "Content-Type must be application/x-www-form-urlencoded", "Content-Type")])
        text = (await _body(request, 64 * 1024, "the search form", "fewer parameters")).decode(
            "utf-8", errors="replace")
        params += parse_qsl(text, keep_blank_values=True)
    return params


# -- publish (ITI-65) and upload ----------------------------------------------------------


def _transaction_response(published: Published) -> dict[str, Any]:
    entries: list[dict[str, Any]] = [{"response": {
        "status": "201 Created", "location": f"List/{published.submission_set_id}"}}]
    for doc in published.documents:
        entries.append({"response": {"status": "201 Created", "location": doc.reference,
                                     "etag": 'W/"1"'}})
        entries.append({"response": {"status": "201 Created",
                                     "location": f"Binary/{doc.content_id}"}})
    entries += [{"response": {"status": "201 Created", "location": f"List/{f}"}}
                for f in published.folder_ids]
    return {"resourceType": "Bundle", "type": "transaction-response", "entry": entries}


async def publish(request: Request, token: Token, svc: Svc) -> JSONResponse:
    limit = svc.settings.document_bundle_max_bytes
    raw = await _body(request, limit, "the bundle",
                      "stream large content with POST /fhir/Binary, then name Binary/<id>")
    try:
        bundle = json.loads(raw)
    except ValueError:
        raise InvalidInput("the body is not JSON", [Problem("expected a Bundle", "body")]) from None
    published = await run_in_threadpool(
        _sharing(svc).publish, token, bundle, request_id=_request_id(request))
    return _fhir(_transaction_response(published))


@router.post("/Binary", summary="Stream document content ahead of its ITI-65 bundle",
             dependencies=_publisher, status_code=201)
async def upload(request: Request, token: Token, svc: Svc) -> JSONResponse:
    """The raw bytes as the body, with their ``Content-Type``; staged, invisible, until an
    ITI-65 bundle names ``Binary/<id>`` with the same size and hash (within the staging
    grace period). Over the size limit: 413, and nothing is left in the store."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip()
    declared = request.headers.get("content-length")
    size = int(declared) if declared is not None and declared.isdigit() else None
    sharing = _sharing(svc)
    stager = await run_in_threadpool(
        sharing.begin_upload, token, content_type=content_type, expected_size=size)
    try:
        block = bytearray()
        async for chunk in request.stream():
            block += chunk
            if len(block) >= UPLOAD_BLOCK:
                await run_in_threadpool(stager.write, bytes(block))
                block.clear()
        if block:
            await run_in_threadpool(stager.write, bytes(block))
        staged = await run_in_threadpool(stager.finish)
    except BaseException:
        stager.abort()
        raise
    view = await run_in_threadpool(
        sharing.finish_upload, token, staged, content_type=content_type,
        request_id=_request_id(request))
    body = {"resourceType": "Binary", "id": view.content_id, "contentType": view.content_type}
    return _fhir(body, 201, {"Location": f"{fhir_base(request)}/Binary/{view.content_id}",
                             "ETag": f'"{staged.sha1_hex}"'})


def mount(fhir: APIRouter) -> None:
    """Add the MHD routes to the /fhir router, before the records router.

    ITI-65 is ``POST`` on the FHIR base itself, a path FastAPI will not take from
    an included router (an empty prefix and path), so it is added directly,
    with the same authentication every other route here declares once."""
    fhir.include_router(router)
    fhir.add_api_route(
        "",
        publish,
        methods=["POST"],
        summary="ITI-65 Provide Document Bundle",
        tags=["fhir: documents (IHE MHD)"],
        dependencies=[Depends(authenticated), Depends(require(Permission.DOCUMENTS_PUBLISH))],
    )


# -- find (ITI-67, ITI-66) and read ----------------------------------------------------


def _searchset(request: Request, entries: list[dict[str, Any]], total: int) -> JSONResponse:
    return _fhir({"resourceType": "Bundle", "type": "searchset", "total": total,
                  "link": [{"relation": "self", "url": public_url(request)}], "entry": entries})


@router.get("/DocumentReference", summary="ITI-67 Find Document References",
            dependencies=_reader)
@router.post("/DocumentReference/_search", summary="ITI-67 Find Document References (POST)",
             dependencies=_reader)
async def find(request: Request, token: Token, svc: Svc) -> JSONResponse:
    search = parse_document_search(await _params(request))
    found = await run_in_threadpool(
        _sharing(svc).find, token, search, request_id=_request_id(request))
    base = fhir_base(request)
    entries = [{"fullUrl": f"{base}/{view.reference}", "resource": _absolute(base, result),
                "search": {"mode": "match"}} for view, result in found.items]
    return _searchset(request, entries, found.total)


@router.get("/List", summary="ITI-66 Find Document Lists", dependencies=_reader)
@router.post("/List/_search", summary="ITI-66 Find Document Lists (POST)", dependencies=_reader)
async def find_lists(request: Request, token: Token, svc: Svc) -> JSONResponse:
    search = parse_list_search(await _params(request))
    found = await run_in_threadpool(
        _sharing(svc).find_lists, token, search, request_id=_request_id(request))
    base = fhir_base(request)
    entries = [{"fullUrl": f"{base}/List/{view.id}", "resource": resource,
                "search": {"mode": "match"}} for view, resource in found.items]
    return _searchset(request, entries, found.total)


@router.get("/DocumentReference/{id}", summary="Read a DocumentReference", dependencies=_reader)
def read(id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    result = _sharing(svc).read(token, id, request_id=_request_id(request))
    return _fhir(_absolute(fhir_base(request), result),
                 headers={"ETag": f'W/"{result.get("meta", {}).get("versionId", "1")}"'})


@router.get("/DocumentReference/{id}/_history", summary="Version history of a DocumentReference",
            dependencies=_reader)
def history(id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    items = _sharing(svc).history(token, id, request_id=_request_id(request))
    base = fhir_base(request)
    entries = [{"fullUrl": f"{base}/{view.reference}/_history/{view.version}",
                "resource": _absolute(base, result),
                "request": {"method": "POST" if view.version == 1 else "PUT",
                            "url": "DocumentReference" if view.version == 1 else view.reference},
                "response": {"status": "201 Created" if view.version == 1 else "200 OK"}}
               for view, result in items]
    return _fhir({"resourceType": "Bundle", "type": "history", "total": len(entries),
                  "entry": entries})


@router.get("/DocumentReference/{id}/_history/{vid}", summary="Read one version (vread)",
            dependencies=_reader)
def vread(id: str, vid: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    sharing = _sharing(svc)
    if not vid.isdigit() or int(vid) < 1:  # answered as a version that does not exist
        sharing.read(token, id, version=10**9, request_id=_request_id(request))
    result = sharing.read(token, id, version=int(vid), request_id=_request_id(request))
    return _fhir(_absolute(fhir_base(request), result), headers={"ETag": f'W/"{vid}"'})


# -- lifecycle ------------------------------------------------------------------------


def _parameters(body: Any) -> tuple[str, str]:
    problems: list[Problem] = []
    values: dict[str, str] = {}
    if not isinstance(body, dict) or body.get("resourceType") != "Parameters":
        raise InvalidInput("expected a Parameters resource", [Problem("must be Parameters",
                                                                      "resourceType")])
    for i, p in enumerate(body.get("parameter") or []):
        name = p.get("name") if isinstance(p, dict) else None
        if name in ("status", "reason"):
            value = p.get("valueCode", p.get("valueString"))
            if isinstance(value, str):
                values[name] = value
            else:
                problems.append(Problem("needs valueCode or valueString", f"parameter[{i}]"))
        else:
            problems.append(Problem(f"unknown parameter {name!r}", f"parameter[{i}]"))
    for name in ("status", "reason"):
        if name not in values:
            problems.append(Problem("required", f"parameter.{name}"))
    if problems:
        raise InvalidInput("the status change cannot be made", problems)
    return values["status"], values["reason"]


@router.post("/DocumentReference/{id}/$status", summary="Deprecate or mark entered-in-error",
             dependencies=_publisher)
async def change_status(id: str, request: Request, token: Token, svc: Svc) -> JSONResponse:
    raw = await _body(request, 64 * 1024, "the Parameters", "a status and a short reason")
    try:
        body = json.loads(raw)
    except ValueError:
        raise InvalidInput("the body is not JSON", [Problem("expected Parameters", "body")]
                           ) from None
    status, reason = _parameters(body)
    view: DocumentView = await run_in_threadpool(
        _sharing(svc).change_status, token, id, status, reason, request_id=_request_id(request))
    return _fhir(_absolute(fhir_base(request), view.resource),
                 headers={"ETag": f'W/"{view.version}"'})


# -- retrieve (ITI-68) -----------------------------------------------------------------


@router.get("/Binary/{id}", summary="ITI-68 Retrieve Document", dependencies=_reader)
def retrieve(id: str, request: Request, token: Token, svc: Svc) -> Response:
    header = request.headers.get("range")
    view, reader = _sharing(svc).open(
        token, id, request_id=_request_id(request),
        range_of=lambda size: parse_range(header, size))
    ranged = parse_range(header, view.size) is not None  # already checked by open
    headers = {"ETag": f'"{reader.info.sha1_hex}"', "Accept-Ranges": "bytes",
               "Content-Length": str(reader.length)}
    if ranged:
        headers["Content-Range"] = content_range(reader.start, reader.stop, reader.size)

    return StreamingResponse(_stream(reader), status_code=206 if ranged else 200,
                             headers=headers, media_type=view.content_type)


_BATCH_BYTES = 4 * 1024 * 1024
"""Bytes of verified content taken from the reader per trip to the thread pool."""


async def _stream(reader: ContentReader) -> AsyncIterator[bytes]:
    """The reader's pieces, fetched a few MiB per thread-pool trip rather than one trip
    per piece (what a plain iterator costs in ``StreamingResponse``: a hand-over of the
    event loop to a worker thread and back for every 256 KiB). The reader's checks are
    unchanged: a piece is only ever what the reader released (tag checked; the last
    chunk only after the SHA-1 matched), and its exception aborts the response."""
    pieces = iter(reader)

    def batch() -> list[bytes]:
        taken: list[bytes] = []
        size = 0
        for piece in pieces:
            taken.append(piece)
            size += len(piece)
            if size >= _BATCH_BYTES:
                break
        return taken

    try:
        while taken := await run_in_threadpool(batch):
            for piece in taken:
                yield piece
    finally:
        # A no-op once the reader is exhausted (it closed itself). Otherwise (the client
        # went away, or a check failed) no batch is running any more: the thread-pool
        # call is waited for even when cancelled. Closing stops the hash thread after
        # its last few queued pieces (well under a millisecond); done here rather than
        # awaited, which a cancelled task could not do.
        reader.close()
