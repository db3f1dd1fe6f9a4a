"""Batch linkage of a whole estate with Splink, with the NHS-number tiers applied.

Used for the nightly or on-demand re-link (the person index compares the
result with its current state before changing anything) and by the
benchmark. The outcome rules are those of ``decision.decide``, written as
SQL so they run inside the backend; a test holds the two to each other.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd
from splink import Linker

from joinedup.people.matching.backends import new_duckdb_api, settings_for_dialect
from joinedup.people.matching.decision import NON_NAME_EVIDENCE, Outcome
from joinedup.people.matching.model import MatchingModel


@dataclass(frozen=True, slots=True)
class BatchOptions:
    threads: int | None = None
    memory_limit: str | None = None
    cluster: bool = True


@dataclass(frozen=True, slots=True)
class BatchResult:
    """Pairs at review or above (``outcome``) and, if asked, person clusters."""

    pairs: pd.DataFrame  # unique_id_l, unique_id_r, match_weight, match_probability, outcome
    clusters: pd.DataFrame | None  # unique_id, cluster_id (auto-links only)
    scored_pairs: int


def outcome_sql(auto_link: float, review: float) -> str:
    """``decision.decide`` over a predictions row joined to both records as l and r."""
    evidence = " OR ".join(f"(l.{c} IS NOT NULL AND r.{c} IS NOT NULL)" for c in NON_NAME_EVIDENCE)
    return f"""
    CASE
        WHEN l.nhs_number = r.nhs_number THEN '{Outcome.AUTO_LINK}'
        WHEN l.nhs_number IS NOT NULL AND r.nhs_number IS NOT NULL THEN
            CASE WHEN p.match_probability >= {review} THEN '{Outcome.REVIEW}'
                 ELSE '{Outcome.NEW_PERSON}' END
        WHEN p.match_probability >= {auto_link} AND ({evidence}) THEN '{Outcome.AUTO_LINK}'
        WHEN p.match_probability >= {review} THEN '{Outcome.REVIEW}'
        ELSE '{Outcome.NEW_PERSON}'
    END"""


def link(
    model: MatchingModel,
    frames: Sequence[pd.DataFrame],
    options: BatchOptions = BatchOptions(),
    db_api: Any = None,
) -> BatchResult:
    """Score every blocked pair of the feature tables and decide each one.

    ``frames`` is one table for dedupe_only, one per source for link_only.
    ``db_api`` defaults to an embedded DuckDB; pass a Splink SparkAPI to run
    the same model on Spark (see docs/reference/matching-model.md).
    """
    api = db_api if db_api is not None else new_duckdb_api(options.threads, options.memory_limit)
    dialect = api.sql_dialect.sql_dialect_str
    settings = settings_for_dialect(model, dialect)
    tables = [api.register(frame) for frame in frames]
    linker = Linker(tables if len(tables) > 1 else tables[0], settings, log_level=logging.WARNING)
    predictions = linker.inference.predict(warning_mode="never")
    everyone = " UNION ALL ".join(
        f"SELECT unique_id, nhs_number, {', '.join(NON_NAME_EVIDENCE)} FROM {t.physical_name}"
        for t in tables
    )
    thresholds = model.thresholds
    decided_sql = f"""
        WITH everyone AS ({everyone}),
        decided AS (
            SELECT p.unique_id_l, p.unique_id_r, p.match_weight, p.match_probability,
                   {outcome_sql(thresholds.auto_link, thresholds.review)} AS outcome
            FROM {predictions.physical_name} p
            JOIN everyone l ON l.unique_id = p.unique_id_l
            JOIN everyone r ON r.unique_id = p.unique_id_r
        )
        SELECT * FROM decided WHERE outcome <> '{Outcome.NEW_PERSON}'
    """
    scored = _count(api, predictions.physical_name)
    decided = api.query_sql(decided_sql, output_type="splink_df")
    predictions.drop_table_from_database_and_remove_from_cache()
    pairs = _to_pandas(decided)
    clusters = None
    if options.cluster:
        clusters = _clusters(api, tables, decided.physical_name)
    return BatchResult(pairs=pairs, clusters=clusters, scored_pairs=scored)


def _clusters(api: Any, tables: list[Any], decided_table: str) -> pd.DataFrame:
    """Connected components over auto-links (Splink's clustering, in the backend)."""
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    nodes = api.query_sql(
        " UNION ALL ".join(f"SELECT unique_id FROM {t.physical_name}" for t in tables)
    )
    edges = api.query_sql(
        f"SELECT unique_id_l, unique_id_r FROM {decided_table} "
        f"WHERE outcome = '{Outcome.AUTO_LINK}'"
    )
    clustered = cluster_pairwise_predictions_at_threshold(
        nodes.physical_name,
        edges.physical_name,
        api,
        node_id_column_name="unique_id",
        edge_id_column_name_left="unique_id_l",
        edge_id_column_name_right="unique_id_r",
    )
    return _to_pandas(clustered)[["unique_id", "cluster_id"]]


def _count(api: Any, table: str) -> int:
    df = _to_pandas(api.query_sql(f"SELECT count(*) AS n FROM {table}", output_type="splink_df"))
    return int(df["n"].iloc[0])


def _to_pandas(sdf: Any) -> pd.DataFrame:
    frame: pd.DataFrame = sdf.as_pandas_dataframe()
    return frame
