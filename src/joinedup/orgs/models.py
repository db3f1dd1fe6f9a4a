"""Tables of the organisations registry."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, JSONType, UTCDateTime, utcnow


class Organisation(Base):
    __tablename__ = "organisations"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(40))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Team(Base):
    __tablename__ = "teams"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))


class Practitioner(Base):
    __tablename__ = "practitioners"

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(40))
    team_id: Mapped[str | None] = mapped_column(ForeignKey("teams.id"), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ClientSystem(Base):
    """An organisation's software that calls joinedup, authenticating with private_key_jwt."""

    __tablename__ = "client_systems"

    client_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    org_code: Mapped[str] = mapped_column(ForeignKey("organisations.code"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    jwks: Mapped[dict[str, Any]] = mapped_column(JSONType)
    scopes: Mapped[str] = mapped_column(String(1000))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
