"""Tables of the MHD document registry: DocumentReferences and SubmissionSets.

A DocumentReference row carries the same access columns as a record row
(``subject_id``, ``org_code``, ``category``, ``sensitivity``) so the access
decisions about a person become one SQL condition on it, exactly as for
records. ``availability`` is the two-phase publish state: a row is written
``pending`` with the content store's staging token before the content is
committed, and becomes ``available`` (token dropped) after; searches and
reads never see pending rows. See ``joinedup.documents.registry``.
"""

from __future__ import annotations

from datetime import datetime
from typing import cast

from sqlalchemy import BigInteger, Index, String, Table, Text
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, UTCDateTime


class DocumentRow(Base):
    __tablename__ = "document_references"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    master_identifier: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    """current | superseded | entered-in-error (FHIR DocumentReference.status)."""
    availability: Mapped[str] = mapped_column(String(10))
    """pending (content not yet committed) | available."""
    subject_id: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(10))
    category: Mapped[str] = mapped_column(String(40))
    sensitivity: Mapped[str] = mapped_column(String(1))
    type_system: Mapped[str] = mapped_column(String(300))
    type_code: Mapped[str] = mapped_column(String(100))
    class_system: Mapped[str] = mapped_column(String(300))
    class_code: Mapped[str] = mapped_column(String(100))
    date: Mapped[datetime] = mapped_column(UTCDateTime)
    content_id: Mapped[str] = mapped_column(String(32), unique=True)
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha1: Mapped[str] = mapped_column(String(28))
    """Base64 SHA-1 of the content (FHIR R4 Attachment.hash)."""
    staging_token: Mapped[str | None] = mapped_column(Text, nullable=True)
    submission_set_id: Mapped[str] = mapped_column(String(64))
    replaces_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)
    """The DocumentReference as published (server ids filled in), compact JSON."""

    __table_args__ = (
        Index("ix_document_references_subject", "subject_id", "status"),
        Index("ix_document_references_availability", "availability", "created_at"),
    )


class SubmissionSetRow(Base):
    __tablename__ = "document_submission_sets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    org_code: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)


documents = cast(Table, DocumentRow.__table__)
submission_sets = cast(Table, SubmissionSetRow.__table__)
