"""Online matching: one arriving record against an in-memory blocking index.

The index holds every record's features as a row and, for each of the
model's blocking rules, the rows' key hashes sorted for binary search (plus a
small dictionary for records added since the bulk build). A new record's
candidates are the rows sharing any rule's key, exactly the pairs Splink's
blocking would generate; they are scored by ``PairScorer`` and decided by
``decision.decide``. Hashes are 64-bit (pandas' stable hash of each value,
combined in order); a collision can only add a candidate, never lose one.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from joinedup.people.matching.decision import Decision, decide
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import FEATURE_COLUMNS, MatchFeatures
from joinedup.people.matching.scorer import PairScorer, Row, TermFrequencies
from joinedup.people.matching.spec import BLOCKING_RULES, BlockingRule

_MULTIPLIER = np.uint64(0x9E3779B97F4A7C15)
_POSITION = {name: i for i, name in enumerate(FEATURE_COLUMNS)}


@dataclass(frozen=True, slots=True)
class Candidate:
    unique_id: str
    match_weight: float
    match_probability: float
    decision: Decision


def _hash_values(values: Sequence[Any]) -> np.ndarray:
    """Stable 64-bit hash per value (None -> 0, never used as a key)."""
    array = np.asarray(values, dtype=object)
    hashed: np.ndarray = np.asarray(pd.util.hash_array(array, categorize=False), dtype=np.uint64)
    missing = np.fromiter((v is None for v in array), dtype=bool, count=len(array))
    hashed[missing] = 0
    return hashed


def _combine(parts: Sequence[np.ndarray]) -> np.ndarray:
    out = parts[0].copy()
    with np.errstate(over="ignore"):
        for part in parts[1:]:
            out = (out * _MULTIPLIER) ^ part
    return out


class PersonIndex:
    """A blocking index over feature rows, scoring with a trained model."""

    def __init__(self, model: MatchingModel, rows: Sequence[Row] = ()) -> None:
        self.model = model
        self.scorer = PairScorer(model)
        rule_sql = {
            b["blocking_rule"] if isinstance(b, dict) else b
            for b in model.settings["blocking_rules_to_generate_predictions"]
        }
        self.rules: tuple[BlockingRule, ...] = tuple(
            r for r in BLOCKING_RULES if r.sql() in rule_sql
        )
        self._rows: list[Row] = list(rows)
        self._ids: dict[str, int] = {row[0]: i for i, row in enumerate(self._rows)}
        self._sorted: list[tuple[np.ndarray, np.ndarray]] = []
        self._added: list[dict[int, list[int]]] = [{} for _ in self.rules]
        column_hashes = self._column_hashes(self._rows)
        for rule in self.rules:
            keys, present = self._keys_for(rule, column_hashes, query=False)
            positions = np.nonzero(present)[0]
            order = np.argsort(keys[positions], kind="stable")
            self._sorted.append((keys[positions][order], positions[order].astype(np.int64)))
        self.tf = TermFrequencies.from_rows(self._rows, self.scorer.tf_columns)

    @classmethod
    def from_frame(cls, model: MatchingModel, features: pd.DataFrame) -> PersonIndex:
        frame = features[list(FEATURE_COLUMNS)].astype(object)
        frame = frame.where(frame.notna(), None)
        return cls(model, list(frame.itertuples(index=False, name=None)))

    def __len__(self) -> int:
        return len(self._rows)

    def _column_hashes(self, rows: Sequence[Row]) -> dict[str, np.ndarray]:
        needed = {c for rule in self.rules for c in rule.columns}
        out = {}
        for column in needed:
            i = _POSITION[column]
            out[column] = _hash_values([row[i] for row in rows])
        return out

    @staticmethod
    def _keys_for(
        rule: BlockingRule, hashes: dict[str, np.ndarray], *, query: bool
    ) -> tuple[np.ndarray, np.ndarray]:
        columns = list(rule.columns)
        if rule.reversed and query:
            columns = columns[::-1]  # look up (b, a) among stored (a, b)
        parts = [hashes[c] for c in columns]
        present = np.logical_and.reduce([p != 0 for p in parts])
        return _combine(parts), np.asarray(present, dtype=bool)

    def candidates(self, features: MatchFeatures) -> list[int]:
        """Row positions sharing at least one blocking key with ``features``."""
        row = tuple(getattr(features, c) for c in FEATURE_COLUMNS)
        hashes = self._column_hashes([row])
        found: set[int] = set()
        for rule, (keys, positions), added in zip(
            self.rules, self._sorted, self._added, strict=True
        ):
            key, present = self._keys_for(rule, hashes, query=True)
            if not present[0]:
                continue
            k = key[0]
            lo = np.searchsorted(keys, k, side="left")
            hi = np.searchsorted(keys, k, side="right")
            if hi > lo:
                found.update(positions[lo:hi].tolist())
            found.update(added.get(int(k), ()))
        own = self._ids.get(features.unique_id)
        found.discard(own if own is not None else -1)
        return sorted(found)

    def match(self, features: MatchFeatures, limit: int = 10) -> list[Candidate]:
        """Best-scoring existing records for ``features``, with the outcome for each."""
        mine = tuple(getattr(features, c) for c in FEATURE_COLUMNS)
        scored = []
        for position in self.candidates(features):
            theirs = self._rows[position]
            scored.append((self.scorer.weight(mine, theirs, self.tf), position))
        scored.sort(reverse=True)
        out = []
        for weight, position in scored[:limit]:
            theirs = self._rows[position]
            p = self.scorer.probability(mine, theirs, self.tf)
            decision = decide(features, MatchFeatures(*theirs), p, self.model.thresholds)
            out.append(Candidate(str(theirs[0]), weight, p, decision))
        out.sort(key=lambda c: (c.decision.outcome != "auto-link", -c.match_weight))
        return out

    def add(self, features: Iterable[MatchFeatures]) -> None:
        """Add records (after they are decided) so later arrivals can match them.

        Term frequencies stay those of the bulk build until the index is rebuilt:
        a handful of new records does not move them.
        """
        new_rows = [tuple(getattr(f, c) for c in FEATURE_COLUMNS) for f in features]
        hashes = self._column_hashes(new_rows)
        start = len(self._rows)
        for offset, row in enumerate(new_rows):
            if row[0] in self._ids:
                raise ValueError(f"record {row[0]!r} is already in the index")
            self._ids[row[0]] = start + offset
        self._rows.extend(new_rows)
        for rule, added in zip(self.rules, self._added, strict=True):
            keys, present = self._keys_for(rule, hashes, query=False)
            for offset in np.nonzero(present)[0].tolist():
                added.setdefault(int(keys[offset]), []).append(start + offset)
