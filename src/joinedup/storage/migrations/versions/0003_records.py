"""Records and feeds: the canonical resource store, its history and search index; feeds,
batches, the per-batch seen-ids work table, and quarantine.

Revision ID: 0003_records
Revises: 0001_foundation
Create Date: 2026-11-22
"""

from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0003_records"
down_revision = "0001_foundation"
branch_labels = ("records",)
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)
FHIR_ID = sa.String(64).with_variant(sa.String(64, collation="C"), "postgresql")
SEARCH_TEXT = sa.String(300).with_variant(sa.String(300, collation="C"), "postgresql")
NO_ROWID = {"sqlite_with_rowid": False}


def _resource_columns(body: bool) -> list[sa.Column[Any]]:
    return [
        sa.Column("last_updated", TS, nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("content_hash", sa.String(32), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("sensitivity", sa.String(1), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=True),
        *([sa.Column("body", sa.Text, nullable=False)] if body else []),
    ]


def upgrade() -> None:
    # -- the record store ----------------------------------------------------------
    op.create_table(
        "resources",
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("id", FHIR_ID, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        *_resource_columns(body=False),
        sa.PrimaryKeyConstraint("resource_type", "id", name="pk_resources"),
    )
    op.create_index("ix_resources_feed_source", "resources", ["feed_id", "source_id"])
    op.create_index("ix_resources_subject", "resources", ["subject_id", "resource_type"])
    op.create_table(
        "resource_history",
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("id", FHIR_ID, nullable=False),
        sa.Column("version_id", sa.Integer, nullable=False),
        *_resource_columns(body=True),
        sa.PrimaryKeyConstraint("resource_type", "id", "version_id", name="pk_resource_history"),
    )
    op.create_table(
        "search_token",
        sa.Column("code", SEARCH_TEXT, nullable=False),
        sa.Column("system", sa.String(300), nullable=False),
        sa.Column("param", sa.String(40), nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "code", "system", "param", "resource_type", "resource_id", name="pk_search_token"
        ),
        **NO_ROWID,
    )
    op.create_table(
        "search_string",
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("param", sa.String(40), nullable=False),
        sa.Column("value", SEARCH_TEXT, nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "param", "value", "resource_id", name="pk_search_string"
        ),
        **NO_ROWID,
    )
    op.create_table(
        "search_date",
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("param", sa.String(40), nullable=False),
        sa.Column("low", sa.BigInteger, nullable=False),
        sa.Column("high", sa.BigInteger, nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "resource_type", "param", "low", "high", "resource_id", name="pk_search_date"
        ),
        **NO_ROWID,
    )
    op.create_table(
        "search_reference",
        sa.Column("target_id", sa.String(64), nullable=False),
        sa.Column("target_type", sa.String(40), nullable=False),
        sa.Column("param", sa.String(40), nullable=False),
        sa.Column("resource_type", sa.String(40), nullable=False),
        sa.Column("resource_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint(
            "target_id",
            "target_type",
            "param",
            "resource_type",
            "resource_id",
            name="pk_search_reference",
        ),
        **NO_ROWID,
    )

    # -- feeds, batches, quarantine ----------------------------------------------
    op.create_table(
        "feeds",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("format", sa.String(10), nullable=False),
        sa.Column("categories", JSON, nullable=False),
        sa.Column("mapping_path", sa.String(1000), nullable=True),
        sa.Column("mapping_sha256", sa.String(64), nullable=True),
        sa.Column("partial_policy", sa.String(20), nullable=False),
        sa.Column("missing_policy", sa.String(20), nullable=False),
        sa.Column("refresh_mode", sa.String(20), nullable=False),
        sa.Column("description", sa.String(500), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("revision", sa.Integer, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_feeds"),
        sa.ForeignKeyConstraint(
            ["org_code"], ["organisations.code"], name="fk_feeds_org_code_organisations"
        ),
    )
    op.create_index("ix_feeds_org_code", "feeds", ["org_code"])
    op.create_table(
        "batches",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("file_name", sa.String(300), nullable=True),
        sa.Column("file_sha256", sa.String(64), nullable=True),
        sa.Column("file_size", sa.BigInteger, nullable=True),
        sa.Column("feed_revision", sa.Integer, nullable=False),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("finished_at", TS, nullable=True),
        sa.Column("units_read", sa.Integer, nullable=False),
        sa.Column("accepted", sa.Integer, nullable=False),
        sa.Column("rejected", sa.Integer, nullable=False),
        sa.Column("warnings", sa.Integer, nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("withdrawn", sa.Integer, nullable=False),
        sa.Column("duplicate_of", sa.String(40), nullable=True),
        sa.Column("error", sa.String(1000), nullable=True),
        sa.Column("report", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_batches"),
        sa.ForeignKeyConstraint(["feed_id"], ["feeds.id"], name="fk_batches_feed_id_feeds"),
        sa.CheckConstraint("units_read = accepted + rejected", name="ck_batches_read_is_accepted_plus_rejected"),
    )
    op.create_index("ix_batches_feed", "batches", ["feed_id", "started_at"])
    op.create_index("ix_batches_file", "batches", ["feed_id", "file_sha256"])
    op.create_table(
        "batch_seen",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "source_id", name="pk_batch_seen"),
        **NO_ROWID,
    )
    op.create_table(
        "batch_spool",
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("seq", sa.Integer, nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.Column("source_id", sa.String(200), nullable=False),
        sa.Column("origin_batch", sa.String(40), nullable=True),
        sa.Column("quarantine_id", sa.Integer, nullable=True),
        sa.Column("resources", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("batch_id", "seq", name="pk_batch_spool"),
        **NO_ROWID,
    )
    op.create_table(
        "quarantine",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("batch_id", sa.String(40), nullable=False),
        sa.Column("feed_id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("unit", sa.Integer, nullable=False),
        sa.Column("source_id", sa.String(200), nullable=True),
        sa.Column("raw", sa.Text, nullable=False),
        sa.Column("problems", JSON, nullable=False),
        sa.Column("extra", JSON, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("resolved_batch_id", sa.String(40), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_quarantine"),
    )
    op.create_index("ix_quarantine_feed_status", "quarantine", ["feed_id", "status", "id"])
    op.create_index("ix_quarantine_batch", "quarantine", ["batch_id", "unit"])


def downgrade() -> None:
    for table in (
        "quarantine",
        "batch_spool",
        "batch_seen",
        "batches",
        "feeds",
        "search_reference",
        "search_date",
        "search_string",
        "search_token",
        "resource_history",
        "resources",
    ):
        op.drop_table(table)
