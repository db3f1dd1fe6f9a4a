"""Refused, failed and crashed publishes leave nothing visible, and the sweep tidies up."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from datetime import timedelta

import pytest

from joinedup.documents.content import ContentStore, content_key, envelope_key
from joinedup.documents.errors import (
    ContentIntegrityError,
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    StagingGone,
)
from tests.integration.documents.conftest import CHUNK, StoreWorld, leftovers, staged_key

LIMIT = 16 * CHUNK


class CountingSource:
    """A large upload arriving in blocks; remembers how much was pulled."""

    def __init__(self, total: int, block: int = CHUNK) -> None:
        self.total = total
        self.block = block
        self.pulled = 0

    def __iter__(self) -> Iterator[bytes]:
        while self.pulled < self.total:
            size = min(self.block, self.total - self.pulled)
            self.pulled += size
            yield os.urandom(size)


def test_over_the_limit_is_refused_while_streaming(world: StoreWorld) -> None:
    store = world.content(max_bytes=LIMIT)
    source = CountingSource(LIMIT * 8)
    with pytest.raises(ContentTooLarge) as caught:
        store.stage(source)
    assert caught.value.status == 413
    assert source.pulled <= LIMIT + CHUNK  # stopped at the limit, not at the end
    assert leftovers(store.blobs) == []


def test_exactly_the_limit_is_accepted(world: StoreWorld) -> None:
    store = world.content(max_bytes=LIMIT)
    data = os.urandom(LIMIT)
    assert store.open(store.put(data).content_id).read_all() == data


def test_declared_size_over_the_limit_is_refused_before_reading(world: StoreWorld) -> None:
    store = world.content(max_bytes=LIMIT)
    source = CountingSource(LIMIT + 1)
    with pytest.raises(ContentTooLarge):
        store.stage(source, expected_size=LIMIT + 1)
    assert source.pulled == 0
    assert leftovers(store.blobs) == []


def test_a_per_call_limit_can_only_lower_the_configured_one(world: StoreWorld) -> None:
    store = world.content(max_bytes=LIMIT)
    with pytest.raises(ContentTooLarge):
        store.stage(os.urandom(2 * CHUNK), max_bytes=CHUNK)
    with pytest.raises(ContentTooLarge):
        store.stage(CountingSource(LIMIT + 1), max_bytes=10 * LIMIT)
    assert leftovers(store.blobs) == []


@pytest.mark.parametrize(
    ("declared", "problem"),
    [
        ({"expected_size": 3 * CHUNK + 1}, "size"),
        ({"expected_size": 3 * CHUNK - 1}, "size"),
        ({"expected_sha1": hashlib.sha1(b"other").digest()}, "hash"),
        ({"expected_size": 5, "expected_sha1": hashlib.sha1(b"other").digest()}, "size"),
    ],
)
def test_declared_size_or_hash_mismatch(
    store: ContentStore, declared: dict[str, object], problem: str
) -> None:
    with pytest.raises(ContentMismatch) as caught:
        store.stage(os.urandom(3 * CHUNK), **declared)  # type: ignore[arg-type]
    assert problem in {p.location for p in caught.value.problems}
    assert caught.value.status == 422
    assert leftovers(store.blobs) == []


def test_size_and_hash_problems_are_reported_together(store: ContentStore) -> None:
    with pytest.raises(ContentMismatch) as caught:
        store.stage(b"abc", expected_size=4, expected_sha1=hashlib.sha1(b"x").digest())
    assert {p.location for p in caught.value.problems} == {"size", "hash"}


def test_malformed_declarations(store: ContentStore) -> None:
    with pytest.raises(ContentMismatch) as caught:
        store.stage(b"abc", expected_size=-1, expected_sha1=b"short")
    assert {p.location for p in caught.value.problems} == {"size", "hash"}
    assert leftovers(store.blobs) == []


def test_source_failing_midway_leaves_nothing(store: ContentStore) -> None:
    def broken() -> Iterator[bytes]:
        yield os.urandom(5 * CHUNK)
        raise ConnectionResetError("client went away")

    with pytest.raises(ConnectionResetError):
        store.stage(broken())
    assert leftovers(store.blobs) == []


def test_caller_error_inside_stager_context_aborts(store: ContentStore) -> None:
    def publish() -> None:
        with store.begin() as stager:
            stager.write(os.urandom(3 * CHUNK))
            raise KeyError("registry refused the bundle")

    with pytest.raises(KeyError):
        publish()
    assert leftovers(store.blobs) == []


def test_crash_while_staging_leaves_no_visible_document(world: StoreWorld) -> None:
    store = world.content()
    stager = store.begin()
    stager.write(os.urandom(3 * CHUNK))  # ... and the process dies: no finish, no abort
    assert not store.exists(stager.content_id)
    with pytest.raises(ContentNotFound):
        store.open(stager.content_id)
    assert leftovers(store.blobs) != []
    if world.backend == "local":  # moto reports a fixed 2010 start time for every upload
        assert world.content().sweep().total == 0  # too recent to be called stale
    report = world.content().sweep(now=store.clock() + timedelta(days=2))
    assert report.uploads_aborted == 1
    assert leftovers(store.blobs) == []


def test_staged_but_never_committed_is_swept_after_the_grace_period(world: StoreWorld) -> None:
    store = world.content()
    staged = store.stage(os.urandom(2 * CHUNK))
    if world.backend == "local":  # moto reports a fixed 2010 start time for every upload
        assert store.sweep().total == 0  # fresh: the publish may still commit it
        assert store.commit(staged.token).content_id == staged.content_id
        store.delete(staged.content_id)
        staged = store.stage(os.urandom(2 * CHUNK))
    report = world.content().sweep(now=store.clock() + timedelta(days=2))
    # a local pair stages the envelope beside the content (one fsync wait for both)
    pair = world.backend == "local" and world.layout == "pair"
    assert report.uploads_aborted == (2 if pair else 1)
    assert leftovers(store.blobs) == []
    with pytest.raises(StagingGone):
        store.commit(staged.token)


@pytest.mark.parametrize("recovery", ["retried commit", "sweep"])
def test_a_crash_between_the_renames_of_a_commit_is_completed(
    world: StoreWorld, recovery: str
) -> None:
    """Renames are not ordered until their folders are fsynced: a crash may keep the
    envelope's and lose the content's. Nothing had been acknowledged; the retried commit
    (the registry's recovery) or the sweep completes the content."""
    if world.backend != "local" or world.layout != "pair":
        pytest.skip("only a pair on the local store stages the envelope")
    store = world.content()
    data = os.urandom(2 * CHUNK + 3)
    staged = store.stage(data)
    assert staged.envelope_upload_id
    store.blobs.complete_upload(envelope_key(staged.content_id), staged.envelope_upload_id)
    with pytest.raises(ContentIntegrityError):  # visible envelope, content still staged
        store.open(staged.content_id)
    if recovery == "retried commit":
        world.content().commit(staged.token)
    else:
        assert world.content().sweep(now=store.clock() + timedelta(days=2)).total == 0
    assert world.content().open(staged.content_id).read_all() == data
    assert [k for k in leftovers(store.blobs) if k.startswith("upload:")] == []


def test_crash_midway_through_commit_is_finished_by_a_retry(world: StoreWorld) -> None:
    store = world.content()
    data = os.urandom(2 * CHUNK + 5)
    staged = store.stage(data)
    store.blobs.complete_upload(staged_key(staged), staged.upload_id)  # then dies
    # a pair is not visible yet (no envelope); a single file is, whole: its rename was all
    assert store.exists(staged.content_id) == staged.single
    info = world.content().commit(staged.token)
    assert world.content().open(info.content_id).read_all() == data


def test_crash_midway_through_commit_is_swept_if_never_retried(world: StoreWorld) -> None:
    if world.layout == "document":
        pytest.skip("a single-file document has no midway: the rename commits it whole")
    store = world.content()
    staged = store.stage(os.urandom(2 * CHUNK))
    store.blobs.complete_upload(content_key(staged.content_id), staged.upload_id)  # then dies
    assert not store.exists(staged.content_id)
    assert store.sweep().total == 0  # content fresh: the commit may still be retried
    report = world.content().sweep(now=store.clock() + timedelta(days=2))
    assert report.orphans_removed == 1
    assert leftovers(store.blobs) == []


def test_sweep_keeps_committed_documents(world: StoreWorld) -> None:
    store = world.content()
    data = os.urandom(CHUNK + 1)
    info = store.put(data)
    assert store.sweep(now=store.clock() + timedelta(days=30)).total == 0
    assert store.open(info.content_id).read_all() == data


def test_sweep_removes_a_temporary_left_by_a_crashed_envelope_write(world: StoreWorld) -> None:
    store = world.content()
    upload = store.blobs.start_upload("envelopes/ab/" + "ab" * 16 + ".json")
    upload.write(b"{")  # ... and the process dies
    assert store.sweep(now=store.clock() + timedelta(days=2)).uploads_aborted == 1
    assert leftovers(store.blobs) == []
