"""Access: consent directives (FHIR Consent) and self-declared relationships.

Revision ID: 0006_access
Revises: 0001_foundation
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006_access"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "consent_directives",
        sa.Column("id", sa.String(64), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("organisation", sa.String(10), nullable=True),
        sa.Column("category", sa.String(40), nullable=True),
        sa.Column("agreement_id", sa.String(80), nullable=True),
        sa.Column("recorded", sa.Date, nullable=False),
        sa.Column("start", sa.Date, nullable=True),
        sa.Column("end", sa.Date, nullable=True),
        sa.Column("recorded_by_org", sa.String(10), nullable=False),
        sa.Column("recorded_by", sa.String(80), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
        sa.Column("resource", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_consent_directives"),
    )
    op.create_index("ix_consent_directives_patient_id", "consent_directives", ["patient_id"])
    op.create_table(
        "declared_relationships",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("patient_id", sa.String(64), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("practitioner", sa.String(80), nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("declared_at", TS, nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_declared_relationships"),
    )
    op.create_index(
        "ix_declared_relationships_patient_id_expires_at",
        "declared_relationships",
        ["patient_id", "expires_at"],
    )


def downgrade() -> None:
    op.drop_index(
        "ix_declared_relationships_patient_id_expires_at", table_name="declared_relationships"
    )
    op.drop_table("declared_relationships")
    op.drop_index("ix_consent_directives_patient_id", table_name="consent_directives")
    op.drop_table("consent_directives")
