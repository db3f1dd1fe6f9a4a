"""Verified tokens are remembered until they expire, and failures never are."""

from __future__ import annotations

import pytest

from joinedup.access.purposes import Purpose
from joinedup.auth.cache import CachingVerifier
from joinedup.auth.tokens import AccessToken
from joinedup.errors import Unauthenticated


class Counting:
    """Stands in for the ES256 verifier: accepts tokens starting "good"."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def verify(self, token: str) -> AccessToken:
        self.calls.append(token)
        if not token.startswith("good"):
            raise Unauthenticated("the bearer token's signature is not valid")
        return AccessToken("RWX", "rwx-app", Purpose.DIRECT_CARE, frozenset(), token, 1_000)


def test_a_token_is_verified_once_until_it_expires() -> None:
    now = [900.0]
    inner = Counting()
    cache = CachingVerifier(inner, clock=lambda: now[0])
    first = cache.verify("good-1")
    assert cache.verify("good-1") is first
    assert inner.calls == ["good-1"]
    now[0] = 1_000.0  # at exp: no longer honoured from the cache
    cache.verify("good-1")
    assert inner.calls == ["good-1", "good-1"]


def test_refusals_are_never_remembered() -> None:
    inner = Counting()
    cache = CachingVerifier(inner, clock=lambda: 0.0)
    for _ in range(2):
        with pytest.raises(Unauthenticated):
            cache.verify("bad")
    assert inner.calls == ["bad", "bad"]


def test_a_full_cache_starts_again() -> None:
    inner = Counting()
    cache = CachingVerifier(inner, max_tokens=2, clock=lambda: 0.0)
    for token in ("good-1", "good-2", "good-3", "good-1"):
        cache.verify(token)
    assert inner.calls == ["good-1", "good-2", "good-3", "good-1"]
    cache.verify("good-3")
    assert len(inner.calls) == 4


def test_cached_answers_only_what_verify_would_answer_from_memory() -> None:
    now = [900.0]
    inner = Counting()
    cache = CachingVerifier(inner, clock=lambda: now[0])
    assert cache.cached("good-1") is None  # never verified: not verified here either
    with pytest.raises(Unauthenticated):
        cache.verify("bad")
    assert cache.cached("bad") is None
    first = cache.verify("good-1")
    assert cache.cached("good-1") is first
    assert inner.calls == ["bad", "good-1"]  # cached() never asks the verifier
    now[0] = 1_000.0  # at exp
    assert cache.cached("good-1") is None
    assert inner.calls == ["bad", "good-1"]
