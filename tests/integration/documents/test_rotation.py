"""Rotating master keys re-wraps data keys; the chunks are never re-encrypted.

An envelope object (S3, and local pairs) is rewritten alone; a local single-file
document is copied under its new header, its chunks byte for byte the same."""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from joinedup.documents.blobs import read_exact
from joinedup.documents.content import CONTENT_PREFIX
from joinedup.documents.envelope import HEADER_BYTES
from joinedup.documents.errors import ContentNotFound, MasterKeyError
from joinedup.documents.keyring import KEY_SUFFIX, Keyring, create_master_key
from joinedup.documents.keys import DOCUMENT_SUFFIX, content_key, document_key, envelope_key
from tests.integration.documents.conftest import CHUNK, StoreWorld, leftovers


def _all_content(world: StoreWorld) -> dict[str, bytes]:
    """Every document's stored chunks (a single file's without its header)."""
    blobs = world.blobs()
    out = {}
    for stat in blobs.iter_blobs(CONTENT_PREFIX):
        with blobs.get(stat.key) as reader:
            raw = read_exact(reader, 1 << 30)
        out[stat.key] = raw[HEADER_BYTES:] if stat.key.endswith(DOCUMENT_SUFFIX) else raw
    return out


def test_rotate_then_rewrap(world: StoreWorld) -> None:
    before = world.content()
    old_kid = before.keyring.active_kid
    docs = {
        before.put(data).content_id: data for data in (os.urandom(n) for n in (0, 10, 3 * CHUNK))
    }
    content_before = _all_content(world)

    new_key = create_master_key(world.keys_dir, now=datetime.now(UTC))
    rotated = world.content()  # reloads the keyring: the new key is the newest, so active
    assert rotated.keyring.active_kid == new_key.kid
    fresh = rotated.put(b"written after rotation")
    assert fresh.kid == new_key.kid
    assert rotated.key_usage() == {old_kid: 3, new_key.kid: 1}

    report = rotated.rewrap_all()
    assert (report.rewrapped, report.already_active, report.failures) == (3, 1, ())
    assert rotated.key_usage() == {new_key.kid: 4}
    assert _all_content(world) == {
        **content_before,
        **{k: v for k, v in _all_content(world).items() if fresh.content_id in k},
    }  # old content byte-for-byte the same

    # The old key can now go: everything reads with the new key alone.
    (world.keys_dir / (old_kid + KEY_SUFFIX)).unlink()
    only_new = world.content(Keyring.load(world.keys_dir))
    for content_id, data in docs.items():
        assert only_new.open(content_id).read_all() == data
        assert only_new.info(content_id).kid == new_key.kid
    assert only_new.rewrap_all().rewrapped == 0


def test_without_the_old_key_old_documents_cannot_be_read_or_rewrapped(world: StoreWorld) -> None:
    store = world.content()
    old_kid = store.keyring.active_kid
    info = store.put(b"care and support plan")
    create_master_key(world.keys_dir)
    (world.keys_dir / (old_kid + KEY_SUFFIX)).unlink()
    store = world.content()
    with pytest.raises(MasterKeyError):
        store.open(info.content_id)
    report = store.rewrap_all()
    assert report.rewrapped == 0
    assert [p.location for p in report.failures] == [info.content_id]


def test_content_staged_before_rotation_is_committed_under_the_new_key(world: StoreWorld) -> None:
    staged = world.content().stage(b"discharge summary")
    new_key = create_master_key(world.keys_dir)
    store = world.content()
    info = store.commit(staged.token)
    assert info.kid == new_key.kid
    assert store.open(info.content_id).read_all() == b"discharge summary"


def test_an_older_key_can_be_kept_active_by_configuration(world: StoreWorld) -> None:
    old_kid = world.content().keyring.active_kid
    create_master_key(world.keys_dir)
    store = world.content(Keyring.load(world.keys_dir, active_kid=old_kid))
    assert store.put(b"x").kid == old_kid


def test_local_documents_written_as_pairs_are_read_rotated_and_deleted(world: StoreWorld) -> None:
    """Documents stored before single files (content + envelope) live on beside them."""
    if world.backend != "local":
        pytest.skip("only the local store writes single files")
    old = world.content(single_file=False).put(b"written as a pair")
    new = world.content(single_file=True).put(b"written as one file")
    create_master_key(world.keys_dir, now=datetime.now(UTC))
    store = world.content(single_file=True)
    for info, data in ((old, b"written as a pair"), (new, b"written as one file")):
        assert store.exists(info.content_id)
        assert store.open(info.content_id).read_all() == data
        with store.open(info.content_id, 8, 10) as reader:
            assert reader.read_all() == data[8:10]
    assert store.rewrap_all().rewrapped == 2
    assert set(store.key_usage().values()) == {2}
    assert store.sweep(now=store.clock() + timedelta(days=30)).total == 0
    assert store.delete(old.content_id)
    assert store.delete(new.content_id)
    assert not store.exists(old.content_id)
    assert not store.exists(new.content_id)
    assert [s.key for s in store.blobs.iter_blobs("")] == []


