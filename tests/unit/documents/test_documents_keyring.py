"""Master keys: created by the operator (0600), loaded with every problem at once, one active."""

from __future__ import annotations

import json
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from joinedup.documents.errors import MasterKeyError
from joinedup.documents.keyring import KEY_SUFFIX, Keyring, MasterKey, create_master_key

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def test_created_key_file_is_private_and_loads(tmp_path: Path) -> None:
    folder = tmp_path / "keys"
    key = create_master_key(folder, now=T0)
    path = folder / (key.kid + KEY_SUFFIX)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    ring = Keyring.load(folder)
    assert ring.active == key
    assert len(key.secret) == 32


def test_each_key_is_random(tmp_path: Path) -> None:
    a = create_master_key(tmp_path, now=T0)
    b = create_master_key(tmp_path, now=T0)
    assert a.kid != b.kid
    assert a.secret != b.secret


def test_newest_key_is_active_unless_one_is_named(tmp_path: Path) -> None:
    old = create_master_key(tmp_path, now=T0)
    new = create_master_key(tmp_path, now=T0 + timedelta(days=30))
    assert Keyring.load(tmp_path).active_kid == new.kid
    assert Keyring.load(tmp_path, active_kid=old.kid).active_kid == old.kid
    with pytest.raises(MasterKeyError):
        Keyring.load(tmp_path, active_kid="dmk-nope")


def test_no_key_means_no_store(tmp_path: Path) -> None:
    with pytest.raises(MasterKeyError, match="keys init"):
        Keyring.load(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(MasterKeyError, match="keys init"):
        Keyring.load(tmp_path / "empty")


def test_every_bad_key_file_is_reported_together(tmp_path: Path) -> None:
    good = create_master_key(tmp_path, now=T0)
    loose = create_master_key(tmp_path, now=T0)
    (tmp_path / (loose.kid + KEY_SUFFIX)).chmod(0o644)
    garbled = tmp_path / ("dmk-garbled" + KEY_SUFFIX)
    garbled.write_text("{not json")
    garbled.chmod(0o600)
    renamed = tmp_path / ("dmk-renamed" + KEY_SUFFIX)
    renamed.write_text((tmp_path / (good.kid + KEY_SUFFIX)).read_text())
    renamed.chmod(0o600)
    with pytest.raises(MasterKeyError) as caught:
        Keyring.load(tmp_path)
    where = {p.location.rsplit("/", 1)[-1] for p in caught.value.problems}
    assert where == {loose.kid + KEY_SUFFIX, garbled.name, renamed.name}
    assert good.secret.hex() not in str(caught.value)


def test_secret_never_in_repr(tmp_path: Path) -> None:
    key = create_master_key(tmp_path)
    assert key.secret.hex() not in repr(key)
    assert repr(key.secret) not in repr(Keyring.of(key))


def test_unknown_kid_names_the_fix() -> None:
    ring = Keyring.of(MasterKey("dmk-a", T0, b"\x00" * 32))
    with pytest.raises(MasterKeyError, match="restore its key file"):
        ring.get("dmk-b")


def test_key_file_format(tmp_path: Path) -> None:
    key = create_master_key(tmp_path, now=T0)
    data = json.loads((tmp_path / (key.kid + KEY_SUFFIX)).read_text())
    assert data["alg"] == "A256GCM"
    assert data["kid"] == key.kid
    assert datetime.fromisoformat(data["created"]) == T0
