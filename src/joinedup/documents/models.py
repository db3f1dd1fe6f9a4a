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

from sqlalchemy import BigInteger, Index, Integer, String, Table, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, UTCDateTime


class DocumentRow(Base):
    __tablename__ = "document_references"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    master_identifier: Mapped[str] = mapped_column(String(300), unique=True)
    status: Mapped[str] = mapped_column(String(20))
    """current | superseded | entered-in-error (FHIR DocumentReference.status)."""
    status_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    """Why it was deprecated or marked entered-in-error (or what superseded it)."""
    version: Mapped[int] = mapped_column(Integer, server_default=text("1"))
    """FHIR ``meta.versionId``: 1 when published, one more at every status change."""
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
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    """``context.period`` (the ``period`` search parameter); an open end is None."""
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
    """A List: the SubmissionSet of one publish, or a Folder (ITI-66 finds both)."""

    __tablename__ = "document_submission_sets"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    subject_id: Mapped[str] = mapped_column(String(64), index=True)
    org_code: Mapped[str] = mapped_column(String(10))
    code: Mapped[str] = mapped_column(String(20), server_default=text("'submissionset'"))
    """``submissionset`` | ``folder`` (MHD List types)."""
    status: Mapped[str] = mapped_column(String(20), server_default=text("'current'"))
    date: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    source_id: Mapped[str | None] = mapped_column(String(300), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)


class ListEntryRow(Base):
    """Which documents a List (SubmissionSet or Folder) lists."""

    __tablename__ = "document_list_entries"

    list_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    document_id: Mapped[str] = mapped_column(String(64), primary_key=True, index=True)


class DocumentVersionRow(Base):
    """Every version of a DocumentReference (``_history``, vread); the row above is the last."""

    __tablename__ = "document_reference_versions"

    document_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    changed_by: Mapped[str] = mapped_column(String(10))
    """The organisation whose action made this version."""
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime)
    body: Mapped[str] = mapped_column(Text)


class SearchTokenRow(Base):
    """Token and reference search values of a DocumentReference or List, one per row:
    ``type``, ``category``, ``event``, ``setting``, ``facility``, ``format``,
    ``securityLabel``, ``author``, ``related``, ``identifier``, ``designationType``."""

    __tablename__ = "document_search_tokens"

    resource_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    system: Mapped[str] = mapped_column(String(300), primary_key=True)
    value: Mapped[str] = mapped_column(String(300), primary_key=True)

    __table_args__ = (Index("ix_document_search_tokens_value", "name", "value"),)


class UploadRow(Base):
    """Content streamed in ahead of its ITI-65 (``POST /fhir/Binary``), staged, not visible.

    The bundle that publishes it names ``Binary/<content_id>`` as its attachment;
    the publish commits the staged content and deletes this row in its transaction.
    """

    __tablename__ = "document_uploads"

    content_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    org_code: Mapped[str] = mapped_column(String(10))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(BigInteger)
    sha1: Mapped[str] = mapped_column(String(28))
    staging_token: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


documents = cast(Table, DocumentRow.__table__)
submission_sets = cast(Table, SubmissionSetRow.__table__)
list_entries = cast(Table, ListEntryRow.__table__)
versions = cast(Table, DocumentVersionRow.__table__)
search_tokens = cast(Table, SearchTokenRow.__table__)
uploads = cast(Table, UploadRow.__table__)
