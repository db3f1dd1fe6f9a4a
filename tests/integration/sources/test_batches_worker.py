"""Staging in a worker process gives exactly what staging in the batch's process gives, on
both databases: the demo's exports (CSV, FHIR, HL7 v2, with their deliberate bad rows)
loaded both ways leave the same resources, versions, bodies, search index rows,
quarantine and reports; an error in the worker fails the batch and leaves nothing."""

from __future__ import annotations

import json
import os
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from joinedup.demo import generate_to
from joinedup.errors import InvalidInput
from joinedup.records.tables import INDEX_TABLES, history, resources
from joinedup.sources.batches import BatchResult, BatchStatus
from joinedup.sources.staging import StageContext, StagedInWorker
from joinedup.sources.tables import quarantine_table
from joinedup.storage.engine import Database
from tests.conftest import _empty_all_tables
from tests.integration.sources.test_batches_demo import PEOPLE, SEED, _files, _setup


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("demo-export-worker")
    generate_to(out, seed=SEED, people=PEOPLE)
    return out, json.loads((out / "manifest.json").read_text())


_VOLATILE = {"quarantine": ("id", "created_at", "updated_at")}
"""Columns that differ between two loads of the same files (serial ids, wall-clock times)."""


def _comparable(table: str, row: Any) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k not in _VOLATILE.get(table, ())}


def _load_all(
    db: Database, export: tuple[Path, dict[str, Any]], worker_min_bytes: int | None
) -> tuple[str, list[dict[str, Any]]]:
    """Every demo file loaded; the store, quarantine and reports with batch ids made positional."""
    ingestion = _setup(db)
    ingestion.worker_min_bytes = worker_min_bytes
    results: list[BatchResult] = []
    for name, path in _files(export):
        results.append(ingestion.ingest_file(name.split("/")[1], path))
    assert all(r.status is BatchStatus.COMMITTED for r in results)
    names = {r.batch_id: f"batch-{n}" for n, r in enumerate(results)}

    def positional(text: str) -> str:
        for real, name in names.items():
            text = text.replace(real, name)
        return text

    tables = [resources, history, *INDEX_TABLES, quarantine_table]
    with db.engine.connect() as conn:
        rows = {
            t.name: sorted(
                positional(repr(_comparable(t.name, r._mapping))) for r in conn.execute(select(t))
            )
            for t in tables
        }
    reports = [
        json.loads(positional(json.dumps({k: v for k, v in r.report.items() if k != "timing"})))
        for r in results
    ]
    text = repr(rows)
    return text, reports


def test_staging_in_a_worker_stores_exactly_what_staging_in_process_does(
    db: Database, export: tuple[Path, dict[str, Any]]
) -> None:
    in_process = _load_all(db, export, worker_min_bytes=None)
    _empty_all_tables(db)
    in_worker = _load_all(db, export, worker_min_bytes=0)
    assert in_worker[1] == in_process[1]  # reports: counts, problems, warnings, quality
    assert in_worker[0] == in_process[0]  # every row of the store and of quarantine
    assert "batch-0" in in_process[0]


def test_a_file_error_in_the_worker_fails_the_batch_and_leaves_nothing(
    db: Database, export: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    ingestion = _setup(db)
    ingestion.worker_min_bytes = 0
    name, path = next((n, p) for n, p in _files(export) if p.suffix == ".csv")
    lines = path.read_bytes().splitlines()
    broken = tmp_path / path.name
    # a required column missing: the adapter refuses the file from the worker
    header = lines[0].decode("ascii").split(",")
    broken.write_bytes(b"\n".join(b",".join(line.split(b",")[1:]) for line in lines) + b"\n")
    feed = name.split("/")[1]
    with pytest.raises(InvalidInput) as raised:
        ingestion.ingest_file(feed, broken)
    assert raised.value.problems, "the worker's problems reach the caller"
    assert header[0] in str(raised.value)
    [batch] = ingestion.loader.list(feed)
    assert batch.status is BatchStatus.FAILED
    with db.engine.connect() as conn:
        assert conn.execute(select(resources.c.id)).first() is None


def test_a_worker_that_dies_is_an_error_not_an_early_end() -> None:
    def dies() -> Any:
        os._exit(3)

    ctx = StageContext(frozenset(), date(2026, 1, 1), "", "", "b")
    worker = StagedInWorker(dies, ctx)
    with pytest.raises(Exception, match="exit code 3"):
        list(worker)
    worker.close()


def test_units_cross_to_the_batch_process_unchanged() -> None:
    """What the worker packs for the queue unpacks to the unit it staged, whatever its kind."""
    import pickle

    from joinedup.errors import Problem
    from joinedup.labels import CATEGORY_SYSTEM
    from joinedup.sources.contract import Accepted, Rejected, Warning_
    from joinedup.sources.staging import pack, stage, unpack

    ctx = StageContext(
        frozenset({"demographics", "carers"}),
        date(2026, 11, 1),
        "2026-11-01T12:00:00Z",
        "urn:joinedup:source:WCCASC/wccasc-persons/",
        "b1",
    )
    security = {"security": [{"system": CATEGORY_SYSTEM, "code": "demographics"}]}
    patient = {
        "resourceType": "Patient",
        "id": "p1",
        "meta": security,
        "identifier": [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}],
        "name": [{"family": "Smith-Jones", "given": ["Ann"]}],
        "birthDate": "2030-01-01",
    }
    flag = {
        "resourceType": "Flag",
        "id": "f1",
        "meta": {"security": [{"system": CATEGORY_SYSTEM, "code": "carers"}]},
        "status": "active",
        "subject": {"reference": "Patient/p1"},
    }
    outcomes = [
        Accepted(1, "s1", (patient, flag), (Warning_("odd", "row 1", "value"),)),
        Accepted(2, "s2", ({**patient, "id": "bad id"},), ()),
        Rejected(3, "raw,row", (Problem("bad", "row 3"),), "s3", {"line": 4}),
    ]
    staged = [stage(o, ctx) for o in outcomes]
    packed = [pack(st) for st in staged]
    assert isinstance(packed[0], tuple)  # the common case travels flat
    assert staged[0].warnings
    assert staged[0].quality is not None
    assert [unpack(pickle.loads(pickle.dumps(p))) for p in packed] == staged
