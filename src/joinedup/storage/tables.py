"""Tables of the storage layer itself (not of any one package)."""

from __future__ import annotations

from sqlalchemy import CheckConstraint, Column, Integer, LargeBinary, String, Table

from joinedup.storage.base import Base

read_cache_key = Table(
    "read_cache_key",
    Base.metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("salt", LargeBinary, nullable=False),
    Column("key_id", String(64), nullable=False),
    CheckConstraint("id = 1", name="one_row"),
)
"""One row, made by migration 0014 with random values (never a default in code or
config): ``salt`` keys the digests the read cache's triggers notify instead of ids
(``storage.changes.KeyDigest``), ``key_id`` names that salt so a listener can tell
it is still the one it read. Only the application's role may read it."""
