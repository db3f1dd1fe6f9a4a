"""The FHIR R4 adapter: bundles, single resources and NDJSON, validated, labelled, re-keyed."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.labels import CATEGORY_SYSTEM
from joinedup.sources.adapters import FileRejected
from joinedup.sources.adapters.jsonstream import JsonStream
from joinedup.sources.contract import Accepted, Rejected
from joinedup.sources.mapping.ids import stable_id
from tests.unit.sources.support import FIXTURES, accepted, problems, read, rejected, spec

CONFIG = spec(
    """
format: fhir
organisation: RWX
feed: rwx-fhir
identifier_systems: {"urn:oid:1.2.3": "https://fhir.wessex.example/Id/rwx-mrn"}
labels:
  - {resource: Patient, category: demographics}
  - {resource: Condition, systems: ["http://snomed.info/sct"], codes: ["35489007"], category: mental-health, sensitivity: R}
  - {resource: Condition, category: conditions}
  - {resource: Encounter, category: encounters}
"""
)


def _bundle(*entries: dict[str, Any], kind: str = "collection") -> bytes:
    return json.dumps({"resourceType": "Bundle", "type": kind, "entry": list(entries)}).encode()


def _patient(pid: str = "p1", **extra: Any) -> dict[str, Any]:
    return {"resourceType": "Patient", "id": pid, **extra}


def _category(resource: dict[str, Any]) -> str:
    return str(next(c["code"] for c in resource["meta"]["security"] if c["system"] == CATEGORY_SYSTEM))


def test_bundle_entries_are_rekeyed_labelled_and_references_follow() -> None:
    data = _bundle(
        {"fullUrl": "urn:uuid:c1", "resource": {
            "resourceType": "Condition", "subject": {"reference": "urn:uuid:p"},
            "code": {"coding": [{"system": "http://snomed.info/sct", "code": "35489007"}]}}},
        {"fullUrl": "urn:uuid:p", "resource": _patient(
            "p1", identifier=[{"system": "urn:oid:1.2.3", "value": "RWX1"}],
            meta={"versionId": "7", "security": [{"system": "urn:other", "code": "x"}]})},
        {"resource": {"resourceType": "Encounter", "id": "e1", "status": "finished",
                      "class": {"code": "AMB"}, "subject": {"reference": "Patient/p1"}}},
        kind="transaction",
    )
    _, outcomes = read(CONFIG, data)
    condition, patient, encounter = (o.resources[0] for o in accepted(outcomes))
    patient_id = stable_id("RWX", "rwx-fhir", "Patient", "p1")
    assert patient["id"] == patient_id
    assert condition["subject"] == {"reference": f"Patient/{patient_id}"}  # a forward urn reference
    assert encounter["subject"] == {"reference": f"Patient/{patient_id}"}
    assert _category(condition) == "mental-health"
    assert _category(encounter) == "encounters"
    assert patient["identifier"] == [{"system": "https://fhir.wessex.example/Id/rwx-mrn", "value": "RWX1"}]
    assert "versionId" not in patient["meta"]
    assert {"system": "urn:other", "code": "x"} in patient["meta"]["security"]
    assert [o.source_id for o in accepted(outcomes)] == ["Condition/urn:uuid:c1", "Patient/p1", "Encounter/e1"]


def test_the_malformed_fixture_rejects_the_invalid_entry_and_stops_at_broken_json() -> None:
    reading, outcomes = read(CONFIG, FIXTURES / "malformed-bundle.json")
    assert [type(o) for o in outcomes] == [Accepted, Rejected, Rejected]
    assert problems(outcomes[1])[0].startswith("entry 2 (line 3): Patient.birthDate: Date value string")
    with pytest.raises(json.JSONDecodeError) as whole:  # the json module agrees on where
        json.loads((FIXTURES / "malformed-bundle.json").read_text())
    assert problems(outcomes[2]) == [
        f"entry 3, line {whole.value.lineno}, column {whole.value.colno}: malformed JSON:"
        " Expecting property name enclosed in double quotes"
    ]
    assert reading.warnings[0].code == "stopped"


def test_json_that_is_not_fhir_at_all_refuses_the_file_with_line_and_column() -> None:
    for data, where in [
        (b"", "line 1, column 1"),
        (b"[1, 2]", "line 1, column 1"),
        (b'{"resourceType": "Bundle",\n "type" "batch"}', "line 2, column 9"),
    ]:
        with pytest.raises(FileRejected) as caught:
            read(CONFIG, data)
        assert caught.value.problems[0].location == where


def test_single_resources_and_ndjson() -> None:
    _, outcomes = read(CONFIG, json.dumps(_patient("solo")).encode())
    assert [o.source_id for o in accepted(outcomes)] == ["Patient/solo"]
    ndjson = b"\n".join(json.dumps(_patient(f"p{i}")).encode() for i in range(3)) + b"\n"
    _, outcomes = read(CONFIG, ndjson)
    assert [o.unit for o in accepted(outcomes)] == [1, 2, 3]


def test_unlabelled_types_deletes_duplicates_bad_bundle_types_and_nhs_numbers() -> None:
    data = _bundle(
        {"resource": {"resourceType": "Flag", "id": "f", "status": "active", "code": {"text": "x"},
                      "subject": {"reference": "Patient/p1"}}},
        {"request": {"method": "DELETE", "url": "Patient/p9"}},
        {"resource": _patient("p1")},
        {"resource": _patient("p1")},
        {"resource": _patient("p2", identifier=[{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765918"}])},
        {"resource": _patient("p3", birthDate="2030-01-01")},
        {"resource": {"resourceType": "Patient"}},
    )
    _, outcomes = read(CONFIG, data)
    bad = {o.unit: problems(o)[0] for o in rejected(outcomes)}
    assert "declares no data category for Flag" in bad[1]
    assert "DELETE entries are not accepted" in bad[2]
    assert "duplicate resource: Patient/p1 is also entry 3" in bad[4]
    assert "NHS number fails the Modulus 11 check" in bad[5]
    assert "birthDate is in the future" in bad[6]
    assert "neither an id nor a fullUrl" in bad[7]
    assert len(outcomes) == 7
    with pytest.raises(FileRejected, match="cannot be ingested"):
        read(CONFIG, _bundle({"resource": _patient()}, kind="history"))


def test_a_rejected_entry_can_be_reprocessed() -> None:
    from joinedup.sources.adapters import adapter_for

    _, outcomes = read(CONFIG, _bundle({"resource": _patient("p1", gender="female", birthDate="1980-13-01")}))
    (bad,) = rejected(outcomes)
    fixed = json.loads(bad.raw)
    fixed["resource"]["birthDate"] = "1980-12-01"
    again = adapter_for("fhir", CONFIG).reprocess(json.dumps(fixed), bad.unit, bad.extra)
    assert isinstance(again, Accepted)


ENTRY = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@settings(max_examples=60)
@given(
    st.lists(st.dictionaries(st.text(max_size=5), ENTRY, max_size=4), max_size=12),
    st.integers(min_value=1, max_value=64),
    st.booleans(),
)
def test_streamed_entries_equal_json_loads(entries: list[dict[str, Any]], chunk: int, pretty: bool) -> None:
    """The incremental reader and the json module agree on every entry, whatever the chunking."""
    document = {"resourceType": "Bundle", "type": "collection", "entry": entries, "total": len(entries)}
    text = json.dumps(document, indent=2 if pretty else None, ensure_ascii=False)
    stream = JsonStream(io.BytesIO(text.encode()), chunk=chunk)
    units = list(stream.units())
    assert [u.value for u in units] == json.loads(text)["entry"]
    assert all(not u.error for u in units)
    assert stream.top.members == {"resourceType": "Bundle", "type": "collection", "total": len(entries)}
    lines = text.split("\n")
    for unit in units:  # each unit's line and column point at its opening brace
        assert lines[unit.line - 1][unit.column - 1] == "{"
