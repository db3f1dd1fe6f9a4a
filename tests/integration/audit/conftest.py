"""Fixtures for the audit log's integration tests: a log on each backend, with keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from joinedup.audit import AuditConfig, AuditKeyStore, AuditLog
from joinedup.storage.engine import Database
from tests.unit.audit.factory import FixedClock


@pytest.fixture
def audit_keys(tmp_path: Path) -> AuditKeyStore:
    keys = AuditKeyStore(tmp_path / "audit-keys")
    keys.init()
    return keys


@pytest.fixture
def clock() -> FixedClock:
    return FixedClock()


@pytest.fixture
def audit(db: Database, audit_keys: AuditKeyStore, clock: FixedClock) -> Iterator[AuditLog]:
    """A log that signs a checkpoint every 4 events, on a clock the test moves."""
    log = AuditLog(db, audit_keys, AuditConfig(checkpoint_every_events=4), clock=clock)
    yield log
    log.close()
