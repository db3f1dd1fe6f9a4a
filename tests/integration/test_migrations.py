"""Migrations are production code: they build the schema the models describe, on both backends."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

import joinedup
from joinedup.errors import ConfigError
from joinedup.storage.base import Base
from joinedup.storage.engine import Database
from joinedup.storage.migrate import current_revisions, ensure_migrated, head_revisions


def _import_all_models() -> None:
    """Tables are declared in modules named `models` (ORM) or `tables` (Core)."""
    for info in pkgutil.walk_packages(joinedup.__path__, "joinedup."):
        if info.name.rsplit(".", 1)[-1] in {"models", "tables"}:
            importlib.import_module(info.name)


def test_migrated_schema_matches_the_models(db: Database) -> None:
    _import_all_models()
    with db.engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(ctx, Base.metadata)
    assert diff == [], diff


def test_database_is_at_the_code_heads(db: Database) -> None:
    assert current_revisions(db) == head_revisions()
    ensure_migrated(db)


def test_empty_database_is_refused(tmp_path: object) -> None:
    empty = Database.from_url(f"sqlite:///{tmp_path}/empty.db")
    try:
        with pytest.raises(ConfigError, match="joinedup db upgrade"):
            ensure_migrated(empty)
    finally:
        empty.dispose()
