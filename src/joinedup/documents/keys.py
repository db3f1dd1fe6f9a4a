"""Where a document's blobs live (see ``content.py``): one file
``content/<id[:2]>/<id>.doc`` (envelope header + chunks) on the local store since
ADR 0502's second amendment; ``content/<id[:2]>/<id>`` with
``envelopes/<id[:2]>/<id>.json`` on S3 and for local documents written before it."""

from __future__ import annotations

CONTENT_PREFIX = "content/"
ENVELOPE_PREFIX = "envelopes/"
FAN_OUT = tuple(f"{n:02x}" for n in range(256))


def content_key(content_id: str) -> str:
    return f"{CONTENT_PREFIX}{content_id[:2]}/{content_id}"


DOCUMENT_SUFFIX = ".doc"


def document_key(content_id: str) -> str:
    """The single file holding a local document's envelope header and its chunks."""
    return f"{CONTENT_PREFIX}{content_id[:2]}/{content_id}{DOCUMENT_SUFFIX}"


def envelope_key(content_id: str) -> str:
    return f"{ENVELOPE_PREFIX}{content_id[:2]}/{content_id}.json"
