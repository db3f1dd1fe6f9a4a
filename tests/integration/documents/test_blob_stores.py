"""The BlobStore behaviour every backend shares (local folder and S3-compatible server)."""

from __future__ import annotations

import io
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from joinedup.documents.blobs import (
    BinarySource,
    BlobNotFound,
    BlobStore,
    UploadNotFound,
    read_exact,
)
from tests.integration.documents.conftest import REGION, StoreWorld, leftovers, s3_config

MIB = 1024 * 1024


def _read(blobs: BlobStore, key: str, start: int = 0, stop: int | None = None) -> bytes:
    with blobs.get(key, start, stop) as reader:
        return read_exact(reader, 1 << 30)


SOURCES: dict[str, Callable[[], BinarySource]] = {
    "bytes": lambda: b"hello world",
    "file": lambda: io.BytesIO(b"hello world"),
    "iterable": lambda: iter([b"hello", b"", b" world"]),
}


@pytest.mark.parametrize("source", SOURCES)
def test_put_get_stat_delete(blobs: BlobStore, source: str) -> None:
    stat = blobs.put("a/b/c.txt", SOURCES[source]())
    assert (stat.key, stat.size) == ("a/b/c.txt", 11)
    assert blobs.exists("a/b/c.txt")
    assert blobs.stat("a/b/c.txt").size == 11
    assert _read(blobs, "a/b/c.txt") == b"hello world"
    blobs.delete("a/b/c.txt")
    assert not blobs.exists("a/b/c.txt")
    blobs.delete("a/b/c.txt")  # deleting nothing is fine


@pytest.mark.parametrize(
    ("start", "stop", "expected"),
    [
        (0, None, b"0123456789"),
        (3, 7, b"3456"),
        (9, None, b"9"),
        (4, 4, b""),
        (8, 50, b"89"),
        (10, None, b""),
        (12, 20, b""),
    ],
)
def test_ranges(blobs: BlobStore, start: int, stop: int | None, expected: bytes) -> None:
    blobs.put("r", b"0123456789")
    assert _read(blobs, "r", start, stop) == expected


def test_missing_blob(blobs: BlobStore) -> None:
    with pytest.raises(BlobNotFound):
        blobs.get("nothing/here")
    with pytest.raises(BlobNotFound):
        blobs.get("nothing/here", 2, 2)
    with pytest.raises(BlobNotFound):
        blobs.stat("nothing/here")
    assert not blobs.exists("nothing/here")


def test_put_replaces_whole(blobs: BlobStore) -> None:
    blobs.put("k", b"first version, long")
    blobs.put("k", b"second")
    assert _read(blobs, "k") == b"second"


def test_staged_upload_is_invisible_until_completed(world: StoreWorld, blobs: BlobStore) -> None:
    upload = blobs.start_upload("docs/one")
    upload.write(b"part one ")
    upload.write(b"part two")
    assert upload.seal() == 17
    assert not blobs.exists("docs/one")
    assert [s.key for s in blobs.iter_blobs("docs/")] == []
    assert [(u.key, u.upload_id) for u in blobs.iter_uploads("docs/")] == [
        ("docs/one", upload.upload_id)
    ]
    # Another process completes it from the key and upload id alone.
    stat = world.blobs().complete_upload("docs/one", upload.upload_id)
    assert stat.size == 17
    assert _read(blobs, "docs/one") == b"part one part two"
    assert list(blobs.iter_uploads("")) == []
    with pytest.raises(UploadNotFound):
        blobs.complete_upload("docs/one", upload.upload_id)


def test_aborted_upload_leaves_nothing(blobs: BlobStore) -> None:
    upload = blobs.start_upload("docs/two")
    upload.write(b"x" * 1000)
    upload.abort()
    upload.abort()
    assert leftovers(blobs) == []
    with pytest.raises(UploadNotFound):
        blobs.complete_upload("docs/two", upload.upload_id)
    blobs.abort_upload("docs/two", upload.upload_id)  # already gone: fine


def test_abort_by_id_from_another_process(world: StoreWorld, blobs: BlobStore) -> None:
    upload = blobs.start_upload("docs/three")
    upload.write(b"abc")
    world.blobs().abort_upload("docs/three", upload.upload_id)
    assert leftovers(blobs) == []


def test_multi_part_upload(blobs: BlobStore) -> None:
    data = os.urandom(11 * MIB + 3)  # three S3 parts of 5 MiB, the last small
    upload = blobs.start_upload("big")
    for offset in range(0, len(data), 700_000):
        upload.write(data[offset : offset + 700_000])
    upload.seal()
    blobs.complete_upload("big", upload.upload_id)
    assert _read(blobs, "big") == data
    assert _read(blobs, "big", 5 * MIB - 2, 5 * MIB + 2) == data[5 * MIB - 2 : 5 * MIB + 2]


def test_empty_blob(blobs: BlobStore) -> None:
    upload = blobs.start_upload("empty")
    assert upload.seal() == 0
    assert blobs.complete_upload("empty", upload.upload_id).size == 0
    assert _read(blobs, "empty") == b""


def test_listing_by_prefix(blobs: BlobStore) -> None:
    for key in ["env/aa/1.json", "env/ab/2.json", "content/aa/1", "envelope"]:
        blobs.put(key, b"x")
    assert sorted(s.key for s in blobs.iter_blobs("env/")) == ["env/aa/1.json", "env/ab/2.json"]
    assert sorted(s.key for s in blobs.iter_blobs("env")) == [
        "env/aa/1.json",
        "env/ab/2.json",
        "envelope",
    ]


@pytest.mark.parametrize("key", ["../escape", "/abs", ".uploads/x", "a//b", "a/../b", "", "a b"])
def test_bad_keys_are_refused(blobs: BlobStore, key: str) -> None:
    with pytest.raises(ValueError, match="blob key"):
        blobs.put(key, b"x")


def test_factory_builds_an_s3_store_that_works(
    s3_endpoint: str, s3_client: Any, tmp_path: Path
) -> None:
    from joinedup.documents.config import DocumentStoreConfig
    from joinedup.documents.stores import make_store

    s3_client.create_bucket(
        Bucket="joinedup-factory", CreateBucketConfiguration={"LocationConstraint": REGION}
    )
    config = DocumentStoreConfig(
        keys_dir=tmp_path, backend="s3", s3=s3_config(s3_endpoint, "joinedup-factory")
    )
    blobs = make_store(config)  # its own boto3 client, from the configuration alone
    assert blobs.name == "s3"
    blobs.put("via/factory", b"ok")
    assert _read(blobs, "via/factory") == b"ok"
