"""Helpers for the sources unit tests: build specs from YAML text, read bytes, split outcomes."""

from __future__ import annotations

import io
from datetime import date
from pathlib import Path
from typing import Any

from joinedup.sources.adapters import adapter_for
from joinedup.sources.adapters.base import Reading
from joinedup.sources.contract import Accepted, Outcome, Rejected
from joinedup.sources.mapping import FeedSpec, load_mapping, parse_mapping

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "feeds"
TODAY = date(2026, 11, 1)


def spec(text: str) -> FeedSpec:
    return parse_mapping(text, origin="test.yaml")


def fixture_spec(name: str) -> FeedSpec:
    return load_mapping(FIXTURES / name)


def read(feed: FeedSpec, data: bytes | Path) -> tuple[Reading, list[Outcome]]:
    adapter = adapter_for(feed.format, feed, today=TODAY)
    reading = adapter.read(io.BytesIO(data) if isinstance(data, bytes) else data)
    return reading, list(reading)


def accepted(outcomes: list[Outcome]) -> list[Accepted]:
    return [o for o in outcomes if isinstance(o, Accepted)]


def rejected(outcomes: list[Outcome]) -> list[Rejected]:
    return [o for o in outcomes if isinstance(o, Rejected)]


def problems(outcome: Outcome) -> list[str]:
    assert isinstance(outcome, Rejected), outcome
    return [str(p) for p in outcome.problems]


def only(resources: tuple[dict[str, Any], ...], kind: str) -> dict[str, Any]:
    found = [r for r in resources if r["resourceType"] == kind]
    assert len(found) == 1, resources
    return found[0]
