"""Store configuration: plain values, every problem reported at once, one backend registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from joinedup.documents.config import DocumentStoreConfig, S3Config
from joinedup.documents.local import LocalBlobStore
from joinedup.documents.stores import STORE_BACKENDS, make_store
from joinedup.errors import ConfigError


def test_local_is_the_default(tmp_path: Path) -> None:
    config = DocumentStoreConfig(keys_dir=tmp_path / "k", local_dir=tmp_path / "d")
    store = make_store(config)
    assert isinstance(store, LocalBlobStore)
    assert store.name == "local"


def test_all_problems_at_once(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DocumentStoreConfig(
            keys_dir=tmp_path,
            backend="s3",
            s3=S3Config(
                bucket="",
                prefix="no-slash",
                addressing_style="sideways",
                part_size=1024,
                endpoint_url="ftp://x",
                access_key_id="only-half",
            ),
            max_bytes=0,
            chunk_size=10,
        )
    where = {p.location for p in caught.value.problems}
    assert where == {
        "s3.bucket",
        "s3.prefix",
        "s3.addressing_style",
        "s3.part_size",
        "s3.endpoint_url",
        "s3.credentials",
        "max_bytes",
        "chunk_size",
    }


def test_unknown_backend_and_missing_parts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DocumentStoreConfig(keys_dir=tmp_path, backend="ftp")
    assert {p.location for p in caught.value.problems} == {"backend"}
    with pytest.raises(ConfigError) as caught:
        DocumentStoreConfig(keys_dir=tmp_path, backend="s3")
    assert {p.location for p in caught.value.problems} == {"s3"}
    with pytest.raises(ConfigError):
        DocumentStoreConfig(keys_dir=tmp_path)  # local needs a folder


def test_limit_must_fit_in_s3_parts(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        DocumentStoreConfig(
            keys_dir=tmp_path,
            backend="s3",
            s3=S3Config(bucket="b", part_size=5 * 1024 * 1024),
            max_bytes=60 * 1024**3,
        )
    assert {p.location for p in caught.value.problems} == {"max_bytes"}


def test_registry_is_read_only() -> None:
    assert set(STORE_BACKENDS) == {"local", "s3"}
    with pytest.raises(TypeError):
        STORE_BACKENDS["ftp"] = STORE_BACKENDS["local"]  # type: ignore[index]


def test_credentials_stay_out_of_repr() -> None:
    config = S3Config(bucket="b", access_key_id="AKIAEXAMPLE", secret_access_key="s3cr3t")
    assert "s3cr3t" not in repr(config)
    assert "AKIAEXAMPLE" not in repr(config)


def test_no_master_key_means_no_content_store(tmp_path: Path) -> None:
    from joinedup.documents.errors import MasterKeyError
    from joinedup.documents.stores import open_content_store

    config = DocumentStoreConfig(keys_dir=tmp_path / "keys", local_dir=tmp_path / "d")
    with pytest.raises(MasterKeyError, match="keys init") as caught:
        open_content_store(config)
    assert caught.value.exit_code == 78


def test_content_store_from_configuration(tmp_path: Path) -> None:
    from joinedup.documents.keyring import create_master_key
    from joinedup.documents.stores import open_content_store

    key = create_master_key(tmp_path / "keys")
    config = DocumentStoreConfig(
        keys_dir=tmp_path / "keys", local_dir=tmp_path / "d", max_bytes=1000, chunk_size=4096
    )
    store = open_content_store(config)
    assert (store.max_bytes, store.chunk_size, store.keyring.active_kid) == (1000, 4096, key.kid)
    assert store.open(store.put(b"x" * 1000).content_id).read_all() == b"x" * 1000
