"""Pure pieces of the mapping: date formats, postcodes, names, targets, the seen-ids table."""

from __future__ import annotations

import re
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.sources.adapters.seen import SeenIds
from joinedup.sources.mapping.dates import DateParser, ambiguous_pairs, compile_format
from joinedup.sources.mapping.ids import JOINEDUP_ID_NAMESPACE, stable_id
from joinedup.sources.mapping.targets import TargetError, ValueProblem, compile_target
from joinedup.sources.mapping.text import postcode, shape, split_name, title_case

LONDON = ZoneInfo("Europe/London")
STRFTIME = {
    "dd/mm/yyyy": "%d/%m/%Y",
    "mm/dd/yyyy": "%m/%d/%Y",
    "yyyy-mm-dd": "%Y-%m-%d",
    "yyyymmdd": "%Y%m%d",
    "dd-mon-yyyy": "%d-%b-%Y",
    "dd/mm/yyyy HH:MI": "%d/%m/%Y %H:%M",
}


def _parser(*formats: str, pivot: int | None = None) -> DateParser:
    return DateParser(tuple(compile_format(f) for f in formats), pivot, LONDON)


@given(st.dates(min_value=date(1000, 1, 1), max_value=date(9999, 12, 31)), st.sampled_from(sorted(STRFTIME)))
def test_declared_formats_read_what_strftime_writes(day: date, fmt: str) -> None:
    text = day.strftime(STRFTIME[fmt])
    found = _parser(fmt).parse(text)
    if isinstance(found, datetime):
        assert found.date() == day
        assert found.tzinfo is LONDON
    else:
        assert found == day


@given(st.dates(min_value=date(1931, 1, 1), max_value=date(2030, 12, 31)))
def test_two_digit_years_follow_the_pivot(day: date) -> None:
    found = _parser("d/m/yy", pivot=30).parse(f"{day.day}/{day.month}/{day:%y}")
    assert found == day


def test_impossible_and_mismatched_dates_are_refused_without_echoing_the_value() -> None:
    parser = _parser("dd/mm/yyyy")
    with pytest.raises(ValueError, match="day is out of range"):
        parser.parse("31/02/1980")
    with pytest.raises(ValueError, match=r"does not match dd/mm/yyyy"):
        parser.parse("1980-02-01")


def test_ambiguous_day_month_orders_are_found() -> None:
    formats = tuple(compile_format(f) for f in ("dd/mm/yyyy", "mm/dd/yyyy", "yyyy-mm-dd"))
    assert ambiguous_pairs(formats) == [("dd/mm/yyyy", "mm/dd/yyyy")]
    assert ambiguous_pairs(tuple(compile_format(f) for f in ("dd/mm/yyyy", "yyyy-mm-dd"))) == []
    with pytest.raises(ValueError, match="has no day"):
        compile_format("mm/yyyy")


def test_iso_reads_dates_and_date_times() -> None:
    parser = _parser("iso")
    assert parser.parse("1980-01-31") == date(1980, 1, 31)
    moment = parser.parse("2025-06-21T04:32:00")
    assert isinstance(moment, datetime)
    assert moment.isoformat() == "2025-06-21T04:32:00+01:00"


@pytest.mark.parametrize(
    ("raw", "normal"),
    [("so166yd", "SO16 6YD"), ("SO16  6YD", "SO16 6YD"), ("wx1 5qw", "WX1 5QW"), ("EC1A1BB", "EC1A 1BB"),
     ("gir0aa", "GIR 0AA"), ("M1 1AE", "M1 1AE")],
)
def test_postcodes_are_normalised(raw: str, normal: str) -> None:
    assert postcode(raw) == normal


@pytest.mark.parametrize("raw", ["SO16", "12345", "SO16 YD6", "S016 6YD!", "QQQ 1AA"])
def test_impossible_postcodes_are_refused_showing_only_their_shape(raw: str) -> None:
    with pytest.raises(ValueError, match="not a UK postcode") as caught:
        postcode(raw)
    assert raw not in str(caught.value) or raw == shape(raw)


UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? [0-9][A-Z]{2}$")


@given(
    st.from_regex(r"\A[A-Z]{1,2}[0-9][A-Z0-9]?[0-9][A-Z]{2}\Z"),
    st.sampled_from(["", " ", "  "]),
    st.booleans(),
)
def test_any_postcode_shape_normalises_to_the_standard_form(compact: str, gap: str, lower: bool) -> None:
    typed = compact[:-3] + gap + compact[-3:]
    typed = typed.lower() if lower else typed
    result = postcode(typed)
    assert UK_POSTCODE.match(result)
    assert result.replace(" ", "") == compact


def test_names_split_in_each_declared_style() -> None:
    assert split_name("SMITH, John Paul", "family_comma_given") == ("SMITH", ("John", "Paul"))
    assert split_name("John Paul  Smith", "given_family") == ("Smith", ("John", "Paul"))
    assert split_name("SMITH John", "family_given") == ("SMITH", ("John",))
    assert split_name("Lee, Ann", "auto") == ("Lee", ("Ann",))
    assert split_name("Ann Lee", "auto") == ("Lee", ("Ann",))
    with pytest.raises(ValueError, match="comma"):
        split_name("Ann Lee", "family_comma_given")
    assert title_case("O'BRIEN-SMITH") == "O'Brien-Smith"
    assert title_case("MCDONALD") == "McDonald"
    assert shape("SO16 6yd") == "AA99 9aa"


def test_targets_write_slices_merges_and_codes() -> None:
    resource: dict[str, object] = {}
    compile_target("Patient.identifier[nhs]", {}, {}).setter("text")(resource, "9434765919")
    compile_target("Patient.identifier[local]", {"local": "urn:x"}, {}).setter("text")(resource, "7")
    compile_target("Patient.name.given", {}, {}).setter("text")(resource, "Ann")
    compile_target("Patient.name.given", {}, {}).setter("text")(resource, "Marie")
    compile_target("Patient.name.family", {}, {}).setter("text")(resource, "Lee")
    compile_target("Patient.birthDate", {}, {}).setter("date")(resource, date(1980, 1, 2))
    assert resource == {
        "identifier": [
            {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9434765919"},
            {"system": "urn:x", "value": "7"},
        ],
        "name": [{"given": ["Ann", "Marie"], "family": "Lee"}],
        "birthDate": "1980-01-02",
    }
    with pytest.raises(ValueProblem, match="not one of"):
        compile_target("Patient.gender", {}, {}).setter("text")({}, "bloke")
    for bad, message in [
        ("Widget.name", "not a FHIR R4 resource type"),
        ("Patient.name.surname", "HumanName has no element 'surname'"),
        ("Patient.gender.code", "it has no elements"),
        ("Patient.extension", "needs a slice"),
        ("Patient.birthDate[x]", "does not repeat"),
    ]:
        with pytest.raises(TargetError, match=message):
            compile_target(bad, {}, {})


def test_stable_ids_are_uuid5_and_depend_on_every_part() -> None:
    import uuid

    assert stable_id("A", "f", "Patient", "1") == str(uuid.uuid5(JOINEDUP_ID_NAMESPACE, "A|f|Patient|1"))
    ids = {stable_id(*parts) for parts in [("A", "f", "Patient", "1"), ("B", "f", "Patient", "1"),
                                           ("A", "g", "Patient", "1"), ("A", "f", "Flag", "1"),
                                           ("A", "f", "Patient", "2")]}
    assert len(ids) == 5


@settings(max_examples=50)
@given(st.lists(st.text(min_size=1, max_size=12), max_size=400))
def test_seen_ids_agree_with_a_set(ids: list[str]) -> None:
    table = SeenIds(capacity=4)
    first_row: dict[str, int] = {}
    for row, source_id in enumerate(ids, start=1):
        earlier = table.add(source_id, row)
        assert earlier == first_row.get(source_id)
        first_row.setdefault(source_id, row)
    assert len(table) == len(first_row)
