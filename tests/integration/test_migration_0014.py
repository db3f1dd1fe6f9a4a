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
