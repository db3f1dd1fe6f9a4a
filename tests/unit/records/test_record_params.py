"""Index rows a resource gives."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from joinedup.nhs_number import NHS_NUMBER_SYSTEM
from joinedup.records.dates import MAX_TS, date_range
from joinedup.records.params import SEARCH_PARAMS, Kind, index_rows, subject_id, tokens, walk


def test_patient_rows() -> None:
    rows = index_rows(
        {
            "resourceType": "Patient",
            "id": "p1",
            "identifier": [{"system": NHS_NUMBER_SYSTEM, "value": "9434765919"}, {"value": "L1"}],
            "name": [{"family": "Smith-Jones", "given": ["Zoë", "Anne"]}],
            "birthDate": "1950-03-14",
            "address": [{"postalCode": "so23 1aa"}, {"line": ["no postcode"]}],
            "gender": "female",
            "generalPractitioner": [
                {"reference": "Organization/J81001"},
                {"reference": "#contained"},
            ],
        }
    )
    assert rows.tokens == {
        ("identifier", NHS_NUMBER_SYSTEM, "9434765919"),
        ("identifier", "", "L1"),
        ("gender", "", "female"),
    }
    assert rows.strings == {
        ("family", "smithjones"),
        ("family", "smith"),
        ("family", "jones"),
        ("given", "zoe"),
        ("given", "anne"),
        ("address-postalcode", "SO231AA"),
    }
    assert rows.dates == {("birthdate", *date_range("1950-03-14"))}
    assert rows.refs == {("general-practitioner", "Organization", "J81001")}


def test_condition_rows_and_subject() -> None:
    condition = {
        "resourceType": "Condition",
        "id": "c1",
        "subject": {"reference": "Patient/p1"},
        "code": {
            "coding": [{"system": "http://snomed.info/sct", "code": "44054006"}],
            "text": "Diabetes",
        },
        "onsetPeriod": {"start": "2020-01"},
        "recordedDate": "not a date",  # skipped, not fatal
    }
    rows = index_rows(condition)
    assert ("code", "http://snomed.info/sct", "44054006") in rows.tokens
    assert rows.dates == {("onset-date", date_range("2020-01")[0], MAX_TS)}
    assert subject_id(condition) == "p1"
    assert subject_id({"resourceType": "Patient", "id": "p9"}) == "p9"
    assert subject_id({"resourceType": "Flag", "subject": {"reference": "Group/g1"}}) is None


def test_every_parameter_is_well_formed() -> None:
    for rtype, params in SEARCH_PARAMS.items():
        for name, p in params.items():
            assert p.name == name
            if p.kind is Kind.SUBJECT:
                assert not p.paths, (rtype, name)
            elif p.union:
                assert all(params[u].kind is p.kind for u in p.union), (rtype, name)
            else:
                assert p.paths, (rtype, name)


def test_walk_flattens_lists() -> None:
    r = {"name": [{"given": ["a", "b"]}, {"given": ["c"]}, {"family": "x"}]}
    assert list(walk(r, "name.given")) == ["a", "b", "c"]
    assert list(walk(r, "name.prefix")) == []


_SCALARS = st.none() | st.booleans() | st.sampled_from(["", "x", "y"]) | st.integers(0, 2)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=3)
    | st.dictionaries(st.sampled_from(["coding", "value", "code", "system"]), inner, max_size=4),
    max_leaves=12,
)


@given(_JSON)
def test_index_token_rows_follow_the_reference_token_rules(value: object) -> None:
    """The index's inlined token extraction equals :func:`tokens`, which the reference uses."""
    resource = {"resourceType": "Observation", "id": "o1", "code": value}
    items = walk(resource, "code")  # an element's list is walked, as every path is
    try:
        expected = {("code", s, c) for item in items for s, c in tokens(item) if c}
    except TypeError:  # e.g. "coding" holding a number: neither may accept it
        return
    assert index_rows(resource).tokens == expected
