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

PIECE = 256 * 1024
"""Bytes of a chunk decrypted and hashed at a time while the rest is still being read."""


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
        self._sha1 = (
            ParallelDigests(sha1(), inline_bytes=INLINE_HASH_BYTES, defer=False) if whole else None
        )
        self._pending: list[bytes] | None = None

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

    def _decrypt(self, index: int) -> list[bytes]:
        """Chunk ``index``'s plaintext (clipped to the range), as pieces, once its tag passed.

        The chunk is read, decrypted and hashed a piece at a time, so the CPU works on
        the start of a chunk while the disk (asked to read ahead) fetches the rest;
        the pieces are released only after the whole chunk's tag is checked."""
        assert self._stream is not None
        plain_length = self._layout.plain_length(index)
        opener = self._cipher.opener(index, self._layout.is_last(index))
        pieces: list[bytes] = []
        done = 0
        while done < plain_length:
            want = min(PIECE, plain_length - done)
            stored = read_exact(self._stream, want)
            if len(stored) != want:
                raise self._fail("length", f"chunk {index} is cut short")
            piece = opener.update(stored)
            if self._sha1 is not None:
                self._sha1.update(piece)
            pieces.append(piece)
            done += want
        tag = read_exact(self._stream, TAG_BYTES)
        if len(tag) != TAG_BYTES:
            raise self._fail("length", f"chunk {index} is cut short")
        try:
            opener.finalize_with_tag(tag)
        except InvalidTag:
            raise self._fail(
                "chunk-tag",
                f"chunk {index} failed authentication (altered, moved, truncated "
                "or from another document)",
            ) from None
        base = self._layout.plain_offset(index)
        low = max(self.start - base, 0)
        high = min(self.stop - base, plain_length)
        if low == 0 and high == plain_length:
            return pieces
        return [b"".join(pieces)[low:high]]  # the first or last chunk of a range only

    def _advance(self) -> list[bytes] | None:
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
            pieces = self._pending
            self._pending = None
            while pieces is not None:
                for piece in pieces:
                    if piece:
                        yield piece
                pieces = self._advance()
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
