"""Documents lifecycle and search: version history, status reasons, search values for
every ITI-67 / ITI-66 parameter, List entries (SubmissionSets and Folders), and
uploads streamed ahead of their ITI-65.

Existing documents get version 1 in the history, their List entries from
``submission_set_id``, and their search values from the stored JSON (the
extraction is copied here, as it stood, so later changes to the code do not
change what this migration does).

Revision ID: 0007_documents_lifecycle
Revises: 0005_documents
Create Date: 2026-12-03
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0007_documents_lifecycle"
down_revision = "0005_documents"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("document_references") as batch:
        batch.add_column(sa.Column("status_reason", sa.Text, nullable=True))
        batch.add_column(sa.Column("version", sa.Integer, server_default=sa.text("1"),
                                   nullable=False))
        batch.add_column(sa.Column("period_start", TS, nullable=True))
        batch.add_column(sa.Column("period_end", TS, nullable=True))
    with op.batch_alter_table("document_submission_sets") as batch:
        batch.add_column(sa.Column("code", sa.String(20),
                                   server_default=sa.text("'submissionset'"), nullable=False))
        batch.add_column(sa.Column("status", sa.String(20), server_default=sa.text("'current'"),
                                   nullable=False))
        batch.add_column(sa.Column("date", TS, nullable=True))
        batch.add_column(sa.Column("source_id", sa.String(300), nullable=True))
    op.create_table(
        "document_list_entries",
        sa.Column("list_id", sa.String(64), nullable=False),
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("list_id", "document_id", name="pk_document_list_entries"),
    )
    op.create_index("ix_document_list_entries_document_id", "document_list_entries",
                    ["document_id"])
    op.create_table(
        "document_reference_versions",
        sa.Column("document_id", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("reason", sa.Text, nullable=True),
        sa.Column("changed_by", sa.String(10), nullable=False),
        sa.Column("recorded_at", TS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("document_id", "version", name="pk_document_reference_versions"),
    )
    op.create_table(
        "document_search_tokens",
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(40), nullable=False),
        sa.Column("system", sa.String(300), nullable=False),
        sa.Column("value", sa.String(300), nullable=False),
        sa.PrimaryKeyConstraint("resource_id", "name", "system", "value",
                                name="pk_document_search_tokens"),
    )
    op.create_index("ix_document_search_tokens_value", "document_search_tokens",
                    ["name", "value"])
    op.create_table(
        "document_uploads",
        sa.Column("content_id", sa.String(32), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha1", sa.String(28), nullable=False),
        sa.Column("staging_token", sa.Text, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("content_id", name="pk_document_uploads"),
    )
    op.create_index("ix_document_uploads_created_at", "document_uploads", ["created_at"])
    _backfill()


def downgrade() -> None:
    op.drop_table("document_uploads")
    op.drop_table("document_search_tokens")
    op.drop_table("document_reference_versions")
    op.drop_table("document_list_entries")
    with op.batch_alter_table("document_submission_sets") as batch:
        for name in ("source_id", "date", "status", "code"):
            batch.drop_column(name)
    with op.batch_alter_table("document_references") as batch:
        for name in ("period_end", "period_start", "version", "status_reason"):
            batch.drop_column(name)


# -- backfill (self-contained: the extraction as it stood at this revision) -------------

def _codings(concept: Any) -> Iterator[tuple[str, str]]:
    if isinstance(concept, dict):
        for c in concept.get("coding") or []:
            if isinstance(c, dict) and c.get("code"):
                yield str(c.get("system") or ""), str(c["code"])[:300]


def _ref(value: Any) -> Iterator[tuple[str, str]]:
    if isinstance(value, dict):
        ref = value.get("reference")
        if isinstance(ref, str) and ref:
            parts = ref.split("/_history/")[0].rstrip("/").split("/")
            yield "", (f"{parts[-2]}/{parts[-1]}" if len(parts) >= 2 and parts[-2][:1].isupper()
                       else ref)[:300]
        ident = value.get("identifier")
        if isinstance(ident, dict) and ident.get("value"):
            yield str(ident.get("system") or ""), str(ident["value"])[:300]


def _tokens(doc: dict[str, Any]) -> set[tuple[str, str, str]]:
    found: set[tuple[str, str, str]] = set()
    found |= {("type", s, c) for s, c in _codings(doc.get("type"))}
    found |= {("category", s, c) for cat in doc.get("category") or [] for s, c in _codings(cat)}
    found |= {("securityLabel", s, c) for lab in doc.get("securityLabel") or []
              for s, c in _codings(lab)}
    found |= {("author", s, v) for a in doc.get("author") or [] for s, v in _ref(a)}
    master = doc.get("masterIdentifier")
    if isinstance(master, dict) and master.get("value"):
        found.add(("identifier", str(master.get("system") or ""), str(master["value"])[:300]))
    for content in doc.get("content") or []:
        fmt = content.get("format") if isinstance(content, dict) else None
        if isinstance(fmt, dict) and fmt.get("code"):
            found.add(("format", str(fmt.get("system") or ""), str(fmt["code"])))
    raw_context = doc.get("context")
    context: dict[str, Any] = raw_context if isinstance(raw_context, dict) else {}
    found |= {("event", s, c) for e in context.get("event") or [] for s, c in _codings(e)}
    found |= {("setting", s, c) for s, c in _codings(context.get("practiceSetting"))}
    found |= {("facility", s, c) for s, c in _codings(context.get("facilityType"))}
    found |= {("related", s, v) for r in context.get("related") or [] for s, v in _ref(r)}
    return found


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    text = value.replace("Z", "+00:00")
    text = {4: f"{text}-01-01", 7: f"{text}-01"}.get(len(text), text)
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _backfill() -> None:
    conn = op.get_bind()
    meta = sa.MetaData()
    docs = sa.Table("document_references", meta, autoload_with=conn)
    entries = sa.Table("document_list_entries", meta, autoload_with=conn)
    history = sa.Table("document_reference_versions", meta, autoload_with=conn)
    tokens = sa.Table("document_search_tokens", meta, autoload_with=conn)
    rows = conn.execute(sa.select(
        docs.c.id, docs.c.submission_set_id, docs.c.status, docs.c.org_code,
        docs.c.updated_at, docs.c.body)).all()
    for doc_id, set_id, status, org, updated, body in rows:
        resource = json.loads(body)
        resource.setdefault("meta", {})["versionId"] = "1"
        text = json.dumps(resource, separators=(",", ":"))
        period = (resource.get("context") or {}).get("period") or {}
        conn.execute(sa.update(docs).where(docs.c.id == doc_id).values(
            body=text, period_start=_instant(period.get("start")),
            period_end=_instant(period.get("end"))))
        conn.execute(sa.insert(entries).values(list_id=set_id, document_id=doc_id))
        conn.execute(sa.insert(history).values(
            document_id=doc_id, version=1, status=status, reason=None, changed_by=org,
            recorded_at=updated, body=text))
        values = [{"resource_id": doc_id, "name": n, "system": s, "value": v}
                  for n, s, v in sorted(_tokens(resource))]
        if values:
            conn.execute(sa.insert(tokens), values)
    conn.execute(sa.insert(tokens).from_select(
        ["resource_id", "name", "system", "value"],
        sa.select(sa.literal_column("id"), sa.literal("code"),
                  sa.literal("https://profiles.ihe.net/ITI/MHD/CodeSystem/MHDlistTypes"),
                  sa.literal("submissionset")).select_from(sa.table("document_submission_sets")),
    ))
