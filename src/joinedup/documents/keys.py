"""Where a document's blobs live: ``content/<id[:2]>/<id>`` and
``envelopes/<id[:2]>/<id>.json`` (see ``content.py``)."""

from __future__ import annotations

CONTENT_PREFIX = "content/"
ENVELOPE_PREFIX = "envelopes/"
FAN_OUT = tuple(f"{n:02x}" for n in range(256))


def content_key(content_id: str) -> str:
    return f"{CONTENT_PREFIX}{content_id[:2]}/{content_id}"


def envelope_key(content_id: str) -> str:
    return f"{ENVELOPE_PREFIX}{content_id[:2]}/{content_id}.json"
