"""Loading feed specs: every problem at once, each with its YAML location and line."""

from __future__ import annotations

import pytest

from joinedup.labels import DataCategory, Sensitivity
from joinedup.sources.mapping import (
    CsvMapping,
    FhirFeedConfig,
    Hl7v2FeedConfig,
    InvalidMapping,
    bundled_mappings,
    load_mapping,
)
from joinedup.sources.mapping.spec import Encoding, Unmapped
from tests.unit.sources.support import FIXTURES, spec

GOOD = """
format: csv
organisation: WCCASC
feed: test-people
source_id: ID
identifier_systems: {local: "https://example.org/Id/p"}
settings: {encoding: windows-1252, date_formats: [dd/mm/yyyy]}
columns: {ID: required, DOB: required, SEX: optional}
code_maps:
  sex:
    target_system: http://hl7.org/fhir/administrative-gender
    unmapped: warn
    map: {"M": male, "F": {code: female, display: Female}}
resources:
  - kind: Patient
    category: demographics
    fields:
      - {target: "Patient.identifier[local]", column: ID}
      - {target: Patient.birthDate, column: DOB, transforms: [date]}
      - {target: Patient.gender, column: SEX, transforms: [{code_map: sex}]}
"""


def _problems(text: str) -> list[str]:
    with pytest.raises(InvalidMapping) as caught:
        spec(text)
    return [str(p) for p in caught.value.problems]


def test_a_good_mapping_loads_into_an_immutable_value() -> None:
    mapping = spec(GOOD)
    assert isinstance(mapping, CsvMapping)
    assert mapping.settings.encoding is Encoding.WINDOWS_1252
    assert mapping.columns == {"ID": True, "DOB": True, "SEX": False}
    assert mapping.code_maps["sex"].unmapped is Unmapped.WARN
    female = mapping.code_maps["sex"].lookup("f")  # case-insensitive by default
    assert female is not None
    assert female.display == "Female"
    assert mapping.categories == {DataCategory.DEMOGRAPHICS}
    with pytest.raises(AttributeError):
        mapping.feed = "other"  # type: ignore[misc]


def test_every_problem_is_reported_at_once_with_its_line() -> None:
    text = """format: csv
organisation: wccasc
feed: Bad Feed
source_id: ID
colour: blue
settings: {date_formats: [dd/mm/yyyy, mm/dd/yyyy], delimiter: ";;"}
columns: {ID: required, DOB: maybe}
resources:
  - kind: Patient
    category: not-a-category
    fields:
      - {target: Patient.postcode, column: ID}
      - {target: Patient.birthDate, column: DOB}
      - {target: Patient.gender, column: SEX}
      - {target: Patient.gender, column: ID, transforms: [{code_map: nowhere}]}
      - {target: Patient.gender, column: ID, transforms: [sparkle]}
"""
    found = _problems(text)
    expected = [
        "organisation (line 2): must be an ODS-style code",
        "feed (line 3): must be lower-case letters",
        "colour (line 5): unknown key 'colour'",
        "settings.delimiter (line 6): must be exactly one character",
        "settings.date_formats (line 6): 'dd/mm/yyyy' and 'mm/dd/yyyy' read the same text",
        "columns.DOB (line 7): must be required or optional",
        "resources[0].category (line 10): must be one of",
        "resources[0].fields[2].column (line 14): column 'SEX' is not declared",
    ]
    for fragment in expected:
        assert any(fragment in p for p in found), (fragment, found)


def test_semantic_problems_name_the_field_and_line() -> None:
    text = GOOD.replace(
        "      - {target: Patient.gender, column: SEX, transforms: [{code_map: sex}]}",
        """      - {target: Patient.postcode, column: SEX}
      - {target: Patient.birthDate, column: SEX}
      - {target: Patient.gender, column: SEX, transforms: [{code_map: nowhere}]}
      - {target: Patient.gender, column: SEX, transforms: [sparkle]}
      - {target: Patient.gender, value: sometimes}
      - {target: "Patient.identifier[passport]", column: SEX}
      - {target: Encounter.status, column: SEX}""",
    )
    found = _problems(text)
    assert any("fields[2]" in p and "has no element 'postcode'" in p for p in found), found
    assert any("fields[3]" in p and "add the date transform" in p for p in found), found
    assert any("fields[4]" in p and "code map 'nowhere' is not declared" in p for p in found), found
    assert any("fields[5]" in p and "unknown transform 'sparkle'" in p for p in found), found
    assert any("fields[6]" in p and "'sometimes' is not one of" in p for p in found), found
    assert any("fields[7]" in p and "unknown identifier slice 'passport'" in p for p in found), found
    assert any("fields[8]" in p and "not an element of the Patient" in p for p in found), found
    assert all("(line " in p for p in found), found


