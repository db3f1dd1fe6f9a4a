"""What the content store says about content: ids, sizes, hashes, staging tokens, reports."""

from __future__ import annotations

import base64
import json
import re
from dataclasses import dataclass, field
from datetime import datetime

from joinedup.documents.envelope import Envelope
from joinedup.documents.errors import StagingGone
from joinedup.errors import Problem

STAGED_PREFIX = "jdstage1."
CONTENT_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, slots=True)
class ContentInfo:
    """What the registry records about content: id, size, hashes, master key, created."""

    content_id: str
    size: int
    sha1: bytes
    kid: str
    created: datetime

    @property
    def sha1_b64(self) -> str:
        """The FHIR R4 ``Attachment.hash`` (base64 of the SHA-1)."""
        return base64.b64encode(self.sha1).decode("ascii")

    @property
    def sha1_hex(self) -> str:
        return self.sha1.hex()

    @classmethod
    def of(cls, env: Envelope) -> ContentInfo:
        return cls(env.content_id, env.size, env.sha1, env.kid, env.created)


@dataclass(frozen=True, slots=True)
class StagedBlob(ContentInfo):
    """Content staged but not yet visible; ``token`` commits or aborts it from anywhere."""

    upload_id: str = ""
    envelope: Envelope | None = field(default=None, repr=False, compare=False)
    envelope_upload_id: str = ""
    """The envelope staged beside the content (local store, before ADR 0502's second
    amendment), or "" (written at commit, or in the document's header)."""
    single: bool = False
    """A single-file document (``document_key``): the envelope is its header."""

    @classmethod
    def staged(
        cls, env: Envelope, upload_id: str, envelope_upload_id: str = "", *, single: bool = False
    ) -> StagedBlob:
        return cls(env.content_id, env.size, env.sha1, env.kid, env.created, upload_id, env,
                   envelope_upload_id, single)

    @property
    def token(self) -> str:
        """An opaque string (about 600 characters) to keep until commit: the upload id
        and the envelope, whose data key is wrapped, so it is safe in a database row."""
        assert self.envelope is not None
        data = {"upload_id": self.upload_id, "envelope": self.envelope.to_json()}
        if self.envelope_upload_id:
            data["envelope_upload_id"] = self.envelope_upload_id
        if self.single:
            data["layout"] = "document"
        body = json.dumps(data)
        return STAGED_PREFIX + base64.urlsafe_b64encode(body.encode()).decode("ascii")

    @classmethod
    def from_token(cls, token: str) -> StagedBlob:
        try:
            if not token.startswith(STAGED_PREFIX):
                raise ValueError("not a staging token")
            data = json.loads(base64.urlsafe_b64decode(token[len(STAGED_PREFIX) :].encode()))
            upload_id = str(data["upload_id"])
            envelope_upload_id = str(data.get("envelope_upload_id", ""))
            layout = data.get("layout", "pair")
            if layout not in ("pair", "document"):
                raise ValueError(f"unknown layout {layout!r}")
            envelope = data["envelope"]
            content_id = str(envelope["content_id"])
            if not CONTENT_ID.fullmatch(content_id):
                raise ValueError("bad content id")
        except (ValueError, KeyError, TypeError) as exc:
            raise StagingGone("not a staging token", [Problem(str(exc), "token")]) from None
        return cls.staged(Envelope.from_json(envelope, content_id), upload_id, envelope_upload_id,
                          single=layout == "document")


@dataclass(frozen=True, slots=True)
class RewrapReport:
    rewrapped: int
    already_active: int
    failures: tuple[Problem, ...] = ()


@dataclass(frozen=True, slots=True)
class SweepReport:
    uploads_aborted: int = 0
    orphans_removed: int = 0

    @property
    def total(self) -> int:
        return self.uploads_aborted + self.orphans_removed
