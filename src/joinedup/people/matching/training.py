"""Train the matching model on an estate's own records with Splink (unsupervised).

Steps, all seeded or deterministic so the same records and seed give the same
JSON: the prior from strict deterministic rules; u-probabilities by random
sampling (``seed``); m-probabilities by expectation maximisation in a few
blocked sessions (Splink's hash-based pair sampling is deterministic).
Comparisons with no data at all (a feed without sex, say) are left out of the
model rather than carried untrained; levels the data never exercised get a
Bayes factor of 1 and are listed in the training summary.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import splink
from splink import Linker, block_on

from joinedup.people.matching.backends import new_duckdb_api
from joinedup.people.matching.blocking import (
    DEFAULT_PAIRS_PER_RECORD,
    choose_blocking_rules,
    estimated_pairs,
)
from joinedup.people.matching.decision import Thresholds
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.spec import (
    COMPARISONS,
    PRIOR_RULES,
    PRIOR_RULES_RECALL,
    TRAINING_BLOCKS,
    BlockingRule,
    ComparisonDef,
    LinkType,
    splink_settings,
)

_SIGNIFICANT_DIGITS = 10
# No recorded disagreement is impossible among true matches: sex is mis-keyed,
# house numbers mistyped. EM on clean-looking data can drive an m-probability
# towards zero (a weight of -100 or worse) and then one slip outweighs every
# other agreement. A floor of one in a thousand bounds what one field can say.
M_PROBABILITY_FLOOR = 1e-3


@dataclass(frozen=True, slots=True)
class TrainingOptions:
    seed: int = 20240401
    link_type: LinkType = "dedupe_only"
    u_max_pairs: float = 5e6
    em_max_pairs: float | None = 2e6
    thresholds: Thresholds = field(default_factory=Thresholds)
    pairs_per_record: float = DEFAULT_PAIRS_PER_RECORD
    threads: int | None = None
    memory_limit: str | None = None


def usable_comparisons(frames: Sequence[pd.DataFrame]) -> tuple[ComparisonDef, ...]:
    """The comparisons with at least one value somewhere in their null level's columns."""
    kept = []
    for comparison in COMPARISONS:
        keys = comparison.levels[0].columns
        if any(frame[key].notna().any() for frame in frames for key in keys):
            kept.append(comparison)
    return tuple(kept)


def train(
    frames: Sequence[pd.DataFrame],
    options: TrainingOptions = TrainingOptions(),
    *,
    trained_at: datetime | None = None,
) -> MatchingModel:
    """Train on feature tables (``normalise.features_table``); one per source for link_only."""
    if options.link_type == "link_only" and len(frames) < 2:
        raise ValueError("link_only training needs at least two tables")
    comparisons = usable_comparisons(frames)
    rules = choose_blocking_rules(frames, options.link_type, options.pairs_per_record)
    settings = splink_settings("duckdb", options.link_type, comparisons, rules)
    db_api = new_duckdb_api(threads=options.threads, memory_limit=options.memory_limit)
    tables = [
        db_api.register(frame, table_name=f"joinedup_train_{i}") for i, frame in enumerate(frames)
    ]
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.WARNING)
    linker.training.estimate_probability_two_random_records_match(
        [block_on(*cols) for cols in PRIOR_RULES], recall=PRIOR_RULES_RECALL
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=options.u_max_pairs, seed=options.seed
    )
    block_priors = []
    for cols in TRAINING_BLOCKS:
        session = linker.training.estimate_parameters_using_expectation_maximisation(
            block_on(*cols),
            estimate_without_term_frequencies=True,
            max_pairs=options.em_max_pairs,
        )
        block_priors.append(
            session._lambda_history_records[-1]["probability_two_random_records_match"]
        )
    trained = linker.misc.save_model_to_json()
    total = _total_pairs(frames, options.link_type)
    prior_from_rules = trained["probability_two_random_records_match"]
    trained["probability_two_random_records_match"] = _prior_from_em(
        trained, frames, options.link_type, block_priors[0], total
    )
    final, unobserved = _finalise(
        trained, comparisons, rules, min(options.u_max_pairs, float(max(total, 1)))
    )
    summary = {
        "records": int(sum(len(f) for f in frames)),
        "blocking_rules": [rule.name for rule in rules],
        "comparisons_left_out": [c.name for c in COMPARISONS if c not in comparisons],
        "levels_not_observed": unobserved,
        "prior_from_rules": _round(prior_from_rules),
        "prior": final["probability_two_random_records_match"],
    }
    when = trained_at or datetime.now(UTC)
    return MatchingModel(
        settings_json=json.dumps(final, sort_keys=True),
        seed=options.seed,
        trained_at=when.isoformat(),
        thresholds=options.thresholds,
        splink_version=splink.__version__,
        summary_json=json.dumps(summary, sort_keys=True),
    )


