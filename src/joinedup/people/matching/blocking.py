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
    """Candidate pairs ``rule`` generates (before removing pairs other rules also find).

    Counted with DuckDB group-bys over the frames (no pairs are materialised).
    """
    import duckdb

    con = duckdb.connect()
    try:
        for i, frame in enumerate(frames):
            con.register(f"f{i}", frame[list(set(rule.columns))])
        cols = list(rule.columns)
        crossed = cols[::-1] if rule.reversed else cols
        if link_type != "link_only":
            union = " UNION ALL ".join(f"SELECT * FROM f{i}" for i in range(len(frames)))
            frames_sql = [f"({union})"]
        else:
            frames_sql = [f"f{i}" for i in range(len(frames))]

        def counts(table: str, key: list[str]) -> str:
            present = " AND ".join(f"{c} IS NOT NULL" for c in key)
            keys = ", ".join(f"{c} AS k{j}" for j, c in enumerate(key))
            return f"SELECT {keys}, count(*) AS n FROM {table} WHERE {present} GROUP BY ALL"

        on = " AND ".join(f"a.k{j} = b.k{j}" for j in range(len(cols)))
        total = 0
        if link_type != "link_only":
            table = frames_sql[0]
            if rule.reversed:
                sql = (
                    # ordered pairs, less each record paired with itself (given = family)
                    "SELECT sum(a.n * b.n - CASE WHEN a.k0 = a.k1 THEN a.n ELSE 0 END) / 2 "
                    f"FROM ({counts(table, cols)}) a "
                    f"JOIN ({counts(table, crossed)}) b ON {on}"
                )
            else:
                sql = f"SELECT sum(n * (n - 1) / 2) FROM ({counts(table, cols)})"
            total = int(con.execute(sql).fetchone()[0] or 0)  # type: ignore[index]
        else:
            for i, left in enumerate(frames_sql):
                for right in frames_sql[i + 1 :]:
                    sql = (
                        f"SELECT sum(a.n * b.n) FROM ({counts(left, cols)}) a "
                        f"JOIN ({counts(right, crossed)}) b ON {on}"
                    )
                    total += int(con.execute(sql).fetchone()[0] or 0)  # type: ignore[index]
        return total
    finally:
        con.close()


def choose_blocking_rules(
    frames: Sequence[pd.DataFrame],
    link_type: LinkType,
    pairs_per_record: float = DEFAULT_PAIRS_PER_RECORD,
) -> tuple[BlockingRule, ...]:
    records = sum(len(frame) for frame in frames)
    budget = pairs_per_record * records
    chosen = [rule for rule in BLOCKING_RULES if not rule.broad]
    spent = sum(estimated_pairs(frames, rule, link_type) for rule in chosen)
    for rule in BLOCKING_RULES:
        if not rule.broad:
            continue
        cost = estimated_pairs(frames, rule, link_type)
        if spent + cost <= budget:
            chosen.append(rule)
            spent += cost
    return tuple(chosen)
