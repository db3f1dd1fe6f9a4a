"""Tables the token service needs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from joinedup.storage.base import Base, UTCDateTime


class UsedAssertion(Base):
    """Client-assertion ids seen before their expiry: a replayed assertion is refused."""

    __tablename__ = "used_client_assertions"

    client_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    jti: Mapped[str] = mapped_column(String(200), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
