"""Reading: verified plaintext, whole or a byte range, one authenticated chunk at a time."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from types import TracebackType

from cryptography.exceptions import InvalidTag

from joinedup.documents.blobs import BlobReader, read_exact
from joinedup.documents.chunks import TAG_BYTES, ChunkCipher
from joinedup.documents.digests import INLINE_HASH_BYTES, ParallelDigests
from joinedup.documents.envelope import Envelope
from joinedup.documents.errors import ContentIntegrityError
from joinedup.documents.info import ContentInfo


class ContentReader:
    """Verified plaintext of a document, or of the byte range ``[start, stop)``, as chunks.

    Iterate once; every chunk yielded has passed its GCM tag check, and on a
    whole-document read the last is released only after the SHA-1 matched.
    Close it (or exhaust it) to release the underlying stream.
    """

    def __init__(
        self,
        envelope: Envelope,
        cipher: ChunkCipher,
        stream: BlobReader | None,
        chunks: range,
        start: int,
        stop: int,
    ) -> None:
        self.info = ContentInfo.of(envelope)
        self.start = start
        self.stop = stop
        self._layout = envelope.layout
        self._cipher = cipher
        self._stream = stream
        self._indices = iter(chunks)
        self._final = chunks[-1] if chunks else -1
        whole = start == 0 and stop == envelope.size
        sha1 = hashlib.sha1
        self._sha1 = ParallelDigests(sha1(), inline_bytes=INLINE_HASH_BYTES) if whole else None
        self._pending: bytes | None = None

    @property
    def size(self) -> int:
        """Size of the whole document."""
        return self.info.size

    @property
    def length(self) -> int:
        """Bytes this reader yields."""
        return self.stop - self.start

    @property
    def whole(self) -> bool:
        return self._sha1 is not None

    def _fail(self, check: str, detail: str) -> ContentIntegrityError:
        self.close()
        return ContentIntegrityError(self.info.content_id, check, detail)

    def _decrypt(self, index: int) -> bytes:
        want = self._layout.plain_length(index) + TAG_BYTES
        assert self._stream is not None
        stored = read_exact(self._stream, want)
        if len(stored) != want:
            raise self._fail("length", f"chunk {index} is cut short")
        try:
            plain = self._cipher.open(index, self._layout.is_last(index), stored)
        except InvalidTag:
            raise self._fail(
                "chunk-tag",
                f"chunk {index} failed authentication (altered, moved, truncated "
                "or from another document)",
            ) from None
        if self._sha1 is not None:
            self._sha1.update(plain)
        base = self._layout.plain_offset(index)
        low = max(self.start - base, 0)
        high = min(self.stop - base, len(plain))
        return plain if low == 0 and high == len(plain) else plain[low:high]

    def _advance(self) -> bytes | None:
        index = next(self._indices, None)
        if index is None:
            return None
        plain = self._decrypt(index)
        # Checked before the last chunk is handed over: a consumer never gets
        # a whole document that does not match its recorded hash.
        final = index == self._final
        if final and self._sha1 is not None and self._sha1.digests()[0] != self.info.sha1:
            raise self._fail("sha1", "content does not match its recorded SHA-1")
        return plain

    def prime(self) -> None:
        """Decrypt the first chunk now, so most failures come before any byte is sent
        (all of them, for a one-chunk document)."""
        try:
            self._pending = self._advance()
        except BaseException:
            self.close()
            raise

    def __iter__(self) -> Iterator[bytes]:
        try:
            chunk = self._pending
            self._pending = None
            while chunk is not None:
                if chunk:
                    yield chunk
                chunk = self._advance()
        finally:
            self.close()

    def __del__(self) -> None:
        self.close()

    def read_all(self) -> bytes:
        """Everything at once: only for content known to be small."""
        return b"".join(self)

    def close(self) -> None:
        self._pending = None
        digests = getattr(self, "_sha1", None)
        if digests is not None:
            digests.close()
        stream = getattr(self, "_stream", None)
        if stream is not None:
            stream.close()
            self._stream = None

    def __enter__(self) -> ContentReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
