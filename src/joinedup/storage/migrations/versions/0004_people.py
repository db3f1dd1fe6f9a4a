"""Person index: persons, linked records, blocking keys, history, review queue, merges.

Revision ID: 0004_people
Revises: 0001_foundation
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0004_people"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "persons",
        sa.Column("id", sa.String(36), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("merged_into", sa.String(36), nullable=True),
        sa.Column("flagged", sa.Boolean, nullable=False),
        sa.Column("flag_reason", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_persons"),
    )
    op.create_table(
        "person_records",
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("nhs_number", sa.String(10), nullable=True),
        sa.Column("features", JSON, nullable=False),
        sa.Column("rule", sa.String(40), nullable=False),
        sa.Column("probability", sa.Float, nullable=True),
        sa.Column("linked_at", TS, nullable=False),
        sa.Column("linked_by", sa.String(80), nullable=False),
        sa.PrimaryKeyConstraint("record_id", name="pk_person_records"),
        sa.ForeignKeyConstraint(
            ["person_id"], ["persons.id"], name="fk_person_records_person_id_persons"
        ),
    )
    op.create_index("ix_person_records_person_id", "person_records", ["person_id"])
    op.create_index("ix_person_records_org_code", "person_records", ["org_code"])
    op.create_index("ix_person_records_nhs_number", "person_records", ["nhs_number"])
    op.create_table(
        "person_keys",
        sa.Column("key", sa.String(200), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.PrimaryKeyConstraint("key", "record_id", name="pk_person_keys"),
        sa.ForeignKeyConstraint(
            ["record_id"],
            ["person_records.record_id"],
            name="fk_person_keys_record_id_person_records",
            ondelete="CASCADE",
        ),
    )
    op.create_table(
        "person_events",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("person_id", sa.String(36), nullable=False),
        sa.Column("record_id", sa.String(100), nullable=True),
        sa.Column("action", sa.String(30), nullable=False),
        sa.Column("rule", sa.String(40), nullable=True),
        sa.Column("probability", sa.Float, nullable=True),
        sa.Column("actor", sa.String(80), nullable=False),
        sa.Column("detail", JSON, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_person_events"),
    )
    op.create_index("ix_person_events_person_id", "person_events", ["person_id"])
    op.create_table(
        "review_pairs",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("record_id", sa.String(100), nullable=False),
        sa.Column("candidate_record_id", sa.String(100), nullable=False),
        sa.Column("probability", sa.Float, nullable=False),
        sa.Column("weight", sa.Float, nullable=False),
        sa.Column("reason", sa.String(100), nullable=False),
        sa.Column("evidence", JSON, nullable=False),
        sa.Column("evidence_hash", sa.String(64), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("decided_at", TS, nullable=True),
        sa.Column("decided_by", sa.String(80), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_review_pairs"),
        sa.UniqueConstraint(
            "record_id", "candidate_record_id", "evidence_hash", name="uq_review_pairs_record_id"
        ),
    )
    op.create_index("ix_review_pairs_record_id", "review_pairs", ["record_id"])
    op.create_index("ix_review_pairs_candidate_record_id", "review_pairs", ["candidate_record_id"])
    op.create_index("ix_review_pairs_status", "review_pairs", ["status"])
    op.create_table(
        "person_merges",
        sa.Column("id", sa.Integer, autoincrement=True, nullable=False),
        sa.Column("survivor_id", sa.String(36), nullable=False),
        sa.Column("merged_id", sa.String(36), nullable=False),
        sa.Column("moved", JSON, nullable=False),
        sa.Column("merged_flag", JSON, nullable=False),
        sa.Column("at", TS, nullable=False),
        sa.Column("by", sa.String(80), nullable=False),
        sa.Column("reason", sa.String(500), nullable=False),
        sa.Column("undone_at", TS, nullable=True),
        sa.Column("undone_by", sa.String(80), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_person_merges"),
    )
    op.create_index("ix_person_merges_survivor_id", "person_merges", ["survivor_id"])
    op.create_index("ix_person_merges_merged_id", "person_merges", ["merged_id"])
    op.create_table(
        "person_link_lock",
        sa.Column("id", sa.Integer, nullable=False),
        sa.Column("counter", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_person_link_lock"),
    )
    op.execute("INSERT INTO person_link_lock (id, counter) VALUES (1, 0)")


def downgrade() -> None:
    for table in [
        "person_link_lock",
        "person_merges",
        "review_pairs",
        "person_events",
        "person_keys",
        "person_records",
        "persons",
    ]:
        op.drop_table(table)
