from __future__ import annotations

from itertools import combinations, product

import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from joinedup.people.matching.blocking import estimated_pairs
from joinedup.people.matching.spec import BLOCKING_RULES, BlockingRule

RULES = [r for r in BLOCKING_RULES if r.name in {"names", "names_swapped", "dob"}]
value = st.sampled_from(["A", "B", "C", None])
rows = st.lists(
    st.fixed_dictionaries({"given_name": value, "family_name": value, "dob": value}),
    min_size=1,
    max_size=12,
)


def _agree(rule: BlockingRule, a: dict, b: dict) -> bool:
    cols = rule.columns
    other = cols[::-1] if rule.reversed else cols
    return all(a[x] is not None and a[x] == b[y] for x, y in zip(cols, other, strict=True))


@settings(max_examples=12, deadline=None)
@given(rows, rows)
def test_counted_pairs_equal_brute_force(left: list[dict], right: list[dict]) -> None:
    for rule in RULES:
        expected_dedupe = (
            sum(
                1
                for a, b in combinations(left + right, 2)
                if _agree(rule, a, b) or _agree(rule, b, a)
            )
            if not rule.reversed
            else sum(1 for a, b in combinations(left + right, 2) if _agree(rule, a, b))
        )
        expected_link = sum(1 for a, b in product(left, right) if _agree(rule, a, b))
        frames = [pd.DataFrame(left).astype(object), pd.DataFrame(right).astype(object)]
        assert estimated_pairs(frames, rule, "link_only") == expected_link
        assert estimated_pairs([pd.concat(frames)], rule, "dedupe_only") == expected_dedupe
