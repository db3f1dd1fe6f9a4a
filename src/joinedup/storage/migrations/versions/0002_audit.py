"""Audit: hash-chained events, their person index, chain head, checkpoints, archive anchors.

Revision ID: 0002_audit
Revises: 0001_foundation
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002_audit"
down_revision = "0001_foundation"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
SEQ = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "audit_chain_head",
        sa.Column("id", sa.Integer, nullable=False, autoincrement=False),
        sa.Column("log_id", sa.String(32), nullable=False),
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("checkpoint_seq", sa.BigInteger, nullable=False),
        sa.Column("checkpoint_at", TS, nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_audit_chain_head"),
    )
    op.create_table(
        "audit_events",
        sa.Column("seq", SEQ, nullable=False, autoincrement=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("action", sa.String(40), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("org", sa.String(80), nullable=True),
        sa.Column("client_id", sa.String(80), nullable=True),
        sa.Column("practitioner", sa.String(80), nullable=True),
        sa.Column("role", sa.String(80), nullable=True),
        sa.Column("purpose", sa.String(40), nullable=True),
        sa.Column("break_glass", sa.Boolean, nullable=False),
        sa.Column("subject_seq", sa.BigInteger, nullable=True),
        sa.Column("body", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_events"),
    )
    op.create_index("ix_audit_events_time", "audit_events", ["time"])
    op.create_index("ix_audit_events_subject_seq", "audit_events", ["subject_seq"])
    op.create_index("ix_audit_events_action_time", "audit_events", ["action", "time"])
    op.create_index("ix_audit_events_org_time", "audit_events", ["org", "time"])
    op.create_index(
        "ix_audit_events_practitioner_time", "audit_events", ["practitioner", "time"]
    )
    op.create_table(
        "audit_event_persons",
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", "person_id", name="pk_audit_event_persons"),
    )
    op.create_index(
        "ix_audit_event_persons_person_id_seq", "audit_event_persons", ["person_id", "seq"]
    )
    op.create_table(
        "audit_checkpoints",
        sa.Column("seq", SEQ, nullable=False, autoincrement=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("kid", sa.String(40), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_audit_checkpoints"),
    )
    op.create_table(
        "audit_anchors",
        sa.Column("last_seq", SEQ, nullable=False, autoincrement=False),
        sa.Column("first_seq", sa.BigInteger, nullable=False),
        sa.Column("prev_hash", sa.String(64), nullable=False),
        sa.Column("last_hash", sa.String(64), nullable=False),
        sa.Column("archive_sha256", sa.String(64), nullable=False),
        sa.Column("archive_name", sa.String(300), nullable=False),
        sa.Column("time", TS, nullable=False),
        sa.Column("kid", sa.String(40), nullable=False),
        sa.Column("statement", sa.Text, nullable=False),
        sa.Column("signature", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("last_seq", name="pk_audit_anchors"),
    )


def downgrade() -> None:
    op.drop_table("audit_anchors")
    op.drop_table("audit_checkpoints")
    op.drop_table("audit_event_persons")
    op.drop_table("audit_events")
    op.drop_table("audit_chain_head")
