"""Audit write path: one index entry fewer per event, one B-tree fewer per person on SQLite.

* ``ix_audit_events_subject_seq`` becomes partial (``WHERE subject_seq IS NOT
  NULL``). Only review events carry a subject (the break-glass event they
  review), and the one query on it (``queries.reviews_for``) asks for given
  subjects, so the index held a NULL entry for every other event, written on
  every insert and never read.
* On SQLite ``audit_event_persons`` becomes a ``WITHOUT ROWID`` table keyed by
  ``(seq, person_id)``: the rows live in the primary-key B-tree itself, where
  before each person was written to a rowid table *and* to the key's automatic
  index. PostgreSQL has no rowid and needs nothing here.

No stored value changes (the rows are copied as they are), so existing logs
verify exactly as before. Measured with the writer alone on SQLite
(docs/performance.md): ~5% fewer WAL pages per commit.

Revision ID: 0012_audit_indexes
Revises: 0009_audit_perf
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0012_audit_indexes"
down_revision = "0009_audit_perf"
branch_labels = None
depends_on = None

_PERSON_INDEX = "ix_audit_event_persons_person_id_seq"


def _persons_table(name: str, *, with_rowid: bool) -> None:
    op.create_table(
        name,
        sa.Column("seq", sa.BigInteger, nullable=False),
        sa.Column("person_id", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("seq", "person_id", name="pk_audit_event_persons"),
        sqlite_with_rowid=with_rowid,
    )


def _rebuild_persons(*, with_rowid: bool) -> None:
    """SQLite cannot change a table's rowid-ness in place: copy into a new table."""
    op.drop_index(_PERSON_INDEX, table_name="audit_event_persons")
    _persons_table("audit_event_persons_new", with_rowid=with_rowid)
    op.execute(
        "INSERT INTO audit_event_persons_new (seq, person_id) "
        "SELECT seq, person_id FROM audit_event_persons ORDER BY seq, person_id"
    )
    op.drop_table("audit_event_persons")
    op.rename_table("audit_event_persons_new", "audit_event_persons")
    op.create_index(_PERSON_INDEX, "audit_event_persons", ["person_id", "seq"])


def upgrade() -> None:
    op.drop_index("ix_audit_events_subject_seq", table_name="audit_events")
    op.create_index(
        "ix_audit_events_subject_seq",
        "audit_events",
        ["subject_seq"],
        sqlite_where=sa.text("subject_seq IS NOT NULL"),
        postgresql_where=sa.text("subject_seq IS NOT NULL"),
    )
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_persons(with_rowid=False)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_persons(with_rowid=True)
    op.drop_index("ix_audit_events_subject_seq", table_name="audit_events")
    op.create_index("ix_audit_events_subject_seq", "audit_events", ["subject_seq"])
