"""Verifying the log held in a database (the pure walk is in ``verify``).

A valid log is the common case, and the walk is CPU-bound (hashing and
parsing every event), so a long log is first checked in parallel: contiguous
seq segments, each walked by its own process from the prev_hash its first
event carries, and the seams checked here (each segment must start from the
hash the one before ended with). Any problem at all, or anything the segments
cannot see (rows outside the chain's range, leftover checkpoints in an
archived range, a third party's export), sends the log through the
sequential walk in one snapshot, which names the first problem precisely.
"""

from __future__ import annotations

import itertools
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from contextlib import closing
from typing import Any

from joinedup.audit.export import ExportedCheckpoints
from joinedup.audit.keys import PublicKeys, SignatureCheck
from joinedup.audit.statements import Anchor
from joinedup.audit.store import ChainStore, Head
from joinedup.audit.verify import ChainVerifier, Finding, ProblemKind, VerifyReport
from joinedup.storage.engine import Database

PARALLEL_MIN_EVENTS = 200_000
"""Below this, starting worker processes costs more than it saves."""


def default_jobs() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def verify_log(
    db: Database,
    keys: PublicKeys,
    *,
    against: ExportedCheckpoints | None = None,
    jobs: int = 1,
    parallel_from: int = PARALLEL_MIN_EVENTS,
) -> VerifyReport:
    """Check the whole log; names the first problem. With ``jobs`` > 1 a log of at least
    ``parallel_from`` events is first walked in parallel segments (a valid log is then
    reported without the sequential walk)."""
    if jobs > 1 and against is None:
        fast = _parallel(db, keys, jobs, parallel_from)
        if fast is not None:
            return fast
    return _sequential(db, keys, against)


def _sequential(
    db: Database, keys: PublicKeys, against: ExportedCheckpoints | None
) -> VerifyReport:
    store = ChainStore(db)
    with store.snapshot() as snap:
        head = snap.head()
        anchors = [(anchor, name) for anchor, _row, name in snap.anchors()]
        if against is not None and head is not None and against.log_id != head.log_id:
            return VerifyReport(
                ok=False, events=0, first_seq=None, last_seq=None, head_seq=head.seq,
                anchor_seq=0, checkpoints=0,
                problem=Finding(
                    ProblemKind.MALFORMED, None,
                    f"the export is of log {against.log_id}, this database holds log {head.log_id}",
                ),
            )
        if against is not None:
            held = _held_anchors_problem(against, anchors, head)
            if held is not None:
                return held
        verifier = ChainVerifier(
            keys=keys,
            head=head,
            anchors=anchors,
            external=() if against is None else against.checkpoints,
            external_keys=None if against is None else against.keys,
            sqlite_time=store.dialect.name == "sqlite",
        )
        with closing(snap.verify_rows()) as rows:  # ends the stream before the snapshot
            return verifier.run(rows, snap.checkpoints())


def _held_anchors_problem(
    against: ExportedCheckpoints, anchors: list[tuple[Anchor | None, str]], head: Head | None
) -> VerifyReport | None:
    """Archive anchors in a third party's export must still be in the log, unchanged."""
    local = {a.last_seq: a.statement for a, _name in anchors if a is not None}
    for anchor in against.anchors:
        problem = None
        if anchor.check(against.keys) is not SignatureCheck.VALID:
            problem = Finding(ProblemKind.BAD_SIGNATURE, anchor.last_seq,
                              f"the exported anchor for seq {anchor.first_seq}..{anchor.last_seq} "
                              "does not verify with the export's keys")
        elif anchor.last_seq not in local:
            problem = Finding(ProblemKind.DELETED, anchor.last_seq,
                              f"the archive anchor for seq {anchor.first_seq}..{anchor.last_seq}, "
                              "held in the export, is missing from the log")
        elif local[anchor.last_seq] != anchor.statement:
            problem = Finding(ProblemKind.ALTERED, anchor.last_seq,
                              f"the archive anchor for seq {anchor.first_seq}..{anchor.last_seq} "
                              "differs from the one held in the export")
        if problem is not None:
            return VerifyReport(ok=False, events=0, first_seq=None, last_seq=None,
                                head_seq=0 if head is None else head.seq, anchor_seq=0,
                                checkpoints=0, problem=problem)
    return None


def _parallel(
    db: Database, keys: PublicKeys, jobs: int, parallel_from: int
) -> VerifyReport | None:
    """A report for a valid log checked in segments, or None: walk it sequentially."""
    store = ChainStore(db)
    with store.snapshot() as snap:
        head = snap.head()
        if head is None:
            return None
        anchors = [(anchor, name) for anchor, _row, name in snap.anchors()]
        start = ChainVerifier(keys=keys, head=head, anchors=anchors).start_point()
        if start is None:
            return None
        start_seq, start_hash = start
        low, high = snap.seq_bounds()
        if (head.seq - start_seq < max(parallel_from, jobs) or low is None or high is None
                or low <= start_seq or high > head.seq
                or snap.checkpoints_through(start_seq)):
            return None
    count = head.seq - start_seq
    bounds = [start_seq + count * i // jobs for i in range(jobs + 1)]
    url = db.engine.url.render_as_string(hide_password=False)
    jwks = keys.as_jwks()
    context = multiprocessing.get_context("spawn")  # never fork a process that has threads
    with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
        futures = [
            pool.submit(_segment, url, jwks, head.log_id, lo, hi,
                        head.hash if hi == head.seq else None)
            for lo, hi in itertools.pairwise(bounds)
        ]
        results = [f.result() for f in futures]
    expected: str | None = start_hash
    checkpoints = 0
    for hi, (ok, first_prev, last_seq, last_hash, checked) in zip(bounds[1:], results,
                                                                  strict=True):
        if not ok or first_prev != expected or last_seq != hi:
            return None
        expected = last_hash
        checkpoints += checked
    if expected != head.hash:
        return None
    return VerifyReport(
        ok=True, events=count, first_seq=start_seq + 1 if count else None,
        last_seq=head.seq if count else None, head_seq=head.seq, anchor_seq=start_seq,
        checkpoints=checkpoints, segments=jobs,
    )


def _segment(
    url: str, jwks: dict[str, Any], log_id: str, lo: int, hi: int, head_hash: str | None
) -> tuple[bool, str | None, int | None, str | None, int]:
    """Walk events lo+1..hi in a worker process: (ok, first prev_hash, last seq, last hash,
    checkpoints checked)."""
    db = Database.from_url(url, pool_size=1)
    try:
        store = ChainStore(db)
        with store.snapshot() as snap:
            first_prev = snap.first_prev_hash(lo)
            if first_prev is None:
                return False, None, None, None, 0
            verifier = ChainVerifier(
                keys=PublicKeys.from_jwks(jwks),
                head=Head(log_id, hi, head_hash or "", 0, None),
                sqlite_time=store.dialect.name == "sqlite",
                start=(lo, first_prev),
                segment=head_hash is None,
            )
            with closing(snap.verify_rows(after=lo, through=hi)) as rows:
                report = verifier.run(rows, snap.checkpoints(after=lo, through=hi))
        last_hash = verifier.last_hash if head_hash is None else head_hash
        return report.ok, first_prev, report.last_seq, last_hash, report.checkpoints
    finally:
        db.dispose()
