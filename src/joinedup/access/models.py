"""Tables of the access package: consent directives and self-declared relationships.

Both are keyed on the **Patient record** they were made against, not on the
person index's person id: a merge or unmerge moves records between persons,
and a directive must follow the record it was made about. The decision point
is handed the directives of every Patient record linked to the person.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import Date, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, JSONType, UTCDateTime, utcnow


class ConsentRow(Base):
    """One consent directive (FHIR Consent), current version only; every change
    is also an audit event, which is the history."""

    __tablename__ = "consent_directives"
    __table_args__ = (Index("ix_consent_directives_patient_id", "patient_id"),)

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(10))
    organisation: Mapped[str | None] = mapped_column(String(10), nullable=True)
    category: Mapped[str | None] = mapped_column(String(40), nullable=True)
    agreement_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    recorded: Mapped[date] = mapped_column(Date)
    start: Mapped[date | None] = mapped_column(Date, nullable=True)
    end: Mapped[date | None] = mapped_column(Date, nullable=True)
    recorded_by_org: Mapped[str] = mapped_column(String(10))
    """The organisation that recorded it, acting for the person."""
    recorded_by: Mapped[str] = mapped_column(String(80))
    """The practitioner (or ``system/<client id>``) who recorded it."""
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resource: Mapped[dict[str, Any]] = mapped_column(JSONType)


class DeclaredRelationshipRow(Base):
    """A practitioner's self-declared legitimate relationship with a person, for a
    limited time, with the reason they gave."""

    __tablename__ = "declared_relationships"
    __table_args__ = (
        Index("ix_declared_relationships_patient_id_expires_at", "patient_id", "expires_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    patient_id: Mapped[str] = mapped_column(String(64))
    org_code: Mapped[str] = mapped_column(String(10))
    practitioner: Mapped[str] = mapped_column(String(80))
    reason: Mapped[str] = mapped_column(Text)
    declared_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
