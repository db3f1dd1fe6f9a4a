"""Verified tokens remembered until they expire, so a client that sends the same
bearer token on every request pays for one ES256 verification, not one each.

The key is the whole compact token (header, claims *and* signature): a hit is
a token byte-for-byte identical to one whose signature and claims were
verified, so nothing forged or altered can hit. A hit is honoured only while
``now < exp`` (no leeway beyond what the first verification allowed). What a
cache changes: a signing key retired while its tokens are still live is
noticed by the underlying verifier only on a cache miss; tokens live minutes
(``JOINEDUP_TOKEN_TTL_SECONDS``), and joinedup has no per-token revocation,
so this is the same window an unexpired token already has. Failed
verifications are never cached (each is re-checked and refused afresh).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from joinedup.auth.tokens import AccessToken

MAX_TOKENS = 10_000
"""Tokens remembered per process; a full cache is emptied, not evicted piecemeal."""


class Verifier(Protocol):
    def verify(self, token: str) -> AccessToken: ...


class CachingVerifier:
    def __init__(
        self,
        verifier: Verifier,
        *,
        max_tokens: int = MAX_TOKENS,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._verifier = verifier
        self._max = max_tokens
        self._clock = clock
        self._verified: dict[str, AccessToken] = {}

    def cached(self, token: str) -> AccessToken | None:
        """What :meth:`verify` answers from memory for ``token``, or None where it would
        ask the underlying verifier (never verified, refused, or expired). No I/O, no
        signature check, nothing changed: for a caller that hands anything else to a
        path that calls :meth:`verify` (``joinedup.api.fast_lane``)."""
        found = self._verified.get(token)
        if found is not None and self._clock() < found.expires_at:
            return found
        return None

    def verify(self, token: str) -> AccessToken:
        found = self.cached(token)
        if found is not None:
            return found
        self._verified.pop(token, None)  # expired, if there at all
        verified = self._verifier.verify(token)  # raises Unauthenticated: nothing kept
        if len(self._verified) >= self._max:
            self._verified.clear()
        self._verified[token] = verified
        return verified
