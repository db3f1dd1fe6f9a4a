"""A document's envelope: what is needed to read its content, kept beside it.

The envelope holds the plaintext size and hashes, the chunk layout, the
nonce prefix, and the document's data key wrapped (AES-256-GCM) by a master
key named by ``kid``. It is a small JSON object stored separately from the
content so that rotating master keys rewrites only envelopes, never content.

Everything in the envelope except the wrapping itself is bound into the wrap
as associated data, so an envelope whose size, hashes, content id or layout
were edited no longer unwraps: the recorded SHA-1 a reader checks against is
as trustworthy as the key.
"""

from __future__ import annotations

import base64
import json
import os
import struct
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from joinedup.documents.chunks import KEY_BYTES, NONCE_PREFIX_BYTES, ChunkLayout
from joinedup.documents.errors import ContentIntegrityError
from joinedup.documents.keyring import Keyring, MasterKey

FORMAT = "joinedup-document/1"
CIPHER = "A256GCM-STREAM"
_WRAP_LABEL = b"joinedup-data-key/1\x00"


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def unb64(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


@dataclass(frozen=True, slots=True)
class Envelope:
    content_id: str
    size: int
    sha1: bytes
    chunk_size: int
    nonce_prefix: bytes
    created: datetime
    kid: str
    wrap_nonce: bytes
    wrapped_key: bytes

    def __post_init__(self) -> None:
        if len(self.sha1) != 20:
            raise ValueError("sha1 must be 20 bytes")
        if len(self.nonce_prefix) != NONCE_PREFIX_BYTES or len(self.wrap_nonce) != 12:
            raise ValueError("bad nonce length")
        if self.created.tzinfo is None:
            raise ValueError("created must be timezone-aware")
        ChunkLayout(self.size, self.chunk_size)  # validates size and chunk size

    @property
    def layout(self) -> ChunkLayout:
        return ChunkLayout(self.size, self.chunk_size)

    def bound_data(self) -> bytes:
        """Associated data of the key wrap: every field except the wrap itself."""
        fields = {
            "format": FORMAT,
            "cipher": CIPHER,
            "content_id": self.content_id,
            "size": self.size,
            "sha1": b64(self.sha1),
            "chunk_size": self.chunk_size,
            "nonce_prefix": b64(self.nonce_prefix),
            "created": self.created.isoformat(),
            "kid": self.kid,
        }
        return _WRAP_LABEL + json.dumps(fields, sort_keys=True, separators=(",", ":")).encode()

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "cipher": CIPHER,
            "content_id": self.content_id,
            "size": self.size,
            "sha1": b64(self.sha1),
            "chunk_size": self.chunk_size,
            "nonce_prefix": b64(self.nonce_prefix),
            "created": self.created.isoformat(),
            "kid": self.kid,
            "wrap_nonce": b64(self.wrap_nonce),
            "wrapped_key": b64(self.wrapped_key),
        }

    def to_bytes(self) -> bytes:
        return json.dumps(self.to_json(), sort_keys=True, indent=1).encode("utf-8")

    @classmethod
    def from_json(cls, data: Any, content_id: str) -> Envelope:
        """Parse a stored envelope; anything malformed is an integrity failure."""
        try:
            if not isinstance(data, dict):
                raise TypeError("not an object")
            if data.get("format") != FORMAT or data.get("cipher") != CIPHER:
                raise ValueError(f"unknown format {data.get('format')!r}/{data.get('cipher')!r}")
            env = cls(
                content_id=str(data["content_id"]),
                size=int(data["size"]),
                sha1=unb64(data["sha1"]),
                chunk_size=int(data["chunk_size"]),
                nonce_prefix=unb64(data["nonce_prefix"]),
                created=datetime.fromisoformat(data["created"]),
                kid=str(data["kid"]),
                wrap_nonce=unb64(data["wrap_nonce"]),
                wrapped_key=unb64(data["wrapped_key"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ContentIntegrityError(content_id, "envelope", f"malformed: {exc}") from None
        if env.content_id != content_id:
            raise ContentIntegrityError(content_id, "envelope", "belongs to another content id")
        return env

    @classmethod
    def from_bytes(cls, raw: bytes, content_id: str) -> Envelope:
        try:
            data = json.loads(raw)
        except ValueError:
            raise ContentIntegrityError(content_id, "envelope", "not JSON") from None
        return cls.from_json(data, content_id)


HEADER_BYTES = 4096
"""A single-file document (local store) starts with its envelope in a block of this size;
its chunks follow, page-aligned. ADR 0502, second amendment."""
_HEADER_MAGIC = b"joinedup-doc/2\n\x00"
_HEADER_LENGTH = struct.Struct(">I")
HEADER_PLACEHOLDER = bytes(HEADER_BYTES)
"""Written first while staging; replaced by the real header once the SHA-1 is known."""


def pack_header(env: Envelope) -> bytes:
    """The envelope as a single-file document's first ``HEADER_BYTES``: magic, length,
    the envelope's JSON (the same as a separate envelope object), zero padding."""
    return frame_header(json.dumps(env.to_json(), sort_keys=True, separators=(",", ":")).encode())


def frame_header(body: bytes) -> bytes:
    """Envelope JSON framed as a header (``pack_header``; tests frame edited JSON)."""
    used = len(_HEADER_MAGIC) + _HEADER_LENGTH.size + len(body)
    if used > HEADER_BYTES:  # pragma: no cover - an envelope is about 450 bytes
        raise ValueError(f"envelope of {len(body)} bytes does not fit the header")
    return _HEADER_MAGIC + _HEADER_LENGTH.pack(len(body)) + body + bytes(HEADER_BYTES - used)


def parse_header(raw: bytes, content_id: str) -> Envelope:
    """The envelope in a single-file document's header; an integrity failure if malformed."""
    start = len(_HEADER_MAGIC) + _HEADER_LENGTH.size
    if len(raw) < HEADER_BYTES:
        raise ContentIntegrityError(content_id, "length", "document is shorter than its header")
    if len(raw) != HEADER_BYTES or not raw.startswith(_HEADER_MAGIC):
        raise ContentIntegrityError(content_id, "envelope", "header is missing or malformed")
    (length,) = _HEADER_LENGTH.unpack_from(raw, len(_HEADER_MAGIC))
    if length > HEADER_BYTES - start or any(raw[start + length :]):
        raise ContentIntegrityError(content_id, "envelope", "header is malformed")
    return Envelope.from_bytes(raw[start : start + length], content_id)


def seal_envelope(
    *,
    master: MasterKey,
    data_key: bytes,
    content_id: str,
    size: int,
    sha1: bytes,
    chunk_size: int,
    nonce_prefix: bytes,
    created: datetime,
) -> Envelope:
    """Wrap ``data_key`` under ``master``, binding every other envelope field."""
    unsealed = Envelope(
        content_id=content_id,
        size=size,
        sha1=sha1,
        chunk_size=chunk_size,
        nonce_prefix=nonce_prefix,
        created=created,
        kid=master.kid,
        wrap_nonce=bytes(12),
        wrapped_key=b"",
    )
    return _wrap(unsealed, master, data_key)


def _wrap(env: Envelope, master: MasterKey, data_key: bytes) -> Envelope:
    if len(data_key) != KEY_BYTES:
        raise ValueError("data key must be 32 bytes")
    target = replace(env, kid=master.kid)
    nonce = os.urandom(12)
    wrapped = AESGCM(master.secret).encrypt(nonce, data_key, target.bound_data())
    return replace(target, wrap_nonce=nonce, wrapped_key=wrapped)


def unwrap_data_key(env: Envelope, keyring: Keyring) -> bytes:
    """The data key; ``MasterKeyError`` if its master key is absent, integrity error if wrong."""
    master = keyring.get(env.kid)
    try:
        key = AESGCM(master.secret).decrypt(env.wrap_nonce, env.wrapped_key, env.bound_data())
    except InvalidTag:
        raise ContentIntegrityError(
            env.content_id,
            "key-unwrap",
            f"data key does not unwrap under master key {env.kid!r}: the envelope was "
            "altered or the key file is not the one it was wrapped with",
        ) from None
    if len(key) != KEY_BYTES:
        raise ContentIntegrityError(env.content_id, "key-unwrap", "data key has the wrong length")
    return key


def rewrap(env: Envelope, keyring: Keyring) -> Envelope:
    """The same envelope with its data key wrapped under the keyring's active key."""
    data_key = unwrap_data_key(env, keyring)
    return _wrap(env, keyring.active, data_key)
