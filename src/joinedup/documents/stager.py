"""Staging: streaming content in, hashing and encrypting it chunk by chunk, refusing early."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from datetime import datetime
from types import TracebackType
from typing import TYPE_CHECKING

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from joinedup.documents.blobs import BlobUpload, ParallelSeal, RewritableUpload
from joinedup.documents.chunks import NONCE_PREFIX_BYTES, ChunkCipher, ChunkLayout
from joinedup.documents.digests import INLINE_HASH_BYTES, ParallelDigests
from joinedup.documents.envelope import (
    HEADER_BYTES,
    HEADER_PLACEHOLDER,
    Envelope,
    pack_header,
    seal_envelope,
)
from joinedup.documents.errors import ContentMismatch, ContentTooLarge
from joinedup.documents.info import StagedBlob
from joinedup.documents.keys import envelope_key
from joinedup.errors import Problem

if TYPE_CHECKING:
    from joinedup.documents.content import ContentStore


class Stager:
    """One upload in progress: ``write`` blocks, then ``finish`` (or ``abort``).

    Any failure aborts the staged upload before the error propagates, so a
    refused upload leaves nothing behind. Use as a context manager to abort on
    the caller's own errors too.
    """

    def __init__(
        self,
        store: ContentStore,
        content_id: str,
        upload: BlobUpload,
        *,
        limit: int,
        expected_size: int | None,
        expected_sha1: bytes | None,
        created: datetime,
        single: bool = False,
    ) -> None:
        if single and not isinstance(upload, RewritableUpload):
            raise TypeError("a single-file document needs an upload that can rewrite its header")
        self._single = single
        if single:
            upload.write(HEADER_PLACEHOLDER)  # filled in once the SHA-1 is known
        self._store = store
        self.content_id = content_id
        self._upload = upload
        self._limit = limit
        self._expected_size = expected_size
        self._expected_sha1 = expected_sha1
        self._created = created
        self._chunk_size = store.chunk_size
        self._data_key = AESGCM.generate_key(bit_length=256)
        self._nonce_prefix = os.urandom(NONCE_PREFIX_BYTES)
        self._cipher = ChunkCipher(self._data_key, self._nonce_prefix, content_id, self._chunk_size)
        self._buffer = bytearray()
        self._held: bytes | None = None
        """A whole chunk received as one block, not yet known to be the last (not copied)."""
        self._out: bytearray | None = None
        self._index = 0
        self._received = 0
        # SHA-1 because FHIR R4 Attachment.hash is SHA-1; integrity at rest rests on GCM.
        self._digests = ParallelDigests(hashlib.sha1(), inline_bytes=INLINE_HASH_BYTES)  # noqa: S324
        self._state = "open"
        self._staged: StagedBlob | None = None
        self._envelope_upload: BlobUpload | None = None

    @property
    def received(self) -> int:
        return self._received

    def write(self, data: bytes) -> None:
        self._require_open()
        try:
            total = self._received + len(data)
            if total > self._limit:
                raise ContentTooLarge(
                    f"content is larger than the limit of {self._limit} bytes",
                    [Problem(f"more than {self._limit} bytes received", "content")],
                )
            if self._expected_size is not None and total > self._expected_size:
                raise ContentMismatch(
                    "content is longer than its declared size",
                    [Problem(f"more than the declared {self._expected_size} bytes", "size")],
                )
            self._received = total
            block = data if isinstance(data, bytes) else bytes(data)
            self._digests.update(block)
            size = self._chunk_size
            if not block:
                return
            held = self._held
            if held is not None:  # more follows: a whole held chunk is not the last
                self._held = None
                if len(held) == size:
                    self._upload.write(self._seal(False, held))
                else:
                    self._buffer += held
            if not self._buffer and len(block) <= size:
                # The common case (blocks of up to a chunk): hold the caller's immutable
                # bytes by reference until we know whether it is the last chunk; no copy.
                self._held = block
                return
            self._buffer += block
            while len(self._buffer) > size:  # a chunk is sealed once we know it is not the last
                view = memoryview(self._buffer)
                chunk = view[:size]
                try:
                    self._upload.write(self._seal(False, chunk))
                finally:
                    chunk.release()
                    view.release()
                del self._buffer[:size]
        except BaseException:
            self.abort()
            raise

    def finish(self) -> StagedBlob:
        """Check the declared size and hash, seal the last chunk and the upload."""
        self._require_open()
        try:
            problems = []
            if self._expected_size is not None and self._received != self._expected_size:
                problems.append(
                    Problem(
                        f"declared {self._expected_size} bytes, received {self._received}", "size"
                    )
                )
            synced = None
            if not problems:  # seal the last chunk while the hash thread catches up
                last = self._held if self._held is not None else self._buffer
                self._upload.write(self._seal(True, last))
                self._held = None
                self._buffer = bytearray()
                self._release_out()
                if self._single:  # the disk writes the chunks while the SHA-1 is finished
                    assert isinstance(self._upload, RewritableUpload)
                    self._upload.start_writeback(HEADER_BYTES)
                else:
                    synced = self._begin_content_sync()
            envelope_upload = ""
            try:  # the content's fsync (local store) runs while the hash is finished
                (sha1,) = self._digests.digests()
                if self._expected_sha1 is not None and sha1 != self._expected_sha1:
                    problems.append(
                        Problem("SHA-1 of the content differs from the declared hash", "hash")
                    )
                if problems:  # the upload (with its last chunk, if written) is aborted below
                    raise ContentMismatch(
                        "content does not match its declared size or hash", problems
                    )
                envelope = seal_envelope(
                    master=self._store.keyring.active,
                    data_key=self._data_key,
                    content_id=self.content_id,
                    size=self._received,
                    sha1=sha1,
                    chunk_size=self._chunk_size,
                    nonce_prefix=self._nonce_prefix,
                    created=self._created,
                )
                if self._single:  # one file, one fsync (in ``seal``), one rename at commit
                    assert isinstance(self._upload, RewritableUpload)
                    self._upload.write_at(0, pack_header(envelope))
                elif synced is not None:
                    envelope_upload = self._stage_envelope(envelope)
            finally:
                stored = synced() if synced is not None else None
            if stored is None:
                stored = self._upload.seal()
            layout = ChunkLayout(self._received, self._chunk_size)
            expected = layout.stored_size + (HEADER_BYTES if self._single else 0)
            if stored != expected:  # pragma: no cover - a bug, not an input problem
                raise RuntimeError(f"stored {stored} bytes, layout says {expected}")
        except BaseException:
            self.abort()
            raise
        self._state = "staged"
        self._staged = StagedBlob.staged(
            envelope, self._upload.upload_id, envelope_upload, single=self._single)
        return self._staged

    def _seal(self, last: bool, plain: bytes | bytearray | memoryview) -> memoryview:
        """Chunk ``self._index`` sealed into the stager's output buffer (taken from the
        store's few, so its pages are not new); valid until the next seal."""
        if self._out is None:
            self._out = self._store.take_seal_buffer()
        sealed = self._cipher.seal_into(self._index, last, plain, self._out)
        self._index += 1
        return sealed

    def _release_out(self) -> None:
        out, self._out = self._out, None
        if out is not None:
            self._store.give_seal_buffer(out)

    def _begin_content_sync(self) -> Callable[[], int] | None:
        """Where staging is cheap (a local file), start the content's fsync now and
        return what waits for it; None elsewhere (the upload is sealed as usual)."""
        upload = self._upload
        if not self._store.blobs.cheap_staging or not isinstance(upload, ParallelSeal):
            return None
        return upload.begin_sync()

    def _stage_envelope(self, envelope: Envelope) -> str:
        """Stage the envelope beside the content (fsynced while the content's fsync is in
        flight), so ``commit`` only renames both. Returns its upload id."""
        staged_envelope = self._store.blobs.start_upload(envelope_key(self.content_id))
        self._envelope_upload = staged_envelope
        staged_envelope.write(envelope.to_bytes())
        staged_envelope.seal()
        return staged_envelope.upload_id

    def abort(self) -> None:
        """Discard everything staged so far. Safe to call more than once."""
        if self._state == "open":
            self._state = "aborted"
            self._buffer = bytearray()
            self._held = None
            self._release_out()
            self._digests.close()
            self._upload.abort()
            if self._envelope_upload is not None:
                self._envelope_upload.abort()
        elif self._state == "staged" and self._staged is not None:
            self._state = "aborted"
            self._store.abort(self._staged)

    def __del__(self) -> None:
        # Abandoned without finish or abort (as in a crash): stop the hash threads;
        # the staged upload itself is left for the sweep, as a crash would leave it.
        digests = getattr(self, "_digests", None)
        if digests is not None:
            digests.close()

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"stager is {self._state}")

    def __enter__(self) -> Stager:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None and self._state == "open":
            self.abort()
