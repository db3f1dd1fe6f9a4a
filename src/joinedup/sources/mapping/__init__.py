"""Feed specs: YAML mapping files and feed configs, checked on load, compiled to closures.

``load_mapping(path)`` reads any feed spec (CSV mapping, FHIR or HL7 v2 feed
config) and raises :class:`InvalidMapping` listing every problem with its
line. ``bundled_mappings()`` lists the demo organisations' specs shipped as
package data.
"""

from __future__ import annotations

from fnmatch import fnmatch
from importlib import resources
from pathlib import Path

import yaml

from joinedup.sources.mapping.compile import CompiledMapping, RowMapper
from joinedup.sources.mapping.ids import stable_id
from joinedup.sources.mapping.load import InvalidMapping, load_mapping, parse_mapping
from joinedup.sources.mapping.spec import (
    CodeMap,
    Coding,
    CsvMapping,
    FeedFormat,
    FeedSpec,
    FhirFeedConfig,
    Hl7v2FeedConfig,
    Label,
)

__all__ = [
    "CodeMap",
    "Coding",
    "CompiledMapping",
    "CsvMapping",
    "FeedFormat",
    "FeedSpec",
    "FhirFeedConfig",
    "Hl7v2FeedConfig",
    "InvalidMapping",
    "Label",
    "RowMapper",
    "bundled_mapping",
    "bundled_mappings",
    "demo_feed_for",
    "load_mapping",
    "parse_mapping",
    "stable_id",
]


def bundled_mappings() -> dict[str, Path]:
    """The demo area's feed specs shipped with joinedup: ``"ORG/feed"`` -> file."""
    root = Path(str(resources.files("joinedup.sources") / "mappings"))
    out = {}
    for path in sorted(root.glob("*/*.yaml")):
        if path.parent.name != "codemaps":
            out[f"{path.parent.name}/{path.stem}"] = path
    return out


def bundled_mapping(organisation: str, feed: str) -> FeedSpec:
    """Load one shipped spec, e.g. ``bundled_mapping("WCCASC", "people")``."""
    return load_mapping(bundled_mappings()[f"{organisation}/{feed}"])


def demo_feed_for(relative_path: str) -> str | None:
    """The shipped spec (``"ORG/feed"``) that reads one file of the demo export, e.g.
    ``demo_feed_for("RWX/hl7/adt-2026-05.hl7") == "RWX/rwx-adt"``; None for other files."""
    root = Path(str(resources.files("joinedup.sources") / "mappings"))
    table = yaml.safe_load((root / "demo-feeds.yaml").read_text(encoding="utf-8"))
    for pattern, name in table.items():
        if fnmatch(relative_path, pattern):
            return str(name)
    return None
