"""Splink backends, chosen by configuration: ``duckdb`` (embedded) or ``spark``.

The model is the same on both: the settings are regenerated from ``spec`` in
the target dialect and the trained m/u probabilities and prior copied across
level by level (Splink does not translate stored SQL between dialects).
Spark is optional: ``pyspark`` is imported only when the Spark backend is asked for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from joinedup.people.matching.spec import Dialect, comparisons_by_name, splink_settings

if TYPE_CHECKING:
    from splink.internals.database_api import DatabaseAPISubClass

    from joinedup.people.matching.model import MatchingModel

Backend = Literal["duckdb", "spark"]


def new_duckdb_api(threads: int | None = None, memory_limit: str | None = None) -> Any:
    """An in-memory DuckDB Splink API with optional thread and memory caps."""
    import duckdb
    from splink import DuckDBAPI

    con = duckdb.connect(":memory:")
    if threads is not None:
        con.execute(f"SET threads = {int(threads)}")
    if memory_limit is not None:
        con.execute("SET memory_limit = ?", [memory_limit])
    con.execute("SET preserve_insertion_order = false")
    return DuckDBAPI(connection=con)


def new_spark_api(spark_session: Any, partitions: int | None = None) -> DatabaseAPISubClass:
    """A Splink Spark API on an existing SparkSession (Splink registers its UDFs).

    ``partitions`` is how many partitions Splink repartitions to (its default
    suits a cluster; a local session wants a handful).
    """
    from splink import SparkAPI

    return SparkAPI(  # type: ignore[no-untyped-call]
        spark_session=spark_session, num_partitions_on_repartition=partitions
    )


def new_local_spark_session(
    checkpoint_dir: str, app_name: str = "joinedup", master: str = "local[1]"
) -> Any:
    """A small local SparkSession with Splink's similarity UDF jar on the classpath.

    For tests and trying the Spark backend on one machine; a real estate passes
    its cluster's session (with the same jar, see ``similarity_jar_location``)
    to ``new_spark_api``.
    """
    from pyspark.sql import SparkSession
    from splink.backends.spark import similarity_jar_location

    session = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.jars", similarity_jar_location())
        .config("spark.sql.shuffle.partitions", "2")
        .config("spark.default.parallelism", "2")
        .config("spark.ui.enabled", "false")
        .config("spark.driver.host", "127.0.0.1")
        .config("spark.driver.bindAddress", "127.0.0.1")
        .getOrCreate()
    )
    session.sparkContext.setCheckpointDir(checkpoint_dir)
    return session


def settings_for_dialect(model: MatchingModel, dialect: Dialect) -> dict[str, Any]:
    """The trained model's Splink settings rewritten for ``dialect``."""
    trained = model.settings
    if dialect == "duckdb":
        return trained
    known = comparisons_by_name()
    comparisons = tuple(known[c["output_column_name"]] for c in trained["comparisons"])
    out = splink_settings(dialect, trained["link_type"], comparisons)
    # The estate's own blocking rules (chosen at training within a pair budget):
    # their SQL (``l.a = r.a``) is the same in every dialect.
    out["blocking_rules_to_generate_predictions"] = trained["blocking_rules_to_generate_predictions"]
    out["probability_two_random_records_match"] = trained["probability_two_random_records_match"]
    for ours, theirs in zip(out["comparisons"], trained["comparisons"], strict=True):
        for level, trained_level in zip(
            ours["comparison_levels"], theirs["comparison_levels"], strict=True
        ):
            for key in ("m_probability", "u_probability"):
                if key in trained_level:
                    level[key] = trained_level[key]
    return out
