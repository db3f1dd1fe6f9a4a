"""The ``BlobStore`` interface: named byte objects, written atomically, read as streams.

Two implementations, chosen by configuration in ``stores.py``: a local folder
(``local.py``) and S3-compatible object storage (``s3.py``). The content
store above knows only this interface, so both run the same behaviour tests.

Writes are staged: ``start_upload`` returns a ``BlobUpload`` to stream into
and ``seal``; nothing is visible under the key until ``complete_upload`` (a
rename, or CompleteMultipartUpload), which can be called later, even by
another process, with the upload id, and is durable when it returns. (A
sealed upload is durable on S3; on the local store a crash may lose it, and
completing it then raises ``UploadNotFound``.) ``abort_upload``
throws the staged bytes away; ``iter_uploads`` lists the staged ones so a
sweep can remove those left by a crash.

Keys are ``/``-separated names of letters, digits, ``.``, ``_`` and ``-``;
no part starts with ``.`` (reserved for the local store's own files).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Protocol, runtime_checkable

_KEY = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)*")
MAX_KEY_LENGTH = 160


class BlobNotFound(LookupError):
    """No blob (or staged upload) under that key."""


class UploadNotFound(BlobNotFound):
    """No staged upload with that id: completed, aborted or never started."""


def check_key(key: str) -> str:
    if len(key) > MAX_KEY_LENGTH or not _KEY.fullmatch(key):
        raise ValueError(f"not a valid blob key: {key!r}")
    return key


@dataclass(frozen=True, slots=True)
class BlobStat:
    key: str
    size: int
    modified: datetime


@dataclass(frozen=True, slots=True)
class PendingUpload:
    key: str
    upload_id: str
    started: datetime


@runtime_checkable
class SupportsRead(Protocol):
    def read(self, size: int = -1, /) -> bytes: ...


BinarySource = bytes | SupportsRead | Iterable[bytes]
"""What can be streamed in: bytes, a binary file-like object, or an iterable of blocks."""


def iter_source(source: BinarySource, block_size: int) -> Iterator[bytes]:
    """Blocks of a source without reading it all: files are read ``block_size`` at a time."""
    if isinstance(source, bytes | bytearray | memoryview):
        view = memoryview(source)
        for offset in range(0, len(view), block_size):
            yield bytes(view[offset : offset + block_size])
        return
    if isinstance(source, SupportsRead):
        while block := source.read(block_size):
            yield block
        return
    for block in source:
        if block:
            yield bytes(block) if not isinstance(block, bytes) else block


class BlobReader(Protocol):
    """A stream of a blob's bytes (or of a range of them); close it when done."""

    def read(self, size: int, /) -> bytes:
        """Up to ``size`` bytes; ``b""`` only at the end."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> BlobReader: ...

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def read_exact(reader: BlobReader, size: int) -> bytes:
    """Exactly ``size`` bytes, or fewer only if the blob ends first."""
    first = reader.read(size)
    if len(first) == size or not first:
        return first
    parts = [first]
    got = len(first)
    while got < size:
        more = reader.read(size - got)
        if not more:
            break
        parts.append(more)
        got += len(more)
    return b"".join(parts)


class BlobUpload(Protocol):
    """A staged write. Invisible until the store's ``complete_upload``."""

    @property
    def key(self) -> str: ...

    @property
    def upload_id(self) -> str: ...

    def write(self, data: bytes | memoryview, /) -> None:
        """Append ``data``; it is copied (the caller may reuse its buffer at once)."""
        ...

    def seal(self) -> int:
        """Flush everything written (to disk, or as the last part); returns the byte count."""
        ...

    def abort(self) -> None:
        """Discard the staged bytes. Safe to call more than once."""
        ...


@runtime_checkable
class ParallelSeal(Protocol):
    """An upload whose flush and fsync can be split, so several are fsynced at once."""

    @property
    def upload_id(self) -> str: ...

    def seal_start(self) -> int:
        """Flush to the kernel; the file descriptor to fsync."""
        ...

    def seal_finish(self, synced: bool = False) -> int:
        """fsync unless ``synced``, close; the byte count."""
        ...

    def begin_sync(self) -> Callable[[], int]:
        """Flush and start the fsync in the background; the result waits, closes and
        returns the byte count."""
        ...


@runtime_checkable
class RewritableUpload(Protocol):
    """A staged upload that can be written at an offset before it is sealed (a local file):
    a single-file document reserves its header and fills it in last."""

    def write_at(self, offset: int, data: bytes, /) -> None:
        """Overwrite bytes already written, at ``offset``."""
        ...

    def start_writeback(self, start: int = 0, /) -> None:
        """Ask the kernel to start writing what was written from ``start`` on, without
        waiting, so the disk works while the caller hashes; ``seal`` waits for the rest."""
        ...


@runtime_checkable
class RewritableStaging(Protocol):
    """A store whose sealed, uncompleted uploads can be overwritten in place (local)."""

    def rewrite_staged(self, key: str, upload_id: str, offset: int, data: bytes) -> None:
        """Overwrite bytes of a sealed upload durably; ``UploadNotFound`` if it is gone."""
        ...

    def replace_existing(self, key: str, upload_id: str) -> bool:
        """Complete a sealed upload over ``key`` only if a blob is still there, atomically
        with respect to ``delete`` (a rotation never brings a deleted blob back); False
        if it is gone (the upload is discarded)."""
        ...


class BlobStore(Protocol):
    """Named blobs with atomic, staged writes and ranged, streamed reads."""

    @property
    def name(self) -> str:
        """``local`` or ``s3``: for logs and reports."""
        ...

    def put(self, key: str, source: BinarySource) -> BlobStat:
        """Write a whole blob atomically (replacing any blob under the key)."""
        ...

    def get(self, key: str, start: int = 0, stop: int | None = None) -> BlobReader:
        """Stream bytes ``[start, stop)`` (to the end if ``stop`` is None).

        Raises ``BlobNotFound``. A range past the end yields what exists.
        """
        ...

    def delete(self, key: str) -> None:
        """Remove the blob; no error if there is none."""
        ...

    def exists(self, key: str) -> bool: ...

    def stat(self, key: str) -> BlobStat:
        """Size and last-modified time; raises ``BlobNotFound``."""
        ...

    def iter_blobs(self, prefix: str) -> Iterator[BlobStat]:
        """Every committed blob whose key starts with ``prefix``."""
        ...

    def start_upload(self, key: str) -> BlobUpload: ...

    def complete_upload(self, key: str, upload_id: str) -> BlobStat:
        """Make a sealed upload visible under ``key``; raises ``UploadNotFound``."""
        ...

    def complete_uploads(self, uploads: Sequence[tuple[str, str]]) -> list[BlobStat]:
        """Complete several sealed uploads, durable together when it returns, in no
        particular order before that. ``UploadNotFound`` (and nothing completed) if any
        is missing."""
        ...

    @property
    def cheap_staging(self) -> bool:
        """Whether staging a small blob costs no more than writing it whole (a local
        file: yes; S3, where a multipart upload is three requests: no)."""
        ...

    def abort_upload(self, key: str, upload_id: str) -> None:
        """Discard a staged upload by id; no error if it is already gone."""
        ...

    def iter_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        """Staged uploads (sealed or not) whose key starts with ``prefix``."""
        ...
