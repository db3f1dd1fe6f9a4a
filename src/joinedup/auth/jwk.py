"""Signing keys kept as JWK files in a folder, and checks on clients' public keys.

The folder is the unit of deployment: every API worker reads the same one (a
mounted secret in production). The newest key signs; every key in the folder
is published at /.well-known/jwks.json so tokens signed by a key being rotated
out stay valid until they expire. Retiring a key moves it to ``retired/``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet

from joinedup.errors import ConfigError, NotFound

SIGNING_ALG = "ES256"
CLIENT_ALGS = ("ES256", "ES384", "RS256", "RS384", "RS512", "PS256", "EdDSA")
_PRIVATE_MEMBERS = {"d", "p", "q", "dp", "dq", "qi", "k"}


def check_public_jwks(jwks: dict[str, Any]) -> None:
    """Raise ValueError unless ``jwks`` is a JWK Set of public signing keys, each with a kid."""
    keys = jwks.get("keys")
    if not isinstance(keys, list) or not keys:
        raise ValueError("must be a JWK Set: an object with a non-empty 'keys' list")
    for i, key in enumerate(keys):
        if not isinstance(key, dict):
            raise ValueError(f"keys[{i}] is not an object")
        if _PRIVATE_MEMBERS & key.keys():
            raise ValueError(f"keys[{i}] contains private key material: register public keys only")
        if not key.get("kid"):
            raise ValueError(f"keys[{i}] has no 'kid'")
    try:
        KeySet.import_key_set(jwks)  # type: ignore[arg-type]
    except (JoseError, ValueError, TypeError) as exc:
        raise ValueError(f"not a valid JWK Set: {exc}") from None


@dataclass(frozen=True)
class SigningKey:
    kid: str
    created: datetime
    key: ECKey
    path: Path


class KeyStore:
    """The signing keys in one folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(self.folder.glob("*.jwk.json"))

    def load(self) -> list[SigningKey]:
        """All current keys, oldest first."""
        keys = []
        for path in self._files():
            try:
                data = json.loads(path.read_text())
                created = datetime.fromisoformat(data.pop("created"))
                key = ECKey.import_key(data)
            except (OSError, ValueError, KeyError, JoseError) as exc:
                raise ConfigError(
                    f"signing key file {path} is unreadable or corrupt: {exc}"
                ) from None
            if not key.is_private:
                raise ConfigError(f"signing key file {path} holds no private key")
            keys.append(SigningKey(str(key.kid), created, key, path))
        return sorted(keys, key=lambda k: k.created)

    def active(self) -> SigningKey:
        keys = self.load()
        if not keys:
            raise ConfigError(f"no token-signing keys in {self.folder}: run `joinedup keys init`")
        return keys[-1]

    def public_jwks(self) -> dict[str, Any]:
        return {"keys": [k.key.as_dict(private=False) for k in self.load()]}

    def key_set(self) -> KeySet:
        return KeySet([k.key for k in self.load()])

    def generate(self, now: datetime | None = None) -> SigningKey:
        """Create a new key; it becomes the active one."""
        created = now or datetime.now(UTC)
        key = ECKey.generate_key("P-256", private=True)
        kid = key.thumbprint()[:16]
        key = ECKey.import_key(
            key.as_dict(private=True) | {"kid": kid, "alg": SIGNING_ALG, "use": "sig"}
        )
        self.folder.mkdir(parents=True, exist_ok=True)
        os.chmod(self.folder, 0o700)
        stamp = created.strftime("%Y%m%dT%H%M%S%fZ")
        path = self.folder / f"{stamp}_{kid}.jwk.json"
        payload = key.as_dict(private=True) | {"created": created.isoformat()}
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            json.dump(payload, handle)
        return SigningKey(kid, created, key, path)

    def ensure(self) -> SigningKey:
        """The active key, creating a first one if the folder has none."""
        keys = self.load()
        return keys[-1] if keys else self.generate()

    def retire(self, kid: str) -> None:
        """Stop publishing ``kid``: tokens it signed stop verifying at once."""
        for key in self.load():
            if key.kid == kid:
                if len(self.load()) == 1:
                    raise ConfigError("cannot retire the only signing key: rotate first")
                retired = self.folder / "retired"
                retired.mkdir(exist_ok=True, mode=0o700)
                key.path.rename(retired / key.path.name)
                return
        raise NotFound(f"no signing key with kid {kid!r}")
