"""Admin routes for feeds, batches and quarantine (mounted under /admin).

An organisation's integration engineer sees and changes only its own feeds;
a token from the hub organisation sees every feed. A feed of another
organisation answers 404, as if it did not exist. Posting a batch streams the
upload to a temporary file and loads it in one transaction; the response is
the batch report, and the audit log gets the batch's ids and counts.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, File, Query, Request, UploadFile

from joinedup.api.audit_trail import actor_of
from joinedup.api.deps import Token, require, services
from joinedup.audit.changes import batch_event
from joinedup.auth.permissions import Permission
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Forbidden, InvalidInput, NotFound, Problem
from joinedup.services import Services
from joinedup.sources.batches import BatchResult, Ingestion
from joinedup.sources.feeds import Feed, FeedSpec, check_mapping
from joinedup.sources.quarantine import OPEN
from joinedup.validation import parse

router = APIRouter(tags=["admin: feeds"])

Svc = Annotated[Services, Depends(services)]
FeedsWrite = Depends(require(Permission.FEEDS_WRITE))
RecordsWrite = Depends(require(Permission.RECORDS_WRITE))
JsonBody = Annotated[dict[str, Any], Body()]
UPLOAD_CHUNK = 1 << 20


def ingestion(svc: Svc) -> Ingestion:
    return svc.ingestion


Ing = Annotated[Ingestion, Depends(ingestion)]


def _own_feed(svc: Services, ing: Ingestion, token: AccessToken, feed_id: str) -> Feed:
    feed = ing.feeds.get(feed_id)
    if feed.org != token.org and not svc.registry.is_hub(token.org):
        raise NotFound(f"no feed {feed_id!r}")
    return feed


def _mapping_roots(svc: Services) -> list[Path]:
    from joinedup.sources.mapping import bundled_mappings

    bundled = {p.parent.parent.resolve() for p in bundled_mappings().values()}
    return [(svc.settings.data_dir / "mappings").resolve(), *sorted(bundled)]


def _register(
    svc: Services,
    ing: Ingestion,
    token: AccessToken,
    body: dict[str, Any],
    feed_id: str | None,
    *,
    replace: bool,
) -> Feed:
    """Register from a request: ``mapping`` names a file in an allowed folder, or
    ``mapping_text`` carries the YAML itself (saved under <data_dir>/mappings/ once valid)."""
    data = dict(body)
    if feed_id is not None:
        data["id"] = feed_id
    text = data.pop("mapping_text", None)
    target: Path | None = None
    if text is not None:
        if not isinstance(text, str):
            raise InvalidInput("invalid feed", [Problem("must be the YAML text", "mapping_text")])
        folder = svc.settings.data_dir / "mappings" / str(data.get("org", "_"))
        target = folder / f"{data.get('id', 'feed')}.yaml"
        data["mapping"] = str(target)
    spec = parse(FeedSpec, data, what="feed")
    if spec.org != token.org and not svc.registry.is_hub(token.org):
        raise Forbidden(f"this token acts for {token.org}, not {spec.org}")
    if target is not None:
        assert isinstance(text, str)
        target.parent.mkdir(parents=True, exist_ok=True)
        pending = target.with_suffix(".yaml.new")
        pending.write_text(text, encoding="utf-8")
        problems = check_mapping(pending, spec)
        if problems:
            pending.unlink()
            raise InvalidInput(f"feed {spec.id!r} cannot be registered", problems)
        pending.replace(target)
    elif spec.mapping is not None:
        path = Path(spec.mapping).resolve()
        if not any(path.is_relative_to(root) for root in _mapping_roots(svc)):
            raise InvalidInput(
                "invalid feed",
                [Problem("must be a shipped mapping or one under <data_dir>/mappings", "mapping")],
            )
    return ing.feeds.register(spec, replace=replace)


@router.get("/feeds", dependencies=[FeedsWrite], summary="List feeds")
def list_feeds(svc: Svc, ing: Ing, token: Token) -> list[dict[str, Any]]:
    org = None if svc.registry.is_hub(token.org) else token.org
    return [f.view() for f in ing.feeds.list(org)]


@router.post("/feeds", dependencies=[FeedsWrite], status_code=201, summary="Register a feed")
def register_feed(svc: Svc, ing: Ing, token: Token, body: JsonBody) -> dict[str, Any]:
    return _register(svc, ing, token, body, None, replace=False).view()


@router.put("/feeds/{feed_id}", dependencies=[FeedsWrite], summary="Change a feed")
def replace_feed(svc: Svc, ing: Ing, token: Token, feed_id: str, body: JsonBody) -> dict[str, Any]:
    _own_feed(svc, ing, token, feed_id)
    return _register(svc, ing, token, body, feed_id, replace=True).view()


@router.get(
    "/feeds/{feed_id}", dependencies=[FeedsWrite], summary="A feed, its data quality and batches"
)
def show_feed(svc: Svc, ing: Ing, token: Token, feed_id: str) -> dict[str, Any]:
    feed = _own_feed(svc, ing, token, feed_id)
    return {
        **feed.view(),
        "quality": ing.loader.feed_quality(feed_id),
        "open_quarantine": ing.quarantine.count(feed_id=feed_id),
    }


@router.get("/feeds/{feed_id}/batches", dependencies=[FeedsWrite], summary="A feed's batches")
def list_batches(
    svc: Svc, ing: Ing, token: Token, feed_id: str, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> list[dict[str, Any]]:
    _own_feed(svc, ing, token, feed_id)
    return [_summary(b) for b in ing.loader.list(feed_id, limit=limit)]


@router.post(
    "/feeds/{feed_id}/batches",
    dependencies=[RecordsWrite],
    status_code=201,
    summary="Load a file as a batch (multipart upload, field 'file')",
)
def post_batch(
    request: Request,
    svc: Svc,
    ing: Ing,
    token: Token,
    feed_id: str,
    file: Annotated[UploadFile, File(description="The export file")],
    force: bool = False,
) -> dict[str, Any]:
    _own_feed(svc, ing, token, feed_id)
    name = Path(file.filename or "upload").name
    with tempfile.TemporaryDirectory(prefix="joinedup-batch-") as tmp:
        path = Path(tmp) / name
        with path.open("wb") as out:
            shutil.copyfileobj(file.file, out, UPLOAD_CHUNK)
        result = ing.ingest_file(feed_id, path, name=name, force=force)
    _record_batch(request, token, result)
    return result.view()


@router.get("/batches/{batch_id}", dependencies=[FeedsWrite], summary="A batch and its report")
def show_batch(svc: Svc, ing: Ing, token: Token, batch_id: str) -> dict[str, Any]:
    result = ing.loader.get(batch_id)
    _own_feed(svc, ing, token, result.feed_id)
    return result.view()


@router.get(
    "/feeds/{feed_id}/quarantine",
    dependencies=[FeedsWrite],
    summary="Quarantined units (raw text only with records:read and include_raw=true)",
)
def list_quarantine(
    svc: Svc,
    ing: Ing,
    token: Token,
    feed_id: str,
    batch: str | None = None,
    status: str = OPEN,
    after: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    include_raw: bool = False,
) -> dict[str, Any]:
    _own_feed(svc, ing, token, feed_id)
    if include_raw and not token.has(Permission.RECORDS_READ):
        raise Forbidden("the raw text of quarantined units needs records:read")
    units = ing.quarantine.list(
        feed_id=feed_id,
        batch_id=batch,
        status=None if status == "all" else status,
        after_id=after,
        limit=limit,
    )
    return {
        "feed": feed_id,
        "units": [u.view(include_raw=include_raw) for u in units],
        "next_after": units[-1].id if len(units) == limit else None,
    }


@router.post(
    "/feeds/{feed_id}/quarantine/reprocess",
    dependencies=[RecordsWrite],
    summary="Re-map open quarantined units with the feed's current mapping",
)
def reprocess(
    request: Request, svc: Svc, ing: Ing, token: Token, feed_id: str, batch: str | None = None
) -> dict[str, Any]:
    _own_feed(svc, ing, token, feed_id)
    result = ing.reprocess(feed_id, batch_id=batch)
    _record_batch(request, token, result)
    return result.view()


def _record_batch(request: Request, token: AccessToken, result: BatchResult) -> None:
    event = batch_event(
        result.event(),
        actor_of(token),
        purpose=token.purpose,
        request_id=getattr(request.state, "request_id", None),
    )
    request.app.state.services.audit.append([event])


def _summary(b: BatchResult) -> dict[str, Any]:
    return {
        "id": b.batch_id,
        "kind": b.kind,
        "status": b.status.value,
        "counts": b.counts,
        "file": (b.report.get("file") or {}).get("name"),
        "duplicate_of": b.duplicate_of,
    }
