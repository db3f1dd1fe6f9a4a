"""Audit performance: keep event rows of up to ~8 KB inline and uncompressed on PostgreSQL.

A read served from ``$everything`` lists ~30 resources, which puts its event row
at about 2 KB: past PostgreSQL's default TOAST threshold (~2 KB), so every such
insert ran the compressor over the body (and verify would decompress it again).
With ``toast_tuple_target = 8160`` rows up to a page stay as they are: the
audit writer's throughput for such events went from about 20,000 to about
30,000 events/s on the benchmark machine (docs/performance.md). Storage only:
no stored value changes, so the chain verifies exactly as before. SQLite has no
equivalent and needs nothing.

Revision ID: 0009_audit_perf
Revises: 0002_audit
Create Date: 2026-12-03
"""

from alembic import op

revision = "0009_audit_perf"
down_revision = "0002_audit"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_events SET (toast_tuple_target = 8160)")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE audit_events RESET (toast_tuple_target)")
