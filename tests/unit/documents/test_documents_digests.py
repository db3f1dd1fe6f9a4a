"""Hashing on worker threads gives the same digests as hashing inline."""

from __future__ import annotations

import hashlib
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.documents.digests import ParallelDigests


@given(st.lists(st.binary(max_size=5000), max_size=20))
def test_same_digests_as_inline(blocks: list[bytes]) -> None:
    parallel = ParallelDigests(hashlib.sha1(), hashlib.sha256(), depth=2)
    for block in blocks:
        parallel.update(block)
    joined = b"".join(blocks)
    assert parallel.digests() == [hashlib.sha1(joined).digest(), hashlib.sha256(joined).digest()]


def test_threads_stop_on_close_and_updates_are_refused_after() -> None:
    before = threading.active_count()
    parallel = ParallelDigests(hashlib.sha1())
    parallel.update(b"abc")
    parallel.close()
    parallel.close()
    assert threading.active_count() == before
    with pytest.raises(RuntimeError):
        parallel.update(b"more")
    assert parallel.digests() == [hashlib.sha1(b"abc").digest()]


@given(st.lists(st.binary(max_size=5000), max_size=20), st.booleans())
def test_inline_start_gives_the_same_digest_deferred_or_not(
    blocks: list[bytes], defer: bool
) -> None:
    parallel = ParallelDigests(hashlib.sha1(), inline_bytes=8000, defer=defer)
    for block in blocks:
        parallel.update(block)
    assert parallel.digests() == [hashlib.sha1(b"".join(blocks)).digest()]
