"""Engines and sessions built from a database URL.

SQLite (embedded default) and PostgreSQL via psycopg 3 are the two backends;
dialect specifics live here and nowhere else.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from joinedup.errors import ConfigError, Unavailable


def normalise_url(raw: str) -> URL:
    """Parse ``raw`` and pick the driver we support for its backend."""
    try:
        url = make_url(raw)
    except ArgumentError as exc:
        raise ConfigError(
            "JOINEDUP_DATABASE_URL is not a database URL: expected e.g. "
            "sqlite:///var/joinedup.db or postgresql://user@127.0.0.1:5432/db"
        ) from exc
    backend = url.get_backend_name()
    if backend in {"postgresql", "postgres"}:
        return url.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if url.drivername != "sqlite":
            raise ConfigError("SQLite URLs must use the built-in driver: sqlite:///path")
        return url
    raise ConfigError(
        f"JOINEDUP_DATABASE_URL names an unsupported backend {backend!r}: "
        "use sqlite:///path or postgresql://..."
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets readers run beside the writer; FULL sync makes a commit durable
    # before it returns, which the audit log's "acknowledged is never lost" needs.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


POOL_RECYCLE_SECONDS = 1800


def make_engine(raw_url: str, *, pool_size: int = 10, echo: bool = False) -> Engine:
    url = normalise_url(raw_url)
    try:
        if url.get_backend_name() == "sqlite":
            if url.database and url.database != ":memory:":
                Path(url.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, echo=echo, connect_args={"timeout": 30})
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            # No pre-ping (a round trip on every checkout, ~12% of a read): a connection
            # the server dropped fails one statement, SQLAlchemy then invalidates the
            # pool, and the next checkout reconnects. Recycling connections older than
            # 30 minutes keeps them inside server and load-balancer idle timeouts.
            engine = create_engine(
                url, echo=echo, pool_size=pool_size, max_overflow=pool_size,
                pool_pre_ping=False, pool_recycle=POOL_RECYCLE_SECONDS,
            )
    except NoSuchModuleError as exc:  # pragma: no cover - driver missing is an install bug
        raise ConfigError(f"no driver for {url.drivername}: reinstall joinedup") from exc
    return engine


def safe_url(engine: Engine) -> str:
    return engine.url.render_as_string(hide_password=True)


@dataclass(frozen=True)
class Database:
    """An engine with its session factory: what services receive."""

    engine: Engine
    sessions: sessionmaker[Session]

    @classmethod
    def from_url(cls, raw_url: str, **kwargs: Any) -> Database:
        engine = make_engine(raw_url, **kwargs)
        return cls(engine, sessionmaker(engine, expire_on_commit=False))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session in a transaction: committed on success, rolled back on error."""
        with self.sessions.begin() as session:
            yield session

    def check_connection(self) -> None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else "unknown error"
            raise Unavailable(
                f"cannot connect to the database at {safe_url(self.engine)} ({reason}); "
                "check JOINEDUP_DATABASE_URL and that the server is running"
            ) from exc

    def dispose(self) -> None:
        self.engine.dispose()
