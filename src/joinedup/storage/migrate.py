"""Running and checking Alembic migrations from code (CLI, tests, start-up)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory

from joinedup.errors import ConfigError
from joinedup.storage.engine import Database, safe_url

MIGRATIONS = Path(__file__).parent / "migrations"


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def head_revisions() -> set[str]:
    return set(ScriptDirectory.from_config(_config()).get_heads())


def current_revisions(db: Database) -> set[str]:
    db.check_connection()
    with db.engine.connect() as conn:
        return set(MigrationContext.configure(conn).get_current_heads())


def upgrade(db: Database, revision: str = "heads") -> None:
    """Bring the schema up to ``revision`` in one transaction per migration run."""
    db.check_connection()
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def ensure_migrated(db: Database) -> None:
    """Refuse to run on a database whose schema is not what this code needs."""
    current, heads = current_revisions(db), head_revisions()
    if current != heads:
        state = ", ".join(sorted(current)) or "empty"
        raise ConfigError(
            f"the database at {safe_url(db.engine)} is not migrated (schema: {state}); "
            "run `joinedup db upgrade`"
        )
