from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.people.matching.normalise import (
    PersonRecord,
    address_parts,
    clean_name,
    clean_nhs_number,
    clean_nhs_numbers,
    clean_sex,
    dob_parts,
    features_of,
    features_table,
    first_given_name,
    postcode_parts,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("O'Brien-Smith", "OBRIENSMITH"),
        ("  zoë ", "ZOE"),
        ("Unknown", None),
        ("--", None),
        (None, None),
    ],
)
def test_clean_name(raw: str | None, expected: str | None) -> None:
    assert clean_name(raw) == expected


def test_first_given_name_splits_a_single_string_of_names() -> None:
    assert first_given_name(("Mary Ann",)) == "MARY"
    assert first_given_name(("", "unknown", "Ann")) == "ANN"
    assert first_given_name(()) is None


def test_nickname_maps_to_formal_name_and_unknown_names_to_themselves() -> None:
    bill = features_of(PersonRecord("a", given_names=("Bill",)))
    zebedee = features_of(PersonRecord("b", given_names=("Zebedee",)))
    assert bill.given_name_canon == "WILLIAM"
    assert zebedee.given_name_canon == "ZEBEDEE"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("1956-03-12", ("19560312", "1956", "03", "12")),
        ("19560312", ("19560312", "1956", "03", "12")),
        (date(1956, 3, 12), ("19560312", "1956", "03", "12")),
        ("1956-25-03", ("19562503", "1956", "25", "03")),  # kept: a swapped day and month
        ("12/03/56", (None, None, None, None)),
        ("", (None, None, None, None)),
    ],
)
def test_dob_parts(raw: str | date, expected: tuple[str | None, ...]) -> None:
    assert dob_parts(raw) == expected


def test_postcode_parts() -> None:
    assert postcode_parts(" so16 7ab") == ("SO167AB", "SO16 7", "SO16")
    assert postcode_parts("EC1A 1BB") == ("EC1A1BB", "EC1A 1", "EC1A")
    assert postcode_parts("2617") == ("2617", None, None)  # not a UK postcode: no sector
    assert postcode_parts("ZZ99 3VZ") == (None, None, None)  # no fixed abode is not a place


def test_address_parts_separates_numbers_from_words() -> None:
    assert address_parts(("Flat 3, 12 High St.",)) == ("3 12", "FLATHIGHST")
    assert address_parts(("", "Rose Cottage")) == (None, "ROSECOTTAGE")
    assert address_parts(()) == (None, None)


def test_address_parts_ignore_line_order_and_spacing() -> None:
    one = address_parts(("12 High St", "Bitterne"))
    assert one == address_parts(("Bitterne", "12 HighSt")) == ("12", "BITTERNE HIGHST")


def test_sex_and_nhs_number() -> None:
    assert clean_sex("female") == "F"
    assert clean_sex("unknown") is None
    assert clean_nhs_number("943 476 5919") == "9434765919"
    assert clean_nhs_number("943 476 5918") is None  # fails Modulus 11: treated as absent


def test_record_validation_reports_every_problem() -> None:
    with pytest.raises(ValueError, match="record_id") as info:
        PersonRecord("", given_names="Ann", address_lines="1 High St")  # type: ignore[arg-type]
    assert "given_names" in str(info.value)
    assert "address_lines" in str(info.value)


names = st.one_of(
    st.none(),
    st.sampled_from(["Bill", "William", "o'neil", "Zoë", "unknown", " ", "Jo Ann"]),
    st.text(max_size=8),
)
records = st.builds(
    dict,
    record_id=st.uuids().map(str),
    given_names=names,
    family_name=names,
    birth_date=st.one_of(
        st.none(),
        st.sampled_from(["1956-03-12", "19561203", "bad", ""]),
        st.dates().map(lambda d: d.isoformat()),
    ),
    sex=st.one_of(st.none(), st.sampled_from(["male", "F", "other", "unknown", "x"])),
    postcode=st.one_of(
        st.none(), st.sampled_from(["SO16 7AB", "so167ab", "ZZ99 3VZ", "2617", "?"])
    ),
    address_lines=st.one_of(
        st.none(), st.sampled_from(["12 High St", "Flat 3, 12 High St", "", "x"])
    ),
    nhs_number=st.one_of(st.none(), st.sampled_from(["943 476 5919", "9434765918", "abc"])),
)


@settings(max_examples=60, deadline=None)
@given(st.lists(records, min_size=1, max_size=8))
def test_table_normalisation_agrees_with_single_records(rows: list[dict[str, object]]) -> None:
    table = features_table(pd.DataFrame(rows)).to_dict("records")
    for row, got in zip(rows, table, strict=True):
        record = PersonRecord(
            record_id=str(row["record_id"]),
            given_names=(row["given_names"],) if row["given_names"] is not None else (),
            family_name=row["family_name"],  # type: ignore[arg-type]
            birth_date=row["birth_date"],  # type: ignore[arg-type]
            sex=row["sex"],  # type: ignore[arg-type]
            postcode=row["postcode"],  # type: ignore[arg-type]
            address_lines=(row["address_lines"],) if row["address_lines"] is not None else (),
            nhs_number=row["nhs_number"],  # type: ignore[arg-type]
        )
        single = features_of(record)
        assert got == {name: getattr(single, name) for name in got}


@given(
    st.lists(
        st.one_of(
            st.none(),
            st.from_regex(r"[0-9]{10}", fullmatch=True),
            st.from_regex(r"[0-9 \-]{8,14}", fullmatch=True),
            st.sampled_from(["943 476 5919", "1111111111", "943-476-5919", " 9434765919 "]),
            st.text(max_size=12),
        ),
        max_size=30,
    )
)
def test_column_nhs_check_agrees_with_the_one_value_check(values: list[str | None]) -> None:
    column = clean_nhs_numbers(pd.Series(values, dtype=object))
    assert list(column) == [clean_nhs_number(v) for v in values]
