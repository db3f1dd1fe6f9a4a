"""Verification: recompute the whole chain and check every signed statement.

``ChainVerifier`` is pure: it consumes rows (from the database, or from an
archive file) in seq order and returns a report naming the FIRST problem.
It keeps only the last two hashes and the pending checkpoint, so memory is
flat and time linear. When something is wrong it reads a few rows ahead to
say precisely what happened:

* **altered**: an event's content no longer matches its hash, or a filter
  column (time, action, organisation, practitioner, person index...) no
  longer matches the hashed content;
* **deleted**: a gap in seqs, events missing from the end, or later events
  renumbered to close a gap;
* **inserted**: an event that its successor skips over, an event beyond the
  recorded head, or one inside an archived range;
* **reordered**: events whose own seqs run backwards between N and M;
* **broken-link**: event N does not link to event N-1 although both look
  intact (N-1 altered and re-hashed, or replaced);
* **checkpoint-mismatch / bad-signature / unknown-key**: a signed checkpoint
  (stored or exported) that does not match the chain at its seq, or whose
  signature fails, or whose key is unknown.

A chain rewritten consistently from some event onwards (every later hash
recomputed) passes the link checks; the first checkpoint after the rewrite
no longer matches, which is why checkpoints are exported to third parties.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

import msgspec
import orjson

from joinedup.audit.events import GENESIS_HASH, AuditAction, chain_hash
from joinedup.audit.keys import PublicKeys, SignatureCheck
from joinedup.audit.statements import Anchor, Checkpoint
from joinedup.audit.store import Head

LOOKAHEAD = 64
"""Rows read past the first anomaly to classify it."""


class _ActorFields(msgspec.Struct):
    org: Any
    client_id: Any
    practitioner: Any
    role: Any


class _DetailFields(msgspec.Struct):
    reviewed_seq: Any = None


class _Columns(msgspec.Struct):
    """The parts of an event body that the filter columns copy. Decoding only these
    (msgspec skips the rest without building it) is about twice as fast as parsing the
    whole body, and parsing is most of the walk's time after hashing. Fields are
    ``Any`` so that a wrong type reads as a column mismatch, as a full parse would."""

    seq: Any
    time: Any
    action: Any
    outcome: Any
    actor: _ActorFields
    purpose: Any
    break_glass: Any
    persons: Any
    detail: _DetailFields


_decode_columns = msgspec.json.Decoder(_Columns).decode



class ProblemKind(StrEnum):
    ALTERED = "altered"
    DELETED = "deleted"
    INSERTED = "inserted"
    REORDERED = "reordered"
    BROKEN_LINK = "broken-link"
    CHECKPOINT_MISMATCH = "checkpoint-mismatch"
    BAD_SIGNATURE = "bad-signature"
    UNKNOWN_KEY = "unknown-key"
    MALFORMED = "malformed"


@dataclass(frozen=True, slots=True)
class Finding:
    kind: ProblemKind
    seq: int | None
    message: str

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind.value, "seq": self.seq, "message": self.message}


@dataclass(frozen=True)
class VerifyReport:
    ok: bool
    events: int
    """Events checked."""
    first_seq: int | None
    last_seq: int | None
    head_seq: int
    anchor_seq: int
    """Events up to here are archived; the chain verified from the anchor's hash."""
    checkpoints: int
    """Stored checkpoints checked (signature and hash)."""
    external: int = 0
    """Exported checkpoints (``--against``) checked against the chain."""
    external_archived: int = 0
    """Exported checkpoints that fall in archived ranges: check those archives offline."""
    problem: Finding | None = None
    notes: tuple[str, ...] = field(default=())
    segments: int = 1
    """How many segments were walked in parallel (1: one sequential walk)."""

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "events": self.events,
            "first_seq": self.first_seq,
            "last_seq": self.last_seq,
            "head_seq": self.head_seq,
            "anchor_seq": self.anchor_seq,
            "checkpoints": self.checkpoints,
            "external_checkpoints": self.external,
            "external_checkpoints_archived": self.external_archived,
            "problem": None if self.problem is None else self.problem.as_dict(),
            "notes": list(self.notes),
            "segments": self.segments,
        }

    def summary(self) -> str:
        span = (
            f"seq {self.first_seq}..{self.last_seq}" if self.first_seq is not None else "no events"
        )
        text = (
            f"{self.events} events ({span}), {self.checkpoints} checkpoints"
            + (f", {self.external} exported checkpoints" if self.external else "")
            + (f", archived through seq {self.anchor_seq}" if self.anchor_seq else "")
        )
        if self.problem is None:
            return "audit log verified: " + text
        return f"audit log FAILED verification: {self.problem.kind.value}: {self.problem.message}"


