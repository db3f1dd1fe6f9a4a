"""Documents: the MHD registry (DocumentReferences with their two-phase publish state,
SubmissionSets). Content lives in the document content store, not here.

Revision ID: 0005_documents
Revises: 0001_foundation
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op

revision = "0005_documents"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "document_references",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("master_identifier", sa.String(300), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("availability", sa.String(10), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("sensitivity", sa.String(1), nullable=False),
        sa.Column("type_system", sa.String(300), nullable=False),
        sa.Column("type_code", sa.String(100), nullable=False),
        sa.Column("class_system", sa.String(300), nullable=False),
        sa.Column("class_code", sa.String(100), nullable=False),
        sa.Column("date", TS, nullable=False),
        sa.Column("content_id", sa.String(32), nullable=False),
        sa.Column("content_type", sa.String(100), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("sha1", sa.String(28), nullable=False),
        sa.Column("staging_token", sa.Text, nullable=True),
        sa.Column("submission_set_id", sa.String(64), nullable=False),
        sa.Column("replaces_id", sa.String(64), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_document_references"),
        sa.UniqueConstraint("master_identifier", name="uq_document_references_master_identifier"),
        sa.UniqueConstraint("content_id", name="uq_document_references_content_id"),
    )
    op.create_index(
        "ix_document_references_subject", "document_references", ["subject_id", "status"]
    )
    op.create_index(
        "ix_document_references_availability",
        "document_references",
        ["availability", "created_at"],
    )
    op.create_table(
        "document_submission_sets",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_document_submission_sets"),
    )
    op.create_index(
        "ix_document_submission_sets_subject_id", "document_submission_sets", ["subject_id"]
    )


def downgrade() -> None:
    op.drop_table("document_submission_sets")
    op.drop_table("document_references")
