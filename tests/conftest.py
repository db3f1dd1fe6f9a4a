"""Shared fixtures. Every storage-touching test runs on SQLite and PostgreSQL.

PostgreSQL runs when JOINEDUP_TEST_POSTGRES_URL names a server (`make test`
sets it to the local one); with JOINEDUP_REQUIRE_POSTGRES=1 (CI) a server
that cannot be reached fails the run instead of skipping. Each test session
creates its own throwaway database on that server and builds the schema by
running the migrations.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.engine import make_url

from joinedup.api.app import create_app
from joinedup.audit.config import keys_dir
from joinedup.audit.keys import AuditKeyStore
from joinedup.config import Settings
from joinedup.services import Services, build
from joinedup.storage.engine import Database, normalise_url
from joinedup.storage.migrate import upgrade

PG_URL = os.environ.get("JOINEDUP_TEST_POSTGRES_URL", "")
REQUIRE_PG = os.environ.get("JOINEDUP_REQUIRE_POSTGRES") == "1"
BACKENDS = ["sqlite", "postgresql"]


def _pg_admin_url() -> str:
    return normalise_url(PG_URL).render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _pg_server() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session; dropped afterwards."""
    if not PG_URL:
        if REQUIRE_PG:
            pytest.fail("JOINEDUP_REQUIRE_POSTGRES=1 but JOINEDUP_TEST_POSTGRES_URL is not set")
        pytest.skip("PostgreSQL tests need JOINEDUP_TEST_POSTGRES_URL")
    admin = create_engine(_pg_admin_url(), isolation_level="AUTOCOMMIT")
    name = f"joinedup_test_{uuid.uuid4().hex[:12]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:
        admin.dispose()
        if REQUIRE_PG:
            pytest.fail(f"PostgreSQL is required but unreachable at {PG_URL}: {exc}")
        pytest.skip(f"PostgreSQL unreachable: {exc}")
    url = make_url(_pg_admin_url()).set(database=name).render_as_string(hide_password=False)
    yield url
    with admin.connect() as conn:
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"
            ),
            {"n": name},
        )
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def _database_url(backend: str, request: pytest.FixtureRequest, tmp: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{tmp / 'joinedup.db'}"
    url: str = request.getfixturevalue("_pg_server")
    return url


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_db(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Database]:
    """A database per backend, migrated once per session."""
    backend = request.param
    url = _database_url(backend, request, tmp_path_factory.mktemp(backend))
    db = Database.from_url(url)
    upgrade(db)
    yield db
    db.dispose()


def _empty_all_tables(db: Database) -> None:
    meta = MetaData()
    meta.reflect(db.engine)
    # read_cache_key is made once by its migration (random, never by code): kept
    tables = [t for t in meta.sorted_tables if t.name not in {"alembic_version", "read_cache_key"}]
    with db.engine.begin() as conn:
        if db.dialect == "postgresql" and tables:
            names = ", ".join(f'"{t.name}"' for t in tables)
            conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        else:
            for table in reversed(tables):
                conn.execute(table.delete())


@pytest.fixture
def db(migrated_db: Database) -> Iterator[Database]:
    """The backend's migrated database, emptied after each test."""
    yield migrated_db
    _empty_all_tables(migrated_db)


@pytest.fixture
def settings(tmp_path: Path, db: Database) -> Settings:
    return Settings(
        data_dir=tmp_path,
        database_url=db.engine.url.render_as_string(hide_password=False),
        issuer="http://testserver",
        log_json=True,
    )


@pytest.fixture
def services(settings: Settings, db: Database) -> Services:
    svc = build(settings, db=db)
    svc.keys.ensure()
    AuditKeyStore(keys_dir(settings)).init()
    return svc


@pytest.fixture
def client(services: Services) -> Iterator[TestClient]:
    with TestClient(create_app(services)) as test_client:
        yield test_client
