"""The S3-compatible blob store (AWS S3, MinIO, Ceph RGW, ...), through boto3.

Every upload is a multipart upload on the final key: parts of
``part_size`` bytes (8 MiB by default, S3's minimum is 5 MiB) are sent as
they fill, so memory stays at one part whatever the size. An incomplete
multipart upload is not an object: nothing is visible until
CompleteMultipartUpload, which lists the parts from the server (so another
process can complete it from the upload id alone). Aborted or crashed uploads
are removed by the sweep; a bucket lifecycle rule
``AbortIncompleteMultipartUpload`` is a good second line.

Small whole objects (envelopes, staging records) use one PutObject, which is
atomic. Reads are GetObject streams with an HTTP ``Range``.

Credentials come from the standard AWS chain (environment, profile, instance
or pod role); explicit keys in ``S3Config`` are for local test servers only.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from types import TracebackType
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from joinedup.documents.blobs import (
    BinarySource,
    BlobNotFound,
    BlobStat,
    PendingUpload,
    UploadNotFound,
    check_key,
    iter_source,
)
from joinedup.documents.config import S3Config

_NOT_FOUND = {"404", "NoSuchKey", "NotFound"}
_CHANGED = {"412", "PreconditionFailed", "409", "ConditionalRequestConflict"}


def _code(exc: ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)
    return datetime.now(UTC)


def make_client(config: S3Config) -> Any:
    """A boto3 S3 client for ``config`` (typed ``Any``: boto3 ships no stubs)."""
    session = boto3.session.Session(
        aws_access_key_id=config.access_key_id,
        aws_secret_access_key=config.secret_access_key,
        region_name=config.region,
    )
    return session.client(
        "s3",
        endpoint_url=config.endpoint_url,
        config=Config(
            s3={"addressing_style": config.addressing_style},
            retries={"max_attempts": config.max_attempts, "mode": "standard"},
            connect_timeout=config.connect_timeout,
            read_timeout=config.read_timeout,
        ),
    )


class _BodyReader:
    """A GetObject body as a ``BlobReader``."""

    def __init__(self, body: Any) -> None:
        self._body = body

    def read(self, size: int, /) -> bytes:
        if self._body is None:
            return b""
        data = self._body.read(size)
        return bytes(data)

    def close(self) -> None:
        if self._body is not None:
            self._body.close()

    def __enter__(self) -> _BodyReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class _S3Upload:
    def __init__(self, store: S3BlobStore, key: str, upload_id: str) -> None:
        self._store = store
        self._key = key
        self._upload_id = upload_id
        self._buffer = bytearray()
        self._next_part = 1
        self._written = 0
        self._open = True

    @property
    def key(self) -> str:
        return self._key

    @property
    def upload_id(self) -> str:
        return self._upload_id

    def write(self, data: bytes | memoryview, /) -> None:
        if not self._open:
            raise RuntimeError("upload is sealed or aborted")
        self._buffer += data
        self._written += len(data)
        part_size = self._store.config.part_size
        while len(self._buffer) >= part_size:
            self._send(bytes(self._buffer[:part_size]))
            del self._buffer[:part_size]

    def _send(self, body: bytes) -> None:
        self._store.client.upload_part(
            Bucket=self._store.bucket,
            Key=self._store.full_key(self._key),
            UploadId=self._upload_id,
            PartNumber=self._next_part,
            Body=body,
        )
        self._next_part += 1

    def seal(self) -> int:
        if not self._open:
            raise RuntimeError("upload is sealed or aborted")
        if self._buffer or self._next_part == 1:
            self._send(bytes(self._buffer))  # the last part may be small; a blob may be empty
            self._buffer = bytearray()
        self._open = False
        return self._written

    def abort(self) -> None:
        self._open = False
        self._buffer = bytearray()
        self._store.abort_upload(self._key, self._upload_id)


class S3BlobStore:
    """Blobs as objects under ``config.prefix`` in one bucket."""

    def __init__(self, config: S3Config, client: Any | None = None) -> None:
        self.config = config
        self.bucket = config.bucket
        self.client = client if client is not None else make_client(config)

    @property
    def name(self) -> str:
        return "s3"

    @property
    def cheap_staging(self) -> bool:
        return False  # a multipart upload is three requests; PutObject of a small one is one

    def complete_uploads(self, uploads: Sequence[tuple[str, str]]) -> list[BlobStat]:
        return [self.complete_upload(key, upload_id) for key, upload_id in uploads]

    def full_key(self, key: str) -> str:
        return self.config.prefix + check_key(key)

    def _short_key(self, full: str) -> str:
        return full[len(self.config.prefix) :]

    def put(self, key: str, source: BinarySource) -> BlobStat:
        if isinstance(source, bytes):
            self.client.put_object(Bucket=self.bucket, Key=self.full_key(key), Body=source)
            return self.stat(key)
        upload = self.start_upload(key)
        try:
            for block in iter_source(source, self.config.part_size):
                upload.write(block)
            upload.seal()
            return self.complete_upload(key, upload.upload_id)
        except BaseException:
            upload.abort()
            raise

    def get(self, key: str, start: int = 0, stop: int | None = None) -> _BodyReader:
        if start < 0 or (stop is not None and stop < start):
            raise ValueError("bad byte range")
        args: dict[str, Any] = {"Bucket": self.bucket, "Key": self.full_key(key)}
        if stop is not None and stop == start:
            self.stat(key)  # still "not found" if there is no such blob
            return _BodyReader(None)
        if start or stop is not None:
            args["Range"] = f"bytes={start}-" + ("" if stop is None else str(stop - 1))
        try:
            response = self.client.get_object(**args)
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFound(key) from None
            if _code(exc) == "InvalidRange":  # start at or past the end: nothing to read
                return _BodyReader(None)
            raise
        return _BodyReader(response["Body"])

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self.full_key(key))

    def put_if_present(self, key: str, data: bytes, attempts: int = 3) -> bool:
        """Replace the object ``key`` with ``data`` only while it still exists, atomically
        (a conditional PutObject, ``If-Match`` its current ETag): False if it is gone, so
        a deleted object is never written back. Retried if it changed in between (another
        writer); ``PreconditionFailed`` every time also gives False."""
        full = self.full_key(key)
        for _ in range(attempts):
            try:
                etag = self.client.head_object(Bucket=self.bucket, Key=full)["ETag"]
                self.client.put_object(Bucket=self.bucket, Key=full, Body=data, IfMatch=etag)
            except ClientError as exc:
                if _code(exc) in _NOT_FOUND:
                    return False
                if _code(exc) in _CHANGED:
                    continue
                raise
            return True
        return False

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except BlobNotFound:
            return False
        return True

    def stat(self, key: str) -> BlobStat:
        try:
            head = self.client.head_object(Bucket=self.bucket, Key=self.full_key(key))
        except ClientError as exc:
            if _code(exc) in _NOT_FOUND:
                raise BlobNotFound(key) from None
            raise
        return BlobStat(key, int(head["ContentLength"]), _utc(head.get("LastModified")))

    def iter_blobs(self, prefix: str) -> Iterator[BlobStat]:
        paginator = self.client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.config.prefix + prefix):
            for item in page.get("Contents", []):
                yield BlobStat(
                    self._short_key(str(item["Key"])),
                    int(item["Size"]),
                    _utc(item.get("LastModified")),
                )

    def start_upload(self, key: str) -> _S3Upload:
        response = self.client.create_multipart_upload(Bucket=self.bucket, Key=self.full_key(key))
        return _S3Upload(self, key, str(response["UploadId"]))

    def complete_upload(self, key: str, upload_id: str) -> BlobStat:
        full = self.full_key(key)
        parts: list[dict[str, Any]] = []
        size = 0
        try:
            paginator = self.client.get_paginator("list_parts")
            for page in paginator.paginate(Bucket=self.bucket, Key=full, UploadId=upload_id):
                for part in page.get("Parts", []):
                    parts.append({"ETag": part["ETag"], "PartNumber": int(part["PartNumber"])})
                    size += int(part["Size"])
            if not parts:
                raise UploadNotFound(f"upload {upload_id} for {key} has no parts (not sealed)")
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=full,
                UploadId=upload_id,
                MultipartUpload={"Parts": sorted(parts, key=lambda p: int(p["PartNumber"]))},
            )
        except ClientError as exc:
            if _code(exc) == "NoSuchUpload":
                raise UploadNotFound(f"no upload {upload_id} for {key}") from None
            raise
        return BlobStat(key, size, datetime.now(UTC))  # no HEAD: the parts give the size

    def abort_upload(self, key: str, upload_id: str) -> None:
        try:
            self.client.abort_multipart_upload(
                Bucket=self.bucket, Key=self.full_key(key), UploadId=upload_id
            )
        except ClientError as exc:
            if _code(exc) != "NoSuchUpload":
                raise

    def iter_uploads(self, prefix: str) -> Iterator[PendingUpload]:
        paginator = self.client.get_paginator("list_multipart_uploads")
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.config.prefix + prefix):
            for item in page.get("Uploads", []):
                yield PendingUpload(
                    self._short_key(str(item["Key"])),
                    str(item["UploadId"]),
                    _utc(item.get("Initiated")),
                )
