"""Retention: move events older than the retention period to a signed archive file.

The archive is JSON lines, self-describing and verifiable offline:

1. a header: log id, the seq range, the hash the range follows (``prev_hash``)
   and ends with (``last_hash``), and the public keys that sign;
2. the checkpoints that fall in the range, as stored;
3. every event: seq, prev_hash, hash and the canonical body, exactly as stored;
4. a trailer: the signed **anchor** statement, which names the SHA-256 of
   every byte before it and the last hash.

Only once the file is written and fsynced are the events deleted, in one
transaction that also stores the anchor. ``verify`` then starts the chain
from the newest anchor's last hash, and checks the anchors' signatures and
that they follow one another, so what remains still verifies, and nobody can
quietly delete old events without a signed anchor saying where they went.
"""

from __future__ import annotations

import hashlib
import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from joinedup.audit.events import GENESIS_HASH, AuditAction, chain_hash, format_time
from joinedup.audit.keys import AuditKeyStore, PublicKeys
from joinedup.audit.statements import Anchor, Checkpoint
from joinedup.audit.store import ChainStore, Head
from joinedup.audit.verify import ChainVerifier, Finding, ProblemKind, VerifyReport
from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.storage.engine import Database

HEADER = "audit-archive"
TRAILER = "archive-signature"


