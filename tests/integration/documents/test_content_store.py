"""Encrypted content: round trips, ranges, the two-phase publish, on both backends."""

from __future__ import annotations

import base64
import hashlib
import io
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from joinedup.documents.blobs import BlobStore
from joinedup.documents.content import ContentStore, StagedBlob
from joinedup.documents.errors import ContentNotFound, RangeNotSatisfiable, StagingGone
from joinedup.documents.keys import content_key, document_key, envelope_key
from tests.integration.documents.conftest import (
    CHUNK,
    StoreWorld,
    edit_chunks,
    leftovers,
    stored_chunks,
)

MARKER = b"NHS-NUMBER-9434765919-DISCHARGE-SUMMARY"


def _document(size: int) -> bytes:
    body = os.urandom(size)
    if size >= len(MARKER):  # something recognisable, to prove it is not stored in clear
        return MARKER + body[len(MARKER) :]
    return body


def _stored(store: ContentStore, content_id: str) -> bytes:
    """The stored chunks (after a single file's header)."""
    return stored_chunks(store, content_id)


@pytest.mark.parametrize("size", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_round_trip(store: ContentStore, blobs: BlobStore, size: int) -> None:
    data = _document(size)
    info = store.put(io.BytesIO(data))
    assert info.size == size
    assert info.sha1 == hashlib.sha1(data).digest()
    assert info.sha1_b64 == base64.b64encode(hashlib.sha1(data).digest()).decode()
    assert info.kid == store.keyring.active_kid
    with store.open(info.content_id) as reader:
        assert reader.whole
        assert reader.length == size
        assert reader.read_all() == data
    assert store.info(info.content_id) == info
    stored = _stored(store, info.content_id)
    assert MARKER not in stored
    assert len(stored) == size + 16 * max(1, -(-size // CHUNK))


def test_content_is_encrypted_with_a_key_per_document(
    store: ContentStore, blobs: BlobStore
) -> None:
    data = _document(2 * CHUNK)
    a = store.put(data)
    b = store.put(data)
    assert a.content_id != b.content_id
    assert a.sha1 == b.sha1
    assert _stored(store, a.content_id) != _stored(store, b.content_id)


def test_chunks_are_released_as_they_are_read(store: ContentStore) -> None:
    data = _document(5 * CHUNK + 7)
    info = store.put(data)
    with store.open(info.content_id) as reader:
        chunks = list(reader)
    assert [len(c) for c in chunks] == [CHUNK] * 5 + [7]
    assert b"".join(chunks) == data


RANGES = [
    (0, 1),
    (0, CHUNK),
    (CHUNK - 1, CHUNK + 1),
    (CHUNK, 2 * CHUNK),
    (10, 3 * CHUNK + 2),
    (3 * CHUNK, 3 * CHUNK + 9),
    (3 * CHUNK + 8, 3 * CHUNK + 9),
    (5, 5),
    (3 * CHUNK + 9, 3 * CHUNK + 9),
    (100, 10**9),  # stop past the end is clipped, as HTTP does
]


def test_ranges_on_both_backends(store: ContentStore) -> None:
    data = _document(3 * CHUNK + 9)
    info = store.put(data)
    for start, stop in RANGES:
        with store.open(info.content_id, start, stop) as reader:
            assert reader.read_all() == data[start:stop], (start, stop)
            assert reader.length == len(data[start:stop])
            assert reader.size == len(data)


def test_range_reads_only_the_chunks_they_need(store: ContentStore, blobs: BlobStore) -> None:
    data = _document(4 * CHUNK)
    info = store.put(data)
    def damage(stored: bytearray) -> bytes:
        stored[3 * (CHUNK + 16) + 5] ^= 0xFF  # damage chunk 3 only
        return bytes(stored)

    edit_chunks(store, info.content_id, damage)
    with store.open(info.content_id, 10, 3 * CHUNK) as reader:  # chunks 0-2
        assert reader.read_all() == data[10 : 3 * CHUNK]


@pytest.mark.parametrize(("start", "stop"), [(-1, 5), (3 * CHUNK + 10, None), (50, 40)])
def test_unsatisfiable_ranges(store: ContentStore, start: int, stop: int | None) -> None:
    info = store.put(_document(3 * CHUNK + 9))
    with pytest.raises(RangeNotSatisfiable):
        store.open(info.content_id, start, stop)


def test_unknown_and_malformed_ids_are_not_found(store: ContentStore) -> None:
    for content_id in ["0" * 32, "../../etc/passwd", "ABC", ""]:
        with pytest.raises(ContentNotFound):
            store.open(content_id)
        with pytest.raises(ContentNotFound):
            store.info(content_id)
        assert not store.exists(content_id)


def test_stage_then_commit(world: StoreWorld, store: ContentStore) -> None:
    data = _document(2 * CHUNK + 1)
    staged = store.stage(
        iter([data[:100], data[100:]]),
        expected_size=len(data),
        expected_sha1=hashlib.sha1(data).digest(),
    )
    assert not store.exists(staged.content_id)
    with pytest.raises(ContentNotFound):
        store.open(staged.content_id)
    # A restarted process commits it from the token the registry kept.
    assert StagedBlob.from_token(staged.token) == staged
    info = world.content().commit(staged.token)
    assert info.content_id == staged.content_id
    assert store.exists(info.content_id)
    assert store.open(info.content_id).read_all() == data
    assert store.commit(staged) == info  # idempotent
    assert store.commit(staged.token) == info
    if staged.single:  # one file holds the envelope and the chunks
        assert leftovers(store.blobs) == [document_key(info.content_id)]
    else:
        assert leftovers(store.blobs) == sorted(
            [content_key(info.content_id), envelope_key(info.content_id)])


def test_token_holds_no_key_material_in_clear(store: ContentStore) -> None:
    staged = store.stage(b"safeguarding referral")
    token = base64.urlsafe_b64decode(staged.token.removeprefix("jdstage1."))
    assert b"safeguarding" not in token
    assert store.keyring.active.secret not in token
    store.abort(staged.token)


def test_stage_then_abort_leaves_nothing(store: ContentStore) -> None:
    staged = store.stage(_document(3 * CHUNK))
    store.abort(staged)
    store.abort(staged.token)
    assert leftovers(store.blobs) == []
    with pytest.raises(StagingGone):
        store.commit(staged)


def test_committed_content_cannot_be_aborted(store: ContentStore) -> None:
    staged = store.stage(b"signed court order")
    info = store.commit(staged)
    with pytest.raises(StagingGone, match="delete it instead"):
        store.abort(staged)
    assert store.open(info.content_id).read_all() == b"signed court order"


@pytest.mark.parametrize("token", ["", "jdstage1.", "jdstage1.bm90IGpzb24", "something-else"])
def test_malformed_tokens(store: ContentStore, token: str) -> None:
    with pytest.raises(StagingGone):
        store.commit(token)


def test_delete(store: ContentStore) -> None:
    info = store.put(_document(CHUNK + 3))
    assert store.delete(info.content_id)
    assert not store.exists(info.content_id)
    assert leftovers(store.blobs) == []
    assert not store.delete(info.content_id)


def test_stager_writes_any_block_sizes(store: ContentStore) -> None:
    data = _document(3 * CHUNK + 77)
    with store.begin(expected_size=len(data)) as stager:
        offset = 0
        for step in [1, 4095, 4097, 3, 8192, 10**6]:
            stager.write(data[offset : offset + step])
            offset += step
        staged = stager.finish()
    assert store.open(store.commit(staged).content_id).read_all() == data


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_range_equals_slicing(
    local_store_with_doc: tuple[ContentStore, str, bytes], data: st.DataObject
) -> None:
    store, content_id, plain = local_store_with_doc
    start = data.draw(st.integers(0, len(plain)))
    stop = data.draw(st.integers(start, len(plain) + 10))
    with store.open(content_id, start, stop) as reader:
        assert reader.read_all() == plain[start:stop]


@pytest.fixture
def local_store_with_doc(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[ContentStore, str, bytes]:
    """A local store holding one multi-chunk document (Hypothesis runs on the fast backend)."""
    from joinedup.documents.keyring import Keyring, create_master_key
    from joinedup.documents.local import LocalBlobStore

    root = tmp_path_factory.mktemp("ranges")
    key = create_master_key(root / "keys")
    store = ContentStore(LocalBlobStore(root / "docs"), Keyring.of(key), chunk_size=CHUNK)
    plain = _document(5 * CHUNK + 123)
    return store, store.put(plain).content_id, plain


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data())
def test_any_split_into_blocks_round_trips(
    tmp_path_factory: pytest.TempPathFactory, data: st.DataObject
) -> None:
    """Blocks of exactly a chunk are held without copying until the next one arrives;
    any mix of those, shorter, longer and empty blocks stores the same document."""
    from joinedup.documents.keyring import Keyring, create_master_key
    from joinedup.documents.local import LocalBlobStore

    root = tmp_path_factory.mktemp("splits")
    store = ContentStore(
        LocalBlobStore(root / "docs"),
        Keyring.of(create_master_key(root / "keys")),
        chunk_size=CHUNK,
    )
    steps = data.draw(
        st.lists(st.sampled_from([0, 1, CHUNK - 1, CHUNK, CHUNK + 1, 2 * CHUNK]), max_size=6)
    )
    plain = _document(sum(steps))
    with store.begin(expected_size=len(plain)) as stager:
        offset = 0
        for step in steps:
            stager.write(plain[offset : offset + step])
            offset += step
        staged = stager.finish()
    assert store.open(store.commit(staged).content_id).read_all() == plain


def test_single_files_only_where_the_store_can_hold_them(world: StoreWorld) -> None:
    if world.backend == "local":
        store = world.content(single_file=None)  # the default: one file per document
        assert store.stage(b"x").single
        return
    with pytest.raises(ValueError, match="single-file"):
        world.content(single_file=True)
    assert not world.content(single_file=None).stage(b"x").single  # S3 keeps the pair
