"""``_include``: which stored resources a page of matches points at.

Pure: the targets are read from each match's own elements (its subject column
for ``patient``/``subject``, the literal ``Type/id`` references at a reference
parameter's paths). The store then reads them **through the caller's access
filter**, like any other read, so a reference to what the caller may not see
(another person's record, a withheld category) is followed to nothing, exactly
as a reference to a resource that does not exist.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from joinedup.records.params import SUPPORTED_TYPES, Kind, references, walk
from joinedup.records.query import Query, include_params


def include_targets(
    query: Query, matches: Iterable[tuple[dict[str, Any], str | None]]
) -> set[tuple[str, str]]:
    """(type, id) of every stored-type resource the ``query``'s includes reach from
    ``matches`` ((resource, subject id) pairs), the matches themselves excluded."""
    wanted: set[tuple[str, str]] = set()
    own: set[tuple[str, str]] = set()
    follow = [(inc, include_params(query.resource_type, inc)) for inc in query.includes]
    for resource, subject in matches:
        own.add((str(resource.get("resourceType")), str(resource.get("id"))))
        for inc, params in follow:
            for p in params:
                if p.kind is Kind.SUBJECT:
                    found = {("Patient", subject)} if subject else set()
                else:
                    found = {
                        ref for path in p.paths for value in walk(resource, path)
                        for ref in references(value)
                    }
                wanted |= {
                    (t, i) for t, i in found
                    if t in SUPPORTED_TYPES and inc.target_type in (None, t)
                }
    return wanted - own
