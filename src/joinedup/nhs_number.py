"""NHS numbers: normalisation and the Modulus 11 check.

The NHS number system URI is the one UK Core uses. The check is described in
the NHS Data Dictionary: weights 10..2 over the first nine digits, check digit
11 - (sum mod 11), where 11 becomes 0 and 10 means the number is invalid.
"""

from __future__ import annotations

import re

NHS_NUMBER_SYSTEM = "https://fhir.nhs.uk/Id/nhs-number"

_SEPARATORS = re.compile(r"[\s\-]")
_ZERO_SUM = ord("0") * sum(range(2, 11))
"""The weighted sum of nine ASCII ``"0"`` bytes, taken off a sum of digit bytes."""


def check_digit(first_nine: str) -> int | None:
    """The Modulus 11 check digit for nine digits, or None if no digit is valid."""
    if len(first_nine) != 9 or not first_nine.isdigit():
        raise ValueError("check_digit needs exactly nine digits")
    if first_nine.isascii():  # every batch checks every number: byte arithmetic, not int()s
        b = first_nine.encode()
        total = (
            10 * b[0] + 9 * b[1] + 8 * b[2] + 7 * b[3] + 6 * b[4]
            + 5 * b[5] + 4 * b[6] + 3 * b[7] + 2 * b[8] - _ZERO_SUM
        )
    else:  # other Unicode decimal digits (str.isdigit accepts them)
        total = sum(int(d) * w for d, w in zip(first_nine, range(10, 1, -1), strict=True))
    digit = 11 - (total % 11)
    if digit == 11:
        return 0
    if digit == 10:
        return None
    return digit


def normalise(raw: str) -> str:
    """Strip spaces and hyphens ("943 476 5919" -> "9434765919"); no validation."""
    return _SEPARATORS.sub("", raw.strip())


def is_valid(raw: str) -> bool:
    """True when ``raw`` (after normalisation) is ten digits with a correct check digit."""
    number = normalise(raw)
    if len(number) != 10 or not number.isdigit():
        return False
    # All-same-digit numbers pass Modulus 11 but are never issued.
    if len(set(number)) == 1:
        return False
    expected = check_digit(number[:9])
    return expected is not None and expected == int(number[9])


def validate(raw: str) -> str:
    """Return the normalised number or raise ValueError saying what is wrong."""
    number = normalise(raw)
    if not number:
        raise ValueError("NHS number is empty")
    if not number.isdigit():
        raise ValueError("NHS number must contain only digits, spaces or hyphens")
    if len(number) != 10:
        raise ValueError(f"NHS number must have 10 digits, not {len(number)}")
    if not is_valid(number):
        raise ValueError("NHS number fails the Modulus 11 check")
    return number
