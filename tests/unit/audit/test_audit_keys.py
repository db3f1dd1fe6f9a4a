"""Audit signing keys and signed statements."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from joinedup.audit.keys import AuditKeyStore, PublicKeys, SignatureCheck, key_id
from joinedup.audit.statements import Anchor, Checkpoint
from joinedup.errors import ConfigError, InvalidInput
from tests.unit.audit.factory import T0


def test_init_creates_one_key_and_is_idempotent(tmp_path: Path) -> None:
    store = AuditKeyStore(tmp_path / "k")
    key, created = store.init()
    again, created_again = store.init()
    assert created
    assert not created_again
    assert again.kid == key.kid == key_id(key.public)
    assert (tmp_path / "k").stat().st_mode & 0o777 == 0o700
    assert key.path.stat().st_mode & 0o777 == 0o600


def test_rotation_keeps_old_keys_for_verifying(tmp_path: Path) -> None:
    store = AuditKeyStore(tmp_path)
    old = store.generate(T0)
    new = store.generate()
    assert store.active().kid == new.kid
    assert set(store.public_keys().by_kid) == {old.kid, new.kid}


def test_no_key_is_a_config_error_naming_the_fix(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="audit keys init"):
        AuditKeyStore(tmp_path / "none").active()


def test_public_jwks_round_trip_and_carry_no_private_part(tmp_path: Path) -> None:
    store = AuditKeyStore(tmp_path)
    store.init()
    jwks = store.public_jwks()
    assert all("d" not in k for k in jwks["keys"])
    assert PublicKeys.from_jwks(json.loads(json.dumps(jwks))).by_kid.keys() == {
        k.kid for k in store.load()
    }


def test_bad_jwks_report_every_key_at_once() -> None:
    with pytest.raises(InvalidInput) as caught:
        PublicKeys.from_jwks({"keys": [
            {"kty": "EC"},
            {"kty": "OKP", "crv": "Ed25519", "x": "AAAA", "kid": "x"},
            {"kty": "OKP", "crv": "Ed25519", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo",
             "kid": "wrong"},
        ]})
    assert [p.location for p in caught.value.problems] == [
        "keys.keys[0]", "keys.keys[1]", "keys.keys[2]"]


def test_checkpoint_signature_checks(tmp_path: Path) -> None:
    store = AuditKeyStore(tmp_path / "a")
    key, _ = store.init()
    other, _ = AuditKeyStore(tmp_path / "b").init()
    cp = Checkpoint.make(log_id="L", seq=5, hash="ab" * 32, time=T0, key=key)
    keys = store.public_keys()
    assert cp.check(keys) is SignatureCheck.VALID
    assert Checkpoint.parse(cp.statement, cp.signature) == cp
    forged = Checkpoint.parse(cp.statement.replace('"seq":5', '"seq":6'), cp.signature)
    assert forged.check(keys) is SignatureCheck.BAD_SIGNATURE
    stranger = Checkpoint.make(log_id="L", seq=5, hash="ab" * 32, time=T0, key=other)
    assert stranger.check(keys) is SignatureCheck.UNKNOWN_KEY


def test_anchor_statement_round_trips(tmp_path: Path) -> None:
    key, _ = AuditKeyStore(tmp_path).init()
    anchor = Anchor.make(log_id="L", first_seq=1, last_seq=9, prev_hash="0" * 64,
                         last_hash="f" * 64, archive_sha256="e" * 64, time=T0, key=key)
    assert Anchor.parse(anchor.statement, anchor.signature) == anchor
    with pytest.raises(ValueError, match="not an audit-checkpoint"):
        Checkpoint.parse(anchor.statement, anchor.signature)
