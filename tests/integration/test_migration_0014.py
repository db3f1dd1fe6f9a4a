"""Migration 0014_read_cache_digests: up, down and up again on both backends."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from joinedup.storage.engine import Database
from joinedup.storage.migrate import _config, upgrade
from tests.conftest import PG_URL, _pg_admin_url


@pytest.fixture(params=["sqlite", "postgresql"])
def empty_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    if request.param == "sqlite":
        db = Database.from_url(f"sqlite:///{tmp_path / 'm.db'}")
        yield db
        db.dispose()
        return
    if not PG_URL:
        pytest.skip("PostgreSQL tests need JOINEDUP_TEST_POSTGRES_URL")
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"joinedup_m14_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database.from_url(admin.url.set(database=name).render_as_string(hide_password=False))
    try:
        yield db
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def _downgrade(db: Database, revision: str) -> None:
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def _key(db: Database) -> tuple[bytes, str]:
    with db.engine.connect() as conn:
        salt, key_id = conn.execute(text("SELECT salt, key_id FROM read_cache_key")).one()
    return bytes(salt), str(key_id)


def _notify_source(db: Database) -> str:
    with db.engine.connect() as conn:
        return str(conn.execute(text(
            "SELECT prosrc FROM pg_proc WHERE proname = 'joinedup_read_cache_notify'"
        )).scalar_one())


def test_0014_makes_a_random_salt_and_its_downgrade_restores_0013(empty_db: Database) -> None:
    db = empty_db
    upgrade(db, "0014_read_cache_digests")
    salt, key_id = _key(db)
    assert len(salt) == 32
    assert key_id
    if db.dialect == "postgresql":
        assert "sha256" in _notify_source(db)
        with db.engine.connect() as conn:  # only the owner may read the salt
            public = conn.execute(text(
                "SELECT has_table_privilege('public', 'read_cache_key', 'SELECT')")).scalar_one()
        assert public is False

    _downgrade(db, "0013_read_cache_notify")
    assert "read_cache_key" not in inspect(db.engine).get_table_names()
    if db.dialect == "postgresql":
        source = _notify_source(db)
        assert "sha256" not in source
        assert "'joinedup_read_cache'" in source

    upgrade(db, "0014_read_cache_digests")
    again, again_id = _key(db)
    assert (again, again_id) != (salt, key_id)  # made afresh: random, not a default


def test_0014_leaves_the_salt_readable_by_its_owner_alone(empty_db: Database) -> None:
    """Default privileges (e.g. a reporting role granted SELECT on every new table)
    do not reach the salt: the migration revokes every grant but the owner's (review)."""
    db = empty_db
    if db.dialect != "postgresql":
        pytest.skip("privileges are PostgreSQL's")
    role = f"joinedup_m14_reader_{uuid.uuid4().hex[:8]}"
    with db.engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}"'))
        conn.execute(text(f'ALTER DEFAULT PRIVILEGES GRANT SELECT ON TABLES TO "{role}"'))
    try:
        upgrade(db, "0014_read_cache_digests")
        with db.engine.connect() as conn:
            granted = conn.execute(text(
                "SELECT has_table_privilege(:r, 'read_cache_key', 'SELECT'), "
                "has_table_privilege(:r, 'persons', 'SELECT')"), {"r": role}).one()
        assert tuple(granted) == (False, True)  # the default grant reached other tables
    finally:
        with db.engine.begin() as conn:
            conn.execute(text(f'ALTER DEFAULT PRIVILEGES REVOKE SELECT ON TABLES FROM "{role}"'))
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))


def test_0014_downgrade_tells_keyed_listeners_at_its_commit(empty_db: Database) -> None:
    """After the downgrade nothing is sent on the keyed channel: its listeners are told
    (``key:changed``) so that none serves on until its lease runs out (review)."""
    db = empty_db
    if db.dialect != "postgresql":
        pytest.skip("notifications are PostgreSQL's")
    import psycopg

    upgrade(db, "0014_read_cache_digests")
    url = db.engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute("LISTEN joinedup_read_cache_keyed")
        _downgrade(db, "0013_read_cache_notify")
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == ["key:changed"]