def decontaminated_u(sampled_u: float, m: float, prior: float, sampled_pairs: float) -> float:
    """The u-probability with the true matches in the random sample taken out.

    Random sampling counts how often a level fires among random pairs, and
    treats every sampled pair as a non-match. A fraction ``prior`` of them are
    matches, of which a fraction ``m`` fire the level, so the sampled rate is
    f = prior*m + (1 - prior)*u, and u = (f - prior*m) / (1 - prior). For a
    level almost only matches reach (same postcode and address, same date of
    birth) the uncorrected rate is mostly matches and caps the level's weight
    near log2(1/prior). The result is floored at one pair in the sample: a
    rate below that is not something the sample can measure.
    """
    floor = 1.0 / sampled_pairs
    return max((sampled_u - prior * m) / (1.0 - prior), min(sampled_u, floor))


def _finalise(
    trained: dict[str, Any],
    comparisons: tuple[ComparisonDef, ...],
    rules: tuple[BlockingRule, ...],
    sampled_pairs: float,
) -> tuple[dict[str, Any], list[str]]:
    """Keep what defines the model, round away float noise, neutralise unseen levels."""
    settings = splink_settings("duckdb", trained["link_type"], comparisons, rules)
    prior = trained["probability_two_random_records_match"]
    settings["probability_two_random_records_match"] = _round(prior)
    unobserved: list[str] = []
    for ours, theirs in zip(settings["comparisons"], trained["comparisons"], strict=True):
        for level, trained_level in zip(
            ours["comparison_levels"], theirs["comparison_levels"], strict=True
        ):
            if level.get("is_null_level") or level.get("fix_m_probability"):
                continue
            m = trained_level.get("m_probability")
            u = trained_level.get("u_probability")
            if _usable(m) and _usable(u):
                m = max(m, M_PROBABILITY_FLOOR)
                u = decontaminated_u(u, m, prior, sampled_pairs)
            else:
                # Never seen in training: no evidence either way (Bayes factor 1).
                unobserved.append(f"{ours['output_column_name']}: {level['label_for_charts']}")
                m = u = u if _usable(u) else M_PROBABILITY_FLOOR
            level["m_probability"] = _round(m)
            level["u_probability"] = _round(u)
    return settings, unobserved


def _prior_from_em(
    trained: dict[str, Any],
    frames: Sequence[pd.DataFrame],
    link_type: LinkType,
    block_prior: float,
    total_pairs: int,
) -> float:
    """The probability two random records match, from the EM session blocked on date of birth.

    The deterministic rules' estimate assumes they find a fixed share
    (``PRIOR_RULES_RECALL``) of all matches; on data with many typos they find
    fewer and the prior comes out low. EM inside the date-of-birth block
    measures the share of matches among those pairs; the block holds the
    fraction m(date of birth exact) of all matches, which the other session
    trained. So matches ~ block share * block pairs / m(exact), and the prior
    is that over all pairs. The rules' estimate is kept when this one cannot
    be formed (no dates of birth, or no pairs in the block).
    """
    fallback = float(trained["probability_two_random_records_match"])
    try:
        m_exact = _level(trained, "dob", "exact").get("m_probability")
    except KeyError:
        return fallback
    block_pairs = estimated_pairs(frames, BlockingRule("dob", TRAINING_BLOCKS[0]), link_type)
    if not (_usable(m_exact) and _usable(block_prior) and block_pairs and total_pairs):
        return fallback
    prior = block_prior * block_pairs / (float(m_exact or 1.0) * total_pairs)
    return prior if 0.0 < prior < 1.0 else fallback


def _level(trained: dict[str, Any], comparison: str, label: str) -> dict[str, Any]:
    for c in trained["comparisons"]:
        if c["output_column_name"] == comparison:
            for level in c["comparison_levels"]:
                if level["label_for_charts"] == label:
                    return dict(level)
    raise KeyError(f"{comparison}: {label}")


def _total_pairs(frames: Sequence[pd.DataFrame], link_type: LinkType) -> int:
    sizes = [len(f) for f in frames]
    n = sum(sizes)
    if link_type == "link_only":
        return (n * n - sum(k * k for k in sizes)) // 2
    return n * (n - 1) // 2


def _usable(value: Any) -> bool:
    return isinstance(value, float | int) and 0.0 < float(value) <= 1.0


def _round(value: float) -> float:
    return float(f"{value:.{_SIGNIFICANT_DIGITS}g}")
