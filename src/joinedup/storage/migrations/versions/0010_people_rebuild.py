"""People: a merge records the survivor's records at the time, so that a rebuild
can keep exactly what a steward joined together (and keep apart what an unmerge
separated).

Revision ID: 0010_people_rebuild
Revises: 0004_people
Create Date: 2026-12-03
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010_people_rebuild"
down_revision = "0004_people"
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    # NULL for merges made before this revision: a rebuild then takes the
    # survivor's records as they are now (see joinedup.people.estate).
    op.add_column("person_merges", sa.Column("survivor_records", JSON, nullable=True))


def downgrade() -> None:
    op.drop_column("person_merges", "survivor_records")
