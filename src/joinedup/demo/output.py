"""What a generation run writes and records: files, ground truth, deliberate bad rows.

:class:`Output` is the one mutable thing in a run: created by ``generate``,
filled by the exporters, then frozen into the manifest. Files are written as
bytes we hashed ourselves, so the manifest's sha256 is exactly what is on disk.
"""

from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True, slots=True)
class BadRow:
    """A deliberately bad row so the feeds' quarantine has work (issue 3)."""

    file: str
    row: int
    """CSV: 1-based data row (the header is row 0, the row is on line ``row + 1``);
    FHIR: 1-based bundle entry; HL7 v2: 1-based message in the file; 0: the whole file."""
    problem: str
    detail: str
    source_record_id: str
    person_id: str

    def as_json(self) -> dict[str, object]:
        return {
            "file": self.file,
            "row": self.row,
            "problem": self.problem,
            "detail": self.detail,
            "source_record_id": self.source_record_id,
            "person_id": self.person_id,
        }


@dataclass(frozen=True, slots=True)
class GroundTruthRow:
    org_code: str
    record_type: str
    source_record_id: str
    person_id: str


@dataclass(frozen=True, slots=True)
class WrittenFile:
    path: str
    org_code: str
    format: str
    encoding: str
    count: int
    """CSV: data rows; FHIR: resources in the bundle; HL7: messages."""
    sha256: str
    description: str

    def as_json(self) -> dict[str, object]:
        return {
            "path": self.path,
            "org": self.org_code,
            "format": self.format,
            "encoding": self.encoding,
            "count": self.count,
            "sha256": self.sha256,
            "description": self.description,
        }


@dataclass(frozen=True, slots=True)
class SensitiveRecord:
    org_code: str
    file: str
    record_type: str
    record_id: str
    category: str


@dataclass(frozen=True, slots=True)
class Tag:
    """A mark on a table row saying it is deliberately bad, resolved to a row number on write."""

    problem: str
    detail: str
    source_record_id: str
    person_id: str


@dataclass(slots=True)
class CsvTable:
    """Rows for one CSV file plus the bad-row tags that travel with them."""

    header: list[str]
    rows: list[list[str]] = field(default_factory=list)
    tags: list[list[Tag]] = field(default_factory=list)

    def add(self, row: list[str]) -> None:
        if len(row) != len(self.header):
            raise ValueError(f"row has {len(row)} fields, header has {len(self.header)}")
        self.rows.append(row)
        self.tags.append([])

    def insert(self, index: int, row: list[str], tag: Tag) -> None:
        self.rows.insert(index, row)
        self.tags.insert(index, [tag])

    def column(self, name: str) -> int:
        return self.header.index(name)

    def find(self, column: str, value: str) -> int:
        col = self.column(column)
        for i, row in enumerate(self.rows):
            if row[col] == value:
                return i
        raise KeyError(value)


@dataclass(slots=True)
class Output:
    root: Path
    files: list[WrittenFile] = field(default_factory=list)
    bad_rows: list[BadRow] = field(default_factory=list)
    truth: list[GroundTruthRow] = field(default_factory=list)
    sensitive: list[SensitiveRecord] = field(default_factory=list)

    def write_bytes(
        self, rel: str, data: bytes, *, org: str, fmt: str, encoding: str, count: int, about: str
    ) -> None:
        path = self.root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        digest = hashlib.sha256(data).hexdigest()
        self.files.append(WrittenFile(rel, org, fmt, encoding, count, digest, about))

    def write_csv(
        self, rel: str, table: CsvTable, *, org: str, about: str, encoding: str = "utf-8"
    ) -> None:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow(table.header)
        writer.writerows(table.rows)
        data = buffer.getvalue().encode(encoding)
        for number, tags in enumerate(table.tags, start=1):
            self.bad_rows.extend(
                BadRow(rel, number, t.problem, t.detail, t.source_record_id, t.person_id)
                for t in tags
            )
        label = {"utf-8-sig": "utf-8 with BOM", "cp1252": "windows-1252"}.get(encoding, encoding)
        self.write_bytes(
            rel, data, org=org, fmt="csv", encoding=label, count=len(table.rows), about=about
        )

    def file_problem(self, rel: str, problem: str, detail: str) -> None:
        self.bad_rows.append(BadRow(rel, 0, problem, detail, "", ""))
