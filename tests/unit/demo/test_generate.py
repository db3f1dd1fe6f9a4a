"""The generated exports: determinism, ground truth, deliberate problems, FHIR and HL7 validity."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from collections import Counter
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

import hl7
import pytest

from joinedup.demo.area import build_area
from joinedup.demo.generate import generate
from joinedup.demo.population import REFERENCE_DATE, build_population
from joinedup.demo.validate import fhir_problems
from joinedup.nhs_number import NHS_NUMBER_SYSTEM, is_valid, normalise

from .conftest import PEOPLE, SEED, Generated

ENCODINGS = {"utf-8": "utf-8", "utf-8 with BOM": "utf-8-sig", "windows-1252": "cp1252"}

PERSON_FILES: dict[str, tuple[str, str, str, Callable[[str], datetime]]] = {
    # file -> (source id column, NHS number column, DOB column, DOB parser)
    "WCCASC/persons.csv": ("PERSON_ID", "NHS_NO", "DOB", lambda s: datetime.strptime(s, "%d/%m/%Y")),
    "WCCCS/people.csv": ("ChildID", "NHSNumber", "DateOfBirth",
                         lambda s: datetime.strptime(s, "%d/%m/%Y %H:%M")),
    "WPOLICE/nominals.csv": ("NOMINAL_REF", "NHS_NUMBER", "DOB",
                             lambda s: datetime.strptime(s, "%Y-%m-%d")),
    "WCARERS/clients.csv": ("Client Ref", "NHS Number", "Date of Birth",
                            lambda s: datetime.strptime(s, "%d %b %Y")),
    "WHOMEHELP/clients.csv": ("id", "nhs_no", "dob", lambda s: datetime.strptime(s, "%d/%m/%y")),
}


def _files(g: Generated, fmt: str) -> list[dict[str, object]]:
    return [f for f in g.manifest["files"] if f["format"] == fmt]


def _csv_rows(g: Generated, rel: str) -> list[dict[str, str]]:
    entry = next(f for f in g.manifest["files"] if f["path"] == rel)
    text = (g.root / rel).read_bytes().decode(ENCODINGS[str(entry["encoding"])])
    return list(csv.DictReader(io.StringIO(text)))


def _bundle_entries(g: Generated, rel: str) -> list[dict[str, object]]:
    return json.loads((g.root / rel).read_text("utf-8"))["entry"]  # type: ignore[no-any-return]


def _hl7_messages(g: Generated, rel: str) -> list[hl7.Message]:
    # Bytes, not read_text: universal newlines would turn the \r segment separators into \n.
    text = (g.root / rel).read_bytes().decode("utf-8")
    return [hl7.parse(m) for m in hl7.split_file(text)]


def _truth(g: Generated) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO((g.root / "ground_truth.csv").read_text("utf-8"))))


def _bad(g: Generated, problem: str) -> set[tuple[str, int]]:
    return {(b["file"], b["row"]) for b in g.manifest["bad_rows"] if b["problem"] == problem}


def test_same_seed_gives_byte_identical_output(generated: Generated, tmp_path: Path) -> None:
    again = tmp_path / "again"
    generate(build_area(SEED), build_population(SEED, PEOPLE), again)
    first = sorted(p.relative_to(generated.root) for p in generated.root.rglob("*") if p.is_file())
    second = sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    assert first == second
    for rel in first:
        assert (generated.root / rel).read_bytes() == (again / rel).read_bytes(), rel


def test_another_seed_gives_other_output(generated: Generated, tmp_path: Path) -> None:
    other = tmp_path / "other"
    generate(build_area(SEED + 1), build_population(SEED + 1, PEOPLE), other)
    assert (other / "ground_truth.csv").read_bytes() != (generated.root / "ground_truth.csv").read_bytes()


def test_manifest_lists_every_file_with_its_hash(generated: Generated) -> None:
    listed = {f["path"]: f for f in generated.manifest["files"]}
    on_disk = {
        str(p.relative_to(generated.root)) for p in generated.root.rglob("*") if p.is_file()
    } - {"manifest.json", "ground_truth.csv"}
    assert set(listed) == on_disk
    for rel, entry in listed.items():
        assert hashlib.sha256((generated.root / rel).read_bytes()).hexdigest() == entry["sha256"]
    assert generated.manifest["seed"] == SEED
    assert generated.manifest["people"] == PEOPLE
    formats = {f["format"] for f in listed.values()}
    assert formats == {"csv", "fhir-r4-bundle", "hl7v2-er7"}


def test_every_source_person_record_is_in_the_ground_truth_once(generated: Generated) -> None:
    truth = _truth(generated)
    keys = [(t["org_code"], t["record_type"], t["source_record_id"]) for t in truth]
    assert len(keys) == len(set(keys)), "a source record maps to more than one person"
    index = {k: t["person_id"] for k, t in zip(keys, truth, strict=True)}
    assert all(t["person_id"] in {p.id for p in generated.population.people} for t in truth)
    missing_id_rows = _bad(generated, "missing-source-id")
    seen: Counter[str] = Counter()
    for rel, (id_col, *_rest) in PERSON_FILES.items():
        org = rel.split("/")[0]
        for number, row in enumerate(_csv_rows(generated, rel), start=1):
            if (rel, number) in missing_id_rows:
                assert row[id_col] == ""
                continue
            assert (org, "csv-person", row[id_col]) in index, (rel, number)
            seen[org] += 1
    for f in _files(generated, "fhir-r4-bundle"):
        org = str(f["org"])
        for entry in _bundle_entries(generated, str(f["path"])):
            resource = entry["resource"]
            if resource["resourceType"] == "Patient":  # type: ignore[index]
                assert (org, "fhir-patient", resource["id"]) in index  # type: ignore[index]
                seen[org] += 1
    for f in _files(generated, "hl7v2-er7"):
        for message in _hl7_messages(generated, str(f["path"])):
            mrn = [str(r[0]) for r in message.segment("PID")[3] if str(r[4]) == "MR"]
            assert len(mrn) == 1
            assert ("RWX", "hl7v2-patient", mrn[0]) in index
    quality = generated.manifest["data_quality"]
    for org, stats in quality.items():
        assert seen[org] >= stats["records"], org


def test_organisations_overlap(generated: Generated) -> None:
    orgs_per_person: dict[str, set[str]] = {}
    for t in _truth(generated):
        orgs_per_person.setdefault(t["person_id"], set()).add(t["org_code"])
    assert sum(len(o) >= 2 for o in orgs_per_person.values()) > 50
    assert any(len(o) >= 4 for o in orgs_per_person.values())
    assert any({"RWX", "WCCASC"} <= o for o in orgs_per_person.values())


def test_nhs_numbers_are_valid_test_range_except_the_listed_bad_rows(generated: Generated) -> None:
    invalid: set[tuple[str, int]] = set()

    def check(rel: str, row: int, raw: str) -> None:
        number = normalise(raw)
        if not is_valid(number) or not 9990000000 <= int(number) <= 9999999999:
            invalid.add((rel, row))

    for rel, (_id, nhs_col, *_rest) in PERSON_FILES.items():
        for number, row in enumerate(_csv_rows(generated, rel), start=1):
            if row[nhs_col]:
                check(rel, number, row[nhs_col])
    for f in _files(generated, "fhir-r4-bundle"):
        for number, entry in enumerate(_bundle_entries(generated, str(f["path"])), start=1):
            for ident in entry["resource"].get("identifier", []):  # type: ignore[attr-defined]
                if ident["system"] == NHS_NUMBER_SYSTEM:
                    check(str(f["path"]), number, ident["value"])
    for f in _files(generated, "hl7v2-er7"):
        for number, message in enumerate(_hl7_messages(generated, str(f["path"])), start=1):
            for rep in message.segment("PID")[3]:
                if str(rep[3]) == "NHS" and str(rep[4]) == "NH":
                    check(str(f["path"]), number, str(rep[0]))
    assert invalid == _bad(generated, "invalid-nhs-number")
    assert len(invalid) >= 3


def test_each_deliberate_problem_is_where_the_manifest_says(generated: Generated) -> None:
    problems = Counter(b["problem"] for b in generated.manifest["bad_rows"])
    assert set(problems) == {
        "invalid-nhs-number", "dob-in-future", "unparseable-date", "missing-source-id",
        "duplicate-source-id", "utf-8-bom", "windows-1252-non-ascii",
    }
    for bad in generated.manifest["bad_rows"]:
        rel, number, problem = bad["file"], bad["row"], bad["problem"]
        raw = (generated.root / rel).read_bytes()
        if problem == "utf-8-bom":
            assert raw.startswith(b"\xef\xbb\xbf")
            continue
        if problem == "windows-1252-non-ascii":
            with pytest.raises(UnicodeDecodeError):
                raw.decode("utf-8")
            row = _csv_rows(generated, rel)[number - 1]
            assert row["Client Ref"] == bad["source_record_id"]
            assert not row["Full Name"].isascii()
            continue
        if rel.endswith(".json"):
            resource = _bundle_entries(generated, rel)[number - 1]["resource"]
            assert resource["id"] == bad["source_record_id"]
            if problem == "dob-in-future":
                assert date.fromisoformat(resource["birthDate"]) > REFERENCE_DATE
            continue
        if rel.endswith(".hl7"):
            pid = _hl7_messages(generated, rel)[number - 1].segment("PID")
            assert str(pid[3][1][0]) == bad["source_record_id"]
            continue
        id_col, _nhs, dob_col, parse = PERSON_FILES[rel]
        rows = _csv_rows(generated, rel)
        row = rows[number - 1]
        if problem == "missing-source-id":
            assert row[id_col] == ""
        else:
            assert row[id_col] == bad["source_record_id"]
        if problem == "duplicate-source-id":
            earlier = [r[id_col] for r in rows[: number - 1]]
            assert bad["source_record_id"] in earlier
        if problem == "dob-in-future":
            assert parse(row[dob_col]).date() > REFERENCE_DATE
        if problem == "unparseable-date":
            with pytest.raises(ValueError):
                parse(row[dob_col])
    # and no other row of a person file has a bad date
    for rel, (_id, _nhs, dob_col, parse) in PERSON_FILES.items():
        bad_rows = {b["row"] for b in generated.manifest["bad_rows"] if b["file"] == rel}
        for number, row in enumerate(_csv_rows(generated, rel), start=1):
            if row[dob_col] and number not in bad_rows:
                assert parse(row[dob_col]).date() <= REFERENCE_DATE


def test_fhir_bundles_validate_against_the_models(generated: Generated) -> None:
    bundles = _files(generated, "fhir-r4-bundle")
    assert {f["org"] for f in bundles} == {"RWX", "RWM", "RWC", "J81001", "J81002"}
    for f in bundles:
        assert fhir_problems(generated.root / str(f["path"])) == []


def test_fhir_resources_carry_no_security_labels_and_both_identifiers(generated: Generated) -> None:
    types: Counter[str] = Counter()
    for f in _files(generated, "fhir-r4-bundle"):
        local = generated.area.org(str(f["org"])).system.patient_id_system
        for entry in _bundle_entries(generated, str(f["path"])):
            resource = entry["resource"]
            types[resource["resourceType"]] += 1  # type: ignore[index]
            assert "security" not in resource.get("meta", {})  # type: ignore[attr-defined]
            if resource["resourceType"] == "Patient":  # type: ignore[index]
                systems = {i["system"] for i in resource["identifier"]}  # type: ignore[index]
                assert local in systems
    for expected in ["Patient", "Encounter", "EpisodeOfCare", "Condition", "MedicationStatement",
                     "AllergyIntolerance", "CarePlan", "Flag", "CareTeam", "Observation"]:
        assert types[expected] > 0, expected


def test_hl7_adt_files_parse_and_carry_the_nhs_number(generated: Generated) -> None:
    triggers: Counter[str] = Counter()
    for f in _files(generated, "hl7v2-er7"):
        raw = (generated.root / str(f["path"])).read_bytes().decode("utf-8")
        assert "\rEVN|" in raw
        messages = _hl7_messages(generated, str(f["path"]))
        assert len(messages) == f["count"]
        for message in messages:
            assert str(message.segment("MSH")[12]) == "2.5"
            triggers[str(message.segment("MSH")[9][0][1])] += 1
            assert str(message.segment("PV1")[1]) == "1"
    assert {"A01", "A03", "A04"} <= set(triggers)
    assert set(triggers) <= {"A01", "A02", "A03", "A04", "A08", "A28", "A31"}


def test_sensitive_records_exist_where_listed(generated: Generated) -> None:
    sensitive = generated.manifest["sensitive_records"]
    categories = {s["category"] for s in sensitive}
    assert {"safeguarding", "sexual-health", "gender-identity"} <= categories
    for s in sensitive:
        if s["file"].endswith(".json"):
            ids = {e["resource"]["id"] for e in _bundle_entries(generated, s["file"])}  # type: ignore[index]
            assert s["id"] in ids
        else:
            rows = _csv_rows(generated, s["file"])
            assert s["id"] in {r["CPPlanID"] for r in rows}
