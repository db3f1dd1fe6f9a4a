"""Every file of a small demo care system through the shipped specs and the right adapter.

Each file: one outcome per unit the manifest counts (read = accepted + rejected),
every accepted resource valid against the R4 models, and exactly the deliberate
bad rows the manifest lists rejected (or warned about) at their location, no
others. So a mapping that silently drops a column, or rejects good rows, fails.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class

from joinedup.demo import generate_to
from joinedup.sources.adapters import adapter_for
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.mapping import bundled_mapping, demo_feed_for, stable_id

REFERENCE_DATE = date(2026, 11, 1)
"""The demo's fixed "today" (joinedup.demo.population.REFERENCE_DATE)."""

EXPECTED = {
    # manifest problem -> what the adapter must say about that unit
    "invalid-nhs-number": "Modulus 11",
    "dob-in-future": "in the future",
    "duplicate-source-id": "duplicate source id",
    "unparseable-date": "unparseable date",
    "missing-source-id": "source id (NOMINAL_REF) is empty",
}


@dataclass
class FileResult:
    outcomes: list[Outcome]
    warnings: list[Warning_] = field(default_factory=list)


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, FileResult]]:
    out = tmp_path_factory.mktemp("demo")
    generate_to(out, seed=7, people=300)
    manifest = json.loads((out / "manifest.json").read_text())
    results = {}
    for item in manifest["files"]:
        name = demo_feed_for(item["path"])
        assert name is not None, f"no shipped spec reads {item['path']}"
        org, feed = name.split("/")
        spec = bundled_mapping(org, feed)
        reading = adapter_for(spec.format, spec, today=REFERENCE_DATE).read(Path(out, item["path"]))
        outcomes = list(reading)
        results[item["path"]] = FileResult(outcomes, reading.warnings)
    return manifest, results


def test_every_file_reads_one_outcome_per_unit(demo: tuple[dict[str, Any], dict[str, FileResult]]) -> None:
    manifest, results = demo
    assert len(results) == len(manifest["files"]) >= 28
    for item in manifest["files"]:
        outcomes = results[item["path"]].outcomes
        assert len(outcomes) == item["count"], item["path"]
        assert [o.unit for o in outcomes] == list(range(1, item["count"] + 1)), item["path"]


def test_exactly_the_deliberate_bad_rows_are_rejected_at_their_location(
    demo: tuple[dict[str, Any], dict[str, FileResult]],
) -> None:
    manifest, results = demo
    deliberate = {(b["file"], b["row"]): b for b in manifest["bad_rows"] if b["problem"] in EXPECTED}
    assert {b["problem"] for b in deliberate.values()} == set(EXPECTED)
    found = {
        (path, o.unit): o
        for path, result in results.items()
        for o in result.outcomes
        if isinstance(o, Rejected)
    }
    assert set(found) == set(deliberate)
    for key, bad in deliberate.items():
        messages = " | ".join(str(p) for p in found[key].problems)
        assert EXPECTED[bad["problem"]] in messages, (bad, messages)
        where = {"csv": "row", "hl7": "message", "json": "entry"}[key[0].rsplit(".", 1)[1]]
        assert f"{where} {key[1]}" in messages, messages


def test_file_level_problems_are_warnings_and_non_ascii_survives(
    demo: tuple[dict[str, Any], dict[str, FileResult]],
) -> None:
    manifest, results = demo
    for bad in manifest["bad_rows"]:
        result = results[bad["file"]]
        if bad["problem"] == "utf-8-bom":
            assert [w.location for w in result.warnings] == ["byte 0"]
        elif bad["problem"] == "windows-1252-non-ascii":
            outcome = result.outcomes[bad["row"] - 1]
            assert isinstance(outcome, Accepted)
            patient = next(r for r in outcome.resources if r["resourceType"] == "Patient")
            name = patient["name"][0]
            assert not " ".join([name["family"], *name["given"]]).isascii(), name


def test_every_accepted_resource_is_valid_r4_with_labels(
    demo: tuple[dict[str, Any], dict[str, FileResult]],
) -> None:
    _, results = demo
    kinds: set[str] = set()
    for path, result in results.items():
        for outcome in result.outcomes:
            if not isinstance(outcome, Accepted):
                continue
            for resource in outcome.resources:
                get_fhir_model_class(resource["resourceType"]).model_validate(resource)
                assert len(resource["meta"]["security"]) >= 2, (path, resource["resourceType"])
                kinds.add(resource["resourceType"])
    assert {"Patient", "Encounter", "EpisodeOfCare", "Flag", "Observation", "Procedure",
            "ServiceRequest", "CarePlan", "Condition", "CareTeam"} <= kinds


def test_activity_references_resolve_to_the_people_feeds_patients(
    demo: tuple[dict[str, Any], dict[str, FileResult]],
) -> None:
    _, results = demo
    patient_ids = {
        r["id"]
        for result in results.values()
        for o in result.outcomes if isinstance(o, Accepted)
        for r in o.resources if r["resourceType"] == "Patient"
    }
    quarantined = set()  # the Patient ids the rejected person rows would have had
    for path, result in results.items():
        org, feed = str(demo_feed_for(path)).split("/")
        for o in result.outcomes:
            if isinstance(o, Rejected) and o.source_id:
                key = o.source_id.removeprefix("Patient/")
                quarantined.add(stable_id(org, feed, "Patient", key))
    references = 0
    for path, result in results.items():
        for outcome in result.outcomes:
            if not isinstance(outcome, Accepted):
                continue
            for resource in outcome.resources:
                ref = (resource.get("subject") or resource.get("patient") or {}).get("reference", "")
                if ref.startswith("Patient/"):
                    references += 1
                    target = ref.removeprefix("Patient/")
                    assert target in patient_ids or target in quarantined, (path, outcome.unit, ref)
    assert references > 1000
