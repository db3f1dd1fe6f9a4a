"""The whole demo care system's exports through the real adapters into the store, on both
databases: every file gets a report with read = accepted + rejected, nothing silently
dropped, and loading the same files again changes nothing."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from joinedup.demo import generate_to
from joinedup.demo.area import build_area
from joinedup.orgs.registry import Registry
from joinedup.orgs.specs import OrgSpec
from joinedup.records.store import RecordStore
from joinedup.records.tables import history
from joinedup.sources.batches import BatchStatus, Ingestion
from joinedup.sources.feeds import spec_from_mapping
from joinedup.sources.mapping import bundled_mappings, demo_feed_for
from joinedup.sources.tables import quarantine_table
from joinedup.storage.engine import Database

SEED, PEOPLE = 7, 150
CLOCK = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # the demo's "today"


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo-export")
    generate_to(out, seed=SEED, people=PEOPLE)
    return out, json.loads((out / "manifest.json").read_text())


def _files(export: tuple[Path, dict[str, Any]]) -> Iterator[tuple[str, Path]]:
    out, manifest = export
    for item in manifest["files"]:
        name = demo_feed_for(item["path"])
        assert name is not None, item["path"]
        yield name, out / item["path"]


def _setup(db: Database) -> Ingestion:
    registry = Registry(db)
    for org in build_area(SEED).organisations:
        registry.add_org(OrgSpec(code=org.code, name=org.name, kind=org.kind))
    ingestion = Ingestion(db)
    ingestion.loader._clock = lambda: CLOCK  # the demo's dates are relative to its "today"
    for path in bundled_mappings().values():
        ingestion.feeds.register(spec_from_mapping(path))
    return ingestion


@pytest.mark.slow
def test_the_demo_exports_load_with_complete_reports(
    db: Database, export: tuple[Path, dict[str, Any]]
) -> None:
    ingestion = _setup(db)
    results = []
    for name, path in _files(export):
        result = ingestion.ingest_file(name.split("/")[1], path)
        assert result.status is BatchStatus.COMMITTED, (path, result.report.get("notes"))
        c = result.counts
        assert c["read"] == c["accepted"] + c["rejected"] > 0, path
        assert c["created"] + c["updated"] + c["unchanged"] >= c["accepted"], path
        results.append(result)
    rejected = sum(r.counts["rejected"] for r in results)
    with db.engine.connect() as conn:
        quarantined = conn.execute(select(func.count()).select_from(quarantine_table)).scalar_one()
        versions = conn.execute(select(func.count()).select_from(history)).scalar_one()
    assert rejected > 0  # the demo's deliberate bad rows...
    assert quarantined == rejected  # ...are every one in quarantine
    stored = RecordStore(db).count()
    assert stored > PEOPLE
    assert versions >= 0  # earlier versions only: the current ones are in resources

    # the same files again: recognised, nothing read, nothing written
    for name, path in _files(export):
        again = ingestion.ingest_file(name.split("/")[1], path)
        assert again.status is BatchStatus.DUPLICATE
    # forced through in the same order: the same current state. Snapshot files (CSV,
    # FHIR) make no new version at all; an HL7 ADT file is a stream of events, so
    # replaying an older month re-applies its updates until the later months do again.
    before = _state(db)
    for name, path in _files(export):
        forced = ingestion.ingest_file(name.split("/")[1], path, force=True)
        if path.suffix != ".hl7":
            assert forced.counts["created"] == forced.counts["updated"] == 0, path
    assert _state(db) == before


def _state(db: Database) -> dict[tuple[str, str], str]:
    from joinedup.records.tables import resources

    c = resources.c
    with db.engine.connect() as conn:
        rows = conn.execute(select(c.resource_type, c.id, c.content_hash))
        return {(t, i): h for t, i, h in rows}
