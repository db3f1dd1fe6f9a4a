"""Configuration of the document content store: plain frozen values, validated on construction.

The application's ``Settings`` (``JOINEDUP_DOCUMENT_*`` and ``JOINEDUP_S3_*``)
are turned into a ``DocumentStoreConfig`` at the entry point; nothing here
reads the environment. All problems are reported together.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from joinedup.documents.chunks import DEFAULT_CHUNK_SIZE, MAX_CHUNK_SIZE, MIN_CHUNK_SIZE
from joinedup.errors import ConfigError, Problem

MIB = 1024 * 1024
GIB = 1024 * MIB
S3_MIN_PART = 5 * MIB
S3_MAX_PART = 5 * GIB
S3_MAX_PARTS = 10_000
ADDRESSING_STYLES = ("auto", "path", "virtual")


@dataclass(frozen=True, slots=True, kw_only=True)
class S3Config:
    """Where the S3-compatible store keeps blobs.

    ``access_key_id``/``secret_access_key`` are for local test servers only:
    production uses the standard AWS credential chain, so no secret sits in
    joinedup's configuration.
    """

    bucket: str
    endpoint_url: str | None = None
    region: str | None = None
    prefix: str = "documents/"
    addressing_style: str = "auto"
    part_size: int = 8 * MIB
    access_key_id: str | None = field(default=None, repr=False)
    secret_access_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_attempts: int = 5

    def problems(self) -> list[Problem]:
        found: list[Problem] = []
        if not self.bucket:
            found.append(Problem("a bucket name is required", "s3.bucket"))
        if self.prefix and not self.prefix.endswith("/"):
            found.append(Problem("must be empty or end with '/'", "s3.prefix"))
        if self.addressing_style not in ADDRESSING_STYLES:
            found.append(
                Problem(f"must be one of {', '.join(ADDRESSING_STYLES)}", "s3.addressing_style")
            )
        if not S3_MIN_PART <= self.part_size <= S3_MAX_PART:
            found.append(Problem("must be 5 MiB to 5 GiB (S3 multipart limits)", "s3.part_size"))
        if self.endpoint_url is not None and not self.endpoint_url.startswith(
            ("http://", "https://")
        ):
            found.append(Problem("must be an http(s) URL", "s3.endpoint_url"))
        if (self.access_key_id is None) != (self.secret_access_key is None):
            found.append(
                Problem("give both access key id and secret, or neither", "s3.credentials")
            )
        if self.max_attempts < 1:
            found.append(Problem("must be at least 1", "s3.max_attempts"))
        return found


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentStoreConfig:
    """The content store: which backend, where, which keys, which limits."""

    keys_dir: Path
    backend: str = "local"
    local_dir: Path | None = None
    s3: S3Config | None = None
    active_key_id: str | None = None
    max_bytes: int = GIB
    chunk_size: int = DEFAULT_CHUNK_SIZE
    staging_grace: timedelta = timedelta(days=1)

    def __post_init__(self) -> None:
        problems: list[Problem] = []
        if self.backend not in ("local", "s3"):
            problems.append(Problem("must be 'local' or 's3'", "backend"))
        if self.backend == "local" and self.local_dir is None:
            problems.append(Problem("the local store needs a folder", "local_dir"))
        if self.backend == "s3":
            if self.s3 is None:
                problems.append(Problem("the s3 store needs a bucket and endpoint", "s3"))
            else:
                problems.extend(self.s3.problems())
        if self.max_bytes < 1:
            problems.append(Problem("must be at least 1", "max_bytes"))
        if not MIN_CHUNK_SIZE <= self.chunk_size <= MAX_CHUNK_SIZE:
            problems.append(Problem(f"must be {MIN_CHUNK_SIZE}..{MAX_CHUNK_SIZE}", "chunk_size"))
        if self.staging_grace < timedelta(minutes=1):
            problems.append(Problem("must be at least a minute", "staging_grace"))
        if (
            self.backend == "s3"
            and self.s3 is not None
            and self.max_bytes > self.s3.part_size * S3_MAX_PARTS
        ):
            problems.append(
                Problem("larger than 10,000 parts of s3.part_size; raise part_size", "max_bytes")
            )
        if problems:
            raise ConfigError("the document store configuration cannot be used", problems)
