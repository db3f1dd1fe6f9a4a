"""Adapters: read a feed file (CSV + mapping, FHIR R4 JSON, HL7 v2 ER7) as a stream of outcomes.

    spec = load_mapping(path)
    for outcome in adapter_for(spec.format, spec).read(file):
        ...  # Accepted(unit, source_id, resources, warnings) | Rejected(unit, raw, problems, ...)

Exactly one outcome per unit read, so read = accepted + rejected; memory is
bounded by the largest unit, not the file.
"""

from __future__ import annotations

from datetime import date

from joinedup.errors import ConfigError
from joinedup.sources.adapters.base import Adapter, FileRejected, Reading, Source
from joinedup.sources.adapters.csv_feed import CsvAdapter
from joinedup.sources.adapters.fhir_feed import FhirAdapter
from joinedup.sources.adapters.hl7v2_feed import Hl7v2Adapter
from joinedup.sources.mapping.spec import (
    CsvMapping,
    FeedFormat,
    FeedSpec,
    FhirFeedConfig,
    Hl7v2FeedConfig,
)

__all__ = [
    "Adapter",
    "CsvAdapter",
    "FhirAdapter",
    "FileRejected",
    "Hl7v2Adapter",
    "Reading",
    "Source",
    "adapter_for",
]


def adapter_for(
    feed_format: FeedFormat | str, spec: FeedSpec, *, today: date | None = None
) -> Adapter:
    """The adapter for a feed's format, built from its spec (a CSV mapping or a feed config).

    ``today`` fixes the date used by checks such as "date of birth in the future" (tests).
    """
    try:
        fmt = FeedFormat(feed_format)
    except ValueError:
        raise ConfigError(
            f"unknown feed format {feed_format!r} (known: {', '.join(f.value for f in FeedFormat)})"
        ) from None
    if fmt is not spec.format:
        raise ConfigError(f"feed format {fmt.value} does not match its spec ({spec.format.value})")
    if isinstance(spec, CsvMapping):
        return CsvAdapter(spec, today)
    if isinstance(spec, FhirFeedConfig):
        return FhirAdapter(spec, today)
    if isinstance(spec, Hl7v2FeedConfig):
        return Hl7v2Adapter(spec, today)
    raise ConfigError(f"no adapter for {type(spec).__name__}")  # pragma: no cover
