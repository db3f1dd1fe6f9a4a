"""Tables of feeds, batches, their work tables and quarantine.

Declared here (not beside the code that uses them) so every table of the
package is in one module the migration check imports.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, JSONType, UTCDateTime, utcnow


class FeedRow(Base):
    __tablename__ = "feeds"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    format: Mapped[str] = mapped_column(String(10))
    categories: Mapped[list[str]] = mapped_column(JSONType)
    mapping_path: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    mapping_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    partial_policy: Mapped[str] = mapped_column(String(20))
    missing_policy: Mapped[str] = mapped_column(String(20))
    refresh_mode: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(String(500))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    revision: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BatchRow(Base):
    __tablename__ = "batches"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    feed_id: Mapped[str] = mapped_column(ForeignKey("feeds.id"))
    org_code: Mapped[str] = mapped_column(String(10))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(20))
    file_name: Mapped[str | None] = mapped_column(String(300), nullable=True)
    file_sha256: Mapped[str | None] = mapped_column(String(64), nullable=True)
    file_size: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    feed_revision: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    units_read: Mapped[int] = mapped_column(Integer, default=0)
    accepted: Mapped[int] = mapped_column(Integer, default=0)
    rejected: Mapped[int] = mapped_column(Integer, default=0)
    warnings: Mapped[int] = mapped_column(Integer, default=0)
    created: Mapped[int] = mapped_column(Integer, default=0)
    updated: Mapped[int] = mapped_column(Integer, default=0)
    unchanged: Mapped[int] = mapped_column(Integer, default=0)
    withdrawn: Mapped[int] = mapped_column(Integer, default=0)
    duplicate_of: Mapped[str | None] = mapped_column(String(40), nullable=True)
    error: Mapped[str | None] = mapped_column(String(1000), nullable=True)
    report: Mapped[dict[str, Any]] = mapped_column(JSONType)

    __table_args__ = (
        Index("ix_batches_feed", "feed_id", "started_at"),
        Index("ix_batches_file", "feed_id", "file_sha256"),
        CheckConstraint("units_read = accepted + rejected", name="read_is_accepted_plus_rejected"),
    )


class SeenRow(Base):
    """Source ids a running batch has read: duplicate detection and full-refresh withdrawal
    without holding every id in memory. Emptied when the batch ends."""

    __tablename__ = "batch_seen"

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    source_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    unit: Mapped[int] = mapped_column(Integer)

    __table_args__ = ({"sqlite_with_rowid": False},)


class SpoolRow(Base):
    """Accepted units of an all-or-nothing batch, held until the file is known to be clean."""

    __tablename__ = "batch_spool"

    batch_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str] = mapped_column(String(200))
    origin_batch: Mapped[str | None] = mapped_column(String(40), nullable=True)
    quarantine_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    resources: Mapped[str] = mapped_column(Text)

    __table_args__ = ({"sqlite_with_rowid": False},)


batches_table = cast(Table, BatchRow.__table__)
seen_table = cast(Table, SeenRow.__table__)
spool_table = cast(Table, SpoolRow.__table__)


class QuarantineRow(Base):
    __tablename__ = "quarantine"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    batch_id: Mapped[str] = mapped_column(String(40))
    feed_id: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(10))
    unit: Mapped[int] = mapped_column(Integer)
    source_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    raw: Mapped[str] = mapped_column(Text)
    problems: Mapped[list[dict[str, str]]] = mapped_column(JSONType)
    extra: Mapped[dict[str, Any]] = mapped_column(JSONType)
    status: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer)
    resolved_batch_id: Mapped[str | None] = mapped_column(String(40), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    __table_args__ = (
        Index("ix_quarantine_feed_status", "feed_id", "status", "id"),
        Index("ix_quarantine_batch", "batch_id", "unit"),
    )


quarantine_table = cast(Table, QuarantineRow.__table__)


quarantine_table = cast(Table, QuarantineRow.__table__)
