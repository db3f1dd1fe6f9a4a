"""Master keys that wrap documents' data keys: a folder of key files, one active.

The operator creates the folder with ``create_master_key`` (the CLI's
``joinedup documents keys init`` / ``rotate``): a random 256-bit key per file,
``<kid>.dmk.json``, mode 0600 in a 0700 folder (a mounted secret in
production). There is no default key anywhere: without a key file the store
refuses to start. The newest key is active (wraps new data keys) unless the
configuration names another; older keys stay to unwrap what they wrapped
until ``ContentStore.rewrap_all`` moves everything onto the active key, after
which they can be removed. Rotation never re-encrypts content.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

from joinedup.documents.errors import MasterKeyError
from joinedup.errors import Problem

KEY_SUFFIX = ".dmk.json"
KEY_BYTES = 32
ALGORITHM = "A256GCM"  # data keys are wrapped with AES-256-GCM (see envelope.py)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True, slots=True)
class MasterKey:
    """One master key. ``secret`` is kept out of ``repr`` so it never reaches a log."""

    kid: str
    created: datetime
    secret: bytes = field(repr=False)

    def __post_init__(self) -> None:
        if len(self.secret) != KEY_BYTES:
            raise ValueError("a master key is 32 bytes")
        if not self.kid or not self.kid.replace("-", "").isalnum():
            raise ValueError("a master key id is letters, digits and '-'")


@dataclass(frozen=True, slots=True)
class Keyring:
    """The master keys the store may use, by kid, and which one wraps new data keys."""

    keys: Mapping[str, MasterKey]
    active_kid: str

    def __post_init__(self) -> None:
        if self.active_kid not in self.keys:
            raise MasterKeyError(
                "the active document master key is not in the keyring",
                [Problem(f"no key {self.active_kid!r}", "active_key_id")],
            )
        object.__setattr__(self, "keys", MappingProxyType(dict(self.keys)))

    @property
    def active(self) -> MasterKey:
        return self.keys[self.active_kid]

    def get(self, kid: str) -> MasterKey:
        try:
            return self.keys[kid]
        except KeyError:
            raise MasterKeyError(
                f"document master key {kid!r} is not in the keyring; restore its key file "
                "(content wrapped under it cannot be read without it)",
                [Problem("unknown key id", kid)],
            ) from None

    @classmethod
    def of(cls, *keys: MasterKey, active_kid: str | None = None) -> Keyring:
        """A keyring from keys in hand; the newest is active unless one is named."""
        if not keys:
            raise MasterKeyError("a keyring needs at least one master key")
        newest = max(keys, key=lambda k: (k.created, k.kid))
        return cls({k.kid: k for k in keys}, active_kid or newest.kid)

    @classmethod
    def load(cls, folder: Path, active_kid: str | None = None) -> Keyring:
        """Read every key file in ``folder``; all problems are reported together."""
        if not folder.is_dir():
            raise MasterKeyError(
                f"no document master key folder at {folder}; create a key with "
                "`joinedup documents keys init`"
            )
        problems: list[Problem] = []
        keys: list[MasterKey] = []
        for path in sorted(folder.glob("*" + KEY_SUFFIX)):
            key, problem = _read_key_file(path)
            if problem is not None:
                problems.append(problem)
            elif key is not None:
                keys.append(key)
        if problems:
            raise MasterKeyError("document master key files cannot be used", problems)
        if not keys:
            raise MasterKeyError(
                f"no document master key in {folder}; create one with "
                "`joinedup documents keys init`"
            )
        return cls.of(*keys, active_kid=active_kid)


def _read_key_file(path: Path) -> tuple[MasterKey | None, Problem | None]:
    where = str(path)
    try:
        mode = path.stat().st_mode
        if mode & (stat.S_IRWXG | stat.S_IRWXO):
            return None, Problem(f"readable by others (mode {oct(mode & 0o777)}); chmod 600", where)
        data = json.loads(path.read_text("utf-8"))
        kid = str(data["kid"])
        if path.name != kid + KEY_SUFFIX:
            return None, Problem(f"kid {kid!r} does not match the file name", where)
        if data.get("alg") != ALGORITHM:
            return None, Problem(f"alg must be {ALGORITHM}", where)
        created = datetime.fromisoformat(str(data["created"]))
        return MasterKey(kid=kid, created=created, secret=_unb64(str(data["k"]))), None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        # The message names the file and the kind of fault, never key material.
        return None, Problem(f"unreadable key file ({type(exc).__name__})", where)


def create_master_key(folder: Path, *, now: datetime | None = None) -> MasterKey:
    """Create a new random master key file (mode 0600); it becomes the newest, so active.

    Used both to initialise the keyring and to rotate: after rotating, run
    ``ContentStore.rewrap_all`` and then the older key files may be archived.
    """
    created = (now or datetime.now(UTC)).astimezone(UTC)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    kid = f"dmk-{created:%Y%m%d}-{secrets.token_hex(4)}"
    key = MasterKey(kid=kid, created=created, secret=secrets.token_bytes(KEY_BYTES))
    body = json.dumps(
        {"kid": kid, "alg": ALGORITHM, "created": created.isoformat(), "k": _b64(key.secret)},
        indent=2,
    ).encode("utf-8")
    path = folder / (kid + KEY_SUFFIX)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, body)
        os.fsync(fd)
    finally:
        os.close(fd)
    return key
