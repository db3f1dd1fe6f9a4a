"""Signed statements about the chain: checkpoints and archive anchors.

A statement is canonical JSON; the signature (Ed25519, base64url) is over its
exact bytes, which are stored beside it, so checking never re-serialises.

* A **checkpoint** says "log L had head hash H at seq N at time T".
  Anyone holding an exported checkpoint can later show the log was rewritten
  at or before N if its hash at N is not H.
* An **anchor** says "events F..N of log L, following prev_hash P, were moved to
  an archive whose content hashes to S and whose last event hash is H". The
  log keeps anchors so that what remains verifies from H onwards.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import orjson

from joinedup.audit.events import canonical_json, format_time, parse_time
from joinedup.audit.keys import AuditSigningKey, PublicKeys, SignatureCheck

CHECKPOINT = "audit-checkpoint"
ANCHOR = "audit-anchor"


def _parse(statement: str, kind: str) -> dict[str, Any]:
    try:
        data = orjson.loads(statement)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"statement is not JSON: {exc}") from None
    if not isinstance(data, dict) or data.get("type") != kind:
        raise ValueError(f"statement is not an {kind}")
    return data


@dataclass(frozen=True, slots=True)
class Checkpoint:
    log_id: str
    seq: int
    hash: str
    time: datetime
    kid: str
    statement: str
    signature: str

    @classmethod
    def make(
        cls, *, log_id: str, seq: int, hash: str, time: datetime, key: AuditSigningKey
    ) -> Checkpoint:
        body = {
            "type": CHECKPOINT,
            "log": log_id,
            "seq": seq,
            "hash": hash,
            "time": format_time(time),
            "kid": key.kid,
        }
        raw = canonical_json(body)
        return cls(log_id, seq, hash, time, key.kid, raw.decode(), key.sign(raw))

    @classmethod
    def parse(cls, statement: str, signature: str) -> Checkpoint:
        """Read a stored or exported checkpoint; ValueError if it is malformed."""
        data = _parse(statement, CHECKPOINT)
        try:
            return cls(
                str(data["log"]),
                int(data["seq"]),
                str(data["hash"]),
                parse_time(str(data["time"])),
                str(data["kid"]),
                statement,
                signature,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"checkpoint statement is incomplete: {exc}") from None

    def check(self, keys: PublicKeys) -> SignatureCheck:
        return keys.check(self.kid, self.statement.encode(), self.signature)

    def as_line(self) -> dict[str, Any]:
        return {"type": "checkpoint", "statement": self.statement, "signature": self.signature}


@dataclass(frozen=True, slots=True)
class Anchor:
    log_id: str
    first_seq: int
    last_seq: int
    prev_hash: str
    last_hash: str
    archive_sha256: str
    time: datetime
    kid: str
    statement: str
    signature: str

    @classmethod
    def make(
        cls,
        *,
        log_id: str,
        first_seq: int,
        last_seq: int,
        prev_hash: str,
        last_hash: str,
        archive_sha256: str,
        time: datetime,
        key: AuditSigningKey,
    ) -> Anchor:
        body = {
            "type": ANCHOR,
            "log": log_id,
            "first_seq": first_seq,
            "last_seq": last_seq,
            "prev_hash": prev_hash,
            "last_hash": last_hash,
            "archive_sha256": archive_sha256,
            "time": format_time(time),
            "kid": key.kid,
        }
        raw = canonical_json(body)
        return cls(
            log_id,
            first_seq,
            last_seq,
            prev_hash,
            last_hash,
            archive_sha256,
            time,
            key.kid,
            raw.decode(),
            key.sign(raw),
        )

    @classmethod
    def parse(cls, statement: str, signature: str) -> Anchor:
        data = _parse(statement, ANCHOR)
        try:
            return cls(
                str(data["log"]),
                int(data["first_seq"]),
                int(data["last_seq"]),
                str(data["prev_hash"]),
                str(data["last_hash"]),
                str(data["archive_sha256"]),
                parse_time(str(data["time"])),
                str(data["kid"]),
                statement,
                signature,
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"anchor statement is incomplete: {exc}") from None

    def check(self, keys: PublicKeys) -> SignatureCheck:
        return keys.check(self.kid, self.statement.encode(), self.signature)

    def as_line(self) -> dict[str, Any]:
        return {"type": "anchor", "statement": self.statement, "signature": self.signature}
