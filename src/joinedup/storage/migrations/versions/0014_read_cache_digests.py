"""The read cache's notifications name no one: keyed digests instead of ids.

Migration 0013's triggers sent person and Patient ids in clear on
``joinedup_read_cache``; any session that runs ``LISTEN`` there sees them, and so
may whatever logs or monitors notifications. From here the triggers send, on
``joinedup_read_cache_keyed``, the first 16 hex digits of
``sha256(salt || convert_to(id, 'UTF8'))`` for each id (``*`` unchanged), where
``salt`` is 32 random bytes made here, in the database, once per deployment, in
the one-row table ``read_cache_key`` (with ``key_id``, a random name for the
salt). Neither value ever passes through a client, a default in code or a
setting, so neither appears in a statement log. The table is readable only by
its owner (the application's role); the digest function runs with the writer's
rights, so a role that cannot read the salt cannot compute digests either.

On the old channel the triggers now send only ``*`` (PostgreSQL sends identical
payloads once per transaction): a worker still running the code from before this
migration during a rolling upgrade drops its whole cache on each change rather
than missing every one. A later migration can stop that once no such worker runs.

A payload of digests begins ``k:<key_id>``, naming the salt it was made with: it
is delivered at commit, so one made just before a salt change arrives after the
listener holds the new salt, and a listener treats a payload naming another salt
(or none) as ``*``.

Any write to ``read_cache_key`` sends ``key:changed`` on the new channel (a
statement trigger): a listener that receives it drops its cache at once and
reconnects to read the new salt, so no digest made with a salt it does not hold
is missed while it serves (notifications arrive in commit order).

The five trigger functions are replaced (same triggers, same keys); the
downgrade restores 0013's functions and drops the table (and its trigger). On SQLite only the
table is made (the schema is the same on both backends; nothing reads it there).

Revision ID: 0014_read_cache_digests
Revises: 0013_read_cache_notify
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = "0014_read_cache_digests"
down_revision = "0013_read_cache_notify"
branch_labels = None
depends_on = None

CHANNEL = "joinedup_read_cache_keyed"
OLD_CHANNEL = "joinedup_read_cache"
DIGEST_CHARS = 16
MAX_PAYLOAD = 7000
"""As in 0013: PostgreSQL refuses payloads of 8000 bytes or more; past this, ``*``."""

# As they stood at 0013 (a migration does not import another's code).
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


def _table_function(table: str, keys: str, everything: str) -> str:
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
    {everything}
  END IF;
  RETURN NULL;
END $$;
"""


KEYED = "k:"
"""A digests payload begins ``k:<key_id>``, the salt it was made with."""
MAX_KEYS = (MAX_PAYLOAD - 64) // (DIGEST_CHARS + 1)
"""Digests that fit ``MAX_PAYLOAD`` with their spaces and the salt's name (407): past
this many, ``*`` without hashing any."""

_NOTIFY_DIGESTS = f"""
CREATE OR REPLACE FUNCTION joinedup_read_cache_notify(keys text[]) RETURNS void
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE payload text; key_salt bytea; key_name text; distinct_keys text[];
BEGIN
  SELECT array_agg(DISTINCT k) INTO distinct_keys
    FROM unnest(keys) AS k WHERE k IS NOT NULL AND k <> '';
  IF distinct_keys IS NULL THEN
    RETURN;
  END IF;
  PERFORM pg_notify('{OLD_CHANNEL}', '*');
  SELECT r.salt, r.key_id INTO key_salt, key_name FROM read_cache_key r WHERE r.id = 1;
  IF key_salt IS NULL OR cardinality(distinct_keys) > {MAX_KEYS} THEN
    payload := '*';  -- no salt (every listener drops everything), or too many keys
  ELSE
    -- named by the salt it was made with: delivered at commit, a payload made before
    -- a salt change would otherwise match nothing a listener holding the new one keeps
    SELECT '{KEYED}' || key_name || ' ' || string_agg(DISTINCT left(encode(
             sha256(key_salt || convert_to(k, 'UTF8')), 'hex'), {DIGEST_CHARS}), ' ')
      INTO payload FROM unnest(distinct_keys) AS k;
    IF octet_length(payload) > {MAX_PAYLOAD} THEN
      payload := '*';
    END IF;
  END IF;
  PERFORM pg_notify('{CHANNEL}', payload);
END $$;
"""

