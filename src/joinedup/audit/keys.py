"""Ed25519 keys that sign audit checkpoints and archives.

Kept apart from the token-signing keys (``joinedup keys``): a different
lifetime (a checkpoint must stay verifiable for as long as the log is kept, so
audit keys are never deleted, only superseded) and a different audience (other
organisations' IG leads hold the public half). One JSON file per key in
``<data_dir>/audit-keys``; the newest signs. Public keys are exported as a
JWK Set (RFC 8037 OKP, ``crv`` Ed25519), ``kid`` the first 16 characters of the
RFC 7638 thumbprint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from joinedup.errors import ConfigError, InvalidInput, Problem

KEY_SUFFIX = ".ed25519.jwk.json"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public: Ed25519PublicKey) -> str:
    """RFC 7638 thumbprint of the OKP key, shortened: stable for the same key."""
    members = {"crv": "Ed25519", "kty": "OKP", "x": b64url(_raw_public(public))}
    digest = hashlib.sha256(json.dumps(members, separators=(",", ":"), sort_keys=True).encode())
    return b64url(digest.digest())[:16]


def public_jwk(public: Ed25519PublicKey, kid: str) -> dict[str, str]:
    return {
        "kty": "OKP",
        "crv": "Ed25519",
        "x": b64url(_raw_public(public)),
        "kid": kid,
        "alg": "EdDSA",
        "use": "sig",
    }


class SignatureCheck(StrEnum):
    VALID = "valid"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_KEY = "unknown-key"


@dataclass(frozen=True)
class PublicKeys:
    """The public keys a verifier trusts, by kid."""

    by_kid: Mapping[str, Ed25519PublicKey]

    @classmethod
    def from_jwks(cls, jwks: Mapping[str, Any], *, where: str = "keys") -> PublicKeys:
        """Import a JWK Set of Ed25519 public keys; every problem reported at once."""
        keys = jwks.get("keys")
        if not isinstance(keys, list):
            raise InvalidInput(f"{where} is not a JWK Set", [Problem("no 'keys' list", where)])
        found: dict[str, Ed25519PublicKey] = {}
        problems = []
        for i, jwk in enumerate(keys):
            at = f"{where}.keys[{i}]"
            if not isinstance(jwk, dict) or jwk.get("kty") != "OKP" or jwk.get("crv") != "Ed25519":
                problems.append(Problem("not an Ed25519 (OKP) key", at))
                continue
            try:
                public = Ed25519PublicKey.from_public_bytes(b64url_decode(str(jwk.get("x", ""))))
            except ValueError:
                problems.append(Problem("'x' is not a 32-byte Ed25519 public key", at))
                continue
            kid = jwk.get("kid")
            if kid != key_id(public):
                problems.append(Problem(f"kid {kid!r} is not this key's thumbprint", at))
                continue
            found[kid] = public
        if problems:
            raise InvalidInput(f"{where} holds keys that cannot be used", problems)
        return cls(found)

    def as_jwks(self) -> dict[str, Any]:
        return {"keys": [public_jwk(k, kid) for kid, k in sorted(self.by_kid.items())]}

    def check(self, kid: str, data: bytes, signature: str) -> SignatureCheck:
        key = self.by_kid.get(kid)
        if key is None:
            return SignatureCheck.UNKNOWN_KEY
        try:
            key.verify(b64url_decode(signature), data)
        except (InvalidSignature, ValueError):
            return SignatureCheck.BAD_SIGNATURE
        return SignatureCheck.VALID


@dataclass(frozen=True)
class AuditSigningKey:
    kid: str
    created: datetime
    private: Ed25519PrivateKey
    path: Path

    def sign(self, data: bytes) -> str:
        return b64url(self.private.sign(data))

    @property
    def public(self) -> Ed25519PublicKey:
        return self.private.public_key()


class AuditKeyStore:
    """The audit signing keys in one folder (a mounted secret in production)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def load(self) -> list[AuditSigningKey]:
        """Every key, oldest first."""
        if not self.folder.is_dir():
            return []
        keys = []
        for path in sorted(self.folder.glob("*" + KEY_SUFFIX)):
            try:
                data = json.loads(path.read_text())
                private = Ed25519PrivateKey.from_private_bytes(b64url_decode(data["d"]))
                created = datetime.fromisoformat(data["created"])
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise ConfigError(f"audit key file {path} is unreadable or corrupt: {exc}") from None
            kid = key_id(private.public_key())
            if data.get("kid") != kid:
                raise ConfigError(f"audit key file {path} has a kid that is not its thumbprint")
            keys.append(AuditSigningKey(kid, created, private, path))
        return sorted(keys, key=lambda k: k.created)

    def active(self) -> AuditSigningKey:
        keys = self.load()
        if not keys:
            raise ConfigError(
                f"no audit signing key in {self.folder}: run `joinedup audit keys init`"
            )
        return keys[-1]

    def active_or_none(self) -> AuditSigningKey | None:
        keys = self.load()
        return keys[-1] if keys else None

    def generate(self, now: datetime | None = None) -> AuditSigningKey:
        """A new key, which becomes the one that signs; older keys stay for verifying."""
        created = now or datetime.now(UTC)
        private = Ed25519PrivateKey.generate()
        kid = key_id(private.public_key())
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        raw = private.private_bytes_raw()
        payload = public_jwk(private.public_key(), kid) | {
            "d": b64url(raw),
            "created": created.isoformat(),
        }
        path = self.folder / f"{created.strftime('%Y%m%dT%H%M%S%fZ')}_{kid}{KEY_SUFFIX}"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        return AuditSigningKey(kid, created, private, path)

    def init(self) -> tuple[AuditSigningKey, bool]:
        """The signing key, creating the first one if there is none; (key, created)."""
        current = self.active_or_none()
        if current is not None:
            return current, False
        return self.generate(), True

    def public_keys(self) -> PublicKeys:
        return PublicKeys({k.kid: k.public for k in self.load()})

    def public_jwks(self) -> dict[str, Any]:
        return self.public_keys().as_jwks()
