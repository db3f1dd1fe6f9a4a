"""Foundation: organisations, teams, practitioners, client systems, used client assertions.

Revision ID: 0001_foundation
Revises:
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001_foundation"
down_revision = None
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")
TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "organisations",
        sa.Column("code", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("code", name="pk_organisations"),
    )
    op.create_table(
        "teams",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_teams"),
        sa.ForeignKeyConstraint(
            ["org_code"], ["organisations.code"], name="fk_teams_org_code_organisations"
        ),
    )
    op.create_index("ix_teams_org_code", "teams", ["org_code"])
    op.create_table(
        "practitioners",
        sa.Column("id", sa.String(40), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(40), nullable=False),
        sa.Column("team_id", sa.String(40), nullable=True),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_practitioners"),
        sa.ForeignKeyConstraint(
            ["org_code"], ["organisations.code"], name="fk_practitioners_org_code_organisations"
        ),
        sa.ForeignKeyConstraint(["team_id"], ["teams.id"], name="fk_practitioners_team_id_teams"),
    )
    op.create_index("ix_practitioners_org_code", "practitioners", ["org_code"])
    op.create_table(
        "client_systems",
        sa.Column("client_id", sa.String(80), nullable=False),
        sa.Column("org_code", sa.String(10), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("jwks", JSON, nullable=False),
        sa.Column("scopes", sa.String(1000), nullable=False),
        sa.Column("active", sa.Boolean, nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_client_systems"),
        sa.ForeignKeyConstraint(
            ["org_code"], ["organisations.code"], name="fk_client_systems_org_code_organisations"
        ),
    )
    op.create_index("ix_client_systems_org_code", "client_systems", ["org_code"])
    op.create_table(
        "used_client_assertions",
        sa.Column("client_id", sa.String(80), nullable=False),
        sa.Column("jti", sa.String(200), nullable=False),
        sa.Column("expires_at", TS, nullable=False),
        sa.PrimaryKeyConstraint("client_id", "jti", name="pk_used_client_assertions"),
    )
    op.create_index(
        "ix_used_client_assertions_expires_at", "used_client_assertions", ["expires_at"]
    )


def downgrade() -> None:
    op.drop_table("used_client_assertions")
    op.drop_table("client_systems")
    op.drop_table("practitioners")
    op.drop_table("teams")
    op.drop_table("organisations")
