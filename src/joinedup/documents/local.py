"""The local-folder blob store: the embedded default (``<data_dir>/documents``).

A blob is a file at ``<root>/<key>``. Uploads are written to
``<root>/.uploads/<id>~<key, base64url>.part`` (same filesystem, so the
commit is a ``rename``), fsynced when sealed, and renamed into place with the
directory fsynced afterwards: a crash leaves either the old state or the new,
plus at worst a ``.part`` file that the sweep removes. ``complete_uploads``
renames several, then fsyncs their folders in parallel (one wait, not one
per folder). A completed blob is
durable; a sealed but uncompleted upload has durable bytes but its folder is
not fsynced (one fsync fewer per publish), so a crash may lose it, and its
completion then fails with ``UploadNotFound``: nothing had been acknowledged.
Files are 0600 in 0700 folders.

``delete`` and ``replace_existing`` (a rotation's copy renamed over a document)
lock the file they act on (``flock``, exclusive) and check, once locked, that
its name still names it: a rotation never renames its copy over a document
deleted meanwhile, and a delete that waited for a rotation removes the copy
(ADR 0502, third amendment). Readers take no lock.
"""

from __future__ import annotations

import base64
import contextlib
import fcntl
import os
import secrets
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from types import TracebackType
from typing import BinaryIO

from joinedup.documents.blobs import (
    BinarySource,
    BlobNotFound,
    BlobStat,
    PendingUpload,
    UploadNotFound,
    check_key,
    iter_source,
)

UPLOADS = ".uploads"
_PART = ".part"
_BLOCK = 1024 * 1024
READ_AHEAD = 8 * 1024 * 1024
WRITE_BEHIND = 8 * 1024 * 1024


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_all(pool: Executor, paths: Sequence[Path], files: Sequence[int] = ()) -> None:
    """fsync folders (and open file descriptors) at once on ``pool``'s threads: the disk
    (and a journalling filesystem's commit) takes them together, so the caller waits
    about once. The first failure is raised after all have finished."""
    jobs: list[Callable[[], None]] = [partial(_fsync_dir, p) for p in paths]
    jobs += [partial(os.fsync, f) for f in files]
    if len(jobs) == 1:
        jobs[0]()
        return
    futures = [pool.submit(job) for job in jobs[1:]]
    first: BaseException | None = None
    try:
        jobs[0]()
    except BaseException as exc:
        first = exc
    for future in futures:
        error = future.exception()
        first = first or error
    if first is not None:
        raise first


@contextlib.contextmanager
def _holding(path: Path) -> Iterator[bool]:
    """Lock the file ``path`` names (``flock``, exclusive) and yield whether, once locked,
    the path still names it (False: there is no such file). If the name was moved to
    another file meanwhile (a rotation's copy renamed over it), that file is locked
    instead. The lock is released on leaving (closing the descriptor)."""
    while True:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except (FileNotFoundError, NotADirectoryError):
            yield False
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            held = os.fstat(fd)
            try:
                named = os.stat(path)
            except (FileNotFoundError, NotADirectoryError):
                yield False
                return
            if (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino):
                yield True
                return
        finally:
            os.close(fd)


def _mtime(stat: os.stat_result) -> datetime:
    return datetime.fromtimestamp(stat.st_mtime, UTC)