def _blocked_on_lock(path: Path) -> bool:
    """Whether some thread waits for a ``flock`` on the file ``path`` names (/proc/locks
    lists a waiter as ``N: -> FLOCK ... <major>:<minor>:<inode> ...``)."""
    inode = os.stat(path).st_ino
    with open("/proc/locks") as locks:
        return any(
            fields[1] == "->" and fields[6].rpartition(":")[2] == str(inode)
            for fields in (line.split() for line in locks) if len(fields) > 6)


@pytest.mark.skipif(not os.path.exists("/proc/locks"), reason="needs Linux's /proc/locks")
def test_a_delete_at_the_moment_a_rotation_renames_its_copy_stays_deleted(
    world: StoreWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The race: a rotation copies a document under its new key and renames the copy over
    it; a delete landing between the rotation's last check and that rename would be
    undone (the copy brings the document back). Here the delete is started (from another
    store object, as another process would) exactly then, and the rename waits until the
    delete has either finished or is waiting for the document's lock."""
    if world.backend != "local":
        pytest.skip("S3 has no lock: its conditional write is tested below")
    info = world.content().put(b"child protection conference minutes")
    create_master_key(world.keys_dir, now=datetime.now(UTC))
    rotating = world.content()
    target = (rotating.blobs.path_for(document_key(info.content_id)) if world.layout == "document"
              else rotating.blobs.path_for(envelope_key(info.content_id)))  # type: ignore[attr-defined]
    real_replace = os.replace
    deleter: list[threading.Thread] = []

    def replace(src: str | Path, dst: str | Path) -> None:
        if Path(dst) == target and not deleter:
            thread = threading.Thread(target=world.content().delete, args=(info.content_id,))
            deleter.append(thread)
            thread.start()
            for _ in range(2000):  # until the delete is done or waits for the lock
                if not thread.is_alive() or _blocked_on_lock(target):
                    break
                time.sleep(0.005)
            else:
                pytest.fail("the delete neither finished nor waited for the lock")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    report = rotating.rewrap_all()
    monkeypatch.undo()
    assert deleter, "the rotation never renamed a copy over the document"
    deleter[0].join()
    assert report.failures == ()
    assert not rotating.exists(info.content_id)
    assert not world.content().exists(info.content_id)
    with pytest.raises(ContentNotFound):
        world.content().open(info.content_id)
    assert [s.key for s in rotating.blobs.iter_blobs("")] == []


def test_a_document_deleted_while_a_rotation_copies_it_is_not_brought_back(
    world: StoreWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The delete wins the lock: the rotation finds the document gone and drops its copy."""
    if world.backend != "local":
        pytest.skip("S3 has no lock: its conditional write is tested below")
    info = world.content().put(b"safeguarding referral")
    create_master_key(world.keys_dir, now=datetime.now(UTC))
    rotating = world.content()
    target = (rotating.blobs.path_for(document_key(info.content_id)) if world.layout == "document"
              else rotating.blobs.path_for(envelope_key(info.content_id)))  # type: ignore[attr-defined]
    real_fsync = os.fsync
    done: list[bool] = []

    def fsync(fd: int) -> None:  # the rotation's copy is sealed: delete before its rename
        real_fsync(fd)
        if not done and target.exists() and os.fstat(fd).st_ino != os.stat(target).st_ino:
            done.append(world.content().delete(info.content_id))

    monkeypatch.setattr(os, "fsync", fsync)
    report = rotating.rewrap_all()
    monkeypatch.undo()
    assert done == [True]
    assert (report.rewrapped, report.failures) == (0, ())
    assert not rotating.exists(info.content_id)
    assert leftovers(rotating.blobs) == []


def test_on_s3_a_delete_racing_a_rotation_leaves_no_envelope_behind(
    world: StoreWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    """S3 has no lock; the interleaving that used to leave an envelope without content:
    the delete removes the envelope just before the rotation writes its re-wrapped one,
    and the content only after the rotation checked the content was there. The rotation's
    write is conditional on the envelope still existing, so it writes nothing."""
    if world.backend != "s3":
        pytest.skip("the local store locks instead (tests above)")
    info = world.content().put(b"court order")
    create_master_key(world.keys_dir, now=datetime.now(UTC))
    rotating = world.content()
    blobs = rotating.blobs
    env_full = blobs.full_key(envelope_key(info.content_id))  # type: ignore[attr-defined]
    client = blobs.client  # type: ignore[attr-defined]
    real_put = client.put_object
    deleted: list[str] = []

    def put_object(**kwargs: Any) -> Any:
        if kwargs.get("Key") == env_full and not deleted:  # a delete's first half lands
            world.blobs().delete(envelope_key(info.content_id))
            deleted.append("envelope")
        return real_put(**kwargs)

    monkeypatch.setattr(client, "put_object", put_object)
    report = rotating.rewrap_all()
    monkeypatch.undo()
    world.blobs().delete(content_key(info.content_id))  # the delete's second half
    assert deleted == ["envelope"]
    assert (report.rewrapped, report.failures) == (0, ())
    assert not world.content().exists(info.content_id)
    assert leftovers(world.blobs()) == []
