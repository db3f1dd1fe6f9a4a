"""PostgreSQL: tell every worker's read cache which persons a committed change touches.

Statement-level triggers (with transition tables, so one notification per
statement, not per row) on every table whose rows the ``Patient/$everything``
read cache holds (ADR 0102 second amendment):

* ``resources``: the records and the relationship evidence; keys are the
  ``subject_id`` of every old and new row, and a Patient resource's own id;
* ``persons`` and ``person_records``: which Patient records make up a person;
  keys are the person ids (and ``merged_into``) and the Patient ids linked;
* ``consent_directives`` and ``declared_relationships``: keyed on Patient id.

Each sends ``pg_notify('joinedup_read_cache', '<key> <key> ...')`` with the
distinct keys, or ``*`` (drop everything) for TRUNCATE or when the keys would
not fit a notification. PostgreSQL delivers a notification when its
transaction commits, to every session listening, in commit order. SQLite has
no cache (one process, embedded) and gets nothing here. Every function runs with
the ``search_path`` the migration ran with (``SET search_path FROM CURRENT``), so
a writer's own ``search_path`` cannot hide or replace the notify function.

Revision ID: 0013_read_cache_notify
Revises: 0008_records_ingest, 0006_access, 0010_people_rebuild
Create Date: 2026-12-04
"""

from alembic import op

revision = "0013_read_cache_notify"
down_revision = ("0008_records_ingest", "0006_access", "0010_people_rebuild")
"""A merge point: the triggers need the record, access and person index tables."""
branch_labels = None
depends_on = None

CHANNEL = "joinedup_read_cache"
MAX_PAYLOAD = 7000
"""PostgreSQL refuses payloads of 8000 bytes or more (bytes, not characters: the
check is ``octet_length``); past this many, drop everything."""

_KEYS = {
    "resources": (
        "SELECT r.subject_id FROM {rows} r "
        "UNION ALL SELECT r.id FROM {rows} r WHERE r.resource_type = 'Patient'"
    ),
    "persons": "SELECT r.id FROM {rows} r UNION ALL SELECT r.merged_into FROM {rows} r",
    "person_records": (
        "SELECT r.person_id FROM {rows} r UNION ALL "
        "SELECT substr(r.record_id, 9) FROM {rows} r WHERE r.record_id LIKE 'Patient/%'"
    ),
    "consent_directives": "SELECT r.patient_id FROM {rows} r",
    "declared_relationships": "SELECT r.patient_id FROM {rows} r",
}


def _function(table: str, keys: str) -> str:
    new, old = keys.format(rows="new_rows"), keys.format(rows="old_rows")
    return f"""
CREATE OR REPLACE FUNCTION joinedup_read_cache_{table}() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  IF TG_OP = 'INSERT' THEN
    PERFORM joinedup_read_cache_notify(ARRAY({new}));
  ELSIF TG_OP = 'UPDATE' THEN
    PERFORM joinedup_read_cache_notify(ARRAY({new} UNION ALL {old}));
  ELSIF TG_OP = 'DELETE' THEN
    PERFORM joinedup_read_cache_notify(ARRAY({old}));
  ELSE
    PERFORM pg_notify('{CHANNEL}', '*');
  END IF;
  RETURN NULL;
END $$;
"""


def _triggers(table: str) -> list[str]:
    fn = f"joinedup_read_cache_{table}()"
    name = f"joinedup_read_cache_{table}"
    return [
        f"CREATE TRIGGER {name}_ins AFTER INSERT ON {table} "
        f"REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}",
        f"CREATE TRIGGER {name}_upd AFTER UPDATE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}",
        f"CREATE TRIGGER {name}_del AFTER DELETE ON {table} "
        f"REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION {fn}",
        f"CREATE TRIGGER {name}_trunc AFTER TRUNCATE ON {table} "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {fn}",
    ]


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"""
CREATE OR REPLACE FUNCTION joinedup_read_cache_notify(keys text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE payload text;
BEGIN
  SELECT string_agg(DISTINCT k, ' ') INTO payload
    FROM unnest(keys) AS k WHERE k IS NOT NULL AND k <> '';
  IF payload IS NULL THEN
    RETURN;
  END IF;
  IF octet_length(payload) > {MAX_PAYLOAD} THEN
    payload := '*';
  END IF;
  PERFORM pg_notify('{CHANNEL}', payload);
END $$;
""")
    for table, keys in _KEYS.items():
        op.execute(_function(table, keys))
        for statement in _triggers(table):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in _KEYS:
        for suffix in ("ins", "upd", "del", "trunc"):
            op.execute(f"DROP TRIGGER IF EXISTS joinedup_read_cache_{table}_{suffix} ON {table}")
        op.execute(f"DROP FUNCTION IF EXISTS joinedup_read_cache_{table}()")
    op.execute("DROP FUNCTION IF EXISTS joinedup_read_cache_notify(text[])")
