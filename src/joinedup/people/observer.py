"""Online matching: link each Patient as its batch writes it, in the batch's own transaction.

The record store calls observers with every chunk it writes, inside the
batch transaction; a batch that rolls back therefore leaves no links behind,
and a committed Patient is never without a person.
"""

from __future__ import annotations

from collections.abc import Sequence

import orjson
from sqlalchemy import Connection, select

from joinedup.people.index import PersonIndex
from joinedup.people.patient import patient_features
from joinedup.records.tables import Resource
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
            select(Resource.id, Resource.org_code, Resource.body)
            .where(Resource.resource_type == "Patient", Resource.id.in_(ids))
            .order_by(Resource.id)
        ).all()
        # One set of queries and one write per table for the whole chunk, deciding
        # exactly as PersonIndex.link would record by record (tested against it).
        self._index.link_many(
            conn,
            [
                (patient_features(record_key(resource_id), orjson.loads(body)), org_code)
                for resource_id, org_code, body in rows
            ],
        )