def test_a_resource_missing_a_required_element_is_refused() -> None:
    text = GOOD + """  - kind: Flag
    category: safeguarding
    fields:
      - {target: Flag.status, value: active}
"""
    found = _problems(text)
    assert any("resources[1]" in p and "a Flag needs code" in p for p in found), found


def test_yaml_syntax_errors_and_duplicate_keys_are_located() -> None:
    assert _problems("format: csv\nfeed: [unclosed\n")[0].startswith("line 3")
    found = _problems(GOOD.replace("source_id: ID", "source_id: ID\nsource_id: DOB"))
    assert any("duplicate key 'source_id'" in p and "(line" in p for p in found), found


def test_unquoted_code_map_keys_are_refused_because_yaml_changes_them() -> None:
    found = _problems(GOOD.replace('{"M": male, "F"', '{yes: male, 02: other, "F"'))
    assert sum("must be quoted text" in p for p in found) == 2, found


def test_a_two_digit_year_needs_a_pivot() -> None:
    found = _problems(GOOD.replace("date_formats: [dd/mm/yyyy]", "date_formats: [dd/mm/yy]"))
    assert any("two_digit_year_pivot" in p for p in found), found


def test_fhir_and_hl7_configs_load_and_report_problems() -> None:
    fhir = spec(
        "format: fhir\norganisation: RWM\nfeed: rwm-fhir\nlabels:\n"
        "  - {resource: Condition, systems: [http://snomed.info/sct], codes: ['35489007'],"
        " category: mental-health, sensitivity: R}\n"
    )
    assert isinstance(fhir, FhirFeedConfig)
    assert fhir.labels[0].label.sensitivity is Sensitivity.RESTRICTED
    found = _problems("format: fhir\norganisation: RWM\nfeed: rwm-fhir\nlabels:\n  - {resource: Widget, category: x}\n")
    assert any("labels[0].resource (line 5)" in p for p in found), found
    assert any("labels[0].category (line 5)" in p for p in found), found
    hl7 = spec(
        "format: hl7v2\norganisation: RWX\nfeed: rwx-adt\npatient_authority: RWX\n"
        "authorities: {RWX: 'https://example.org/mrn'}\n"
    )
    assert isinstance(hl7, Hl7v2FeedConfig)
    found = _problems(
        "format: hl7v2\norganisation: RWX\nfeed: rwx-adt\npatient_authority: PAS\n"
        "authorities: {RWX: 'https://example.org/mrn'}\ntimezone: Mars/Olympus\n"
    )
    assert any("patient_authority" in p for p in found), found
    assert any("unknown time zone" in p for p in found), found


def test_code_maps_can_be_included_from_a_shared_file() -> None:
    mapping = load_mapping(
        bundled_mappings()["WCCASC/wccasc-persons"]
    )
    assert isinstance(mapping, CsvMapping)
    assert mapping.code_maps["ethnicity"].lookup("10").code == "A"  # type: ignore[union-attr]
    concept_map = mapping.code_maps["ethnicity"].as_concept_map()
    assert concept_map["resourceType"] == "ConceptMap"
    assert concept_map["group"][0]["target"].endswith("UKCore-EthnicCategoryEngland")


def test_every_shipped_mapping_loads() -> None:
    shipped = bundled_mappings()
    assert len(shipped) == 18
    for name, path in shipped.items():
        loaded = load_mapping(path)
        assert f"{loaded.organisation}/{loaded.feed}" == name


def test_the_fixture_mapping_loads() -> None:
    assert isinstance(load_mapping(FIXTURES / "people.yaml"), CsvMapping)
