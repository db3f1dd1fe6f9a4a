"""HTTP ``Range: bytes=...`` for ITI-68 retrieve, as plaintext offsets (RFC 9110 §14).

Pure: turns the header and the document size into the half-open ``[start,
stop)`` that ``ContentStore.open`` takes. One range only: a multi-range or
malformed header is ignored (the whole document is sent with 200, which RFC
9110 allows); a well-formed range that cannot be satisfied raises
``RangeNotSatisfiable`` (416, with ``Content-Range: bytes */size``).
"""

from __future__ import annotations

import re

from joinedup.documents.errors import RangeNotSatisfiable
from joinedup.errors import Problem

_SINGLE = re.compile(r"\s*bytes\s*=\s*(\d*)\s*-\s*(\d*)\s*", re.IGNORECASE)


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """``(start, stop)`` for a satisfiable single range; None to send everything."""
    if not header:
        return None
    match = _SINGLE.fullmatch(header)
    if match is None:
        return None
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # suffix: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise _unsatisfiable(header, size)
        return (max(size - length, 0), size)
    start = int(first)
    if last and int(last) < start:
        return None  # invalid: ignored, as RFC 9110 says
    if start >= size:
        raise _unsatisfiable(header, size)
    stop = size if not last else min(int(last) + 1, size)
    return (start, stop)


def content_range(start: int, stop: int, size: int) -> str:
    """The ``Content-Range`` header of a 206 answer."""
    return f"bytes {start}-{stop - 1}/{size}"


def _unsatisfiable(header: str, size: int) -> RangeNotSatisfiable:
    return RangeNotSatisfiable(
        f"range {header.strip()!r} is outside the document's {size} bytes",
        [Problem(f"Content-Range: bytes */{size}", "Range")],
    )