@dataclass(frozen=True)
class ArchiveResult:
    path: Path
    first_seq: int
    last_seq: int
    events: int
    checkpoints: int
    last_hash: str
    sha256: str
    anchor: Anchor

    def as_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "events": self.events,
            "checkpoints": self.checkpoints,
            "last_hash": self.last_hash,
            "sha256": self.sha256,
            "kid": self.anchor.kid,
        }


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def archive(
    db: Database,
    keys: AuditKeyStore,
    *,
    before: datetime,
    out: Path,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ArchiveResult | None:
    """Archive the oldest events (all those before ``before``, in chain order) to ``out``.

    Returns None when nothing is old enough. The archived range is a prefix
    of the chain: it stops at the first event at or after ``before``.
    """
    if before.tzinfo is None:
        raise InvalidInput("the archive cut-off must include a time zone")
    if out.exists():
        raise Conflict(f"{out} already exists: choose a new file for each archive")
    key = keys.active()
    store = ChainStore(db)
    partial = out.with_name(out.name + ".partial")
    with store.snapshot() as snap:
        head = snap.head()
        if head is None:
            return None
        start_seq, start_hash = 0, GENESIS_HASH
        for anchor_, _row, name in snap.anchors():
            if anchor_ is None:
                raise Conflict(f"archive anchor {name} is unreadable: run `joinedup audit verify`")
            start_seq, start_hash = anchor_.last_seq, anchor_.last_hash
        first_young = snap.first_seq_at_or_after(start_seq, before)
        last_seq = head.seq if first_young is None else first_young - 1
        if last_seq <= start_seq:
            return None
        out.parent.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256()
        events = checkpoints = 0
        with partial.open("wb") as handle:

            def write(item: dict[str, Any]) -> None:
                line = orjson.dumps(item) + b"\n"
                digest.update(line)
                handle.write(line)

            last_hash = _last_hash_through(snap, start_seq, last_seq, start_hash)
            write({
                "type": HEADER,
                "v": 1,
                "log": head.log_id,
                "first_seq": start_seq + 1,
                "last_seq": last_seq,
                "prev_hash": start_hash,
                "last_hash": last_hash,
                "created": format_time(clock()),
                "keys": keys.public_jwks(),
            })
            for _seq, statement, signature in snap.checkpoints(after=start_seq, through=last_seq):
                write({"type": "checkpoint", "statement": statement, "signature": signature})
                checkpoints += 1
            for row in snap.events(after=start_seq, through=last_seq):
                write({"type": "event", "seq": row[0], "prev_hash": row[1], "hash": row[2],
                       "body": row[3]})
                events += 1
            anchor = Anchor.make(
                log_id=head.log_id, first_seq=start_seq + 1, last_seq=last_seq,
                prev_hash=start_hash, last_hash=last_hash, archive_sha256=digest.hexdigest(),
                time=clock(), key=key,
            )
            handle.write(orjson.dumps({"type": TRAILER, "statement": anchor.statement,
                                       "signature": anchor.signature}) + b"\n")
            handle.flush()
            os.fsync(handle.fileno())
    os.replace(partial, out)
    _fsync_dir(out.parent)
    with store.write() as txn:
        txn.head()  # take the chain lock: no archive or writer runs beside this
        if txn.latest_anchor_seq() != start_seq:
            raise Conflict("another archive ran at the same time; nothing was deleted")
        txn.add_anchor(anchor, out.name)
        txn.delete_through(last_seq)
    return ArchiveResult(out, start_seq + 1, last_seq, events, checkpoints, last_hash,
                         anchor.archive_sha256, anchor)


def _last_hash_through(snap: Any, start_seq: int, last_seq: int, start_hash: str) -> str:
    """Walk the range once, refusing to archive a chain that does not verify."""
    expected_seq, prev = start_seq + 1, start_hash
    for row in snap.events(after=start_seq, through=last_seq):
        seq, prev_hash, hash_, body = row[0], row[1], row[2], row[3]
        if seq != expected_seq or prev_hash != prev or chain_hash(prev_hash, body.encode()) != hash_:
            raise Conflict(
                f"the chain does not verify at seq {seq}: nothing was archived; "
                "run `joinedup audit verify` to see what is wrong"
            )
        expected_seq, prev = seq + 1, hash_
    if expected_seq != last_seq + 1:
        raise Conflict(f"events up to seq {last_seq} are missing: nothing was archived")
    return prev


def _archive_row(item: dict[str, Any]) -> tuple[Any, ...]:
    """An archive line as the row ``ChainVerifier`` reads (filter columns from the body)."""
    body = str(item["body"])
    try:
        d = orjson.loads(body)
        actor = d["actor"]
        subject = d["detail"].get("reviewed_seq") if d["action"] == AuditAction.AUDIT_REVIEW else None
        return (
            int(item["seq"]), str(item["prev_hash"]), str(item["hash"]), body, d["time"],
            d["action"], d["outcome"], actor["org"], actor["client_id"], actor["practitioner"],
            actor["role"], d["purpose"], d["break_glass"] is not None, subject,
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
        return (int(item["seq"]), str(item["prev_hash"]), str(item["hash"]), body,
                None, None, None, None, None, None, None, None, False, None)


def verify_archive(path: Path, keys: PublicKeys | None = None) -> VerifyReport:
    """Check an archive file offline: chain, checkpoints, content hash and the signed anchor.

    ``keys`` are the public keys you trust (e.g. from a checkpoint export you
    hold); without them the keys inside the archive are used, which proves
    integrity only if you compare their kids with keys you trust.
    """
    try:
        handle = path.open("rb")
    except OSError as exc:
        raise NotFound(f"cannot read {path}: {exc.strerror}") from None
    with handle:
        digest = hashlib.sha256()
        lines = iter(handle)
        first = next(lines, b"")
        digest.update(first)
        header = _json_line(first, path, 1)
        if header.get("type") != HEADER:
            raise InvalidInput(f"{path} is not an audit archive",
                               [Problem("the first line must be the archive header", "line 1")])
        trusted = keys or PublicKeys.from_jwks(header.get("keys") or {}, where=f"{path.name} keys")
        checkpoints: list[tuple[int, str, str]] = []
        trailer: dict[str, Any] = {}
        pending: list[bytes] = []
        for number, raw in enumerate(lines, start=2):
            item = _json_line(raw, path, number)
            if item.get("type") == "checkpoint":
                digest.update(raw)
                cp = Checkpoint.parse(item["statement"], item["signature"])
                checkpoints.append((cp.seq, cp.statement, cp.signature))
                continue
            pending.append(raw)
            break

        def rows() -> Iterator[tuple[Any, ...]]:
            number = len(checkpoints) + 2
            for raw in itertools.chain(pending, lines):
                item = _json_line(raw, path, number)
                number += 1
                if item.get("type") == TRAILER:
                    trailer.update(item)
                    return
                digest.update(raw)
                yield _archive_row(item)

        head = Head(str(header.get("log")), int(header["last_seq"]), str(header["last_hash"]), 0, None)
        verifier = ChainVerifier(
            keys=trusted, head=head, person_index=False,
            start=(int(header["first_seq"]) - 1, str(header["prev_hash"])),
        )
        report = verifier.run(rows(), checkpoints)
        if not report.ok:
            return report
        return _check_trailer(report, trailer, header, digest.hexdigest(), trusted)


def _check_trailer(
    report: VerifyReport, trailer: dict[str, Any], header: dict[str, Any], sha256: str,
    keys: PublicKeys,
) -> VerifyReport:
    def failed(kind: ProblemKind, message: str) -> VerifyReport:
        return VerifyReport(**{**report.__dict__, "ok": False,
                               "problem": Finding(kind, None, message)})

    if not trailer:
        return failed(ProblemKind.DELETED, "the archive has no signed trailer: it was truncated")
    try:
        anchor = Anchor.parse(str(trailer["statement"]), str(trailer["signature"]))
    except (KeyError, ValueError) as exc:
        return failed(ProblemKind.MALFORMED, f"the archive trailer is unreadable: {exc}")
    check = anchor.check(keys)
    if check.value != "valid":
        kind = ProblemKind.UNKNOWN_KEY if check.value == "unknown-key" else ProblemKind.BAD_SIGNATURE
        return failed(kind, f"the archive's signature is not valid ({check.value}, kid {anchor.kid})")
    if anchor.archive_sha256 != sha256:
        return failed(ProblemKind.ALTERED, "the archive's content does not match its signed hash")
    expected = (header.get("log"), header.get("first_seq"), header.get("last_seq"),
                header.get("prev_hash"), header.get("last_hash"))
    got = (anchor.log_id, anchor.first_seq, anchor.last_seq, anchor.prev_hash, anchor.last_hash)
    if expected != got:
        return failed(ProblemKind.ALTERED, "the archive header does not match its signed anchor")
    return report


def _json_line(raw: bytes, path: Path, number: int) -> dict[str, Any]:
    try:
        item = orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise InvalidInput(f"{path} is not an audit archive",
                           [Problem("not JSON", f"line {number}")]) from None
    if not isinstance(item, dict):
        raise InvalidInput(f"{path} is not an audit archive",
                           [Problem("not a JSON object", f"line {number}")])
    return item
