"""Stored content that was altered, moved, cut or read with the wrong key is never served.

Each test damages what is in the store directly (as someone with access to the
disk or bucket could) and checks the read fails with ``ContentIntegrityError``
naming the check, and that the reader never released the whole document.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from joinedup.documents.blobs import BlobStore
from joinedup.documents.content import ContentStore
from joinedup.documents.envelope import Envelope, seal_envelope, unwrap_data_key
from joinedup.documents.errors import ContentIntegrityError, MasterKeyError
from joinedup.documents.keyring import Keyring, MasterKey
from joinedup.documents.keys import document_key
from tests.integration.documents.conftest import (
    CHUNK,
    StoreWorld,
    edit_chunks,
    envelope_json,
    replace_envelope,
    stored,
    stored_chunks,
)

STORED_CHUNK = CHUNK + 16


def _read_released(store: ContentStore, content_id: str) -> tuple[bytes, ContentIntegrityError]:
    """What a consumer received before the failure, and the failure."""
    received = bytearray()
    try:
        with store.open(content_id) as reader:
            for chunk in reader:
                received += chunk
    except ContentIntegrityError as error:
        return bytes(received), error
    pytest.fail("the damaged content was served")


def _flip(at: int) -> Callable[[bytearray], bytes]:
    def change(stored: bytearray) -> bytes:
        stored[at] ^= 0x01
        return bytes(stored)

    return change


@pytest.mark.parametrize(
    ("where", "offset"),
    [
        ("first chunk", 3),
        ("a middle chunk", 2 * STORED_CHUNK + 100),
        ("the last chunk", 4 * STORED_CHUNK + 2),
        ("a tag", STORED_CHUNK - 1),
    ],
)
def test_flipped_byte(store: ContentStore, where: str, offset: int) -> None:
    data = os.urandom(4 * CHUNK + 50)
    info = store.put(data)
    edit_chunks(store, info.content_id, _flip(offset))
    received, error = _read_released(store, info.content_id)
    assert error.check == "chunk-tag"
    assert error.content_id == info.content_id
    assert len(received) < len(data)
    assert data.startswith(received)  # only verified chunks were released


def test_flip_in_first_chunk_fails_before_any_byte(store: ContentStore) -> None:
    info = store.put(os.urandom(3 * CHUNK))
    edit_chunks(store, info.content_id, _flip(10))
    with pytest.raises(ContentIntegrityError, match="chunk 0"):
        store.open(info.content_id)  # the response has not started yet


def test_swapped_chunks(store: ContentStore) -> None:
    info = store.put(os.urandom(4 * CHUNK))

    def swap(stored: bytearray) -> bytes:
        one = stored[STORED_CHUNK : 2 * STORED_CHUNK]
        two = stored[2 * STORED_CHUNK : 3 * STORED_CHUNK]
        stored[STORED_CHUNK : 2 * STORED_CHUNK] = two
        stored[2 * STORED_CHUNK : 3 * STORED_CHUNK] = one
        return bytes(stored)

    edit_chunks(store, info.content_id, swap)
    received, error = _read_released(store, info.content_id)
    assert error.check == "chunk-tag"
    assert len(received) == CHUNK  # chunk 0 was fine; nothing after the swap


@pytest.mark.parametrize(
    "change",
    [
        lambda s: bytes(s[: 3 * STORED_CHUNK]),  # last chunk dropped
        lambda s: bytes(s[:-5]),  # last chunk cut short
        lambda s: bytes(s) + b"appended",
        lambda s: b"",
    ],
    ids=["drop-last-chunk", "cut-last-chunk", "appended", "emptied"],
)
def test_truncated_or_extended(store: ContentStore, change: Callable[[bytearray], bytes]) -> None:
    info = store.put(os.urandom(3 * CHUNK + 9))
    edit_chunks(store, info.content_id, change)
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(info.content_id)
    assert caught.value.check == "length"


def test_truncation_at_a_chunk_boundary_is_caught_by_the_last_flag(
    store: ContentStore, blobs: BlobStore
) -> None:
    """Even if the length check were fooled, a non-final chunk cannot pass as the last."""
    info = store.put(os.urandom(3 * CHUNK))
    edit_chunks(store, info.content_id, lambda s: bytes(s[: 2 * STORED_CHUNK]))
    env = Envelope.from_bytes(envelope_json(store, info.content_id), info.content_id)
    data_key = unwrap_data_key(env, store.keyring)
    forged = seal_envelope(  # an insider with the master key shortens the recorded size
        master=store.keyring.active,
        data_key=data_key,
        content_id=env.content_id,
        size=2 * CHUNK,
        sha1=env.sha1,
        chunk_size=env.chunk_size,
        nonce_prefix=env.nonce_prefix,
        created=env.created,
    )
    replace_envelope(store, info.content_id, forged.to_bytes())
    received, error = _read_released(store, info.content_id)
    assert error.check == "chunk-tag"
    assert len(received) < 2 * CHUNK


def test_content_moved_from_another_document(store: ContentStore, blobs: BlobStore) -> None:
    a = store.put(os.urandom(2 * CHUNK))
    b = store.put(os.urandom(2 * CHUNK))
    edit_chunks(store, b.content_id, lambda _: stored_chunks(store, a.content_id))
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(b.content_id)
    assert caught.value.check == "chunk-tag"


def test_envelope_moved_from_another_document(store: ContentStore, blobs: BlobStore) -> None:
    a = store.put(os.urandom(CHUNK))
    b = store.put(os.urandom(CHUNK))
    replace_envelope(store, b.content_id, envelope_json(store, a.content_id))
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(b.content_id)
    assert caught.value.check == "envelope"


@pytest.mark.parametrize("field", ["size", "sha1", "chunk_size"])
def test_edited_envelope(store: ContentStore, blobs: BlobStore, field: str) -> None:
    data = os.urandom(2 * CHUNK)
    info = store.put(data)
    doc = json.loads(envelope_json(store, info.content_id))
    doc[field] = {
        "size": 2 * CHUNK - 1,
        "sha1": "A" * 27 + "=",
        "chunk_size": 8192,
    }[field]
    replace_envelope(store, info.content_id, json.dumps(doc).encode())
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(info.content_id)
    assert caught.value.check == "key-unwrap"


def test_wrong_master_key(world: StoreWorld, store: ContentStore) -> None:
    info = store.put(os.urandom(CHUNK))
    impostor = MasterKey(store.keyring.active_kid, datetime.now(UTC), os.urandom(32))
    with pytest.raises(ContentIntegrityError) as caught:
        world.content(Keyring.of(impostor)).open(info.content_id)
    assert caught.value.check == "key-unwrap"


def test_missing_master_key(world: StoreWorld, store: ContentStore) -> None:
    info = store.put(os.urandom(CHUNK))
    other = MasterKey("dmk-other", datetime.now(UTC), os.urandom(32))
    with pytest.raises(MasterKeyError, match=store.keyring.active_kid):
        world.content(Keyring.of(other)).open(info.content_id)


def _with_recorded_sha1_of(store: ContentStore, content_id: str, other: bytes) -> None:
    """Re-seal the envelope recording another SHA-1: every chunk still authenticates."""
    env = Envelope.from_bytes(envelope_json(store, content_id), content_id)
    data_key = unwrap_data_key(env, store.keyring)
    fields = dataclasses.asdict(env)
    for drop in ("kid", "wrap_nonce", "wrapped_key"):
        fields.pop(drop)
    fields["sha1"] = hashlib.sha1(other).digest()
    replace_envelope(
        store,
        content_id,
        seal_envelope(master=store.keyring.active, data_key=data_key, **fields).to_bytes(),
    )


def test_sha1_is_checked_before_the_last_chunk_is_released(store: ContentStore) -> None:
    data = os.urandom(3 * CHUNK + 1)
    info = store.put(data)
    _with_recorded_sha1_of(store, info.content_id, b"something else")
    received, error = _read_released(store, info.content_id)
    assert error.check == "sha1"
    assert received == data[: 3 * CHUNK]  # every chunk but the last


def test_sha1_mismatch_in_a_one_chunk_document_releases_nothing(store: ContentStore) -> None:
    info = store.put(b"child protection conference minutes")
    _with_recorded_sha1_of(store, info.content_id, b"other")
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(info.content_id)
    assert caught.value.check == "sha1"


def test_range_reads_rely_on_chunk_tags_not_the_sha1(store: ContentStore) -> None:
    """A range cannot check the whole-document hash; every chunk it touches is authenticated."""
    data = os.urandom(3 * CHUNK)
    info = store.put(data)
    _with_recorded_sha1_of(store, info.content_id, b"other")
    with store.open(info.content_id, 5, 2 * CHUNK) as reader:
        assert not reader.whole
        assert reader.read_all() == data[5 : 2 * CHUNK]


@pytest.mark.parametrize(
    ("damage", "check"),
    [
        (lambda raw: b"", "length"),  # emptied: not even a header
        (lambda raw: raw[:100], "length"),  # cut inside the header
        (lambda raw: b"X" + raw[1:], "envelope"),  # not a header
        (lambda raw: raw[:4000] + b"x" + raw[4001:], "envelope"),  # bytes after the JSON
    ],
    ids=["emptied", "cut-in-header", "bad-magic", "padding-altered"],
)
def test_damaged_header_of_a_single_file_document(
    world: StoreWorld, store: ContentStore, damage: Callable[[bytes], bytes], check: str
) -> None:
    if world.layout != "document":
        pytest.skip("only single-file documents have a header")
    info = store.put(os.urandom(2 * CHUNK))
    key = document_key(info.content_id)
    store.blobs.put(key, damage(stored(store.blobs, key)))
    with pytest.raises(ContentIntegrityError) as caught:
        store.open(info.content_id)
    assert caught.value.check == check
