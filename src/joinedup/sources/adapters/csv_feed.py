"""The CSV adapter: one row in, one Accepted or Rejected out, streamed.

Lines are decoded one by one (see :mod:`.lines`) and fed to the standard
``csv`` reader in strict mode, so quoted fields may hold commas and line
breaks, a stray quote is a located rejection rather than a silently merged
row, and a file that ends inside a quoted field or part-way through a row
has that last row rejected as cut short. The header is checked against the
mapping before any row: a missing required column refuses the file, naming
it; columns the mapping does not know are a warning (or refuse the file if
the feed says so).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any

from joinedup.errors import Problem
from joinedup.sources.adapters.base import FileRejected, Reading, Source, open_binary
from joinedup.sources.adapters.lines import DecodedLines, EncodingRefused, LineIssue
from joinedup.sources.adapters.seen import SeenIds
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.mapping.compile import CompiledMapping, RowMapper
from joinedup.sources.mapping.spec import CsvMapping, Encoding, FeedFormat

csv.field_size_limit(16 * 1024 * 1024)
"""A single field may be long (free-text notes), but not unbounded."""


class CsvAdapter:
    format = FeedFormat.CSV

    def __init__(self, mapping: CsvMapping, today: date | None = None) -> None:
        self.spec = mapping
        self._compiled = CompiledMapping(mapping, today)

    def read(self, source: Source) -> Reading:
        return Reading(lambda reading: self._outcomes(source, reading))

    def reprocess(self, raw: str, unit: int, extra: Mapping[str, Any]) -> Outcome:
        """Map one quarantined row again; ``extra["header"]`` is the file's header line."""
        header = str(extra.get("header", ""))
        data = (header + "\n" + raw + "\n").encode("utf-8")
        scratch = Reading(lambda r: iter(()))
        for outcome in self._outcomes(io.BytesIO(data), scratch, Encoding.UTF8):
            if isinstance(outcome, Accepted):
                return Accepted(unit, outcome.source_id, outcome.resources, outcome.warnings)
            return Rejected(unit, raw, outcome.problems, outcome.source_id, dict(extra))
        return Rejected(unit, raw, (Problem("the quarantined row is empty", f"row {unit}"),), None, dict(extra))

    def _outcomes(
        self, source: Source, reading: Reading, encoding: Encoding | None = None
    ) -> Iterator[Outcome]:
        settings = self.spec.settings
        with open_binary(source) as handle:
            lines = DecodedLines(handle, encoding or settings.encoding)
            reader = csv.reader(
                iter(lines), delimiter=settings.delimiter, quotechar=settings.quotechar, strict=True
            )
            try:
                header = [name.strip() for name in next(reader)]
            except StopIteration:
                raise FileRejected("the file is empty: it has no header row") from None
            except EncodingRefused as exc:
                raise FileRejected("the file's encoding cannot be read", [Problem(exc.message, "byte 0")]) from None
            except csv.Error as exc:
                raise FileRejected("the header row cannot be read", [Problem(str(exc), "line 1")]) from None
            header_text = lines.take_raw()
            bad = [i for i in lines.take_issues() if i.fatal]
            if bad:
                raise FileRejected(
                    "the header row cannot be decoded",
                    [Problem(i.message, f"line {i.line}") for i in bad],
                )
            mapper, problems, warnings = self._compiled.bind(header)
            if problems:
                raise FileRejected(f"the header does not fit mapping {self.spec.feed!r}", problems)
            reading.warnings.extend(warnings)
            notes_seen = 0
            for outcome in _rows(reader, lines, mapper, header_text):
                if len(lines.notes) > notes_seen:
                    reading.warnings.extend(Warning_(m, w, "encoding") for w, m in lines.notes[notes_seen:])
                    notes_seen = len(lines.notes)
                yield outcome
            reading.warnings.extend(Warning_(m, w, "encoding") for w, m in lines.notes[notes_seen:])


def _rows(reader: Any, lines: DecodedLines, mapper: RowMapper, header_text: str) -> Iterator[Outcome]:
    seen = SeenIds()
    width = mapper.width
    unit = 0
    while True:
        first_line = lines.line + 1
        start = lines.offset
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            unit += 1
            message = str(exc)
            if "unexpected end of data" in message:
                message = "the file ends inside a quoted field: the last row is cut short (truncated file?)"
            else:
                message = f"badly quoted field: {message}"
            yield _rejected(unit, lines, first_line, start, header_text, [message], None)
            continue
        except EncodingRefused as exc:  # pragma: no cover - only the first line can raise it
            raise FileRejected(exc.message) from None
        if not cells:  # a blank line is not a row
            lines.take_raw()
            lines.take_issues()
            continue
        unit += 1
        issues = lines.take_issues()
        if issues and any(i.fatal for i in issues):
            yield _rejected(unit, lines, first_line, start, header_text, [], None, issues)
            continue
        if len(cells) != width:
            if len(cells) < width and not lines.ended_with_newline:
                message = (
                    f"the row is cut short: {len(cells)} of {width} fields and the file ends"
                    " without a line break (truncated file?)"
                )
            else:
                message = f"the row has {len(cells)} fields but the header has {width}"
            yield _rejected(unit, lines, first_line, start, header_text, [message], None)
            continue
        source_id = mapper.source_id(cells)
        if not source_id:
            yield _rejected(unit, lines, first_line, start, header_text,
                            [f"the source id ({mapper.source_column}) is empty"], None)
            continue
        earlier = seen.add(source_id, unit)
        if earlier is not None:
            yield _rejected(unit, lines, first_line, start, header_text,
                            [f"duplicate source id: the same {mapper.source_column} as row {earlier}"], source_id)
            continue
        resources, warnings, problems = mapper.map_row(cells, unit)
        if problems:
            raw = lines.take_raw()
            yield Rejected(unit, raw, tuple(problems), source_id,
                           {"line": first_line, "byte_offset": start, "header": header_text})
            continue
        lines.recorded.clear()
        if issues:
            warnings.extend(Warning_(i.message, f"row {unit} (line {i.line})", "encoding") for i in issues)
        yield Accepted(unit, source_id, tuple(resources), tuple(warnings))


def _rejected(
    unit: int,
    lines: DecodedLines,
    first_line: int,
    start: int,
    header_text: str,
    messages: list[str],
    source_id: str | None,
    issues: list[LineIssue] = (),  # type: ignore[assignment]
) -> Rejected:
    where = f"row {unit} (line {first_line})"
    problems = [Problem(m, where) for m in messages]
    problems.extend(Problem(i.message, f"row {unit} (line {i.line})") for i in issues if i.fatal)
    lines.take_issues()
    return Rejected(
        unit, lines.take_raw(), tuple(problems), source_id,
        {"line": first_line, "byte_offset": start, "header": header_text},
    )
