"""Tables of the record store: current resources, every version, and the search index.

The hot tables carry no foreign keys and as few indexes as the queries need:
a batch writes hundreds of thousands of rows, and their owner (feed,
organisation) is checked once per batch, not per row. The search index tables
are keyed by what is searched (SQLite stores them WITHOUT ROWID, so the key is
the table) and have no second index: a changed resource's old rows are
recomputed from its previous body and deleted by key. Index string values are
compared in code-point order on both backends (``COLLATE "C"`` on PostgreSQL,
SQLite's default BINARY) so prefix search is an index range scan.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, UTCDateTime

SearchText = String(300).with_variant(String(300, collation="C"), "postgresql")
"""Normalised search values: byte-ordered so ``prefix <= v < bound`` uses the index."""
FhirId = String(64).with_variant(String(64, collation="C"), "postgresql")
"""Resource ids, ordered by code point on both backends (search results sort by id)."""


class Resource(Base):
    """The current version of every resource, body included: what search filters and sorts on.

    Earlier versions live in ``resource_history``; a new resource is one row
    here and none there, and a changed one moves its previous row to history
    (migration 0008; ADR 0401 amendment).
    """

    __tablename__ = "resources"

    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(FhirId, primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    org_code: Mapped[str] = mapped_column(String(10))
    feed_id: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(40))
    sensitivity: Mapped[str] = mapped_column(String(1))
    active: Mapped[bool] = mapped_column(Boolean)
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        Index("ix_resources_feed_source", "feed_id", "source_id"),
        Index("ix_resources_subject", "subject_id", "resource_type"),
    )


class ResourceVersion(Base):
    """Every version of every resource except the current one (which is in ``resources``).

    History and vread read the union of the two (:mod:`joinedup.records.store`)."""

    __tablename__ = "resource_history"

    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    id: Mapped[str] = mapped_column(FhirId, primary_key=True)
    version_id: Mapped[int] = mapped_column(Integer, primary_key=True)
    last_updated: Mapped[datetime] = mapped_column(UTCDateTime)
    org_code: Mapped[str] = mapped_column(String(10))
    feed_id: Mapped[str] = mapped_column(String(64))
    batch_id: Mapped[str] = mapped_column(String(40))
    source_id: Mapped[str] = mapped_column(String(200))
    content_hash: Mapped[str] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(40))
    sensitivity: Mapped[str] = mapped_column(String(1))
    active: Mapped[bool] = mapped_column(Boolean)
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    body: Mapped[str] = mapped_column(Text)


class TokenIndex(Base):
    __tablename__ = "search_token"

    code: Mapped[str] = mapped_column(SearchText, primary_key=True)
    system: Mapped[str] = mapped_column(String(300), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class StringIndex(Base):
    __tablename__ = "search_string"

    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    value: Mapped[str] = mapped_column(SearchText, primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class DateIndex(Base):
    __tablename__ = "search_date"

    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    low: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    high: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


class ReferenceIndex(Base):
    __tablename__ = "search_reference"

    target_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    target_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    param: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_type: Mapped[str] = mapped_column(String(40), primary_key=True)
    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = ({"sqlite_with_rowid": False},)


resources = cast(Table, Resource.__table__)
history = cast(Table, ResourceVersion.__table__)
token_index = cast(Table, TokenIndex.__table__)
string_index = cast(Table, StringIndex.__table__)
date_index = cast(Table, DateIndex.__table__)
reference_index = cast(Table, ReferenceIndex.__table__)
INDEX_TABLES = (token_index, string_index, date_index, reference_index)
