"""Score a pair in Python with a trained model's parameters (no database needed).

This is what makes online matching fast: one arriving record against a few
dozen candidates costs microseconds here, where a round trip through Splink
costs tens of milliseconds. It must give the same match weight as Splink's
``predict`` on the same pair; a property test holds it to that. The level
semantics mirror SQL: a comparison involving a missing value is never true.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import astuple, dataclass
from typing import Any

import jellyfish

from joinedup.people.matching.decision import weight_to_probability
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import FEATURE_COLUMNS, MatchFeatures
from joinedup.people.matching.spec import Level, LevelKind, comparisons_by_name

Row = Sequence[Any]  # values in FEATURE_COLUMNS order
Predicate = Callable[[Row, Row], bool]
_CLAMP = 1e-300  # Splink's M_U_CLAMP_MIN
_POSITION = {name: i for i, name in enumerate(FEATURE_COLUMNS)}


def row_of(features: MatchFeatures) -> tuple[Any, ...]:
    return astuple(features)


@dataclass(frozen=True, slots=True)
class TermFrequencies:
    """Share of non-missing values equal to each value, per adjusted column."""

    by_column: Mapping[str, Mapping[str, float]]

    def of(self, column: str, value: Any) -> float | None:
        return self.by_column.get(column, {}).get(value)

    @classmethod
    def from_rows(cls, rows: Sequence[Row], columns: Sequence[str]) -> TermFrequencies:
        out: dict[str, dict[str, float]] = {}
        for column in columns:
            i = _POSITION[column]
            counts: dict[str, int] = {}
            for row in rows:
                value = row[i]
                if value is not None:
                    counts[value] = counts.get(value, 0) + 1
            total = sum(counts.values())
            out[column] = {v: c / total for v, c in counts.items()} if total else {}
        return cls(out)


@dataclass(frozen=True, slots=True)
class _CompiledLevel:
    label: str
    matches: Predicate
    weight: float
    tf_column: int | None
    tf_name: str | None
    tf_weight: float
    tf_min_u: float
    log2_u_exact: float


@dataclass(frozen=True, slots=True)
class _CompiledComparison:
    name: str
    levels: tuple[_CompiledLevel, ...]


@dataclass(frozen=True, slots=True)
class LevelHit:
    comparison: str
    level: str
    weight: float


class PairScorer:
    """A model compiled to Python predicates and match weights."""

    def __init__(self, model: MatchingModel) -> None:
        settings = model.settings
        prior = float(settings["probability_two_random_records_match"])
        self.prior_weight = math.log2(prior / (1.0 - prior))
        self.thresholds = model.thresholds
        known = comparisons_by_name()
        compiled = []
        tf_columns: list[str] = []
        for comparison in settings["comparisons"]:
            spec = known[comparison["output_column_name"]]
            levels = comparison["comparison_levels"]
            u_exact = _u_of_exact_levels(spec.levels, levels)
            out = []
            for spec_level, level in zip(spec.levels, levels, strict=True):
                tf_name = level.get("tf_adjustment_column")
                if tf_name:
                    tf_columns.append(tf_name)
                out.append(
                    _CompiledLevel(
                        label=spec_level.label,
                        matches=_predicate(spec_level),
                        weight=_weight(level),
                        tf_column=_POSITION[tf_name] if tf_name else None,
                        tf_name=tf_name,
                        tf_weight=float(level.get("tf_adjustment_weight", 1.0)),
                        tf_min_u=float(level.get("tf_minimum_u_value", 0.0)),
                        log2_u_exact=math.log2(u_exact[tf_name]) if tf_name else 0.0,
                    )
                )
            compiled.append(_CompiledComparison(spec.name, tuple(out)))
        self._comparisons = tuple(compiled)
        self.tf_columns: tuple[str, ...] = tuple(tf_columns)

    def weight(self, left: Row, right: Row, tf: TermFrequencies | None = None) -> float:
        """The pair's match weight (log2 Bayes factor including the prior)."""
        total = self.prior_weight
        for comparison in self._comparisons:
            for level in comparison.levels:
                if level.matches(left, right):
                    total += level.weight + _tf_adjustment(level, left, right, tf)
                    break
        return total

    def probability(self, left: Row, right: Row, tf: TermFrequencies | None = None) -> float:
        return weight_to_probability(self.weight(left, right, tf))

    def explain(self, left: Row, right: Row, tf: TermFrequencies | None = None) -> list[LevelHit]:
        """Which level each comparison hit and its weight: the evidence a steward sees."""
        hits = []
        for comparison in self._comparisons:
            for level in comparison.levels:
                if level.matches(left, right):
                    w = level.weight + _tf_adjustment(level, left, right, tf)
                    hits.append(LevelHit(comparison.name, level.label, w))
                    break
        return hits


