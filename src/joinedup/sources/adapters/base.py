"""What every adapter shares: the Reading it returns, the file-level error, opening a source.

``adapter.read(source)`` returns a :class:`Reading`: an iterator of exactly
one ``Accepted`` or ``Rejected`` per unit, plus ``warnings`` about the file as
a whole (extra columns...), filled as soon as the adapter has read the
file's header. A problem with the file as a whole (a missing required
column, an unreadable encoding, JSON that is not a FHIR resource) raises
:class:`FileRejected` from the iteration, listing every problem found.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO, Protocol

from joinedup.errors import InvalidInput
from joinedup.sources.contract import Outcome, Warning_
from joinedup.sources.mapping.spec import FeedFormat, FeedSpec

Source = str | os.PathLike[str] | BinaryIO
"""A file path, or a binary stream (an upload being spooled, a test's BytesIO)."""


class FileRejected(InvalidInput):
    """The file as a whole cannot be read with this feed's spec; nothing in it was accepted
    (or, when raised part-way, nothing after the problem could be read)."""

    slug = "file-rejected"
    title = "File refused"


class Reading(Iterator[Outcome]):
    """The outcomes of reading one file, and the warnings about the file as a whole."""

    def __init__(self, make: Callable[[Reading], Iterator[Outcome]]) -> None:
        self.warnings: list[Warning_] = []
        self.units = 0
        """Units yielded so far (accepted + rejected)."""
        self._outcomes = make(self)

    def __iter__(self) -> Reading:
        return self

    def __next__(self) -> Outcome:
        outcome = next(self._outcomes)
        self.units += 1
        return outcome

    def close(self) -> None:
        close = getattr(self._outcomes, "close", None)
        if close is not None:
            close()


class Adapter(Protocol):
    """Reads one kind of feed file into outcomes; built by :func:`adapter_for`."""

    @property
    def format(self) -> FeedFormat: ...

    @property
    def spec(self) -> FeedSpec: ...

    def read(self, source: Source) -> Reading: ...

    def reprocess(self, raw: str, unit: int, extra: Mapping[str, Any]) -> Outcome:
        """Map one quarantined unit again (after the spec was fixed), from its ``raw`` text
        and the ``extra`` the Rejected carried."""
        ...


@contextmanager
def open_binary(source: Source) -> Iterator[BinaryIO]:
    if isinstance(source, str | os.PathLike):
        try:
            handle = Path(source).open("rb")  # noqa: SIM115 - closed below, after the yield
        except OSError as exc:
            raise FileRejected(f"cannot open {source}: {exc.strerror or exc}") from None
        with handle:
            yield handle
    elif isinstance(source, io.IOBase) or hasattr(source, "read"):
        yield source
    else:  # pragma: no cover - typing forbids it
        raise TypeError(f"cannot read from {type(source).__name__}")
