"""Exported checkpoints: what a third party keeps to prove the log was not rewritten.

The export is JSON lines. The first line names the log and carries the public
keys (a JWK Set); every other line is a signed checkpoint or archive anchor,
exactly as stored (statement text and signature). Another organisation's IG
lead keeps the file; later, ``joinedup audit verify --against FILE`` checks
each exported checkpoint's signature with the keys in the file and that the
log still has the same hash at that seq.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from joinedup.audit.events import format_time
from joinedup.audit.keys import AuditKeyStore, PublicKeys
from joinedup.audit.statements import Anchor, Checkpoint
from joinedup.audit.store import ChainStore
from joinedup.errors import InvalidInput, NotFound, Problem
from joinedup.storage.engine import Database

HEADER = "audit-log"


@dataclass(frozen=True)
class ExportedCheckpoints:
    log_id: str
    exported: str
    keys: PublicKeys
    checkpoints: tuple[Checkpoint, ...]
    anchors: tuple[Anchor, ...]


def export_lines(db: Database, keys: AuditKeyStore) -> Iterator[bytes]:
    """The export, line by line (each ends with a newline)."""
    store = ChainStore(db)
    with store.snapshot() as snap:
        head = snap.head()
        if head is None:
            raise NotFound("the audit log is empty: there is nothing to export")
        yield orjson.dumps({
            "type": HEADER,
            "log": head.log_id,
            "exported": format_time(datetime.now(UTC)),
            "head_seq": head.seq,
            "keys": keys.public_jwks(),
        }) + b"\n"
        for anchor, _row, _name in snap.anchors():
            if anchor is not None:
                yield orjson.dumps(anchor.as_line()) + b"\n"
        for _seq, statement, signature in snap.checkpoints():
            yield orjson.dumps(
                {"type": "checkpoint", "statement": statement, "signature": signature}
            ) + b"\n"


def export_checkpoints(db: Database, keys: AuditKeyStore, out: IO[bytes]) -> int:
    """Write the export to ``out``; returns the number of statements written."""
    count = -1
    for line in export_lines(db, keys):
        out.write(line)
        count += 1
    return count


def read_export(path: Path) -> ExportedCheckpoints:
    """Parse an export file; every malformed line is reported at once."""
    problems: list[Problem] = []
    header: dict[str, Any] | None = None
    checkpoints: list[Checkpoint] = []
    anchors: list[Anchor] = []
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        for number, line in enumerate(handle, start=1):
            where = f"{path.name} line {number}"
            if not line.strip():
                continue
            try:
                item = orjson.loads(line)
            except orjson.JSONDecodeError:
                problems.append(Problem("not JSON", where))
                continue
            kind = item.get("type") if isinstance(item, dict) else None
            try:
                if number == 1:
                    if kind != HEADER:
                        problems.append(Problem("the first line must be the audit-log header", where))
                    else:
                        header = item
                elif kind == "checkpoint":
                    checkpoints.append(Checkpoint.parse(item["statement"], item["signature"]))
                elif kind == "anchor":
                    anchors.append(Anchor.parse(item["statement"], item["signature"]))
                else:
                    problems.append(Problem(f"unknown line type {kind!r}", where))
            except (KeyError, TypeError, ValueError) as exc:
                problems.append(Problem(f"malformed {kind}: {exc}", where))
    keys = PublicKeys({})
    if header is not None:
        try:
            keys = PublicKeys.from_jwks(header.get("keys") or {}, where=f"{path.name} line 1 keys")
        except InvalidInput as exc:
            problems.extend(exc.problems)
    if problems or header is None:
        raise InvalidInput(f"{path} is not a usable checkpoint export", problems)
    return ExportedCheckpoints(
        str(header.get("log")), str(header.get("exported")), keys, tuple(checkpoints), tuple(anchors)
    )
