"""Shared fixtures: a small estate and a model trained on it once per session."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import pandas as pd
import pytest

from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import features_table
from joinedup.people.matching.training import TrainingOptions, train

GIVEN = [
    "JAMES",
    "MARY",
    "OLIVER",
    "AMELIA",
    "GEORGE",
    "ISLA",
    "HARRY",
    "AVA",
    "JACK",
    "MIA",
    "WILLIAM",
    "ELIZABETH",
    "THOMAS",
    "SOPHIE",
    "ROBERT",
    "GRACE",
]
FAMILY = [
    "SMITH",
    "JONES",
    "TAYLOR",
    "BROWN",
    "WILLIAMS",
    "WILSON",
    "JOHNSON",
    "DAVIES",
    "ROBINSON",
    "WRIGHT",
    "THOMPSON",
    "EVANS",
    "WALKER",
    "WHITE",
    "ROBERTS",
    "GREEN",
    "HALL",
    "WOOD",
    "JACKSON",
    "CLARKE",
]
TOWNS = ["SOUTHAMPTON", "WINCHESTER", "EASTLEIGH", "ROMSEY", None]
STREETS = ["HIGH STREET", "CHURCH ROAD", "MILL LANE", "STATION ROAD", "PARK AVENUE", "THE GREEN"]


def small_estate(n_people: int = 400, seed: int = 7) -> pd.DataFrame:
    """People with one to three records each; later copies carry one typical slip."""
    rng = random.Random(seed)
    rows = []
    for person in range(n_people):
        given, family = rng.choice(GIVEN), rng.choice(FAMILY)
        dob = f"{rng.randint(1930, 2015)}-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
        postcode = f"SO{rng.randint(14, 53)} {rng.randint(1, 9)}{rng.choice('ABDEFG')}{rng.choice('HJLNPQ')}"
        line = f"{rng.randint(1, 120)} {rng.choice(STREETS)}"
        sex = rng.choice(["male", "female"])
        for copy in range(rng.choice([1, 1, 2, 2, 3])):
            g, f, d, p = given, family, dob, postcode
            if copy:
                slip = rng.randrange(4)
                if slip == 0:
                    g = g[:-1] + "E"
                elif slip == 1:
                    y, m, dd = d.split("-")
                    d = f"{y}-{dd}-{m}" if int(dd) <= 12 else d
                elif slip == 2:
                    f = f[:2] + f[3:]
                else:
                    p = None
            rows.append(
                {
                    "record_id": f"p{person}c{copy}",
                    "person": person,
                    "given_names": g,
                    "family_name": f,
                    "birth_date": d,
                    "sex": sex,
                    "postcode": p,
                    "address_lines": line,
                    "nhs_number": None,
                    # from the person number, so the other fields' random draws are unchanged
                    "city": TOWNS[(person + copy * (person % 3 == 0)) % len(TOWNS)],
                    "region": None if person % 7 == 0 else "HAMPSHIRE",
                }
            )
    return pd.DataFrame(rows)


TRAINED_AT = datetime(2024, 4, 1, 12, 0, tzinfo=UTC)
FAST = TrainingOptions(seed=11, u_max_pairs=2e5, em_max_pairs=None, threads=1)


@pytest.fixture(scope="session")
def estate() -> pd.DataFrame:
    return small_estate()


@pytest.fixture(scope="session")
def estate_features(estate: pd.DataFrame) -> pd.DataFrame:
    return features_table(estate.drop(columns=["person"]))


@pytest.fixture(scope="session")
def model(estate_features: pd.DataFrame) -> MatchingModel:
    return train([estate_features], FAST, trained_at=TRAINED_AT)


@pytest.fixture(scope="session")
def retrain():  # type: ignore[no-untyped-def]
    """Train again exactly as the ``model`` fixture did."""
    return lambda frames: train(frames, FAST, trained_at=TRAINED_AT)
