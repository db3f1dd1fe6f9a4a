"""The Wessex demo area's data sharing agreements (YAML files beside this one)."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from joinedup.access.agreements import Agreement
from joinedup.access.loader import load_agreement_files
from joinedup.demo.area import ORG_SPECS
from joinedup.orgs.vocab import OrgKind

HERE = Path(__file__).parent


def demo_organisations() -> dict[str, OrgKind]:
    """The demo area's organisation codes and kinds."""
    return {spec.code: spec.kind for spec in ORG_SPECS}


def agreement_files() -> list[Path]:
    return sorted(HERE.glob("*.yaml"))


def load_demo_agreements(today: date | None = None) -> tuple[Agreement, ...]:
    return load_agreement_files(
        agreement_files(), known_orgs=demo_organisations(), today=today
    )
