"""Which blocking rules an estate can afford, from counted block sizes.

Blocking is a compute budget, not part of what the model believes: the
broad one-field rules (same postcode, same date of birth) find pairs whose
other fields are all damaged, but in a large estate they generate too many
pairs. They are added, in order, while the estimated number of candidate
pairs stays within ``pairs_per_record`` times the number of records.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from joinedup.people.matching.spec import BLOCKING_RULES, BlockingRule, LinkType

DEFAULT_PAIRS_PER_RECORD = 12.0


def estimated_pairs(frames: Sequence[pd.DataFrame], rule: BlockingRule, link_type: LinkType) -> int:
    """Candidate pairs ``rule`` generates (before removing pairs other rules also find)."""
    return _PairCounter(frames, link_type, rule.columns).count(rule)


class _PairCounter:
    """Counts candidate pairs with DuckDB group-bys (no pairs are materialised).

    The columns the rules need are copied into DuckDB once; scanning pandas
    object columns again for every rule would cost more than the counting.
    """

    def __init__(
        self, frames: Sequence[pd.DataFrame], link_type: LinkType, columns: Sequence[str]
    ) -> None:
        import duckdb

        self.link_type = link_type
        self.con = duckdb.connect()
        self.con.execute("SET threads = 2")
        wanted = sorted(set(columns))
        self.tables = []
        for i, frame in enumerate(frames):
            self.con.register(f"frame_{i}", frame[wanted])
            self.con.execute(f"CREATE TABLE f{i} AS SELECT * FROM frame_{i}")
            self.con.unregister(f"frame_{i}")
            self.tables.append(f"f{i}")
        if link_type != "link_only":
            union = " UNION ALL ".join(f"SELECT * FROM {t}" for t in self.tables)
            self.con.execute(f"CREATE TABLE everyone AS {union}")

    def close(self) -> None:
        self.con.close()

    def _scalar(self, sql: str) -> int:
        row = self.con.execute(sql).fetchone()
        return int((row[0] if row else 0) or 0)

    def count(self, rule: BlockingRule) -> int:
        cols = list(rule.columns)
        crossed = cols[::-1] if rule.reversed else cols

        def counts(table: str, key: list[str]) -> str:
            present = " AND ".join(f"{c} IS NOT NULL" for c in key)
            keys = ", ".join(f"{c} AS k{j}" for j, c in enumerate(key))
            return f"SELECT {keys}, count(*) AS n FROM {table} WHERE {present} GROUP BY ALL"

        on = " AND ".join(f"a.k{j} = b.k{j}" for j in range(len(cols)))
        if self.link_type != "link_only":
            if rule.reversed:
                # ordered pairs, less each record paired with itself (given = family)
                return self._scalar(
                    "SELECT sum(a.n * b.n - CASE WHEN a.k0 = a.k1 THEN a.n ELSE 0 END) / 2 "
                    f"FROM ({counts('everyone', cols)}) a "
                    f"JOIN ({counts('everyone', crossed)}) b ON {on}"
                )
            return self._scalar(f"SELECT sum(n * (n - 1) / 2) FROM ({counts('everyone', cols)})")
        total = 0
        for i, left in enumerate(self.tables):
            for right in self.tables[i + 1 :]:
                total += self._scalar(
                    f"SELECT sum(a.n * b.n) FROM ({counts(left, cols)}) a "
                    f"JOIN ({counts(right, crossed)}) b ON {on}"
                )
        return total


def choose_blocking_rules(
    frames: Sequence[pd.DataFrame],
    link_type: LinkType,
    pairs_per_record: float = DEFAULT_PAIRS_PER_RECORD,
) -> tuple[BlockingRule, ...]:
    records = sum(len(frame) for frame in frames)
    budget = pairs_per_record * records
    present = set.intersection(*(set(frame.columns) for frame in frames))
    columns = {c for rule in BLOCKING_RULES for c in rule.columns if c in present}
    counter = _PairCounter(frames, link_type, sorted(columns))
    try:
        chosen = [rule for rule in BLOCKING_RULES if not rule.broad]
        spent = sum(counter.count(rule) for rule in chosen)
        for rule in BLOCKING_RULES:
            if not rule.broad:
                continue
            cost = counter.count(rule)
            if spent + cost <= budget:
                chosen.append(rule)
                spent += cost
        return tuple(chosen)
    finally:
        counter.close()