_NOTIFY_IDS = f"""
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
  PERFORM pg_notify('{OLD_CHANNEL}', payload);
END $$;
"""


REKEY = "key:changed"

_KEY_CHANGED = f"""
CREATE OR REPLACE FUNCTION joinedup_read_cache_key_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM pg_notify('{CHANNEL}', '{REKEY}');
  RETURN NULL;
END $$;
"""


_PRIVATE = """
DO $$
DECLARE grantee text;
BEGIN
  -- every grant but the owner's, default privileges' included (review: a REVOKE
  -- from PUBLIC alone leaves e.g. a reporting role's SELECT in place)
  FOR grantee IN
    SELECT DISTINCT CASE WHEN a.grantee = 0 THEN 'PUBLIC'
                         ELSE quote_ident(pg_get_userbyid(a.grantee)) END
      FROM pg_class c, aclexplode(c.relacl) a
     WHERE c.oid = 'read_cache_key'::regclass AND a.grantee <> c.relowner
  LOOP
    EXECUTE 'REVOKE ALL ON read_cache_key FROM ' || grantee;
  END LOOP;
  REVOKE ALL ON read_cache_key FROM PUBLIC;
END $$;
"""


def upgrade() -> None:
    dialect = op.get_bind().dialect.name
    op.create_table(
        "read_cache_key",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("salt", sa.LargeBinary, nullable=False),
        sa.Column("key_id", sa.String(64), nullable=False),
        sa.CheckConstraint("id = 1", name="one_row"),
    )
    if dialect != "postgresql":
        op.execute("INSERT INTO read_cache_key (id, salt, key_id) "
                   "VALUES (1, randomblob(32), lower(hex(randomblob(16))))")
        return
    # gen_random_uuid() draws on pg_strong_random (a CSPRNG; PostgreSQL 13+): the salt
    # is SHA-256 over 244 random bits, made and kept inside the server
    op.execute(
        "INSERT INTO read_cache_key (id, salt, key_id) VALUES (1, "
        "sha256(convert_to(gen_random_uuid()::text || gen_random_uuid()::text, 'UTF8')), "
        "gen_random_uuid()::text)"
    )
    op.execute(_PRIVATE)
    op.execute(_KEY_CHANGED)
    op.execute("CREATE TRIGGER joinedup_read_cache_key_changed AFTER INSERT OR UPDATE OR "
               "DELETE ON read_cache_key FOR EACH STATEMENT "
               "EXECUTE FUNCTION joinedup_read_cache_key_changed()")
    op.execute("CREATE TRIGGER joinedup_read_cache_key_truncated AFTER TRUNCATE ON "
               "read_cache_key FOR EACH STATEMENT "
               "EXECUTE FUNCTION joinedup_read_cache_key_changed()")
    op.execute(_NOTIFY_DIGESTS)
    for table, keys in _KEYS.items():
        op.execute(_table_function(
            table, keys,
            f"PERFORM pg_notify('{CHANNEL}', '*'); PERFORM pg_notify('{OLD_CHANNEL}', '*');"))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # listeners on the keyed channel hear no more after this commits: tell them now
        # (delivered at commit), so none serves on until its lease runs out (review)
        op.execute(f"SELECT pg_notify('{CHANNEL}', '{REKEY}')")
        op.execute(_NOTIFY_IDS)
        for table, keys in _KEYS.items():
            op.execute(_table_function(table, keys, f"PERFORM pg_notify('{OLD_CHANNEL}', '*');"))
    op.drop_table("read_cache_key")
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS joinedup_read_cache_key_changed()")
