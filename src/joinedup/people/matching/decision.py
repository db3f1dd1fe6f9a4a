"""How a scored pair becomes an outcome: the NHS-number tier, then thresholds.

The tiers come first because an NHS number checked by Modulus 11 on both
sides is better evidence than any model: the same number links, two
different numbers never link automatically (at most they go to review, and
the person is flagged). Only pairs without a shared number are left to the
probabilistic model, and even then a pair is auto-linked only when the
records share something besides a name.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum

from joinedup.people.matching.normalise import MatchFeatures


class NhsTier(StrEnum):
    SAME = "same-nhs-number"
    CONFLICT = "conflicting-nhs-numbers"
    UNDECIDED = "no-shared-nhs-number"


class Outcome(StrEnum):
    AUTO_LINK = "auto-link"
    REVIEW = "review"
    NEW_PERSON = "new-person"


def nhs_tier(left: str | None, right: str | None) -> NhsTier:
    """Compare two *cleaned* NHS numbers (valid or ``None``; see ``clean_nhs_number``)."""
    if left is None or right is None:
        return NhsTier.UNDECIDED
    return NhsTier.SAME if left == right else NhsTier.CONFLICT


# Columns that identify a person beyond their name; at least one must be
# present on both sides before the model may auto-link a pair.
NON_NAME_EVIDENCE: tuple[str, ...] = ("dob", "postcode", "address_street")


def has_non_name_evidence(left: MatchFeatures, right: MatchFeatures) -> bool:
    return any(
        getattr(left, col) is not None and getattr(right, col) is not None
        for col in NON_NAME_EVIDENCE
    )


@dataclass(frozen=True, slots=True)
class Thresholds:
    """Match-probability cut-offs: ``>= auto_link`` links, ``>= review`` is queued.

    The shipped defaults come from a stated cost ratio, not from any data set's
    answers: a wrong link (one person's record shown to another's carers) is
    taken to cost 99 times a missed link, so linking is right when
    ``p / (1 - p) >= 99``, i.e. ``p >= 0.99``. Pairs more likely than not to be
    the same person (``p >= 0.5``) but below that go to a data steward.
    See docs/reference/matching-model.md.
    """

    auto_link: float = 0.99
    review: float = 0.5

    def __post_init__(self) -> None:
        problems = []
        for name in ("auto_link", "review"):
            value = getattr(self, name)
            if not isinstance(value, float | int) or not 0.0 < float(value) < 1.0:
                problems.append(f"{name} must be a probability strictly between 0 and 1")
        if not problems and self.review > self.auto_link:
            problems.append("review must not be above auto_link")
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def auto_link_weight(self) -> float:
        return probability_to_weight(self.auto_link)

    @property
    def review_weight(self) -> float:
        return probability_to_weight(self.review)


def probability_to_weight(p: float) -> float:
    return math.log2(p / (1.0 - p))


def weight_to_probability(weight: float) -> float:
    """Splink's formula, stable for large weights of either sign."""
    if weight >= 0:
        return 1.0 / (1.0 + math.pow(2.0, -weight))
    bf = math.pow(2.0, weight)
    return bf / (1.0 + bf)


@dataclass(frozen=True, slots=True)
class Decision:
    outcome: Outcome
    reason: str
    match_probability: float | None


def decide(
    left: MatchFeatures,
    right: MatchFeatures,
    match_probability: float | None,
    thresholds: Thresholds,
) -> Decision:
    """The outcome for one pair; ``match_probability`` may be ``None`` if not scored."""
    tier = nhs_tier(left.nhs_number, right.nhs_number)
    if tier is NhsTier.SAME:
        return Decision(Outcome.AUTO_LINK, "same valid NHS number", match_probability)
    p = 0.0 if match_probability is None else match_probability
    if tier is NhsTier.CONFLICT:
        if p >= thresholds.review:
            return Decision(Outcome.REVIEW, "conflicting NHS numbers", match_probability)
        return Decision(Outcome.NEW_PERSON, "conflicting NHS numbers", match_probability)
    if p >= thresholds.auto_link:
        if has_non_name_evidence(left, right):
            return Decision(Outcome.AUTO_LINK, "model score", match_probability)
        return Decision(Outcome.REVIEW, "only names to compare", match_probability)
    if p >= thresholds.review:
        return Decision(Outcome.REVIEW, "model score uncertain", match_probability)
    return Decision(Outcome.NEW_PERSON, "model score low", match_probability)
