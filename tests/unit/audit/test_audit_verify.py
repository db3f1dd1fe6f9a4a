"""The pure chain verifier: every kind of tampering is found and named, in memory.

The same kinds are shown against real databases (SQL tampering) in
tests/integration/audit/test_tamper.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from joinedup.audit.events import chain_hash
from joinedup.audit.keys import AuditKeyStore, PublicKeys
from joinedup.audit.statements import Checkpoint
from joinedup.audit.verify import ChainVerifier, ProblemKind, VerifyReport
from tests.unit.audit.factory import T0, chain_rows, head_of, read, row_for

Row = tuple[Any, ...]


def events(n: int) -> list[Row]:
    return chain_rows([read(f"P-{i % 3}") for i in range(n)])


def verify(
    rows: list[Row],
    *,
    head_rows: list[Row] | None = None,
    checkpoints: list[Row] = (),  # type: ignore[assignment]
    keys: PublicKeys | None = None,
    persons: dict[int, list[str]] | None = None,
) -> VerifyReport:
    """Verify rows as the database hands them over: with the person index column added
    (from each body, unless ``persons`` says what the index holds)."""
    verifier = ChainVerifier(
        keys=keys or PublicKeys({}),
        head=head_of(head_rows if head_rows is not None else rows),
    )
    indexed = []
    for row in sorted(rows, key=lambda r: r[0]):
        people = (persons or {}).get(row[0], orjson.loads(row[3])["persons"])
        indexed.append((*row, "\n".join(people) or None))
    return verifier.run(indexed, checkpoints)


def with_seq(row: Row, seq: int) -> Row:
    return (seq, *row[1:])


def test_an_untouched_chain_verifies() -> None:
    rows = events(10)
    report = verify(rows)
    assert report.ok, report.problem
    assert (report.events, report.first_seq, report.last_seq) == (10, 1, 10)


def test_an_empty_log_verifies() -> None:
    assert verify([]).ok


def test_altered_body_is_named() -> None:
    rows = events(10)
    rows[4] = (*rows[4][:3], rows[4][3].replace("RWX-P1", "RWX-P9"), *rows[4][4:])
    problem = verify(rows).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.ALTERED, 5)


@pytest.mark.parametrize(("index", "column"), [(4, "time"), (5, "action"), (7, "org"),
                                               (9, "practitioner"), (12, "break_glass")])
def test_an_altered_filter_column_is_named(index: int, column: str) -> None:
    rows = events(10)
    row = list(rows[2])
    row[index] = True if column == "break_glass" else "tampered"
    rows[2] = tuple(row)
    problem = verify(rows).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.ALTERED, 3)
    assert column in problem.message


def test_an_altered_person_index_is_named() -> None:
    rows = events(6)
    problem = verify(rows, persons={4: ["P-other"]}).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.ALTERED, 4)
    assert "person index" in problem.message


def test_deleted_event_is_named() -> None:
    rows = events(10)
    del rows[4]
    problem = verify(rows, head_rows=events(10)).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.DELETED, 5)


def test_deleted_tail_is_named() -> None:
    full = events(10)
    problem = verify(full[:7], head_rows=full).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.DELETED, 8)


def test_deletion_with_renumbering_is_named() -> None:
    full = events(10)
    rows = full[:4] + [with_seq(r, r[0] - 1) for r in full[5:]]
    problem = verify(rows, head_rows=rows).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.DELETED, 5)


def test_insertion_in_the_middle_is_named() -> None:
    full = events(10)
    forged_event = read("P-9", practitioner="RWX-P7")
    body = forged_event.canonical(6)
    forged = row_for(6, full[4][2], chain_hash(full[4][2], body), body, forged_event)
    rows = full[:5] + [forged] + [with_seq(r, r[0] + 1) for r in full[5:]]
    problem = verify(rows).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.INSERTED, 6)


def test_insertion_after_the_head_is_named() -> None:
    full = events(6)
    extra = chain_rows([read("P-9")], start=(6, full[-1][2]))
    problem = verify(full + extra, head_rows=full).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.INSERTED, 7)


def test_swapped_events_are_named_as_reordered() -> None:
    rows = events(10)
    rows[4], rows[5] = with_seq(rows[5], 5), with_seq(rows[4], 6)
    problem = verify(rows).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.REORDERED, 5)
    assert "5..6" in problem.message


def test_a_moved_event_is_named_as_reordered_over_its_whole_span() -> None:
    full = events(10)
    moved = [full[4], full[5], full[6], full[7]]  # seq 5..8 become 6, 7, 8, 5
    rows = [*full[:4], with_seq(moved[1], 5), with_seq(moved[2], 6), with_seq(moved[3], 7), with_seq(moved[0], 8), *full[8:]]
    problem = verify(rows).problem
    assert problem is not None
    assert problem.kind is ProblemKind.REORDERED
    assert "5..8" in problem.message


def _signed(tmp_path: Path, rows: list[Row], at: list[int]) -> tuple[list[Row], PublicKeys]:
    key, _ = AuditKeyStore(tmp_path / "k").init()
    cps = [Checkpoint.make(log_id="log1", seq=s, hash=rows[s - 1][2], time=T0, key=key)
           for s in at]
    return [(c.seq, c.statement, c.signature) for c in cps], AuditKeyStore(tmp_path / "k").public_keys()


def test_a_consistent_rewrite_is_caught_by_the_next_checkpoint(tmp_path: Path) -> None:
    original = events(12)
    checkpoints, keys = _signed(tmp_path, original, [4, 8, 12])
    forged = [read(f"P-{i % 3}") for i in range(12)]
    forged[5] = read("P-1", practitioner="RWX-P9")
    rewritten = chain_rows(forged)  # every later hash recomputed: links all hold
    report = verify(rewritten, checkpoints=checkpoints, keys=keys)
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (ProblemKind.CHECKPOINT_MISMATCH, 8)
    assert "after seq 4" in report.problem.message
    assert verify(original, checkpoints=checkpoints, keys=keys).ok


def test_checkpoint_with_bad_signature_or_unknown_key(tmp_path: Path) -> None:
    rows = events(8)
    checkpoints, keys = _signed(tmp_path, rows, [4, 8])
    bad = [checkpoints[0], (8, checkpoints[1][1], checkpoints[0][2])]
    problem = verify(rows, checkpoints=bad, keys=keys).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.BAD_SIGNATURE, 8)
    problem = verify(rows, checkpoints=checkpoints, keys=PublicKeys({})).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.UNKNOWN_KEY, 4)


def test_a_checkpoint_beyond_the_end_shows_a_truncated_log(tmp_path: Path) -> None:
    full = events(8)
    checkpoints, keys = _signed(tmp_path, full, [4, 8])
    problem = verify(full[:6], checkpoints=checkpoints, keys=keys).problem
    assert problem is not None
    assert (problem.kind, problem.seq) == (ProblemKind.DELETED, 7)


TAMPERING = ["alter", "delete", "delete-renumber", "insert", "swap"]
EXPECTED = {
    "alter": ProblemKind.ALTERED,
    "delete": ProblemKind.DELETED,
    "delete-renumber": ProblemKind.DELETED,
    "insert": ProblemKind.INSERTED,
    "swap": ProblemKind.REORDERED,
}


@given(n=st.integers(3, 40), data=st.data(), how=st.sampled_from(TAMPERING))
def test_any_single_tampering_is_found_and_named_at_its_seq(
    n: int, data: st.DataObject, how: str
) -> None:
    full = events(n)
    i = data.draw(st.integers(1, n - 2))  # a middle event (0-based), so each kind is possible
    seq = i + 1
    head = full
    if how == "alter":
        rows = list(full)
        rows[i] = (*rows[i][:3], rows[i][3].replace('"P-', '"Q-'), *rows[i][4:])
    elif how == "delete":
        rows = full[:i] + full[i + 1:]
    elif how == "delete-renumber":
        rows = full[:i] + [with_seq(r, r[0] - 1) for r in full[i + 1:]]
        head = rows
    elif how == "insert":
        forged_event = read("P-9")
        body = forged_event.canonical(seq)
        forged = row_for(seq, full[i - 1][2], chain_hash(full[i - 1][2], body), body, forged_event)
        rows = full[:i] + [forged] + [with_seq(r, r[0] + 1) for r in full[i:]]
        head = [with_seq(full[-1], n + 1)]  # the head moved on with the renumbering
    else:
        rows = list(full)
        rows[i], rows[i + 1] = with_seq(full[i + 1], seq), with_seq(full[i], seq + 1)
    report = verify(rows, head_rows=head)
    assert not report.ok
    assert report.problem is not None
    assert (report.problem.kind, report.problem.seq) == (EXPECTED[how], seq), report.problem
