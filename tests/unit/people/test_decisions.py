"""Stewards' decisions as re-link constraints: later decisions win, groups hold together."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from joinedup.people.decisions import Kind, Placement, StewardDecision, effective

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def _d(minutes: int, kind: Kind, left: set[str], right: set[str]) -> StewardDecision:
    return StewardDecision(
        T0 + timedelta(minutes=minutes), kind, frozenset(left), frozenset(right), f"d{minutes}"
    )


def test_an_unmerge_overrules_the_accept_that_made_the_merge() -> None:
    accept = _d(1, Kind.TOGETHER, {"a"}, {"b"})
    unmerge = _d(2, Kind.APART, {"a"}, {"b", "c"})
    assert effective([unmerge, accept]) == [unmerge]


def test_a_merge_overrules_an_earlier_rejection() -> None:
    reject = _d(1, Kind.APART, {"a"}, {"b"})
    merge = _d(2, Kind.TOGETHER, {"a", "x"}, {"b"})
    assert effective([reject, merge]) == [merge]


def test_unrelated_decisions_all_stay() -> None:
    ds = [_d(1, Kind.TOGETHER, {"a"}, {"b"}), _d(2, Kind.APART, {"c"}, {"d"})]
    assert effective(ds) == ds


def test_placement_follows_groups_and_refuses_persons_kept_apart() -> None:
    p = Placement([_d(1, Kind.TOGETHER, {"a"}, {"b"}), _d(2, Kind.APART, {"b"}, {"c"})])
    assert p.person_for("a") is None
    p.place("a", "P1")
    assert p.person_for("b") == "P1"
    assert not p.allowed("c", "P1")  # c is apart from b, whose group is in P1
    assert p.allowed("d", "P1")
    p.place("c", "P2")
    assert not p.allowed("b", "P2")
    assert p.conflicts == 0


def test_chained_contradictions_are_counted_and_together_wins() -> None:
    p = Placement(
        [
            _d(1, Kind.TOGETHER, {"a"}, {"b"}),
            _d(2, Kind.TOGETHER, {"b"}, {"c"}),
            _d(3, Kind.APART, {"a"}, {"c"}),
        ]
    )
    assert p.conflicts == 1
    p.place("a", "P1")
    assert p.person_for("c") == "P1"


@given(
    st.lists(
        st.tuples(
            st.sampled_from(list(Kind)),
            st.sets(st.sampled_from("abcdef"), min_size=1, max_size=3),
            st.sets(st.sampled_from("abcdef"), min_size=1, max_size=3),
        ),
        max_size=8,
    )
)
def test_decisions_in_force_never_contradict_a_later_one(raw) -> None:  # type: ignore[no-untyped-def]
    ds = [_d(i, kind, left, right) for i, (kind, left, right) in enumerate(raw)]
    kept = effective(ds)
    for d in kept:
        for e in ds:
            if e.at <= d.at or e.kind is d.kind:
                continue
            apart, together = (e, d) if e.kind is Kind.APART else (d, e)
            assert not (apart.left & together.records and apart.right & together.records)
