"""Online matching: link each Patient as its batch writes it, in the batch's own transaction.

The record store calls observers with every chunk it writes, inside the
batch transaction; a batch that rolls back therefore leaves no links behind,
and a committed Patient is never without a person.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, and_, select
from sqlalchemy.orm import Session

from joinedup.people.index import PersonIndex
from joinedup.people.patient import patient_features
from joinedup.records.tables import Resource, ResourceVersion
from joinedup.records.writer import Written


def record_key(resource_id: str) -> str:
    return f"Patient/{resource_id}"


class PersonLinker:
    """A chunk observer for the batch loader."""

    def __init__(self, index: PersonIndex) -> None:
        self._index = index

    def __call__(self, conn: Connection, written: Sequence[Written]) -> None:
        ids = [w.id for w in written if w.resource_type == "Patient"]
        if not ids:
            return
        rows = conn.execute(
            select(Resource.id, Resource.org_code, ResourceVersion.body)
            .join(
                ResourceVersion,
                and_(
                    ResourceVersion.resource_type == Resource.resource_type,
                    ResourceVersion.id == Resource.id,
                    ResourceVersion.version_id == Resource.version_id,
                ),
            )
            .where(Resource.resource_type == "Patient", Resource.id.in_(ids))
            .order_by(Resource.id)
        ).all()
        session = Session(bind=conn, join_transaction_mode="create_savepoint")
        try:
            for resource_id, org_code, body in rows:
                features = patient_features(record_key(resource_id), orjson.loads(body))
                self._index.link(session, features, org_code)
            session.flush()
            session.commit()  # releases the savepoint; the batch transaction decides
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
