"""Stable resource ids, so ingesting the same record again updates instead of duplicating.

The id is a UUIDv5 of (organisation, namespace, resource name, source key):
the same local record always gives the same id, different organisations'
record numbers never collide, and the id reveals nothing about the person.
The namespace is normally the feed; a people feed and an activity feed that
refers to its patients share one, so the reference resolves.
"""

from __future__ import annotations

import hashlib
import uuid

JOINEDUP_ID_NAMESPACE = uuid.UUID("6f0c8f3e-6d0b-5c8a-9a43-7c1f0f5a2b11")
"""Fixed for ever: changing it would re-key every stored resource."""

_NS = JOINEDUP_ID_NAMESPACE.bytes


def stable_id(organisation: str, namespace: str, name: str, key: str) -> str:
    """``uuid.uuid5(JOINEDUP_ID_NAMESPACE, "org|namespace|name|key")``, computed without the
    UUID object (this runs for every resource of every row)."""
    digest = bytearray(
        hashlib.sha1(_NS + f"{organisation}|{namespace}|{name}|{key}".encode(), usedforsecurity=False).digest()[:16]
    )
    digest[6] = (digest[6] & 0x0F) | 0x50
    digest[8] = (digest[8] & 0x3F) | 0x80
    h = digest.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"
