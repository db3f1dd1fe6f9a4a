"""The HL7 v2 adapter: ADT events to Patient + Encounter, one outcome per message."""

from __future__ import annotations

import pytest
from fhir.resources.R4B import get_fhir_model_class

from joinedup.sources.contract import Accepted, Rejected
from joinedup.sources.mapping.ids import stable_id
from tests.unit.sources.support import FIXTURES, accepted, only, problems, read, spec

CONFIG = spec(
    """
format: hl7v2
organisation: RWX
feed: rwx-adt
patient_authority: RWX
authorities: {NHS: "https://fhir.nhs.uk/Id/nhs-number", RWX: "https://fhir.wessex.example/Id/rwx-mrn"}
location_system: https://fhir.wessex.example/Id/rwx-ward
visit_system: https://fhir.wessex.example/Id/rwx-visit
practitioner_system: https://fhir.wessex.example/Id/practitioner
"""
)
MSH = "MSH|^~\\&|PAS|RWX|JOINEDUP|JHUB|202601010900||ADT^{event}^ADT_A01|{control}|P|2.5"
PID = "PID|1||9434765919^^^NHS^NH~RWX0000001^^^RWX^MR||SMITH^John^Paul||19800102|M|||1 High St^^Casterbridge^^wx1 5qw^GBR^H||07700 900001|||||||||A^^NHSETH"


def _pv1(klass: str, end: str) -> str:
    fields = [""] * 46
    fields[0], fields[1], fields[2], fields[3] = "PV1", "1", klass, "AMU^2^B4^RWX"
    fields[7], fields[19], fields[44], fields[45] = "RWX-P001^Fox^Rachel", "V1", "202601010900", end
    return "|".join(fields)


def _message(event: str = "A01", control: str = "M1", klass: str = "I", end: str = "", pid: str = PID) -> str:
    segments = [MSH.format(event=event, control=control), f"EVN|{event}|202601010900", pid]
    if event not in ("A28", "A31"):
        segments.append(_pv1(klass, end))
    return "\r".join(segments) + "\r"


@pytest.mark.parametrize(
    ("event", "end", "status"),
    [("A01", "", "in-progress"), ("A02", "", "in-progress"), ("A03", "202601021000", "finished"),
     ("A04", "", "arrived"), ("A08", "", "in-progress"), ("A08", "202601021000", "finished")],
)
def test_encounter_events_give_patient_and_encounter(event: str, end: str, status: str) -> None:
    _, outcomes = read(CONFIG, _message(event, end=end).encode())
    (message,) = accepted(outcomes)
    patient = only(message.resources, "Patient")
    encounter = only(message.resources, "Encounter")
    assert message.source_id == "M1"
    assert patient["id"] == stable_id("RWX", "rwx-adt", "Patient", "RWX0000001")
    assert patient["name"] == [{"family": "SMITH", "given": ["John", "Paul"]}]
    assert patient["birthDate"] == "1980-01-02"
    assert patient["address"][0]["postalCode"] == "WX1 5QW"
    assert patient["extension"][0]["valueCodeableConcept"]["coding"][0]["code"] == "A"
    assert encounter["status"] == status
    assert encounter["class"]["code"] == "IMP"
    assert encounter["subject"] == {"reference": f"Patient/{patient['id']}"}
    assert encounter["period"]["start"] == "2026-01-01T09:00:00+00:00"
    assert encounter["location"][0]["location"]["display"] == "AMU/2/B4"
    assert encounter["participant"][0]["individual"]["identifier"]["value"] == "RWX-P001"
    for resource in message.resources:
        get_fhir_model_class(resource["resourceType"]).model_validate(resource)


def test_person_events_give_a_patient_only() -> None:
    _, outcomes = read(CONFIG, _message("A28").encode() + b"\n" + _message("A31", control="M2").encode())
    assert [[r["resourceType"] for r in o.resources] for o in accepted(outcomes)] == [["Patient"], ["Patient"]]


@pytest.mark.parametrize("separator", ["\r", "\n", "\r\n"])
def test_any_segment_separator_and_mllp_framing(separator: str) -> None:
    messages = [_message(control=f"M{i}") for i in range(3)]
    text = separator.join(m.rstrip("\r").replace("\r", separator) for m in messages)
    framed = b"".join(b"\x0b" + m.encode() + b"\x1c\r" for m in text.split(separator + "MSH"))
    for data in (text.encode(), framed.replace(b"\x0bPID", b"\x0bMSH")):
        _, outcomes = read(CONFIG, data)
        assert [o.source_id for o in outcomes][:1] == ["M0"]
    _, outcomes = read(CONFIG, text.encode())
    assert [o.source_id for o in accepted(outcomes)] == ["M0", "M1", "M2"]


def test_the_broken_segments_fixture() -> None:
    _, outcomes = read(CONFIG, FIXTURES / "broken-segments.hl7")
    assert [type(o) for o in outcomes] == [Rejected, Rejected]
    assert any("PID appears 2 times" in p for p in problems(outcomes[0]))
    assert any(
        "message 2 (line 9): broken segment: 'pv1 broken s…'" in p for p in problems(outcomes[1])
    ), problems(outcomes[1])


def test_missing_msh_missing_pid_bad_fields_and_duplicates_are_located() -> None:
    no_msh = "EVN|A01|202601010900\rPID|1||X^^^RWX^MR\r"
    no_pid = _message().replace(PID + "\r", "")
    bad_dob = _message(control="M3", pid=PID.replace("19800102", "19801302"))
    bad_nhs = _message(control="M4", pid=PID.replace("9434765919", "9434765918"))
    bad_class = _message(control="M5", klass="Z")
    unsupported = _message(control="M6").replace("ADT^A01", "ORU^R01")
    data = "\n".join([no_msh, no_pid, bad_dob, bad_nhs, bad_class, unsupported, _message("A01", "M7"), _message("A01", "M7")])
    _, outcomes = read(CONFIG, data.encode())
    found = [problems(o) if isinstance(o, Rejected) else [] for o in outcomes]
    assert found[0] == ["message 1 (line 1): the message does not start with an MSH segment"]
    assert "message 2: the message has no PID segment" in found[1]
    assert any(p.startswith("message 3 (line 8), PID-7: date of birth: not a real date") for p in found[2]), found[2]
    assert any("PID-3: NHS number fails the Modulus 11 check" in p for p in found[3])
    assert any("PV1-2: patient class 'Z'" in p for p in found[4])
    assert any("MSH-9: message type 'ORU^R01' is not supported" in p for p in found[5])
    assert found[6] == []
    assert any("duplicate message control id: also message 7" in p for p in found[7])
    assert len(outcomes) == 8


def test_escapes_are_undone() -> None:
    pid = PID.replace("SMITH^John", "O\\S\\BRIEN\\T\\CO^John")
    _, outcomes = read(CONFIG, _message(pid=pid).encode())
    (message,) = accepted(outcomes)
    assert only(message.resources, "Patient")["name"][0]["family"] == "O^BRIEN&CO"


def test_a_rejected_message_can_be_reprocessed() -> None:
    from joinedup.sources.adapters import adapter_for

    _, outcomes = read(CONFIG, _message(klass="Z").encode())
    (bad,) = outcomes
    assert isinstance(bad, Rejected)
    again = adapter_for("hl7v2", CONFIG).reprocess(bad.raw.replace("|Z|", "|I|"), bad.unit, bad.extra)
    assert isinstance(again, Accepted)
