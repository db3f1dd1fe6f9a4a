"""Fixtures for the document store: each behaviour test runs on the local folder
store (as single-file documents, and as the older content + envelope pair, which it
still reads) and on an S3-compatible server (moto's standalone server, started here on
127.0.0.1 on the first free port of 8120-8129, the ports set aside for the
document tests; nothing leaves loopback)."""

from __future__ import annotations

import gc
import logging
import threading
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from joinedup.documents.blobs import BlobStore, read_exact
from joinedup.documents.config import DocumentStoreConfig, S3Config
from joinedup.documents.content import ContentStore
from joinedup.documents.envelope import HEADER_BYTES, frame_header, parse_header
from joinedup.documents.info import StagedBlob
from joinedup.documents.keyring import Keyring, create_master_key
from joinedup.documents.keys import content_key, document_key, envelope_key
from joinedup.documents.stores import make_store
from tests import support

REGION = "eu-west-2"
CHUNK = 4096  # small chunks so multi-chunk documents stay small in tests


PORTS = range(8120, 8130)


def free_port() -> int:
    """The first port of ``PORTS`` free on loopback (another test session may hold one)."""
    try:
        return support.free_port(PORTS)
    except support.NoFreePort as e:
        pytest.skip(f"{e} for the S3 test server")


@pytest.fixture(scope="session")
def s3_endpoint() -> Iterator[str]:
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(), verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()


@pytest.fixture(scope="session")
def s3_client(s3_endpoint: str) -> Any:
    """One client for the session: building a boto3 client takes most of a second."""
    from joinedup.documents.s3 import make_client

    return make_client(s3_config(s3_endpoint, "unused"))


def s3_config(endpoint: str, bucket: str, part_size: int = 5 * 1024 * 1024) -> S3Config:
    return S3Config(
        bucket=bucket,
        endpoint_url=endpoint,
        region=REGION,
        prefix="joinedup/",
        addressing_style="path",
        part_size=part_size,
        access_key_id="testing",
        secret_access_key="testing",
        max_attempts=2,
    )


@dataclass
class StoreWorld:
    """A backend with its own empty space, and how to build more stores onto it."""

    backend: str
    config: DocumentStoreConfig
    keys_dir: Path
    client: Any = None
    layout: str = "pair"
    """``document`` (one ``.doc`` file, the local default) or ``pair`` (content and
    envelope objects: S3, and local documents written before ADR 0502's 2nd amendment)."""

    def blobs(self) -> BlobStore:
        """A new store object on the same space, as another process would have."""
        if self.backend == "s3":
            from joinedup.documents.s3 import S3BlobStore

            assert self.config.s3 is not None
            return S3BlobStore(self.config.s3, client=self.client)
        return make_store(self.config)

    def content(self, keyring: Keyring | None = None, **overrides: object) -> ContentStore:
        options: dict[str, object] = {
            "max_bytes": self.config.max_bytes,
            "chunk_size": CHUNK,
            "staging_grace": self.config.staging_grace,
            "single_file": self.layout == "document" if self.backend == "local" else None,
        }
        options.update(overrides)
        return ContentStore(
            blobs=self.blobs(),
            keyring=keyring or Keyring.load(self.keys_dir),
            **options,  # type: ignore[arg-type]
        )


@pytest.fixture(params=["local", "local-pair", "s3"])
def world(request: pytest.FixtureRequest, tmp_path: Path) -> StoreWorld:
    keys_dir = tmp_path / "keys"
    create_master_key(keys_dir, now=datetime.now(UTC) - timedelta(days=1))
    if request.param != "s3":
        config = DocumentStoreConfig(
            keys_dir=keys_dir, backend="local", local_dir=tmp_path / "documents"
        )
    else:
        endpoint = request.getfixturevalue("s3_endpoint")
        client = request.getfixturevalue("s3_client")
        bucket = f"joinedup-test-{uuid.uuid4().hex[:12]}"
        config = DocumentStoreConfig(
            keys_dir=keys_dir, backend="s3", s3=s3_config(endpoint, bucket)
        )
        client.create_bucket(
            Bucket=bucket, CreateBucketConfiguration={"LocationConstraint": REGION}
        )
        return StoreWorld("s3", config, keys_dir, client)
    layout = "pair" if request.param == "local-pair" else "document"
    return StoreWorld("local", config, keys_dir, layout=layout)


@pytest.fixture
def blobs(world: StoreWorld) -> BlobStore:
    return world.blobs()


@pytest.fixture
def store(world: StoreWorld) -> ContentStore:
    return world.content()


def leftovers(blobs: BlobStore) -> list[str]:
    """Everything in the store: committed blobs and staged uploads."""
    found = [stat.key for stat in blobs.iter_blobs("")]
    found += [f"upload:{u.key}" for u in blobs.iter_uploads("")]
    return sorted(found)


def stored(blobs: BlobStore, key: str) -> bytes:
    with blobs.get(key) as reader:
        return read_exact(reader, 1 << 30)


def chunks_key(store: ContentStore, content_id: str) -> tuple[str, int]:
    """Where a document's chunks are: its ``.doc`` file after the header, or the
    content object of a pair."""
    key = document_key(content_id)
    if store.blobs.exists(key):
        return key, HEADER_BYTES
    return content_key(content_id), 0


def stored_chunks(store: ContentStore, content_id: str) -> bytes:
    key, base = chunks_key(store, content_id)
    return stored(store.blobs, key)[base:]


def edit_chunks(store: ContentStore, content_id: str, change: Callable[[bytearray], bytes]) -> None:
    """Replace a document's stored chunks (as someone with the disk could), header kept."""
    key, base = chunks_key(store, content_id)
    raw = stored(store.blobs, key)
    store.blobs.put(key, raw[:base] + change(bytearray(raw[base:])))


def envelope_json(store: ContentStore, content_id: str) -> bytes:
    """A document's envelope as JSON, from its header or its envelope object."""
    key, base = chunks_key(store, content_id)
    if base:
        raw = stored(store.blobs, key)[:base]
        return parse_header(raw, content_id).to_bytes()
    return stored(store.blobs, envelope_key(content_id))


def replace_envelope(store: ContentStore, content_id: str, body: bytes) -> None:
    """Store other envelope JSON for a document, in its header or as its envelope object."""
    key, base = chunks_key(store, content_id)
    if base:
        raw = stored(store.blobs, key)
        store.blobs.put(key, frame_header(body) + raw[base:])
    else:
        store.blobs.put(envelope_key(content_id), body)


def staged_key(staged: StagedBlob) -> str:
    """The key a staged document's content is completed under."""
    return document_key(staged.content_id) if staged.single else content_key(staged.content_id)


@pytest.fixture(autouse=True)
def _no_hashing_threads_left() -> Iterator[None]:
    """Every reader and stager, finished, failed or abandoned, stops its hash threads."""
    yield

    def left() -> int:
        return sum(t.name == "joinedup-digest" for t in threading.enumerate())

    if left():
        gc.collect()  # slow with moto's objects around, so only when needed
    assert not left(), f"{left()} hash threads still running"
