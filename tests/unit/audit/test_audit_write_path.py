"""Pieces of the write path that are decided in memory: how long the writer lingers for
callers, and the multi-row INSERTs that replace ``executemany`` on SQLite."""

from __future__ import annotations

import sqlite3

from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.audit.log import _Linger
from joinedup.audit.store import _insert_many


def test_the_writer_expects_the_callers_it_answered_and_those_queued() -> None:
    linger = _Linger()
    linger.expect(0)
    assert linger.expected == 1  # a lone caller never waits for itself
    linger.expect(16)
    assert linger.expected == 16


def test_waits_that_do_not_fill_the_batch_shrink_to_nothing_and_are_retried() -> None:
    linger = _Linger()
    waits = []
    linger.expect(8)
    for _ in range(6):
        linger.gathered(2, waited=True)  # callers did not come back in time
        waits.append(linger.seconds)
    assert waits[0] == _Linger.MAX_SECONDS / 2
    assert waits == sorted(waits, reverse=True)
    assert waits[-1] == 0.0
    zero_waits = 0
    while linger.seconds == 0.0:
        linger.gathered(2, waited=True)
        zero_waits += 1
    assert zero_waits <= _Linger.RETRY_EVERY
    assert 0 < linger.seconds < _Linger.MAX_SECONDS  # tried again, briefly
    linger.gathered(8, waited=True)  # and it paid off
    assert linger.seconds == _Linger.MAX_SECONDS


def test_a_batch_gathered_without_waiting_changes_nothing() -> None:
    linger = _Linger()
    linger.expect(4)
    linger.gathered(1, waited=False)
    assert linger.seconds == _Linger.MAX_SECONDS


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 10**12), st.text(max_size=8)), max_size=700))
def test_multi_row_inserts_store_exactly_what_executemany_stores(
    rows: list[tuple[int, str]],
) -> None:
    conn = sqlite3.connect(":memory:")
    conn.execute("CREATE TABLE a (n INTEGER, s TEXT)")
    conn.execute("CREATE TABLE b (n INTEGER, s TEXT)")
    conn.executemany("INSERT INTO a (n, s) VALUES (?, ?)", rows)
    _insert_many(conn.cursor(), "b", ("n", "s"), rows)
    assert conn.execute("SELECT n, s FROM b ORDER BY rowid").fetchall() == (
        conn.execute("SELECT n, s FROM a ORDER BY rowid").fetchall()
    )
    conn.close()
