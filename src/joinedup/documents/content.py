"""The encrypted content store: stage, commit, read (whole or ranged), rotate, sweep.

Layout in the blob store, for content id ``<id>`` (32 hex digits). On the local
store (ADR 0502, second amendment), one file::

    content/<id[:2]>/<id>.doc      a 4 KiB header holding the envelope, then the chunks

On S3, and for local documents written before that, a pair::

    content/<id[:2]>/<id>          the chunked ciphertext (see chunks.py)
    envelopes/<id[:2]>/<id>.json   size, hashes, layout, wrapped data key (envelope.py)

Both are read; new local documents are written as one file. A document is
visible exactly when its envelope exists (the ``.doc`` file, whose header is
the envelope, or the envelope object). Publishing is two phases so the MHD
registry can keep its metadata and the content in step:

1. ``stage`` streams the bytes in: hashes them, encrypts each chunk, uploads
   it to a staged (invisible) upload and refuses, aborting the upload, as soon
   as the size limit or the declared size is passed, or at the end if the
   declared SHA-1 differs. ``StagedBlob.token`` is everything needed to
   commit or abort it later, from any process (the registry keeps it with
   its pending row). A crash before commit may lose staged content (then
   ``commit`` raises ``StagingGone``: the publish had not been acknowledged).
2. ``commit`` completes the upload (rename / CompleteMultipartUpload), checks
   its length, then writes the envelope (a ``.doc`` file already holds it):
   now visible, and durable when ``commit`` returns. It is idempotent.
   ``abort`` throws staged content away.

A crash at any point leaves no visible document; ``sweep`` removes what a
crash or an abandoned publish left (staged uploads, and content without an
envelope, older than the grace period). Staged content must therefore be
committed within the grace period (a day by default).

Reads check everything: the envelope's wrap (which binds size and hashes),
the stored length, every chunk's GCM tag, and, for whole-document reads, the
SHA-1. A chunk is released only after its tag is checked, and the last chunk
of a whole read only after the SHA-1 matched: a consumer never receives all of
a document that fails its hash; it gets an exception instead (on HTTP, an
aborted response). The first chunk is decrypted when the reader is opened, so
most failures (all, for a one-chunk document) come before any byte is sent.
See ADR 0501.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from joinedup.documents.blobs import (
    BinarySource,
    BlobNotFound,
    BlobStore,
    RewritableStaging,
    UploadNotFound,
    iter_source,
    read_exact,
)
from joinedup.documents.chunks import (
    DEFAULT_CHUNK_SIZE,
    TAG_BYTES,
    ChunkCipher,
    ChunkLayout,
)
from joinedup.documents.envelope import (
    HEADER_BYTES,
    Envelope,
    pack_header,
    parse_header,
    rewrap,
    unwrap_data_key,
)
from joinedup.documents.errors import (
    ContentIntegrityError,
    ContentMismatch,
    ContentNotFound,
    ContentTooLarge,
    MasterKeyError,
    RangeNotSatisfiable,
    StagingGone,
)
from joinedup.documents.info import (
    CONTENT_ID,
    ContentInfo,
    RewrapReport,
    StagedBlob,
    SweepReport,
)
from joinedup.documents.keyring import Keyring
from joinedup.documents.keys import (
    CONTENT_PREFIX,
    DOCUMENT_SUFFIX,
    ENVELOPE_PREFIX,
    FAN_OUT,
    content_key,
    document_key,
    envelope_key,
)
from joinedup.documents.reader import ContentReader
from joinedup.documents.stager import Stager
from joinedup.errors import Problem

_ID = CONTENT_ID
_SMALL = 1024 * 1024
_KEPT_SEAL_BUFFERS = 4
_COPY_BLOCK = 1024 * 1024


def _id_of_key(key: str) -> str | None:
    name = key.rpartition("/")[2].removesuffix(".json").removesuffix(DOCUMENT_SUFFIX)
    return name if _ID.fullmatch(name) else None


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _read_small(blobs: BlobStore, key: str) -> bytes:
    with blobs.get(key) as reader:
        return read_exact(reader, _SMALL)


@dataclass
class ContentStore:
    """Encrypted, verified document content over any ``BlobStore``."""

    blobs: BlobStore
    keyring: Keyring
    max_bytes: int = 1024**3
    chunk_size: int = DEFAULT_CHUNK_SIZE
    staging_grace: timedelta = timedelta(days=1)
    clock: Callable[[], datetime] = field(default=_utcnow)
    single_file: bool | None = None
    """Write new documents as one ``.doc`` file (envelope header + chunks). None: where the
    store allows it (local). False writes the older pair, which is still read."""
    _seal_buffers: list[bytearray] = field(default_factory=list, init=False, repr=False)
    """Output buffers for sealing chunks, reused across publishes (see ``take_seal_buffer``)."""
    _single: bool = field(default=False, init=False, repr=False)
    _documents: bool = field(default=False, init=False, repr=False)
    """Whether single-file documents can be here (read them), whatever is written."""

    def __post_init__(self) -> None:
        ChunkLayout(0, self.chunk_size)  # validates the chunk size
        self._documents = isinstance(self.blobs, RewritableStaging) and self.blobs.cheap_staging
        self._single = self._documents if self.single_file is None else self.single_file
        if self._single and not self._documents:
            raise ValueError(f"the {self.blobs.name} store cannot hold single-file documents")
        ensure = getattr(self.blobs, "ensure_folders", None)
        if ensure is not None:  # a local store: make the 2 x 256 fan-out folders once
            ensure([f"{prefix}{fan}" for prefix in (CONTENT_PREFIX, ENVELOPE_PREFIX)
                    for fan in FAN_OUT])

    # --- writing -------------------------------------------------------------

    def take_seal_buffer(self) -> bytearray:
        """A buffer to seal one chunk into. Reused ones are already paged in: a fresh
        MiB costs the kernel about as long to hand over as AES-GCM takes to fill it."""
        try:
            return self._seal_buffers.pop()  # atomic: stagers on several threads share it
        except IndexError:
            return bytearray(self.chunk_size + TAG_BYTES)

    def give_seal_buffer(self, buffer: bytearray) -> None:
        if len(self._seal_buffers) < _KEPT_SEAL_BUFFERS:
            self._seal_buffers.append(buffer)

    def begin(
        self,
        *,
        expected_size: int | None = None,
        expected_sha1: bytes | None = None,
        max_bytes: int | None = None,
    ) -> Stager:
        """Start staging new content; declared size and SHA-1 (raw 20 bytes) are checked."""
        limit = self.max_bytes if max_bytes is None else min(max_bytes, self.max_bytes)
        problems = []
        if expected_sha1 is not None and len(expected_sha1) != 20:
            problems.append(Problem("a SHA-1 is 20 bytes", "hash"))
        if expected_size is not None and expected_size < 0:
            problems.append(Problem("must not be negative", "size"))
        if problems:
            raise ContentMismatch("declared size or hash is malformed", problems)
        if expected_size is not None and expected_size > limit:
            raise ContentTooLarge(
                f"declared size {expected_size} is over the limit of {limit} bytes",
                [Problem(f"over {limit} bytes", "size")],
            )
        content_id = os.urandom(16).hex()
        single = self._single
        upload = self.blobs.start_upload(
            document_key(content_id) if single else content_key(content_id))
        try:
            return Stager(
                self,
                content_id,
                upload,
                limit=limit,
                expected_size=expected_size,
                expected_sha1=expected_sha1,
                created=self.clock(),
                single=single,
            )
        except BaseException:
            upload.abort()
            raise

    def stage(
        self,
        source: BinarySource,
        *,
        expected_size: int | None = None,
        expected_sha1: bytes | None = None,
        max_bytes: int | None = None,
    ) -> StagedBlob:
        """Stream ``source`` into a staged, invisible upload; see ``begin``."""
        with self.begin(
            expected_size=expected_size, expected_sha1=expected_sha1, max_bytes=max_bytes
        ) as stager:
            for block in iter_source(source, self.chunk_size):
                stager.write(block)
            return stager.finish()

    def commit(self, staged: StagedBlob | str) -> ContentInfo:
        """Make staged content visible (from the ``StagedBlob`` or its ``token``).

        Idempotent: committing again returns the same info. ``StagingGone`` if
        the staging was aborted or swept.
        """
        staged = staged if isinstance(staged, StagedBlob) else StagedBlob.from_token(staged)
        assert staged.envelope is not None
        if staged.single:
            return self._commit_document(staged)
        content_id = staged.content_id
        env = staged.envelope
        rewrapped = env.kid != self.keyring.active_kid
        env = rewrap(env, self.keyring) if rewrapped else env
        unwrap_data_key(env, self.keyring)  # commit nothing the keyring cannot read back
        key, env_key = content_key(content_id), envelope_key(content_id)
        staged_envelope = staged.envelope_upload_id if not rewrapped else ""
        if staged_envelope:
            # The envelope was staged (and fsynced) beside the content: rename both, one
            # wait for both folders. A crash before that wait may leave the envelope in
            # place without the content (renames are not ordered until fsynced); the
            # registry has not acknowledged the publish then, and its recovery, a retried
            # commit, or the sweep completes the content (see ``sweep``).
            try:
                stat, _ = self.blobs.complete_uploads(
                    [(key, staged.upload_id), (env_key, staged_envelope)])
            except UploadNotFound:
                pass  # part done by a crashed or earlier commit: finish one at a time
            else:
                return self._committed(content_id, env, stat.size)
        try:
            stat = self.blobs.complete_upload(key, staged.upload_id)
        except UploadNotFound:
            if self.blobs.exists(env_key) and self.blobs.exists(key):
                return self.info(content_id)  # committed before
            try:  # completed by an earlier commit that stopped before the envelope
                stat = self.blobs.stat(key)
            except BlobNotFound:
                raise StagingGone(
                    f"staged content {content_id} is gone (aborted or swept)"
                ) from None
        if stat.size != env.layout.stored_size:
            self.blobs.delete(key)
            raise ContentIntegrityError(
                content_id, "length", f"stored {stat.size} bytes, expected {env.layout.stored_size}"
            )
        placed = False
        if staged_envelope:
            try:
                self.blobs.complete_upload(env_key, staged_envelope)
                placed = True
            except UploadNotFound:
                placed = self.blobs.exists(env_key)
        elif staged.envelope_upload_id:  # re-wrapped since staging: the staged one is stale
            self.blobs.abort_upload(env_key, staged.envelope_upload_id)
        if not placed:
            self.blobs.put(env_key, env.to_bytes())
        return self._committed(content_id, env, stat.size)

    def _commit_document(self, staged: StagedBlob) -> ContentInfo:
        """Commit a single-file document: one rename and one folder fsync. Its header,
        written and fsynced while staging, is its envelope."""
        assert staged.envelope is not None
        content_id, env = staged.content_id, staged.envelope
        key = document_key(content_id)
        if not self._documents:
            raise StagingGone(f"this {self.blobs.name} store holds no single-file documents")
        if env.kid != self.keyring.active_kid:  # rotated since staging: re-wrap the header
            env = rewrap(env, self.keyring)
            assert isinstance(self.blobs, RewritableStaging)
            with contextlib.suppress(UploadNotFound):  # gone: committed before, or swept
                self.blobs.rewrite_staged(key, staged.upload_id, 0, pack_header(env))
        unwrap_data_key(env, self.keyring)  # commit nothing the keyring cannot read back
        try:
            stat = self.blobs.complete_upload(key, staged.upload_id)
        except UploadNotFound:
            if self.blobs.exists(key):
                return self.info(content_id)  # committed before
            raise StagingGone(
                f"staged content {content_id} is gone (aborted or swept)") from None
        expected = HEADER_BYTES + env.layout.stored_size
        if stat.size != expected:  # pragma: no cover - a bug, not an input problem
            self.blobs.delete(key)
            raise ContentIntegrityError(
                content_id, "length", f"stored {stat.size} bytes, expected {expected}")
        return ContentInfo.of(env)

    def _committed(self, content_id: str, env: Envelope, stored: int) -> ContentInfo:
        key, env_key = content_key(content_id), envelope_key(content_id)
        if stored != env.layout.stored_size:  # pragma: no cover - a bug, not an input problem
            self.blobs.delete(env_key)
            self.blobs.delete(key)
            raise ContentIntegrityError(
                content_id, "length", f"stored {stored} bytes, expected {env.layout.stored_size}")
        if not self.blobs.exists(key):  # swept meanwhile: never leave an envelope alone
            self.blobs.delete(env_key)
            raise StagingGone(f"staged content {content_id} was swept during commit")
        return ContentInfo.of(env)

    def abort(self, staged: StagedBlob | str) -> None:
        """Throw staged content away. Idempotent; refuses committed content (use ``delete``)."""
        staged = staged if isinstance(staged, StagedBlob) else StagedBlob.from_token(staged)
        content_id = staged.content_id
        if staged.single:
            if self._documents and self.blobs.exists(document_key(content_id)):
                raise StagingGone(f"content {content_id} is already committed; delete it instead")
            self.blobs.abort_upload(document_key(content_id), staged.upload_id)
            return
        if self.blobs.exists(envelope_key(content_id)) and self.blobs.exists(
                content_key(content_id)):
            raise StagingGone(f"content {content_id} is already committed; delete it instead")
        self.blobs.abort_upload(content_key(content_id), staged.upload_id)
        if staged.envelope_upload_id:
            self.blobs.abort_upload(envelope_key(content_id), staged.envelope_upload_id)
        self.blobs.delete(envelope_key(content_id))
        self.blobs.delete(content_key(content_id))

    def put(
        self,
        source: BinarySource,
        *,
        expected_size: int | None = None,
        expected_sha1: bytes | None = None,
    ) -> ContentInfo:
        """Stage and commit in one go (when no registry transaction sits between)."""
        staged = self.stage(source, expected_size=expected_size, expected_sha1=expected_sha1)
        return self.commit(staged)

    # --- reading -------------------------------------------------------------

    def exists(self, content_id: str) -> bool:
        if not _ID.fullmatch(content_id):
            return False
        return (self._documents and self.blobs.exists(document_key(content_id))) or (
            self.blobs.exists(envelope_key(content_id)))

    def info(self, content_id: str) -> ContentInfo:
        """Size, hashes and key of committed content (its envelope checked by unwrapping)."""
        env, _, _ = self._locate(content_id)
        unwrap_data_key(env, self.keyring)
        return ContentInfo.of(env)

    def open(self, content_id: str, start: int = 0, stop: int | None = None) -> ContentReader:
        """A verified stream of plaintext bytes ``[start, stop)`` (``stop`` clipped to the size).

        Raises ``ContentNotFound``, ``RangeNotSatisfiable`` (``start`` past the
        end or ``stop < start``), ``MasterKeyError`` or ``ContentIntegrityError``.
        """
        env, key, base = self._locate(content_id, prefetch=getattr(self.blobs, "prefetch", None))
        data_key = unwrap_data_key(env, self.keyring)
        layout = env.layout
        stop = env.size if stop is None else min(stop, env.size)
        if start < 0 or start > env.size or stop < start:
            raise RangeNotSatisfiable(
                f"range {start}-{stop} is not within the content's {env.size} bytes",
                [Problem(f"bytes {start} to {stop}", "range")],
            )
        try:
            stored = self.blobs.stat(key).size - base
        except BlobNotFound:
            raise ContentIntegrityError(content_id, "length", "content is missing") from None
        if stored != layout.stored_size:
            raise ContentIntegrityError(
                content_id, "length", f"stored {stored} bytes, expected {layout.stored_size}"
            )
        chunks = layout.chunks_for(start, stop)
        low, high = layout.stored_span(chunks)
        stream = self.blobs.get(key, base + low, base + high) if chunks else None
        cipher = ChunkCipher(data_key, env.nonce_prefix, content_id, env.chunk_size)
        reader = ContentReader(env, cipher, stream, chunks, start, stop)
        reader.prime()
        return reader

    # --- housekeeping ---------------------------------------------------------

    def delete(self, content_id: str) -> bool:
        """Remove committed content: the envelope first, so a crash leaves only an orphan."""
        if not _ID.fullmatch(content_id):
            return False
        existed = self.exists(content_id)
        self.blobs.delete(envelope_key(content_id))
        self.blobs.delete(content_key(content_id))
        if self._documents:
            self.blobs.delete(document_key(content_id))  # one file: gone at once
        return existed

    def key_usage(self) -> dict[str, int]:
        """How many committed documents each master key wraps (to know when one can go)."""
        usage: dict[str, int] = {}
        for content_id in self._committed_ids():
            kid = self._locate(content_id)[0].kid
            usage[kid] = usage.get(kid, 0) + 1
        return usage

    def rewrap_all(self) -> RewrapReport:
        """Re-wrap every data key not under the active master key. Content is untouched."""
        rewrapped = current = 0
        failures: list[Problem] = []
        for content_id in self._committed_ids():
            try:
                env, _, base = self._locate(content_id)
                if env.kid == self.keyring.active_kid:
                    current += 1
                    continue
                if base:  # a single-file document: its header is rewritten
                    if self._rewrite_document(content_id, rewrap(env, self.keyring)):
                        rewrapped += 1
                    continue
                if self._replace_envelope(content_id, rewrap(env, self.keyring)):
                    rewrapped += 1
            except (MasterKeyError, ContentIntegrityError, ContentNotFound) as exc:
                failures.append(Problem(str(exc).splitlines()[0], content_id))
        return RewrapReport(rewrapped, current, tuple(failures))

    def sweep(self, *, now: datetime | None = None) -> SweepReport:
        """Remove staged uploads and envelope-less content older than the grace period.

        Staged content must be committed within the grace period (a day by default).
        """
        cutoff = (now or self.clock()) - self.staging_grace
        uploads_aborted = orphans_removed = 0
        for upload in list(self.blobs.iter_uploads("")):  # content, and envelopes' temporaries
            if upload.started >= cutoff:
                continue
            content_id = _id_of_key(upload.key)
            if (upload.key.startswith(CONTENT_PREFIX) and content_id is not None
                    and self.blobs.exists(envelope_key(content_id))
                    and not self.blobs.exists(upload.key)):
                # a crash between the renames of a commit left the envelope without its
                # content: finish the commit rather than leave a document unreadable
                with contextlib.suppress(UploadNotFound):
                    self.blobs.complete_upload(upload.key, upload.upload_id)
                    continue
            self.blobs.abort_upload(upload.key, upload.upload_id)
            uploads_aborted += 1
        committed = set(self._committed_ids())
        for stat in list(self.blobs.iter_blobs(CONTENT_PREFIX)):
            content_id = _id_of_key(stat.key)
            if stat.key.endswith(DOCUMENT_SUFFIX):
                continue  # one file holding its own envelope: never an orphan
            if content_id is None or content_id in committed or stat.modified >= cutoff:
                continue
            if self.blobs.exists(envelope_key(content_id)):  # committed since the listing
                continue
            self.blobs.delete(stat.key)
            orphans_removed += 1
        return SweepReport(uploads_aborted, orphans_removed)

    # --- internals --------------------------------------------------------------

    def _committed_ids(self) -> Iterator[str]:
        for stat in self.blobs.iter_blobs(ENVELOPE_PREFIX):
            content_id = _id_of_key(stat.key)
            if content_id is not None:
                yield content_id
        if self._documents:
            for stat in self.blobs.iter_blobs(CONTENT_PREFIX):
                content_id = _id_of_key(stat.key)
                if content_id is not None and stat.key.endswith(DOCUMENT_SUFFIX):
                    yield content_id

    def _locate(
        self, content_id: str, prefetch: Callable[[str], None] | None = None
    ) -> tuple[Envelope, str, int]:
        """A document's envelope, the key of its chunks and where in it they start: a
        single-file document's header, else the separate envelope (the pair layout)."""
        self._check_id(content_id, ContentNotFound)
        if self._documents:
            key = document_key(content_id)
            if prefetch is not None:
                prefetch(key)  # the disk reads the chunks ahead while the header is checked
            try:
                with self.blobs.get(key, 0, HEADER_BYTES) as reader:
                    raw = read_exact(reader, HEADER_BYTES)
            except BlobNotFound:
                pass  # not one file: a document written as a pair, or none
            else:
                return parse_header(raw, content_id), key, HEADER_BYTES
        if prefetch is not None:
            prefetch(content_key(content_id))  # the disk reads it while the envelope is read
        return self._envelope(content_id), content_key(content_id), 0

    def _rewrite_document(self, content_id: str, env: Envelope) -> bool:
        """A single-file document copied under a new header (a re-wrapped key), renamed
        over the old one: atomic. The chunks are copied unchanged. False if it was deleted
        meanwhile."""
        key = document_key(content_id)
        upload = self.blobs.start_upload(key)
        try:
            upload.write(pack_header(env))
            try:
                with self.blobs.get(key, HEADER_BYTES) as reader:
                    while block := reader.read(_COPY_BLOCK):
                        upload.write(block)
            except BlobNotFound:
                upload.abort()
                return False
            stored = upload.seal()
            if stored != HEADER_BYTES + env.layout.stored_size:
                raise ContentIntegrityError(
                    content_id, "length", f"stored {stored - HEADER_BYTES} bytes, expected "
                    f"{env.layout.stored_size}")
            assert isinstance(self.blobs, RewritableStaging)
            # Renamed over the document only if it still exists, checked under its lock
            # (``delete`` takes it too): a delete during the copy, or at the same moment
            # as the rename, is never undone.
            return self.blobs.replace_existing(key, upload.upload_id)
        except BaseException:
            upload.abort()
            raise

    def _replace_envelope(self, content_id: str, env: Envelope) -> bool:
        """Store a re-wrapped envelope of a pair; False if the document was deleted
        meanwhile. On the local store the new envelope replaces the old only if it still
        exists, under its lock (``delete`` removes the envelope first, under the same
        lock), so a deleted document is never brought back. On S3 the envelope is put
        only if it is still there (a conditional PutObject, ``If-Match`` its ETag; ADR
        0502, third amendment), and dropped again if the content is gone (for a server
        that ignores the condition)."""
        env_key = envelope_key(content_id)
        if isinstance(self.blobs, RewritableStaging):
            upload = self.blobs.start_upload(env_key)
            try:
                upload.write(env.to_bytes())
                upload.seal()
                return self.blobs.replace_existing(env_key, upload.upload_id)
            except BaseException:
                upload.abort()
                raise
        put_if_present = getattr(self.blobs, "put_if_present", None)
        if put_if_present is not None:
            if not put_if_present(env_key, env.to_bytes()):
                return False  # deleted meanwhile
        else:
            self.blobs.put(env_key, env.to_bytes())
        if not self.blobs.exists(content_key(content_id)):  # deleted meanwhile
            self.blobs.delete(env_key)
            return False
        return True

    def _check_id(self, content_id: str, error: type[ContentNotFound] | type[StagingGone]) -> str:
        if not _ID.fullmatch(content_id):
            raise error(f"no content {content_id!r}")
        return content_id

    def _envelope(self, content_id: str) -> Envelope:
        self._check_id(content_id, ContentNotFound)
        try:
            raw = _read_small(self.blobs, envelope_key(content_id))
        except BlobNotFound:
            raise ContentNotFound(f"no content {content_id}") from None
        return Envelope.from_bytes(raw, content_id)


__all__ = [
    "ContentInfo",
    "ContentReader",
    "ContentStore",
    "RewrapReport",
    "StagedBlob",
    "Stager",
    "SweepReport",
]
