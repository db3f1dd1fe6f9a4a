import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup import nhs_number


def _with_check(first_nine: str) -> str | None:
    digit = nhs_number.check_digit(first_nine)
    return None if digit is None else first_nine + str(digit)


def test_known_valid_number() -> None:
    # Published example from the NHS Data Dictionary.
    assert nhs_number.is_valid("943 476 5919")
    assert nhs_number.validate("943-476-5919") == "9434765919"


def test_known_invalid_check_digit() -> None:
    assert not nhs_number.is_valid("9434765918")


@pytest.mark.parametrize(
    ("raw", "words"),
    [
        ("", "empty"),
        ("94347659A9", "digits"),
        ("943476591", "10 digits"),
        ("9434765918", "Modulus 11"),
        ("1111111111", "Modulus 11"),
    ],
)
def test_problems_are_named(raw: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        nhs_number.validate(raw)


@given(st.text(alphabet="0123456789", min_size=9, max_size=9))
def test_generated_numbers_validate_and_any_single_digit_change_fails(nine: str) -> None:
    number = _with_check(nine)
    if number is None or len(set(number)) == 1:
        return
    assert nhs_number.is_valid(number)
    for pos in range(10):
        for d in "0123456789":
            if d != number[pos]:
                changed = number[:pos] + d + number[pos + 1 :]
                assert not nhs_number.is_valid(changed), changed