def _tf_adjustment(
    level: _CompiledLevel, left: Row, right: Row, tf: TermFrequencies | None
) -> float:
    if level.tf_column is None or tf is None or level.tf_name is None:
        return 0.0
    tf_l = tf.of(level.tf_name, left[level.tf_column])
    tf_r = tf.of(level.tf_name, right[level.tf_column])
    if tf_l is None and tf_r is None:
        return 0.0
    candidates = [v for v in (tf_l, tf_r) if v is not None]
    biggest = max([*candidates, level.tf_min_u])
    return level.tf_weight * (level.log2_u_exact - math.log2(biggest))


def _weight(level: Mapping[str, Any]) -> float:
    if level.get("is_null_level"):
        return 0.0
    m = max(float(level["m_probability"]), _CLAMP)
    u = max(float(level["u_probability"]), _CLAMP)
    return math.log2(m / u)


def _u_of_exact_levels(
    spec_levels: Sequence[Level], levels: Sequence[Mapping[str, Any]]
) -> dict[str, float]:
    """u of the single-column exact level for each column (Splink's TF baseline)."""
    out: dict[str, float] = {}
    for spec_level, level in zip(spec_levels, levels, strict=True):
        if spec_level.kind is LevelKind.EXACT and len(spec_level.columns) == 1:
            out.setdefault(spec_level.columns[0], float(level["u_probability"]))
    return out


def _predicate(level: Level) -> Predicate:
    cols = [_POSITION[c] for c in level.columns]
    t = level.threshold
    match level.kind:
        case LevelKind.NULL:
            return lambda x, y: any(x[i] is None or y[i] is None for i in cols)
        case LevelKind.NULL_ALL:
            return lambda x, y: all(x[i] is None for i in cols) or all(y[i] is None for i in cols)
        case LevelKind.EXACT:
            return lambda x, y: all(x[i] is not None and x[i] == y[i] for i in cols)
        case LevelKind.REVERSED:
            a, b = cols
            return lambda x, y: _eq(x[a], y[b]) and _eq(x[b], y[a])
        case LevelKind.CROSSED:
            a, b = cols
            return lambda x, y: _eq(x[a], y[b]) or _eq(x[b], y[a])
        case LevelKind.REVERSED_JARO_WINKLER:
            a, b = cols
            assert t is not None
            return lambda x, y: _jw(x[a], y[b], t) and _jw(x[b], y[a], t)
        case LevelKind.JARO_WINKLER:
            (a,) = cols
            assert t is not None
            return lambda x, y: _jw(x[a], y[a], t)
        case LevelKind.EXACT_AND_JARO_WINKLER:
            *equal, last = cols
            assert t is not None
            return lambda x, y: all(_eq(x[i], y[i]) for i in equal) and _jw(x[last], y[last], t)
        case LevelKind.LEVENSHTEIN:
            (a,) = cols
            limit = int(t or 0)
            return lambda x, y: (
                x[a] is not None
                and y[a] is not None
                and jellyfish.levenshtein_distance(x[a], y[a]) <= limit
            )
        case LevelKind.DAMERAU_LEVENSHTEIN:
            (a,) = cols
            limit = int(t or 0)
            return lambda x, y: (
                x[a] is not None
                and y[a] is not None
                and jellyfish.damerau_levenshtein_distance(x[a], y[a]) <= limit
            )
        case LevelKind.INITIAL:
            (a,) = cols
            return lambda x, y: (
                x[a] is not None
                and y[a] is not None
                and (len(x[a]) == 1 or len(y[a]) == 1)
                and x[a][:1] == y[a][:1]
            )
        case LevelKind.DAY_MONTH_SWAPPED:
            yr, mo, dy = cols
            return lambda x, y: _eq(x[yr], y[yr]) and _eq(x[mo], y[dy]) and _eq(x[dy], y[mo])
        case LevelKind.ALL_OF:
            parts = tuple(_predicate(part) for part in level.parts)
            return lambda x, y: all(part(x, y) for part in parts)
        case LevelKind.ELSE:
            return lambda x, y: True


def _eq(a: Any, b: Any) -> bool:
    return a is not None and a == b


def _jw(a: str | None, b: str | None, threshold: float) -> bool:
    if a is None or b is None:
        return False
    return jellyfish.jaro_winkler_similarity(a, b) >= threshold
