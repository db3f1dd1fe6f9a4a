"""Addresses in fictional Wessex, with well-formed postcodes in the unused ``WX`` area.

``WX`` is not a real UK postcode area, so no demo address can be mistaken for
a real one, yet every postcode matches the standard UK pattern
(:data:`UK_POSTCODE`): outward code ``WX`` + district (1-15), inward code
sector digit + two letters from the set Royal Mail uses (no C, I, K, M, O, V).
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from importlib import resources
from typing import Any

UK_POSTCODE = re.compile(r"^[A-Z]{1,2}[0-9][A-Z0-9]? ?[0-9][ABD-HJLNP-UW-Z]{2}$")
"""The usual UK postcode pattern (format only, not whether the postcode exists)."""

_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"


@dataclass(frozen=True, slots=True)
class Address:
    line1: str
    """House number and street, or flat and building."""
    line2: str
    """Street for flats, else empty."""
    town: str
    postcode: str
    """Well-formed, upper case, single space: ``"WX1 2AB"``."""

    def one_line(self) -> str:
        return ", ".join(p for p in (self.line1, self.line2, self.town) if p)


def _places() -> Any:
    text = resources.files("joinedup.demo").joinpath("data", "places.json").read_text("utf-8")
    return json.loads(text)


@dataclass(slots=True)
class _Unit:
    postcode: str
    street: str
    town: str
    next_number: int


@dataclass(slots=True)
class AddressBook:
    """Hands out distinct addresses; each postcode unit is one street, numbered upwards."""

    towns: list[tuple[str, list[str], float]]
    units: dict[str, list[_Unit]]
    hostels: list[dict[str, str]]
    hostel_postcodes: dict[str, str] = field(default_factory=dict)

    def new_address(self, rng: random.Random) -> Address:
        town, districts, _ = rng.choices(self.towns, [w for *_, w in self.towns])[0]
        unit = rng.choice(self.units[rng.choice(districts)])
        number = unit.next_number
        unit.next_number += rng.choice((1, 2, 2, 3))
        if rng.random() < 0.09:
            building = f"{unit.street.split()[0]} House"
            return Address(f"Flat {number}, {building}", unit.street, town, unit.postcode)
        return Address(f"{number} {unit.street}", "", town, unit.postcode)

    def hostel(self, rng: random.Random) -> Address:
        h = rng.choice(self.hostels)
        return Address(h["line1"], h["line2"], h["town"], self.hostel_postcodes[h["line1"]])


def build_address_book(seed: int) -> AddressBook:
    data = _places()
    rng = random.Random(f"{seed}:places")
    towns = [(t["name"], list(t["districts"]), float(t["weight"])) for t in data["towns"]]
    units: dict[str, list[_Unit]] = {}
    used_postcodes: set[str] = set()
    for town, districts, weight in towns:
        streets = [f"{n} {s}" for n in data["street_names"] for s in data["street_suffixes"]]
        rng.shuffle(streets)
        per_district = max(8, int(weight * 3 / len(districts)))
        for district in districts:
            units[district] = []
            for _ in range(per_district):
                postcode = _new_postcode(rng, district, used_postcodes)
                units[district].append(_Unit(postcode, streets.pop(), town, rng.randint(1, 20)))
    hostel_postcodes = {
        h["line1"]: _new_postcode(rng, h["district"], used_postcodes) for h in data["hostels"]
    }
    return AddressBook(towns, units, list(data["hostels"]), hostel_postcodes)


def _new_postcode(rng: random.Random, district: str, used: set[str]) -> str:
    while True:
        inward = f"{rng.randint(1, 9)}{rng.choice(_INWARD_LETTERS)}{rng.choice(_INWARD_LETTERS)}"
        postcode = f"{district} {inward}"
        if postcode not in used:
            used.add(postcode)
            return postcode
