"""Where the configured store is chosen: the one registry of blob-store backends.

Backends are looked up by ``DocumentStoreConfig.backend`` in an immutable
mapping built here, not registered at import time elsewhere (no
import-order-dependent registries). The S3 backend imports boto3 only when
selected.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from joinedup.documents.blobs import BlobStore
from joinedup.documents.config import DocumentStoreConfig
from joinedup.documents.content import ContentStore
from joinedup.documents.keyring import Keyring
from joinedup.documents.local import LocalBlobStore


def _local(config: DocumentStoreConfig) -> BlobStore:
    assert config.local_dir is not None  # checked by DocumentStoreConfig
    return LocalBlobStore(config.local_dir)


def _s3(config: DocumentStoreConfig) -> BlobStore:
    from joinedup.documents.s3 import S3BlobStore

    assert config.s3 is not None  # checked by DocumentStoreConfig
    return S3BlobStore(config.s3)


STORE_BACKENDS: Mapping[str, Callable[[DocumentStoreConfig], BlobStore]] = MappingProxyType(
    {"local": _local, "s3": _s3}
)


def make_store(config: DocumentStoreConfig) -> BlobStore:
    """The blob store the configuration names."""
    return STORE_BACKENDS[config.backend](config)


def open_content_store(config: DocumentStoreConfig, keyring: Keyring | None = None) -> ContentStore:
    """The encrypted content store for ``config``; its keyring is loaded from ``keys_dir``.

    Fails with ``MasterKeyError`` (a configuration error naming the fix) if
    there is no master key: there is no default key.
    """
    return ContentStore(
        blobs=make_store(config),
        keyring=keyring or Keyring.load(config.keys_dir, config.active_key_id),
        max_bytes=config.max_bytes,
        chunk_size=config.chunk_size,
        staging_grace=config.staging_grace,
    )
