"""Records: the current version's body lives in ``resources``; ``resource_history`` keeps
only earlier versions.

A batch then writes one row per new resource instead of two (the history row
duplicated every column of the current one), and reading a current resource
needs no join. ADR 0401, amendment "current body in resources".

Revision ID: 0008_records_ingest
Revises: 0003_records
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op

revision = "0008_records_ingest"
down_revision = "0003_records"
branch_labels = None
depends_on = None

_COLUMNS = (
    "resource_type, id, version_id, last_updated, org_code, feed_id, batch_id, source_id, "
    "content_hash, category, sensitivity, active, subject_id, body"
)
_CURRENT = (
    "h.resource_type = resources.resource_type AND h.id = resources.id "
    "AND h.version_id = resources.version_id"
)


def upgrade() -> None:
    # NOT NULL needs a default to be added to existing rows; every row is then filled
    op.add_column(
        "resources", sa.Column("body", sa.Text, nullable=False, server_default=sa.text("''"))
    )
    op.execute(
        f"UPDATE resources SET body = (SELECT h.body FROM resource_history h WHERE {_CURRENT})"
    )
    op.execute(
        "DELETE FROM resource_history WHERE EXISTS (SELECT 1 FROM resources r WHERE "
        "r.resource_type = resource_history.resource_type AND r.id = resource_history.id "
        "AND r.version_id = resource_history.version_id)"
    )
    if op.get_bind().dialect.name == "postgresql":  # SQLite cannot drop a default in place
        op.alter_column("resources", "body", server_default=None)


def downgrade() -> None:
    op.execute(f"INSERT INTO resource_history ({_COLUMNS}) SELECT {_COLUMNS} FROM resources")
    with op.batch_alter_table("resources") as batch:
        batch.drop_column("body")
