"""Envelopes: the data key wrapped under a master key, binding size, hashes and layout."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from datetime import UTC, datetime

import pytest

from joinedup.documents.envelope import Envelope, rewrap, seal_envelope, unwrap_data_key
from joinedup.documents.errors import ContentIntegrityError, MasterKeyError
from joinedup.documents.keyring import Keyring, MasterKey

T0 = datetime(2026, 3, 1, tzinfo=UTC)
K1 = MasterKey("dmk-one", T0, os.urandom(32))
K2 = MasterKey("dmk-two", T0.replace(month=4), os.urandom(32))
CID = "0f" * 16


def _sealed(data_key: bytes) -> Envelope:
    return seal_envelope(
        master=K1,
        data_key=data_key,
        content_id=CID,
        size=5000,
        sha1=hashlib.sha1(b"x").digest(),
        chunk_size=4096,
        nonce_prefix=b"\x07" * 7,
        created=T0,
    )


def test_wrap_round_trip_and_json_round_trip() -> None:
    data_key = os.urandom(32)
    env = _sealed(data_key)
    assert env.kid == K1.kid
    assert data_key not in env.to_bytes()
    again = Envelope.from_bytes(env.to_bytes(), CID)
    assert again == env
    assert unwrap_data_key(again, Keyring.of(K1)) == data_key


@pytest.mark.parametrize(
    "change",
    [
        {"size": 5001},
        {"sha1": hashlib.sha1(b"y").digest()},
        {"chunk_size": 8192},
        {"nonce_prefix": b"\x08" * 7},
        {"created": T0.replace(day=2)},
        {"content_id": "1f" * 16},
    ],
)
def test_editing_any_bound_field_breaks_the_unwrap(change: dict[str, object]) -> None:
    edited = dataclasses.replace(_sealed(os.urandom(32)), **change)  # type: ignore[arg-type]
    with pytest.raises(ContentIntegrityError) as caught:
        unwrap_data_key(edited, Keyring.of(K1))
    assert caught.value.check == "key-unwrap"


def test_same_kid_different_secret_is_detected() -> None:
    impostor = MasterKey(K1.kid, T0, os.urandom(32))
    with pytest.raises(ContentIntegrityError, match="not the one it was wrapped with"):
        unwrap_data_key(_sealed(os.urandom(32)), Keyring.of(impostor))


def test_missing_master_key_is_a_configuration_error() -> None:
    with pytest.raises(MasterKeyError):
        unwrap_data_key(_sealed(os.urandom(32)), Keyring.of(K2))


def test_rewrap_moves_to_the_active_key_and_keeps_the_data_key() -> None:
    data_key = os.urandom(32)
    env = _sealed(data_key)
    both = Keyring.of(K1, K2)
    moved = rewrap(env, both)
    assert moved.kid == K2.kid
    assert moved.wrapped_key != env.wrapped_key
    assert unwrap_data_key(moved, Keyring.of(K2)) == data_key
    assert (
        dataclasses.replace(
            moved, kid=env.kid, wrap_nonce=env.wrap_nonce, wrapped_key=env.wrapped_key
        )
        == env
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"not json",
        b"[]",
        b'{"format": "other/9"}',
        b'{"format": "joinedup-document/1", "cipher": "A256GCM-STREAM"}',
    ],
)
def test_malformed_envelopes_are_integrity_failures(raw: bytes) -> None:
    with pytest.raises(ContentIntegrityError) as caught:
        Envelope.from_bytes(raw, CID)
    assert caught.value.check == "envelope"


def test_envelope_of_another_document_is_refused() -> None:
    data = json.loads(_sealed(os.urandom(32)).to_bytes())
    with pytest.raises(ContentIntegrityError, match="another content id"):
        Envelope.from_json(data, "2f" * 16)
