"""Tables of the audit log.

``audit_events`` holds each event's canonical bytes (``body``, the hashed
truth) and, beside them, the few columns reports and searches filter on.
Those columns are copies: ``verify`` checks each one against the body, so
editing a column to hide an access is caught like editing the body.
``audit_event_persons`` indexes events by person for access reports (also
checked by ``verify``). ``audit_chain_head`` is one row locked per batch so
that writers in several processes extend one chain. No foreign keys: the
archive job deletes old rows in bulk, and the chain, not the schema, is what
proves integrity. On PostgreSQL ``audit_events`` keeps rows of up to a page
inline and uncompressed (``toast_tuple_target``, migration ``0009_audit_perf``):
a read listing ~30 resources would otherwise be compressed on every insert.
Migration ``0012_audit_indexes`` makes the subject index partial and, on
SQLite, the person index a ``WITHOUT ROWID`` table (fewer B-tree writes per
event on the write path).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, Index, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, UTCDateTime

SeqType = BigInteger().with_variant(Integer(), "sqlite")
"""64-bit seqs; INTEGER on SQLite so the primary key is the rowid (no extra index)."""


class ChainHead(Base):
    __tablename__ = "audit_chain_head"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    log_id: Mapped[str] = mapped_column(String(32))
    seq: Mapped[int] = mapped_column(BigInteger)
    hash: Mapped[str] = mapped_column(String(64))
    checkpoint_seq: Mapped[int] = mapped_column(BigInteger)
    checkpoint_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class EventRow(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))
    time: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    action: Mapped[str] = mapped_column(String(40))
    outcome: Mapped[str] = mapped_column(String(10))
    org: Mapped[str | None] = mapped_column(String(80), nullable=True)
    client_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    practitioner: Mapped[str | None] = mapped_column(String(80), nullable=True)
    role: Mapped[str | None] = mapped_column(String(80), nullable=True)
    purpose: Mapped[str | None] = mapped_column(String(40), nullable=True)
    break_glass: Mapped[bool] = mapped_column(Boolean)
    subject_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    body: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        # Only review events have a subject; a full index would hold a NULL entry for
        # every other event (written on each insert, never read).
        Index(
            "ix_audit_events_subject_seq",
            "subject_seq",
            sqlite_where=text("subject_seq IS NOT NULL"),
            postgresql_where=text("subject_seq IS NOT NULL"),
        ),
        Index("ix_audit_events_action_time", "action", "time"),
        Index("ix_audit_events_org_time", "org", "time"),
        Index("ix_audit_events_practitioner_time", "practitioner", "time"),
    )


class EventPerson(Base):
    __tablename__ = "audit_event_persons"

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    person_id: Mapped[str] = mapped_column(String(64), primary_key=True)

    __table_args__ = (
        Index("ix_audit_event_persons_person_id_seq", "person_id", "seq"),
        # On SQLite the rows live in the primary key's B-tree (no separate rowid table).
        {"sqlite_with_rowid": False},
    )


class CheckpointRow(Base):
    __tablename__ = "audit_checkpoints"

    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    kid: Mapped[str] = mapped_column(String(40))
    hash: Mapped[str] = mapped_column(String(64))
    statement: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))


class AnchorRow(Base):
    __tablename__ = "audit_anchors"

    last_seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=False)
    first_seq: Mapped[int] = mapped_column(BigInteger)
    prev_hash: Mapped[str] = mapped_column(String(64))
    last_hash: Mapped[str] = mapped_column(String(64))
    archive_sha256: Mapped[str] = mapped_column(String(64))
    archive_name: Mapped[str] = mapped_column(String(300))
    time: Mapped[datetime] = mapped_column(UTCDateTime)
    kid: Mapped[str] = mapped_column(String(40))
    statement: Mapped[str] = mapped_column(Text)
    signature: Mapped[str] = mapped_column(String(200))


events_table = EventRow.__table__
persons_table = EventPerson.__table__
head_table = ChainHead.__table__
checkpoints_table = CheckpointRow.__table__
anchors_table = AnchorRow.__table__
