"""Tables of the person index."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, Float, ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, JSONType, UTCDateTime, utcnow


class Person(Base):
    __tablename__ = "persons"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    state: Mapped[str] = mapped_column(String(10), default="active")
    merged_into: Mapped[str | None] = mapped_column(String(36), nullable=True)
    flagged: Mapped[bool] = mapped_column(Boolean, default=False)
    flag_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)


class PersonRecord(Base):
    """One source Patient record and the person it is linked to (exactly one)."""

    __tablename__ = "person_records"

    record_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    person_id: Mapped[str] = mapped_column(ForeignKey("persons.id"), index=True)
    org_code: Mapped[str] = mapped_column(String(10), index=True)
    nhs_number: Mapped[str | None] = mapped_column(String(10), index=True, nullable=True)
    features: Mapped[dict[str, Any]] = mapped_column(JSONType)
    rule: Mapped[str] = mapped_column(String(40))
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    linked_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    linked_by: Mapped[str] = mapped_column(String(80))


class PersonKey(Base):
    """Blocking keys: which records share a key with an arriving one."""

    __tablename__ = "person_keys"

    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    record_id: Mapped[str] = mapped_column(
        ForeignKey("person_records.record_id", ondelete="CASCADE"), primary_key=True
    )


class PersonEvent(Base):
    """History: every link, new person, merge, unmerge and review decision."""

    __tablename__ = "person_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    person_id: Mapped[str] = mapped_column(String(36), index=True)
    record_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    action: Mapped[str] = mapped_column(String(30))
    rule: Mapped[str | None] = mapped_column(String(40), nullable=True)
    probability: Mapped[float | None] = mapped_column(Float, nullable=True)
    actor: Mapped[str] = mapped_column(String(80))
    detail: Mapped[dict[str, Any]] = mapped_column(JSONType, default=dict)


class ReviewPair(Base):
    """An uncertain pair for a data steward, with the evidence that raised it."""

    __tablename__ = "review_pairs"
    __table_args__ = (UniqueConstraint("record_id", "candidate_record_id", "evidence_hash"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    record_id: Mapped[str] = mapped_column(String(100), index=True)
    candidate_record_id: Mapped[str] = mapped_column(String(100), index=True)
    probability: Mapped[float] = mapped_column(Float)
    weight: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(String(100))
    evidence: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    evidence_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(10), default="open", index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class Merge(Base):
    """A merge of two persons, with what moved, so unmerge can restore it exactly."""

    __tablename__ = "person_merges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    survivor_id: Mapped[str] = mapped_column(String(36), index=True)
    merged_id: Mapped[str] = mapped_column(String(36), index=True)
    moved: Mapped[list[dict[str, Any]]] = mapped_column(JSONType)
    merged_flag: Mapped[dict[str, Any]] = mapped_column(JSONType)
    # The survivor's record ids at the time (NULL for merges made before 0010).
    survivor_records: Mapped[list[str] | None] = mapped_column(JSONType, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    by: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(String(500))
    undone_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    undone_by: Mapped[str | None] = mapped_column(String(80), nullable=True)


class LinkLock(Base):
    """One row; updating it serialises linking on SQLite (PostgreSQL uses advisory locks)."""

    __tablename__ = "person_link_lock"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    counter: Mapped[int] = mapped_column(Integer, default=0)
