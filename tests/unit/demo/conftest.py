"""One small generated demo area shared by the demo tests (generation takes about a second)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from joinedup.demo.area import Area, build_area
from joinedup.demo.generate import generate
from joinedup.demo.population import Population, build_population

SEED = 4242
PEOPLE = 300


@dataclass(frozen=True)
class Generated:
    area: Area
    population: Population
    root: Path
    manifest: dict[str, Any]


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Generated:
    root = tmp_path_factory.mktemp("demo") / "out"
    area = build_area(SEED)
    population = build_population(SEED, PEOPLE)
    generate(area, population, root)
    manifest = json.loads((root / "manifest.json").read_text("utf-8"))
    return Generated(area, population, root, manifest)
