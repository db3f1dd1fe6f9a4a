"""The chunk layout (which stored bytes hold which plaintext) and the STREAM chunk cipher."""

from __future__ import annotations

import itertools
import os

import pytest
from cryptography.exceptions import InvalidTag
from hypothesis import given
from hypothesis import strategies as st

from joinedup.documents.chunks import (
    MIN_CHUNK_SIZE,
    TAG_BYTES,
    ChunkCipher,
    ChunkLayout,
)

KEY = bytes(range(32))
PREFIX = b"\x01" * 7
CID = "ab" * 16


def _reference_chunks(size: int, chunk: int, start: int, stop: int) -> list[int]:
    """Brute force: the chunk of every byte in the range."""
    if size == 0:
        return [0]
    return sorted({offset // chunk for offset in range(start, stop)})


@st.composite
def layouts_and_ranges(draw: st.DrawFn) -> tuple[ChunkLayout, int, int]:
    chunk = draw(st.sampled_from([MIN_CHUNK_SIZE, 5000, 8192]))
    size = draw(st.integers(0, 6 * chunk + 3))
    start = draw(st.integers(0, size))
    stop = draw(st.integers(start, size))
    return ChunkLayout(size, chunk), start, stop


@given(layouts_and_ranges())
def test_range_maps_to_exactly_the_chunks_holding_it(case: tuple[ChunkLayout, int, int]) -> None:
    layout, start, stop = case
    got = list(layout.chunks_for(start, stop))
    if start == stop and layout.size > 0:
        assert got == []
    else:
        assert got == _reference_chunks(layout.size, layout.chunk_size, start, stop)


@given(layouts_and_ranges())
def test_stored_span_covers_the_chunks_stored_bytes(case: tuple[ChunkLayout, int, int]) -> None:
    layout, start, stop = case
    chunks = layout.chunks_for(start, stop)
    lo, hi = layout.stored_span(chunks)
    expected = sum(layout.plain_length(i) + TAG_BYTES for i in chunks)
    assert hi - lo == expected
    assert 0 <= lo <= hi <= layout.stored_size
    if chunks:
        # the span starts where all earlier chunks end
        assert lo == sum(layout.plain_length(i) + TAG_BYTES for i in range(chunks[0]))


@given(st.integers(0, 10 * MIN_CHUNK_SIZE), st.sampled_from([MIN_CHUNK_SIZE, 6000]))
def test_chunks_add_up_to_the_plaintext(size: int, chunk: int) -> None:
    layout = ChunkLayout(size, chunk)
    assert sum(layout.plain_length(i) for i in range(layout.count)) == size
    assert layout.stored_size == size + TAG_BYTES * layout.count
    assert all(layout.plain_length(i) == chunk for i in range(layout.count - 1))


def test_empty_document_is_one_empty_chunk() -> None:
    layout = ChunkLayout(0, MIN_CHUNK_SIZE)
    assert layout.count == 1
    assert layout.stored_size == TAG_BYTES
    assert list(layout.chunks_for(0, 0)) == [0]


@pytest.mark.parametrize(("start", "stop"), [(-1, 3), (5, 4), (0, 101)])
def test_ranges_outside_the_document_are_refused(start: int, stop: int) -> None:
    with pytest.raises(ValueError, match="outside"):
        ChunkLayout(100, MIN_CHUNK_SIZE).chunks_for(start, stop)


@pytest.mark.parametrize("chunk", [MIN_CHUNK_SIZE - 1, 32 * 1024 * 1024])
def test_chunk_size_is_bounded(chunk: int) -> None:
    with pytest.raises(ValueError, match="chunk_size"):
        ChunkLayout(10, chunk)


def test_chunk_round_trip() -> None:
    cipher = ChunkCipher(KEY, PREFIX, CID, MIN_CHUNK_SIZE)
    plain = os.urandom(100)
    sealed = cipher.seal(3, False, plain)
    assert len(sealed) == 100 + TAG_BYTES
    assert plain not in sealed
    assert cipher.open(3, False, sealed) == plain


@pytest.mark.parametrize(
    ("index", "last", "cid", "chunk", "why"),
    [
        (4, False, CID, MIN_CHUNK_SIZE, "moved to another position"),
        (3, True, CID, MIN_CHUNK_SIZE, "presented as the last chunk (truncation)"),
        (3, False, "cd" * 16, MIN_CHUNK_SIZE, "moved into another document"),
        (3, False, CID, 8192, "read with another chunk size"),
    ],
)
def test_a_chunk_opens_only_where_it_was_sealed(
    index: int, last: bool, cid: str, chunk: int, why: str
) -> None:
    sealed = ChunkCipher(KEY, PREFIX, CID, MIN_CHUNK_SIZE).seal(3, False, b"payload")
    with pytest.raises(InvalidTag):
        ChunkCipher(KEY, PREFIX, cid, chunk).open(index, last, sealed)


def test_a_flipped_bit_fails() -> None:
    cipher = ChunkCipher(KEY, PREFIX, CID, MIN_CHUNK_SIZE)
    sealed = bytearray(cipher.seal(0, True, b"payload"))
    sealed[2] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.open(0, True, bytes(sealed))


def test_nonce_prefix_and_key_are_checked() -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        ChunkCipher(b"short", PREFIX, CID, MIN_CHUNK_SIZE)
    with pytest.raises(ValueError, match="nonce prefix"):
        ChunkCipher(KEY, b"\x00" * 12, CID, MIN_CHUNK_SIZE)


def _open_in_pieces(
    cipher: ChunkCipher, index: int, last: bool, stored: bytes, cuts: list[int]
) -> bytes:
    opener = cipher.opener(index, last)
    body, tag = stored[:-TAG_BYTES], stored[-TAG_BYTES:]
    edges = [0, *sorted(c % (len(body) + 1) for c in cuts), len(body)]
    plain = b"".join(opener.update(body[a:b]) for a, b in itertools.pairwise(edges))
    opener.finalize_with_tag(tag)
    return plain


@given(st.binary(max_size=3000), st.lists(st.integers(0, 3000), max_size=5), st.booleans())
def test_streaming_opener_agrees_with_open(plain: bytes, cuts: list[int], last: bool) -> None:
    cipher = ChunkCipher(KEY, PREFIX, CID, MIN_CHUNK_SIZE)
    sealed = cipher.seal(2, last, plain)
    assert _open_in_pieces(cipher, 2, last, sealed, cuts) == cipher.open(2, last, sealed) == plain


@pytest.mark.parametrize(
    ("index", "last", "flip"), [(3, False, None), (2, True, None), (2, False, 1)]
)
def test_streaming_opener_refuses_what_open_refuses(
    index: int, last: bool, flip: int | None
) -> None:
    cipher = ChunkCipher(KEY, PREFIX, CID, MIN_CHUNK_SIZE)
    sealed = bytearray(cipher.seal(2, False, b"payload of a chunk"))
    if flip is not None:
        sealed[flip] ^= 0x01
    with pytest.raises(InvalidTag):
        cipher.open(index, last, bytes(sealed))
    with pytest.raises(InvalidTag):
        _open_in_pieces(cipher, index, last, bytes(sealed), [5])
