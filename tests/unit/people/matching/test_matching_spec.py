from __future__ import annotations

import importlib.util

import pytest

from joinedup.people.matching.backends import settings_for_dialect
from joinedup.people.matching.model import MatchingModel
from joinedup.people.matching.spec import (
    BLOCKING_RULES,
    COMPARISONS,
    BlockingRule,
    ComparisonDef,
    Level,
    LevelKind,
)


def test_every_comparison_ends_with_else_and_starts_with_a_null_level() -> None:
    for comparison in COMPARISONS:
        assert comparison.levels[0].kind in (LevelKind.NULL, LevelKind.NULL_ALL)
        assert comparison.levels[-1].kind is LevelKind.ELSE


def test_invalid_definitions_are_refused() -> None:
    with pytest.raises(ValueError, match="needs 2"):
        Level(LevelKind.REVERSED, ("given_name",))
    with pytest.raises(ValueError, match="threshold"):
        Level(LevelKind.JARO_WINKLER, ("given_name",))
    with pytest.raises(ValueError, match="term frequency"):
        Level(LevelKind.JARO_WINKLER, ("given_name",), 0.9, term_frequency=True)
    with pytest.raises(ValueError, match="ELSE"):
        ComparisonDef("x", "x", (Level(LevelKind.EXACT, ("sex",)),))
    with pytest.raises(ValueError, match="two columns"):
        BlockingRule("x", ("a", "b", "c"), reversed=True)
    postcode_near = Level(LevelKind.DAMERAU_LEVENSHTEIN, ("postcode",), 1)
    with pytest.raises(ValueError, match="parts"):
        Level(LevelKind.ALL_OF)
    with pytest.raises(ValueError, match="two or more parts"):
        Level(LevelKind.ALL_OF, parts=(postcode_near,))
    with pytest.raises(ValueError, match="cannot be parts"):
        Level(LevelKind.ALL_OF, parts=(postcode_near, Level(LevelKind.NULL, ("postcode",))))
    with pytest.raises(ValueError, match="parts are given"):
        Level(LevelKind.EXACT, ("postcode",), parts=(postcode_near, postcode_near))
    with pytest.raises(ValueError, match="threshold"):
        Level(LevelKind.REVERSED_JARO_WINKLER, ("given_name", "family_name"))


def test_an_all_of_level_is_its_parts_joined_by_and() -> None:
    level = Level(
        LevelKind.ALL_OF,
        parts=(
            Level(LevelKind.DAMERAU_LEVENSHTEIN, ("postcode",), 1),
            Level(LevelKind.JARO_WINKLER, ("address_street",), 0.88),
        ),
    )
    assert level.sql("duckdb") == (
        "(damerau_levenshtein(postcode_l, postcode_r) <= 1) AND "
        "(jaro_winkler_similarity(address_street_l, address_street_r) >= 0.88)"
    )
    assert level.sql("spark").startswith("(damerau_levenshtein(postcode_l, postcode_r) <= 1) AND")
    assert level.input_columns == ("postcode", "address_street")
    location = next(c for c in COMPARISONS if c.name == "location")
    assert {"postcode", "address_number", "address_street"} <= location.input_columns


def test_swapped_names_are_counted_once() -> None:
    family = next(c for c in COMPARISONS if c.name == "family_name")
    for level in family.levels:
        if level.kind in (
            LevelKind.REVERSED,
            LevelKind.CROSSED,
            LevelKind.REVERSED_JARO_WINKLER,
        ):
            assert level.fixed_m is not None
            assert level.fixed_m == level.fixed_u  # Bayes factor 1


def test_blocking_rule_names_are_unique() -> None:
    assert len({r.name for r in BLOCKING_RULES}) == len(BLOCKING_RULES)


def test_spark_settings_are_the_same_model_in_spark_sql(model: MatchingModel) -> None:
    duck = model.settings
    spark = settings_for_dialect(model, "spark")
    assert (
        spark["probability_two_random_records_match"]
        == duck["probability_two_random_records_match"]
    )
    for ours, theirs in zip(spark["comparisons"], duck["comparisons"], strict=True):
        assert ours["output_column_name"] == theirs["output_column_name"]
        for a, b in zip(ours["comparison_levels"], theirs["comparison_levels"], strict=True):
            assert a.get("m_probability") == b.get("m_probability")
            assert a.get("u_probability") == b.get("u_probability")
            assert "jaro_winkler_similarity" not in a["sql_condition"]
    assert any(
        "jaro_winkler(" in lvl["sql_condition"]
        for c in spark["comparisons"]
        for lvl in c["comparison_levels"]
    )


@pytest.mark.skipif(importlib.util.find_spec("pyspark") is None, reason="pyspark not installed")
@pytest.mark.slow
def test_runs_on_a_local_spark_session(model: MatchingModel, estate_features, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from pyspark.sql.types import StringType, StructField, StructType

    from joinedup.people.matching.backends import new_local_spark_session, new_spark_api
    from joinedup.people.matching.batch import BatchOptions, link

    spark = new_local_spark_session(str(tmp_path / "checkpoints"), "joinedup-test")
    try:
        schema = StructType([StructField(c, StringType(), True) for c in estate_features.columns])
        rows = estate_features.astype(object).where(estate_features.notna(), None)
        frame = spark.createDataFrame(list(rows.itertuples(index=False, name=None)), schema)
        on_spark = link(model, [frame], BatchOptions(cluster=False), db_api=new_spark_api(spark, partitions=2))
        on_duckdb = link(model, [estate_features], BatchOptions(cluster=False))
        key = ["unique_id_l", "unique_id_r"]
        assert set(map(tuple, on_spark.pairs[key].to_numpy())) == set(
            map(tuple, on_duckdb.pairs[key].to_numpy())
        )
    finally:
        spark.stop()
