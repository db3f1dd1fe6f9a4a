"""The CSV adapter: one outcome per row, every bad input located, nothing dropped."""

from __future__ import annotations

from typing import Any

import pytest
from fhir.resources.R4B import get_fhir_model_class
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from joinedup.sources.adapters import FileRejected, adapter_for
from joinedup.sources.contract import Accepted, Rejected
from joinedup.sources.mapping import CsvMapping
from joinedup.sources.mapping.ids import stable_id
from tests.unit.sources.support import (
    FIXTURES,
    TODAY,
    accepted,
    fixture_spec,
    only,
    problems,
    read,
    rejected,
    spec,
)

PEOPLE = fixture_spec("people.yaml")
HEADER = b"ID,NAME,DOB,NHS,POSTCODE\r\n"


def _with_encoding(encoding: str) -> CsvMapping:
    text = (FIXTURES / "people.yaml").read_text().replace("encoding: utf-8", f"encoding: {encoding}")
    mapping = spec(text)
    assert isinstance(mapping, CsvMapping)
    return mapping


def test_good_rows_become_patients_with_labels_and_stable_ids() -> None:
    _, outcomes = read(PEOPLE, HEADER + b'1,"SMITH, john",01/02/1980,943 476 5919,so16 6yd\r\n')
    (row,) = accepted(outcomes)
    patient = only(row.resources, "Patient")
    assert patient["id"] == stable_id("WCCASC", "test-people", "Patient", "1")
    assert patient["name"] == [{"family": "Smith", "given": ["John"]}]
    assert patient["birthDate"] == "1980-02-01"
    assert {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"} in patient["identifier"]
    assert patient["address"] == [{"use": "home", "postalCode": "SO16 6YD"}]
    assert [c["code"] for c in patient["meta"]["security"]] == ["demographics", "N"]
    get_fhir_model_class("Patient").model_validate(patient)


def test_the_truncated_fixture_gives_one_outcome_per_row_each_located() -> None:
    reading, outcomes = read(PEOPLE, FIXTURES / "truncated.csv")
    assert [o.unit for o in outcomes] == [1, 2, 3, 4, 5]
    assert [type(o) for o in outcomes] == [Accepted, Rejected, Rejected, Rejected, Rejected]
    assert problems(outcomes[1]) == [
        "row 2, column DOB: unparseable date (shape '99/99/9999'): not a real date (day is out of range for month)"
    ]
    assert problems(outcomes[2]) == [
        "row 3, column NHS: NHS number fails the Modulus 11 check (shape '9999999999')"
    ]
    assert "duplicate source id: the same ID as row 1" in problems(outcomes[3])[0]
    assert problems(outcomes[4])[0].startswith("row 5 (line 6): the row is cut short: 3 of 5 fields")
    last = outcomes[4]
    assert isinstance(last, Rejected)
    assert last.raw == '4,"O\'BRIEN, Sean",05/06/1970'
    assert last.extra["line"] == 6
    assert reading.units == 5


def test_a_file_ending_inside_quotes_rejects_its_last_row() -> None:
    _, outcomes = read(PEOPLE, HEADER + b'1,"Lee, Ann",01/01/1990,,\r\n2,"Cut, Sho')
    assert isinstance(outcomes[0], Accepted)
    assert "ends inside a quoted field" in problems(outcomes[1])[0]


def test_quoted_fields_may_hold_commas_line_breaks_and_quotes() -> None:
    data = HEADER + b'1,"LEE,\r\n ""Annie"" Ann",01/01/1990,,\r\n2,"Ng, Bo",02/02/1992,,\r\n'
    _, outcomes = read(PEOPLE, data)
    first, second = accepted(outcomes)
    name = only(first.resources, "Patient")["name"][0]
    assert name["family"] == "Lee"
    assert name["given"][-1] == "Ann"
    assert len(name["given"]) == 2  # the quoted line break and the doubled quotes stayed inside the field
    assert second.unit == 2


def test_a_stray_quote_rejects_only_its_row() -> None:
    _, outcomes = read(PEOPLE, HEADER + b'1,"Lee" Ann,01/01/1990,,\r\n2,"Ng, Bo",02/02/1992,,\r\n')
    assert "badly quoted field" in problems(outcomes[0])[0]
    assert isinstance(outcomes[1], Accepted)


def test_missing_required_column_refuses_the_file_naming_it_and_extra_columns_warn() -> None:
    with pytest.raises(FileRejected) as caught:
        read(PEOPLE, FIXTURES / "missing-column.csv")
    assert [str(p) for p in caught.value.problems] == ["header: required column 'DOB' is missing"]
    reading, outcomes = read(PEOPLE, b"ID,NAME,DOB,COLOUR\n1,Ann Lee,01/01/1990,blue\n")
    assert isinstance(outcomes[0], Accepted)
    messages = [w.message for w in reading.warnings]
    assert "columns not in the mapping are ignored: COLOUR" in messages
    assert "optional column 'NHS' is absent; its fields stay empty" in messages


def test_extra_columns_can_refuse_the_file_when_the_feed_says_so() -> None:
    text = (FIXTURES / "people.yaml").read_text().replace("encoding: utf-8", "extra_columns: reject")
    with pytest.raises(FileRejected, match="does not fit"):
        read(spec(text), b"ID,NAME,DOB,COLOUR\n1,Ann Lee,01/01/1990,blue\n")


def test_an_undecodable_byte_rejects_its_row_with_the_byte_offset() -> None:
    _, outcomes = read(PEOPLE, FIXTURES / "windows-1252-declared-utf8.csv")
    offset = (FIXTURES / "windows-1252-declared-utf8.csv").read_bytes().index(b"\xeb")
    bad, good = outcomes
    assert problems(bad) == [
        f"row 1 (line 2): byte 0xEB at byte offset {offset} is not valid UTF-8"
        " (the file may be Windows-1252: declare that encoding, or auto)"
    ]
    assert isinstance(bad, Rejected)
    assert "Bront\\xeb" in bad.raw
    assert isinstance(good, Accepted)


def test_windows_1252_and_auto_decode_the_same_file() -> None:
    data = (FIXTURES / "windows-1252-declared-utf8.csv").read_bytes()
    for encoding in ("windows-1252", "auto"):
        reading, outcomes = read(_with_encoding(encoding), data)
        names = [only(o.resources, "Patient")["name"][0]["family"] for o in accepted(outcomes)]
        assert names == ["Brontë", "Eyre"]
    assert any("read as Windows-1252" in w.message for w in reading.warnings)


def test_byte_order_marks() -> None:
    bom = b"\xef\xbb\xbf" + HEADER + b"1,Ann Lee,01/01/1990,,\r\n"
    reading, outcomes = read(PEOPLE, bom)
    assert isinstance(outcomes[0], Accepted)
    assert [w.location for w in reading.warnings] == ["byte 0"]
    with pytest.raises(FileRejected) as caught:
        read(_with_encoding("windows-1252"), bom)
    assert "byte order mark (byte 0)" in str(caught.value)
    with pytest.raises(FileRejected, match="encoding"):
        read(PEOPLE, "ID,NAME\n".encode("utf-16"))


def test_utf8_read_as_windows_1252_is_flagged() -> None:
    _, outcomes = read(_with_encoding("windows-1252"), HEADER + "1,Zoë Lee,01/01/1990,,\n".encode())
    (row,) = accepted(outcomes)
    assert row.warnings[0].code == "encoding"
    assert "reads as UTF-8" in row.warnings[0].message


def test_empty_file_and_blank_lines() -> None:
    with pytest.raises(FileRejected, match="empty"):
        read(PEOPLE, b"")
    _, outcomes = read(PEOPLE, HEADER + b"\r\n1,Ann Lee,01/01/1990,,\r\n\r\n")
    assert [o.unit for o in outcomes] == [1]


def test_warnings_keep_the_row_and_say_where() -> None:
    _, outcomes = read(PEOPLE, HEADER + b"1,Ann Lee,01/01/1990,,SO16\r\n")
    (row,) = accepted(outcomes)
    assert [(w.location, w.code) for w in row.warnings] == [("row 1, column POSTCODE", "invalid-value")]
    assert "address" not in only(row.resources, "Patient")


def test_future_dates_and_required_values() -> None:
    _, outcomes = read(PEOPLE, HEADER + b"1,Ann Lee,01/01/2031,,\r\n2,Bo Ng,,,\r\n")
    assert problems(outcomes[0]) == ["row 1, column DOB: date is in the future"]
    assert problems(outcomes[1]) == ["row 2, column DOB: a value is required"]


def test_a_rejected_row_can_be_reprocessed_after_the_mapping_is_fixed() -> None:
    _, outcomes = read(PEOPLE, HEADER + b"1,Ann Lee,1990-01-31,,\r\n")
    (bad,) = rejected(outcomes)
    fixed = spec((FIXTURES / "people.yaml").read_text().replace("[dd/mm/yyyy]", "[dd/mm/yyyy, yyyy-mm-dd]"))
    again = adapter_for(fixed.format, fixed, today=TODAY).reprocess(bad.raw, bad.unit, bad.extra)
    assert isinstance(again, Accepted)
    assert only(again.resources, "Patient")["birthDate"] == "1990-01-31"


ACTIVITY = """
format: csv
organisation: WCCASC
feed: test-services
source_id: SID
settings: {date_formats: [dd/mm/yyyy]}
columns: {SID: required, PID: required, START: required, END: required, KIND: optional}
code_maps:
  kind: {target_system: "http://snomed.info/sct", unmapped: pass-through, source_system: "urn:local", map: {"HC": "123"}}
resources:
  - kind: EpisodeOfCare
    category: social-care-episodes
    fields:
      - {target: EpisodeOfCare.status, value: finished, when: END}
      - {target: EpisodeOfCare.status, value: active, unless: END}
      - {target: EpisodeOfCare.patient, column: PID, transforms: [{reference: {kind: Patient, feed: test-people}}]}
      - {target: EpisodeOfCare.type, column: KIND, transforms: [{code_map: kind}]}
      - {target: EpisodeOfCare.period.start, column: START, transforms: [date]}
      - {target: EpisodeOfCare.period.end, column: END, transforms: [date]}
"""


def test_activity_rows_refer_to_the_people_feeds_patients_and_choose_constants_by_condition() -> None:
    _, outcomes = read(spec(ACTIVITY), b"SID,PID,START,END,KIND\nS1,1,01/01/2020,,HC\nS2,1,01/01/2020,02/02/2021,DP\n")
    open_, closed = (only(o.resources, "EpisodeOfCare") for o in accepted(outcomes))
    assert open_["status"] == "active"
    assert closed["status"] == "finished"
    assert open_["patient"] == {"reference": f"Patient/{stable_id('WCCASC', 'test-people', 'Patient', '1')}"}
    assert open_["type"] == [{"coding": [{"system": "http://snomed.info/sct", "code": "123"}]}]
    assert closed["type"] == [{"coding": [{"system": "urn:local", "code": "DP"}]}]
    for resource in (open_, closed):
        get_fhir_model_class("EpisodeOfCare").model_validate(resource)


ROW = st.fixed_dictionaries(
    {
        "id": st.from_regex(r"\A[A-Z0-9]{1,8}\Z"),
        "name": st.from_regex(r"\A[A-Za-z]{1,10}, [A-Za-z]{1,10}\Z"),
        "dob": st.dates(min_value=__import__("datetime").date(1900, 1, 1), max_value=TODAY),
        "postcode": st.sampled_from(["", "so16 6yd", "WX15HL", "nonsense"]),
    }
)


@settings(max_examples=40, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ROW, max_size=30))
def test_any_file_gives_read_equals_accepted_plus_rejected_and_valid_fhir(rows: list[dict[str, Any]]) -> None:
    body = "".join(
        f'{r["id"]},"{r["name"]}",{r["dob"]:%d/%m/%Y},,{r["postcode"]}\r\n' for r in rows
    )
    _, outcomes = read(PEOPLE, HEADER + body.encode())
    assert len(outcomes) == len(rows)
    seen: set[str] = set()
    for row, outcome in zip(rows, outcomes, strict=True):
        if row["id"] in seen:
            assert isinstance(outcome, Rejected)
            continue
        seen.add(row["id"])
        assert isinstance(outcome, Accepted)
        for resource in outcome.resources:
            get_fhir_model_class(resource["resourceType"]).model_validate(resource)