class _FileReader:
    """A file read up to a limit; the ``BlobReader`` of the local store.

    It asks the kernel to read ahead (``POSIX_FADV_WILLNEED``) a few MiB
    beyond what has been consumed, so the disk works while the caller
    decrypts and hashes the previous chunk.
    """

    def __init__(self, file: BinaryIO, start: int, remaining: int | None) -> None:
        self._file = file
        self._remaining = remaining
        self._position = start
        self._advised = start
        self._fd = file.fileno()

    def read(self, size: int, /) -> bytes:
        if self._remaining is not None:
            size = min(size, self._remaining)
            if size <= 0:
                return b""
        if self._position + size + READ_AHEAD // 2 > self._advised:
            with contextlib.suppress(OSError):
                os.posix_fadvise(self._fd, self._advised, READ_AHEAD, os.POSIX_FADV_WILLNEED)
            self._advised = max(self._advised, self._position) + READ_AHEAD
        data = self._file.read(size)
        self._position += len(data)
        if self._remaining is not None:
            self._remaining -= len(data)
        return data

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> _FileReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _LocalUpload:
    def __init__(self, key: str, upload_id: str, path: Path, pool: Executor) -> None:
        self._pool = pool
        self._key = key
        self._upload_id = upload_id
        self._path = path
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o600)
        self._file: BinaryIO | None = os.fdopen(fd, "wb")
        self._written = 0
        self._flushed = 0

    @property
    def key(self) -> str:
        return self._key

    @property
    def upload_id(self) -> str:
        return self._upload_id

    def write(self, data: bytes | memoryview, /) -> None:
        if self._file is None:
            raise RuntimeError("upload is sealed or aborted")
        self._file.write(data)
        self._written += len(data)
        if self._written - self._flushed >= WRITE_BEHIND:
            # Start writing back what we have so far without waiting for it, so the
            # disk works while the caller encrypts; the fsync in ``seal`` has less left.
            self._file.flush()
            with contextlib.suppress(OSError):
                os.posix_fadvise(
                    self._file.fileno(), self._flushed, self._written - self._flushed,
                    os.POSIX_FADV_DONTNEED,
                )  # fmt: skip
            self._flushed = self._written

    def write_at(self, offset: int, data: bytes, /) -> None:
        if self._file is None:
            raise RuntimeError("upload is sealed or aborted")
        if offset < 0 or offset + len(data) > self._written:
            raise ValueError("write_at may only overwrite bytes already written")
        self._file.flush()
        os.pwrite(self._file.fileno(), data, offset)

    def start_writeback(self, start: int = 0, /) -> None:
        if self._file is None:
            raise RuntimeError("upload is sealed or aborted")
        self._file.flush()
        if self._written > start:
            with contextlib.suppress(OSError):  # DONTNEED starts writeback of dirty pages
                os.posix_fadvise(
                    self._file.fileno(), start, self._written - start, os.POSIX_FADV_DONTNEED)

    def seal(self) -> int:
        self.seal_start()
        return self.seal_finish()

    def seal_start(self) -> int:
        """Flush to the kernel; returns the descriptor to fsync (see ``seal_finish``)."""
        if self._file is None:
            raise RuntimeError("upload is sealed or aborted")
        self._file.flush()
        return self._file.fileno()

    def begin_sync(self) -> Callable[[], int]:
        """Flush and start the fsync on the store's pool; call the result to wait for it
        and close (it returns the byte count). The caller works meanwhile."""
        future = self._pool.submit(os.fsync, self.seal_start())

        def wait() -> int:
            try:
                future.result()
            except BaseException:
                self.abort()
                raise
            return self.seal_finish(synced=True)

        return wait

    def seal_finish(self, synced: bool = False) -> int:
        """fsync (unless the caller did, in parallel with others) and close."""
        if self._file is None:
            raise RuntimeError("upload is sealed or aborted")
        if not synced:
            os.fsync(self._file.fileno())
        self._file.close()
        self._file = None
        return self._written

    def abort(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._path.unlink(missing_ok=True)


class LocalBlobStore:
    """Blobs as files under ``root``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._uploads = root / UPLOADS
        self._uploads.mkdir(mode=0o700, parents=True, exist_ok=True)
        self._pool = ThreadPoolExecutor(max_workers=4, thread_name_prefix="joinedup-fsync")
        """Threads for fsyncs done at once (kept: starting one per fsync costs as much)."""

    @property
    def name(self) -> str:
        return "local"

    @property
    def cheap_staging(self) -> bool:
        return True

    def ensure_folders(self, folders: Sequence[str]) -> None:
        """Create folders ahead (0700), fsyncing each parent once, so completing an upload
        into them never has to make the folder and fsync its parent as well."""
        parents: set[Path] = set()
        for folder in folders:
            path = self.path_for(folder)
            if not path.is_dir():
                path.mkdir(mode=0o700, parents=True, exist_ok=True)
                parents.add(path.parent)
        if parents:
            fsync_all(self._pool, sorted(parents))

    def path_for(self, key: str) -> Path:
        return self.root / check_key(key)

    def _part_path(self, key: str, upload_id: str) -> Path:
        if not upload_id.isalnum():
            raise UploadNotFound(f"no upload {upload_id!r}")
        encoded = base64.urlsafe_b64encode(check_key(key).encode()).decode().rstrip("=")
        return self._uploads / f"{upload_id}~{encoded}{_PART}"

    def put(self, key: str, source: BinarySource) -> BlobStat:
        upload = self.start_upload(key)
        try:
            for block in iter_source(source, _BLOCK):
                upload.write(block)
            upload.seal()
            return self.complete_upload(key, upload.upload_id)
        except BaseException:
            upload.abort()
            raise

    def get(self, key: str, start: int = 0, stop: int | None = None) -> _FileReader:
        if start < 0 or (stop is not None and stop < start):
            raise ValueError("bad byte range")
        try:
            file = self.path_for(key).open("rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise BlobNotFound(key) from None
        if start:
            file.seek(start)
        return _FileReader(file, start, None if stop is None else stop - start)

    def prefetch(self, key: str, length: int = READ_AHEAD) -> None:
        """Ask the kernel to start reading a blob's first ``length`` bytes now, so the
        disk fetches them while the caller does other work (reads the envelope)."""
        with contextlib.suppress(OSError, ValueError):
            fd = os.open(self.path_for(key), os.O_RDONLY | os.O_CLOEXEC)
            try:
                os.posix_fadvise(fd, 0, length, os.POSIX_FADV_WILLNEED)
            finally:
                os.close(fd)

    def delete(self, key: str) -> None:
        path = self.path_for(key)
        with _holding(path) as present:  # waits for a rotation's rename over it, if any
            if present:
                path.unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        return self.path_for(key).is_file()

    def stat(self, key: str) -> BlobStat:
        try:
            st = self.path_for(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise BlobNotFound(key) from None
        return BlobStat(key, st.st_size, _mtime(st))

    def iter_blobs(self, prefix: str) -> Iterator[BlobStat]:
        folder = prefix.rpartition("/")[0]
        base = self.root / folder if folder else self.root
        for dirpath, dirnames, filenames in os.walk(base):
            if Path(dirpath) == self.root:
                dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(self.root)
            for filename in filenames:
                key = (rel / filename).as_posix() if rel != Path(".") else filename
                if key.startswith(prefix) and not filename.startswith("."):
                    with contextlib.suppress(FileNotFoundError):
                        st = os.stat(os.path.join(dirpath, filename))
                        yield BlobStat(key, st.st_size, _mtime(st))

    def start_upload(self, key: str) -> _LocalUpload:
        upload_id = secrets.token_hex(16)
        return _LocalUpload(key, upload_id, self._part_path(key, upload_id), self._pool)

    def complete_upload(self, key: str, upload_id: str) -> BlobStat:
        part = self._part_path(key, upload_id)
        dest = self.path_for(key)
        created = not dest.parent.is_dir()
        dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            os.replace(part, dest)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload {upload_id} for {key}") from None
        _fsync_dir(dest.parent)
        if created:
            _fsync_dir(dest.parent.parent)
        return self.stat(key)

    def complete_uploads(self, uploads: Sequence[tuple[str, str]]) -> list[BlobStat]:
        moves = [(self._part_path(k, u), self.path_for(k), k, u) for k, u in uploads]
        for part, _, key, upload_id in moves:
            if not part.is_file():
                raise UploadNotFound(f"no upload {upload_id} for {key}")
        created: set[Path] = set()
        for _, dest, _, _ in moves:
            if not dest.parent.is_dir():
                dest.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                created.add(dest.parent.parent)
        for part, dest, key, upload_id in moves:
            try:
                os.replace(part, dest)
            except FileNotFoundError:
                raise UploadNotFound(f"no upload {upload_id} for {key}") from None
        fsync_all(self._pool, sorted({dest.parent for _, dest, _, _ in moves} | created))
        return [self.stat(key) for _, _, key, _ in moves]

    def replace_existing(self, key: str, upload_id: str) -> bool:
        """Complete a sealed upload over the blob ``key`` only if that blob still exists
        (atomically with respect to ``delete``): the rename and the check happen under
        the blob's lock. False (and the upload discarded) if it is gone; ``UploadNotFound``
        if the upload is."""
        part = self._part_path(key, upload_id)
        dest = self.path_for(key)
        with _holding(dest) as present:
            if not present:
                part.unlink(missing_ok=True)
                return False
            try:
                os.replace(part, dest)
            except FileNotFoundError:
                raise UploadNotFound(f"no upload {upload_id} for {key}") from None
        _fsync_dir(dest.parent)
        return True

    def rewrite_staged(self, key: str, upload_id: str, offset: int, data: bytes) -> None:
        """Overwrite bytes of a sealed, not yet completed upload, durably (for a header
        re-wrapped under a newer master key at commit); ``UploadNotFound`` if it is gone."""
        try:
            fd = os.open(self._part_path(key, upload_id), os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UploadNotFound(f"no upload {upload_id} for {key}") from None
        try:
            if os.fstat(fd).st_size < offset + len(data):
                raise ValueError("rewrite_staged may only overwrite bytes already written")
            os.pwrite(fd, data, offset)
            os.fsync(fd)
        finally:
            os.close(fd)

    def abort_upload(self, key: str, upload_id: str) -> None:
        with contextlib.suppress(UploadNotFound):
            self._part_path(key, upload_id).unlink(missing_ok=True)

    def iter_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        for part in self._uploads.glob("*" + _PART):
            upload_id, _, encoded = part.name[: -len(_PART)].partition("~")
            try:
                key = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4)).decode()
                st = part.stat()
            except (ValueError, FileNotFoundError):
                continue
            if key.startswith(prefix):
                yield PendingUpload(key, upload_id, _mtime(st))
