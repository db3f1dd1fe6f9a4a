"""The Wessex demo care system: a synthetic area, its population and its organisations' exports.

Everything is deterministic from a seed. :func:`~joinedup.demo.area.build_area`
and :func:`~joinedup.demo.population.build_population` are pure;
:func:`~joinedup.demo.generate.generate` writes the export files,
``ground_truth.csv`` and ``manifest.json``. :func:`generate_to` does all three.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from joinedup.demo.generate import GenerationResult

DEFAULT_SEED = 20261122
DEFAULT_PEOPLE = 10_000


def generate_to(
    out_dir: Path, *, seed: int = DEFAULT_SEED, people: int = DEFAULT_PEOPLE
) -> GenerationResult:
    """Build the area and population from ``seed`` and write their exports to ``out_dir``."""
    from joinedup.demo.area import build_area
    from joinedup.demo.generate import generate
    from joinedup.demo.population import build_population

    return generate(build_area(seed), build_population(seed, people), Path(out_dir))
