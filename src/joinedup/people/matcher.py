"""What the person index needs from a matching model, and the model-backed implementation.

The index asks two things: the blocking keys of a record (to find candidates
with an indexed SQL lookup, so it works across processes and databases) and a
score for a pair (match weight, probability, the evidence a steward sees).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

from joinedup.people.matching.decision import Thresholds, weight_to_probability
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.normalise import FEATURE_COLUMNS, MatchFeatures
from joinedup.people.matching.scorer import PairScorer, row_of
from joinedup.people.matching.spec import BLOCKING_RULES, BlockingRule


@dataclass(frozen=True, slots=True)
class PairScore:
    weight: float
    probability: float
    evidence: tuple[dict[str, Any], ...]


class Matcher(Protocol):
    thresholds: Thresholds

    def keys(self, features: MatchFeatures) -> list[str]: ...

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore: ...


def _key(rule: BlockingRule, features: MatchFeatures) -> str | None:
    values = [getattr(features, column) for column in rule.columns]
    if any(v is None or v == "" for v in values):
        return None
    if getattr(rule, "reversed", False):
        # Swapped first/last names: key on the unordered pair so both orders meet.
        values = sorted(str(v) for v in values)
    return f"{rule.name}:" + "|".join(str(v) for v in values)


class ModelMatcher:
    """A trained model's blocking rules and scorer."""

    def __init__(self, model: MatchingModel, *, broad_rules: bool = False) -> None:
        self.model = model
        self.thresholds = model.thresholds
        self._scorer = PairScorer(model)
        self._rules = tuple(r for r in BLOCKING_RULES if broad_rules or not r.broad)

    def keys(self, features: MatchFeatures) -> list[str]:
        keys = {_key(rule, features) for rule in self._rules}
        return sorted(k for k in keys if k is not None)

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore:
        a, b = row_of(left), row_of(right)
        weight = self._scorer.weight(a, b)
        hits = self._scorer.explain(a, b)
        evidence = tuple(
            {"comparison": h.comparison, "level": h.level, "weight": round(h.weight, 4)}
            for h in hits
        )
        return PairScore(weight, weight_to_probability(weight), evidence)


class NhsNumberOnlyMatcher:
    """Used until the estate has a trained model: no probabilistic candidates at all.

    The index still links records sharing a valid NHS number (its first tier);
    every other record becomes a new person, which a later `people relink`
    with a trained model can merge. Never guessing is the safe default.
    """

    thresholds = Thresholds()

    def keys(self, features: MatchFeatures) -> list[str]:
        return []

    def score(self, left: MatchFeatures, right: MatchFeatures) -> PairScore:
        return PairScore(float("-inf"), 0.0, ())


def matcher_from_file(path: Path) -> Matcher:
    """The trained model at ``path``, or the NHS-number-only matcher if none is there yet."""
    if not path.exists():
        return NhsNumberOnlyMatcher()
    return ModelMatcher(MatchingModel.load(path))


def features_to_json(features: MatchFeatures) -> dict[str, Any]:
    return asdict(features)


def features_from_json(data: dict[str, Any]) -> MatchFeatures:
    """Stored features; a feature added since they were stored is missing (None)."""
    values: dict[str, Any] = {name: data.get(name) for name in FEATURE_COLUMNS}
    return MatchFeatures(**values)
