"""What an adapter hands to the batch loader: the seam between `sources` and `records`.

An adapter reads one feed file as a stream and yields, for every unit it
reads (a CSV row, a FHIR Bundle entry or resource, an HL7 v2 message), exactly
one ``Accepted`` or ``Rejected``. So ``read == accepted + rejected`` holds by
construction, and the loader never needs the whole file in memory.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from joinedup.errors import Problem


@dataclass(frozen=True, slots=True)
class Warning_:
    """Something odd that did not stop the unit being accepted (e.g. an implausibly old DOB)."""

    message: str
    location: str = ""
    code: str = "warning"


@dataclass(frozen=True, slots=True)
class Accepted:
    """One source unit turned into canonical FHIR R4 resources.

    ``resources`` are plain FHIR JSON dicts with ``resourceType`` and an ``id``
    that is stable for the source record (derived from org, feed and
    ``source_id``), so re-ingesting the same unit updates rather than
    duplicates. ``meta.security`` already carries category and sensitivity;
    the loader adds ``meta.source``, ``versionId`` and ``lastUpdated``.
    """

    unit: int
    """1-based position of the unit in its file (CSV data row, bundle entry, message)."""
    source_id: str
    resources: tuple[dict[str, Any], ...]
    warnings: tuple[Warning_, ...] = ()


@dataclass(frozen=True, slots=True)
class Rejected:
    """One source unit that could not be accepted, kept whole in quarantine."""

    unit: int
    raw: str
    """The unit exactly as read (a CSV line, a JSON entry, an ER7 message), for reprocessing."""
    problems: tuple[Problem, ...]
    source_id: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


Outcome = Accepted | Rejected