class _Stop(Exception):
    def __init__(self, finding: Finding) -> None:
        self.finding = finding


@dataclass(frozen=True, slots=True)
class _Row:
    """A row read for classification, with its own seq parsed from the body."""

    seq: int
    prev_hash: str
    hash: str
    body: bytes
    body_seq: int | None

    @classmethod
    def of(cls, row: Sequence[Any]) -> _Row:
        body = row[3].encode() if isinstance(row[3], str) else bytes(row[3])
        try:
            parsed = orjson.loads(body)
            body_seq = int(parsed["seq"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            body_seq = None
        return cls(int(row[0]), str(row[1]), str(row[2]), body, body_seq)

    @property
    def intact(self) -> bool:
        try:
            return chain_hash(self.prev_hash, self.body) == self.hash
        except ValueError:  # prev_hash is not hex
            return False


def _column_problem(row: Sequence[Any], body: dict[str, Any], when: str) -> str:
    """Name the first filter column that disagrees with the hashed content, or ''."""
    actor = body.get("actor") or {}
    expected_subject = (
        body["detail"].get("reviewed_seq") if body.get("action") == AuditAction.AUDIT_REVIEW else None
    )
    checks = (
        ("seq", body.get("seq") == row[0]),
        ("time", when == row[4]),
        ("action", body.get("action") == row[5]),
        ("outcome", body.get("outcome") == row[6]),
        ("org", actor.get("org") == row[7]),
        ("client_id", actor.get("client_id") == row[8]),
        ("practitioner", actor.get("practitioner") == row[9]),
        ("role", actor.get("role") == row[10]),
        ("purpose", body.get("purpose") == row[11]),
        ("break_glass", (body.get("break_glass") is not None) == bool(row[12])),
        ("subject_seq", expected_subject == row[13]),
    )
    for name, ok in checks:
        if not ok:
            return name
    return ""


def _persons_match(indexed: str | None, persons: list[str]) -> bool:
    if (indexed or "") == "\n".join(persons):
        return True
    return sorted(indexed.split("\n")) == persons if indexed else not persons


class ChainVerifier:
    """Checks one log's rows against its head, anchors and checkpoints."""

    def __init__(
        self,
        *,
        keys: PublicKeys,
        head: Head | None,
        anchors: Sequence[tuple[Anchor | None, str]] = (),
        external: Sequence[Checkpoint] = (),
        external_keys: PublicKeys | None = None,
        person_index: bool = True,
        sqlite_time: bool = False,
        start: tuple[int, str] | None = None,
        segment: bool = False,
    ) -> None:
        """Rows are ``VERIFY_COLUMNS``: seq, prev_hash, hash, body (bytes or text), time
        (canonical text), action, outcome, org, client_id, practitioner, role, purpose,
        break_glass, subject_seq and, with ``person_index``, the person index's ids for
        the event joined by newlines. With ``sqlite_time`` the time column is SQLite's
        stored text (``YYYY-MM-DD HH:MM:SS.ffffff``), compared here rather than
        reformatted in SQL, which costs more. A ``segment`` is part of a log checked in
        parallel: its ``head`` is the segment's last seq, whose hash is not known. ``start`` (seq, hash) replaces the anchors: where
        an archive file's chain begins."""
        self.keys = keys
        self.start = start
        self.head = head
        self.anchors = anchors
        self.external = sorted(external, key=lambda c: c.seq)
        self.external_keys = external_keys or keys
        self.person_index = person_index
        self.sqlite_time = sqlite_time
        self.segment = segment
        self.last_hash: str | None = None
        """After a segment's walk: the hash of its last event."""

    # -- entry point ---------------------------------------------------------------
    def run(
        self,
        events: Iterable[Sequence[Any]],
        checkpoints: Iterable[Sequence[Any]] = (),
    ) -> VerifyReport:
        """Walk ``events`` with the stored ``checkpoints`` (seq, statement, signature),
        both in seq order."""
        self._events = 0
        self._first: int | None = None
        self._last: int | None = None
        self._checked = 0
        self._external_checked = 0
        self._external_archived = 0
        self._start_seq = 0
        self._last_matched = 0
        try:
            start_seq, start_hash = self._check_anchors()
            self._start_seq = start_seq
            self._walk(start_seq, start_hash, iter(events), checkpoints)
        except _Stop as stop:
            return self._report(stop.finding)
        return self._report(None)

    def _report(self, problem: Finding | None) -> VerifyReport:
        if self._last is not None:  # rows are contiguous from the start once accepted
            self._first = self._start_seq + 1
            self._events = self._last - self._start_seq
        notes = []
        if self._external_archived:
            notes.append(
                f"{self._external_archived} exported checkpoints fall in archived ranges: "
                "verify those archive files with `joinedup audit verify-archive`"
            )
        return VerifyReport(
            ok=problem is None,
            events=self._events,
            first_seq=self._first,
            last_seq=self._last,
            head_seq=0 if self.head is None else self.head.seq,
            anchor_seq=self._start_seq,
            checkpoints=self._checked,
            external=self._external_checked,
            external_archived=self._external_archived,
            problem=problem,
            notes=tuple(notes),
        )

    # -- anchors ---------------------------------------------------------------------
    def start_point(self) -> tuple[int, str] | None:
        """Where the live chain starts (newest anchor, or genesis); None if the anchors
        themselves do not verify (``run`` then says why)."""
        try:
            return self._check_anchors()
        except _Stop:
            return None

    def _check_anchors(self) -> tuple[int, str]:
        if self.start is not None:
            return self.start
        seq, hash_ = 0, GENESIS_HASH
        for anchor, name in self.anchors:
            if anchor is None:
                raise _Stop(Finding(ProblemKind.MALFORMED, None, f"archive anchor {name} is unreadable"))
            self._signature(anchor.check(self.keys), anchor.last_seq, f"archive anchor {name}")
            if self.head is not None and anchor.log_id != self.head.log_id:
                raise _Stop(Finding(
                    ProblemKind.MALFORMED, anchor.last_seq,
                    f"archive anchor {name} belongs to another log ({anchor.log_id})",
                ))
            if anchor.first_seq != seq + 1 or anchor.prev_hash != hash_:
                raise _Stop(Finding(
                    ProblemKind.BROKEN_LINK, anchor.first_seq,
                    f"archive anchor {name} (seq {anchor.first_seq}..{anchor.last_seq}) does not "
                    f"follow the archive before it (which ends at seq {seq})",
                ))
            seq, hash_ = anchor.last_seq, anchor.last_hash
        return seq, hash_

    def _signature(self, result: SignatureCheck, seq: int, what: str) -> None:
        if result is SignatureCheck.UNKNOWN_KEY:
            raise _Stop(Finding(ProblemKind.UNKNOWN_KEY, seq, f"{what} is signed by an unknown key"))
        if result is SignatureCheck.BAD_SIGNATURE:
            raise _Stop(Finding(ProblemKind.BAD_SIGNATURE, seq, f"{what} has a bad signature"))

    # -- checkpoints -------------------------------------------------------------------
    def _checkpoint_items(
        self, stored: Iterable[Sequence[Any]]
    ) -> Iterator[tuple[int, int, Checkpoint]]:
        def parsed_stored() -> Iterator[tuple[int, int, Checkpoint]]:
            for row in stored:
                seq = int(row[0])
                try:
                    cp = Checkpoint.parse(str(row[1]), str(row[2]))
                except ValueError as exc:
                    raise _Stop(Finding(
                        ProblemKind.MALFORMED, seq, f"checkpoint at seq {seq} is unreadable: {exc}"
                    )) from None
                if cp.seq != seq:
                    raise _Stop(Finding(
                        ProblemKind.ALTERED, seq,
                        f"checkpoint row at seq {seq} holds a statement for seq {cp.seq}",
                    ))
                yield seq, 0, cp

        external = ((cp.seq, 1, cp) for cp in self.external)
        return heapq.merge(parsed_stored(), external, key=lambda item: (item[0], item[1]))

    def _check_checkpoint(self, source: int, cp: Checkpoint, chain_hash_at: str | None) -> None:
        what = ("exported checkpoint" if source else "checkpoint") + f" at seq {cp.seq}"
        keys = self.external_keys if source else self.keys
        self._signature(cp.check(keys), cp.seq, what)
        if self.head is not None and cp.log_id != self.head.log_id:
            raise _Stop(Finding(
                ProblemKind.MALFORMED, cp.seq, f"{what} belongs to another log ({cp.log_id})"
            ))
        if chain_hash_at is None:  # archived range
            if source:
                self._external_archived += 1
            return
        if cp.hash != chain_hash_at:
            raise _Stop(Finding(
                ProblemKind.CHECKPOINT_MISMATCH, cp.seq,
                f"the chain at seq {cp.seq} does not match the {what} signed "
                f"{cp.time.isoformat()}: events at or before seq {cp.seq} were rewritten"
                + (f" (after seq {self._last_matched}, where a checkpoint still matched)"
                   if self._last_matched else ""),
            ))
        self._last_matched = cp.seq
        if source:
            self._external_checked += 1
        else:
            self._checked += 1

    # -- the walk ----------------------------------------------------------------------
    def _walk(
        self,
        start_seq: int,
        start_hash: str,
        events: Iterator[Sequence[Any]],
        stored_checkpoints: Iterable[Sequence[Any]],
    ) -> None:
        head = self.head
        head_seq = head.seq if head is not None else 0
        cps = self._checkpoint_items(stored_checkpoints)
        self._last_matched = 0
        pending = next(cps, None)
        while pending is not None and pending[0] <= start_seq:
            _, source, cp = pending
            self._check_checkpoint(source, cp, start_hash if cp.seq == start_seq else None)
            pending = next(cps, None)
        pending_seq = pending[0] if pending is not None else -1

        # The hot loop: a few microseconds a row, so locals only.
        sha256 = hashlib.sha256
        decode = _decode_columns
        review = AuditAction.AUDIT_REVIEW.value
        check_persons = self.person_index
        sqlite_time = self.sqlite_time
        prev_seq, prev_hex, pp_hex = start_seq, start_hash, None
        prev = bytes.fromhex(start_hash)
        for row in events:
            seq = row[0]
            body = row[3]
            if type(body) is not bytes:
                body = body.encode() if isinstance(body, str) else bytes(body)
            if seq != prev_seq + 1 or row[1] != prev_hex or seq > head_seq:
                self._anomaly(row, events, prev_seq, prev_hex, pp_hex, head_seq, start_seq)
            digest = sha256(prev + body).digest()
            hash_ = digest.hex()
            if hash_ != row[2]:
                raise _Stop(Finding(
                    ProblemKind.ALTERED, seq,
                    f"event {seq} was altered: its content no longer matches its hash",
                ))
            try:
                d = decode(body)
                actor = d.actor
                when = d.time
                if sqlite_time:
                    when = when[:10] + " " + when[11:26]
                columns_ok = (
                    d.seq == seq
                    and (when, d.action, d.outcome, actor.org, actor.client_id,
                         actor.practitioner, actor.role, d.purpose) == row[4:12]
                    and (d.break_glass is not None) == bool(row[12])
                    and (d.detail.reviewed_seq if d.action == review else None) == row[13]
                )
                people = d.persons
            except (msgspec.DecodeError, TypeError):
                raise _Stop(Finding(
                    ProblemKind.MALFORMED, seq, f"event {seq} is not a well-formed audit event"
                )) from None
            if not columns_ok:
                column = _column_problem(row, orjson.loads(body), when)
                raise _Stop(Finding(
                    ProblemKind.ALTERED, seq,
                    f"event {seq} was altered: its {column} column no longer matches "
                    "its hashed content",
                ))
            if (check_persons and (row[14] or "") != "\n".join(people)
                    and not _persons_match(row[14], people)):
                raise _Stop(Finding(
                    ProblemKind.ALTERED, seq,
                    f"event {seq} was altered: the person index no longer matches "
                    "the persons in its hashed content",
                ))
            self._last = seq
            while pending_seq == seq:
                assert pending is not None
                self._check_checkpoint(pending[1], pending[2], hash_)
                pending = next(cps, None)
                pending_seq = pending[0] if pending is not None else -1
            pp_hex = prev_hex
            prev_seq, prev_hex, prev = seq, hash_, digest
        self._finish(prev_seq, prev_hex, start_seq, pending)

    def _finish(
        self,
        last_seq: int,
        last_hash: str,
        start_seq: int,
        pending: tuple[int, int, Checkpoint] | None,
    ) -> None:
        head = self.head
        if head is None:
            if last_seq > start_seq:
                raise _Stop(Finding(ProblemKind.MALFORMED, None, "the chain head row is missing"))
            return
        if last_seq < head.seq:
            first_missing = last_seq + 1
            raise _Stop(Finding(
                ProblemKind.DELETED, first_missing,
                f"events {first_missing}..{head.seq} were deleted from the end of the log "
                f"(the chain head records seq {head.seq})",
            ))
        if self.segment:
            self.last_hash = last_hash
        elif last_seq == head.seq and last_seq > start_seq and last_hash != head.hash:
            raise _Stop(Finding(
                ProblemKind.ALTERED, last_seq,
                f"the chain head's hash does not match event {last_seq}",
            ))
        if (not self.segment and last_seq == start_seq and head.seq == start_seq
                and head.hash != last_hash):
            raise _Stop(Finding(
                ProblemKind.ALTERED, head.seq, "the chain head's hash does not match the archive anchor"
            ))
        if pending is not None:
            _, source, cp = pending
            self._signature(cp.check(self.external_keys if source else self.keys), cp.seq,
                            f"checkpoint at seq {cp.seq}")
            raise _Stop(Finding(
                ProblemKind.DELETED, last_seq + 1,
                f"a checkpoint covers seq {cp.seq} but the log ends at seq {last_seq}: "
                f"events {last_seq + 1}..{cp.seq} were deleted and the head rewound",
            ))

    # -- classifying the first anomaly ------------------------------------------------
    def _anomaly(
        self,
        first: Sequence[Any],
        events: Iterator[Sequence[Any]],
        prev_seq: int,
        prev_hash: str,
        pp_hash: str | None,
        head_seq: int,
        start_seq: int,
    ) -> None:
        window = [_Row.of(first)]
        for row in events:
            window.append(_Row.of(row))
            if len(window) > LOOKAHEAD:
                break
        raise _Stop(classify(window, prev_seq, prev_hash, pp_hash, head_seq, start_seq))


def classify(
    window: list[_Row],
    prev_seq: int,
    prev_hash: str,
    pp_hash: str | None,
    head_seq: int,
    start_seq: int,
) -> Finding:
    """Say what happened at ``window[0]``, the first row that does not follow on."""
    row = window[0]
    seq, own = row.seq, row.body_seq
    if not row.intact:
        return Finding(ProblemKind.ALTERED, seq,
                       f"event {seq} was altered: its content no longer matches its hash")
    if own is None:
        return Finding(ProblemKind.MALFORMED, seq, f"event {seq} is not a well-formed audit event")
    if seq <= start_seq:
        return Finding(ProblemKind.INSERTED, seq,
                       f"event {seq} lies in the archived range (through seq {start_seq}) "
                       "but is in the log")
    if row.prev_hash == prev_hash:
        if seq > head_seq:
            return Finding(ProblemKind.INSERTED, seq,
                           f"event {seq} was inserted after the recorded chain head (seq {head_seq})")
        return Finding(ProblemKind.ALTERED, seq,
                       f"event {seq} was altered: it is stored at seq {seq} but says it is {own}")
    if pp_hash is not None and row.prev_hash == pp_hash:
        return Finding(ProblemKind.INSERTED, prev_seq,
                       f"event {prev_seq} was inserted: event {seq} (which says it is {own}) "
                       f"links to event {prev_seq - 1}")
    if own == seq and seq > prev_seq + 1:
        return Finding(ProblemKind.DELETED, prev_seq + 1,
                       f"events {prev_seq + 1}..{seq - 1} were deleted (gap after seq {prev_seq})"
                       if seq - 1 > prev_seq + 1 else
                       f"event {prev_seq + 1} was deleted (gap after seq {prev_seq})")
    if own != seq:
        for later in window[1:]:
            if later.body_seq is not None and later.body_seq < own:
                end = seq
                for w in window:
                    if w.body_seq == w.seq:
                        break
                    end = w.seq
                return Finding(ProblemKind.REORDERED, seq,
                               f"events {seq}..{end} were reordered: prev_hash links are broken "
                               f"between seq {seq} and {end} (the event at {seq} says it is {own})")
        if own > seq:
            missing = own - seq
            return Finding(ProblemKind.DELETED, prev_seq + 1,
                           f"{missing} event(s) after seq {prev_seq} were deleted and later events "
                           f"renumbered (the event at {seq} says it is {own})")
        return Finding(ProblemKind.INSERTED, own,
                       f"events {own}..{seq - 1} were inserted and later events renumbered "
                       f"(the event at {seq} says it is {own})")
    if seq > head_seq:
        return Finding(ProblemKind.INSERTED, seq,
                       f"event {seq} was inserted after the recorded chain head (seq {head_seq})")
    return Finding(ProblemKind.BROKEN_LINK, seq,
                   f"event {seq} does not link to event {prev_seq}: event {prev_seq} was altered "
                   "and re-hashed, or replaced")
