"""The matching model's shape, as data: comparisons, their levels, blocking rules.

One definition drives three things that must agree: the Splink settings (SQL,
for any Splink dialect), the online scorer (Python), and the blocking index.
Each level has a small closed ``kind``; the scorer implements the same kinds,
and a loaded model is refused unless its SQL is exactly what this module
generates, so the two can never silently drift apart.

Level order matters (the first level whose condition holds wins), so a pair
with an exact given name never reaches the nickname or phonetic levels.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

LinkType = Literal["dedupe_only", "link_only", "link_and_dedupe"]
Dialect = Literal["duckdb", "spark"]

_FUNCTIONS: dict[str, dict[str, str]] = {
    "duckdb": {
        "jaro_winkler": "jaro_winkler_similarity",
        "levenshtein": "levenshtein",
        "damerau_levenshtein": "damerau_levenshtein",
    },
    "spark": {
        "jaro_winkler": "jaro_winkler",
        "levenshtein": "levenshtein",
        "damerau_levenshtein": "damerau_levenshtein",
    },
}


class LevelKind(StrEnum):
    NULL = "null"  # any of the columns missing on either side
    NULL_ALL = "null_all"  # every one of the columns missing on one side or the other
    EXACT = "exact"  # every column equal
    REVERSED = "reversed"  # (a, b) on one side equals (b, a) on the other
    CROSSED = "crossed"  # a on one side equals b on the other, either way round
    REVERSED_JARO_WINKLER = "reversed_jaro_winkler"  # (a, b) similar to (b, a) on the other side
    JARO_WINKLER = "jaro_winkler"  # similarity of column 0 >= threshold
    EXACT_AND_JARO_WINKLER = "exact_and_jaro_winkler"  # all but the last equal, the last similar
    LEVENSHTEIN = "levenshtein"  # edit distance of column 0 <= threshold
    DAMERAU_LEVENSHTEIN = "damerau_levenshtein"  # the same, a transposition counting as one edit
    INITIAL = "initial"  # one side is a single letter, the first letters agree
    DAY_MONTH_SWAPPED = "day_month_swapped"  # columns (year, month, day)
    ALL_OF = "all_of"  # every one of ``parts`` holds (a typo in one field, another near)
    ELSE = "else"


_NOT_A_PART = frozenset({LevelKind.NULL, LevelKind.NULL_ALL, LevelKind.ALL_OF, LevelKind.ELSE})


@dataclass(frozen=True, slots=True)
class Level:
    kind: LevelKind
    columns: tuple[str, ...] = ()
    threshold: float | None = None
    label: str = ""
    term_frequency: bool = False  # adjust the weight by how common column 0's value is
    fixed_m: float | None = None  # fixed (not trained) m and u probabilities
    fixed_u: float | None = None
    parts: tuple[Level, ...] = ()  # for ALL_OF: the conditions that must all hold

    def __post_init__(self) -> None:
        needs = {
            LevelKind.NULL: 1, LevelKind.NULL_ALL: 1, LevelKind.EXACT: 1, LevelKind.REVERSED: 2, LevelKind.CROSSED: 2,
            LevelKind.REVERSED_JARO_WINKLER: 2,
            LevelKind.JARO_WINKLER: 1, LevelKind.EXACT_AND_JARO_WINKLER: 2,
            LevelKind.LEVENSHTEIN: 1, LevelKind.DAMERAU_LEVENSHTEIN: 1, LevelKind.INITIAL: 1,
            LevelKind.DAY_MONTH_SWAPPED: 3, LevelKind.ALL_OF: 0, LevelKind.ELSE: 0,
        }  # fmt: skip
        problems = []
        if len(self.columns) < needs[self.kind]:
            problems.append(f"{self.kind} needs {needs[self.kind]} column(s)")
        if (self.kind is LevelKind.ALL_OF) != bool(self.parts):
            problems.append("parts are given for (and only for) an all_of level")
        if self.kind is LevelKind.ALL_OF:
            if self.columns:
                problems.append("an all_of level takes its columns from its parts")
            if len(self.parts) < 2:
                problems.append("an all_of level needs two or more parts")
            if any(p.kind in _NOT_A_PART for p in self.parts):
                problems.append("null, else and all_of levels cannot be parts")
        thresholded = {
            LevelKind.JARO_WINKLER,
            LevelKind.EXACT_AND_JARO_WINKLER,
            LevelKind.LEVENSHTEIN,
            LevelKind.DAMERAU_LEVENSHTEIN,
            LevelKind.REVERSED_JARO_WINKLER,
        }
        if (self.kind in thresholded) != (self.threshold is not None):
            problems.append(f"{self.kind} threshold given wrongly")
        if self.term_frequency and self.kind is not LevelKind.EXACT:
            problems.append("term frequency adjustment only applies to an exact level")
        if (self.fixed_m is None) != (self.fixed_u is None):
            problems.append("fix both m and u or neither")
        if problems:
            raise ValueError(f"level {self.label!r}: " + "; ".join(problems))

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The level's columns, or its parts' columns for an all_of level."""
        if self.kind is LevelKind.ALL_OF:
            return tuple(col for part in self.parts for col in part.columns)
        return self.columns

    def sql(self, dialect: Dialect) -> str:
        """The level's condition in Splink's column convention (``col_l``, ``col_r``)."""
        fn = _FUNCTIONS[dialect]
        c = self.columns
        match self.kind:
            case LevelKind.NULL:
                return " OR ".join(f"{col}_l IS NULL OR {col}_r IS NULL" for col in c)
            case LevelKind.NULL_ALL:
                left = " AND ".join(f"{col}_l IS NULL" for col in c)
                right = " AND ".join(f"{col}_r IS NULL" for col in c)
                return f"({left}) OR ({right})"
            case LevelKind.EXACT:
                return " AND ".join(f"{col}_l = {col}_r" for col in c)
            case LevelKind.REVERSED:
                return f"{c[0]}_l = {c[1]}_r AND {c[1]}_l = {c[0]}_r"
            case LevelKind.CROSSED:
                return f"{c[0]}_l = {c[1]}_r OR {c[1]}_l = {c[0]}_r"
            case LevelKind.REVERSED_JARO_WINKLER:
                jw, t = fn["jaro_winkler"], self.threshold
                return f"{jw}({c[0]}_l, {c[1]}_r) >= {t} AND {jw}({c[1]}_l, {c[0]}_r) >= {t}"
            case LevelKind.JARO_WINKLER:
                return f"{fn['jaro_winkler']}({c[0]}_l, {c[0]}_r) >= {self.threshold}"
            case LevelKind.EXACT_AND_JARO_WINKLER:
                equal = "".join(f"{col}_l = {col}_r AND " for col in c[:-1])
                return f"{equal}{fn['jaro_winkler']}({c[-1]}_l, {c[-1]}_r) >= {self.threshold}"
            case LevelKind.LEVENSHTEIN:
                return f"{fn['levenshtein']}({c[0]}_l, {c[0]}_r) <= {int(self.threshold or 0)}"
            case LevelKind.DAMERAU_LEVENSHTEIN:
                limit = int(self.threshold or 0)
                return f"{fn['damerau_levenshtein']}({c[0]}_l, {c[0]}_r) <= {limit}"
            case LevelKind.INITIAL:
                return (
                    f"(length({c[0]}_l) = 1 OR length({c[0]}_r) = 1) "
                    f"AND substr({c[0]}_l, 1, 1) = substr({c[0]}_r, 1, 1)"
                )
            case LevelKind.DAY_MONTH_SWAPPED:
                y, m, d = c
                return f"{y}_l = {y}_r AND {m}_l = {d}_r AND {d}_l = {m}_r"
            case LevelKind.ALL_OF:
                return " AND ".join(f"({part.sql(dialect)})" for part in self.parts)
            case LevelKind.ELSE:
                return "ELSE"

    def splink_dict(self, dialect: Dialect) -> dict[str, Any]:
        out: dict[str, Any] = {"sql_condition": self.sql(dialect), "label_for_charts": self.label}
        if self.kind in (LevelKind.NULL, LevelKind.NULL_ALL):
            out["is_null_level"] = True
        if self.term_frequency:
            out["tf_adjustment_column"] = self.columns[0]
            out["tf_adjustment_weight"] = 1.0
        if self.fixed_m is not None:
            out.update(
                m_probability=self.fixed_m,
                u_probability=self.fixed_u,
                fix_m_probability=True,
                fix_u_probability=True,
            )
        return out


@dataclass(frozen=True, slots=True)
class ComparisonDef:
    name: str
    description: str
    levels: tuple[Level, ...]

    def __post_init__(self) -> None:
        if not self.levels or self.levels[-1].kind is not LevelKind.ELSE:
            raise ValueError(f"comparison {self.name}: the last level must be ELSE")

    @property
    def input_columns(self) -> frozenset[str]:
        return frozenset(col for level in self.levels for col in level.input_columns)

    def splink_dict(self, dialect: Dialect) -> dict[str, Any]:
        return {
            "output_column_name": self.name,
            "comparison_description": self.description,
            "comparison_levels": [level.splink_dict(dialect) for level in self.levels],
        }


@dataclass(frozen=True, slots=True)
class BlockingRule:
    """Pairs agreeing exactly on ``columns`` (or, ``reversed``, on them crossed over)."""

    name: str
    columns: tuple[str, ...]
    reversed: bool = False
    broad: bool = False

    def __post_init__(self) -> None:
        if self.reversed and len(self.columns) != 2:
            raise ValueError(f"blocking rule {self.name}: a reversed rule has two columns")

    def sql(self) -> str:
        if self.reversed:
            a, b = self.columns
            return f"l.{a} = r.{b} AND l.{b} = r.{a}"
        return " AND ".join(f"l.{col} = r.{col}" for col in self.columns)


def _name_levels(column: str, other: str, *, swap_counts: bool) -> tuple[Level, ...]:
    """Given-name and family-name levels.

    Swapped names are common (SMITH JOHN / JOHN SMITH), and often only one
    name has moved (HAYDEN THRED / THREDGOLD HAYDEN). The swap is evidence
    once, not twice: the given-name comparison's "swapped" and "crossed"
    levels are trained; in the family-name comparison the same conditions
    (which are symmetric, so they fire on the same pairs) are fixed at m = u,
    a Bayes factor of 1, so that a swap is not also scored as a disagreement.
    """
    phon = f"{column}_phon"
    fixed = None if swap_counts else 0.5
    suffix = "" if swap_counts else " (counted on given name)"
    levels: list[Level] = [
        Level(LevelKind.NULL, (column,), label="missing"),
        Level(LevelKind.EXACT, (column,), label="exact", term_frequency=True),
        Level(
            LevelKind.REVERSED,
            (column, other),
            label="names swapped" + suffix,
            fixed_m=fixed,
            fixed_u=fixed,
        ),
        Level(
            LevelKind.CROSSED,
            (column, other),
            label="one name moved" + suffix,
            fixed_m=fixed,
            fixed_u=fixed,
        ),
        Level(
            LevelKind.REVERSED_JARO_WINKLER,
            (column, other),
            0.88,
            label="names swapped, similar" + suffix,
            fixed_m=fixed,
            fixed_u=fixed,
        ),
    ]
    if column == "given_name":
        levels.append(Level(LevelKind.EXACT, ("given_name_canon",), label="same formal name"))
    levels += [
        Level(LevelKind.JARO_WINKLER, (column,), 0.92, label="Jaro-Winkler >= 0.92"),
        Level(LevelKind.EXACT, (phon,), label="sounds alike (metaphone)"),
        Level(LevelKind.JARO_WINKLER, (column,), 0.85, label="Jaro-Winkler >= 0.85"),
    ]
    if column == "given_name":
        levels.append(Level(LevelKind.INITIAL, (column,), label="initial only"))
    levels += [
        Level(LevelKind.JARO_WINKLER, (column,), 0.7, label="Jaro-Winkler >= 0.7"),
        Level(LevelKind.ELSE, label="different"),
    ]
    return tuple(levels)


COMPARISONS: tuple[ComparisonDef, ...] = (
    ComparisonDef(
        "given_name", "first given name",
        _name_levels("given_name", "family_name", swap_counts=True),
    ),
    ComparisonDef(
        "family_name", "family name",
        _name_levels("family_name", "given_name", swap_counts=False),
    ),
    ComparisonDef("dob", "date of birth", (
        Level(LevelKind.NULL, ("dob",), label="missing"),
        Level(LevelKind.EXACT, ("dob",), label="exact"),
        Level(LevelKind.DAY_MONTH_SWAPPED, ("dob_year", "dob_month", "dob_day"),
              label="day and month swapped"),
        Level(LevelKind.DAMERAU_LEVENSHTEIN, ("dob",), 1,
              label="one digit different or two adjacent swapped"),
        Level(LevelKind.EXACT, ("dob_year", "dob_month"), label="same year and month"),
        Level(LevelKind.LEVENSHTEIN, ("dob",), 2, label="two digits different"),
        Level(LevelKind.EXACT, ("dob_year",), label="same year"),
        Level(LevelKind.ELSE, label="different"),
    )),
    ComparisonDef("sex", "recorded sex", (
        Level(LevelKind.NULL, ("sex",), label="missing"),
        Level(LevelKind.EXACT, ("sex",), label="same"),
        Level(LevelKind.ELSE, label="different"),
    )),
    # Postcode and address line are one comparison because they are not
    # independent: scored separately, a shared home would count twice, and the
    # members of one household would look like one person.
    ComparisonDef("location", "postcode and address lines", (
        Level(LevelKind.NULL_ALL, ("postcode", "address_street"), label="missing"),
        Level(LevelKind.EXACT, ("postcode", "address_number", "address_street"),
              label="same postcode and address"),
        Level(LevelKind.EXACT, ("postcode", "address_street"), label="same postcode and street"),
        Level(LevelKind.EXACT_AND_JARO_WINKLER, ("postcode", "address_number", "address_street"),
              0.88, label="same postcode and number, similar street"),
        Level(LevelKind.EXACT, ("postcode", "address_number"), label="same postcode and number"),
        Level(LevelKind.EXACT_AND_JARO_WINKLER, ("postcode", "address_street"), 0.88,
              label="same postcode, similar street"),
        Level(LevelKind.EXACT, ("postcode",), label="same postcode"),
        Level(LevelKind.EXACT_AND_JARO_WINKLER, ("address_number", "address_street"), 0.88,
              label="same number, similar street"),
        # The street first: DuckDB evaluates the parts in order, and its
        # Damerau-Levenshtein costs several times a Jaro-Winkler.
        Level(LevelKind.ALL_OF, parts=(
            Level(LevelKind.JARO_WINKLER, ("address_street",), 0.88),
            Level(LevelKind.DAMERAU_LEVENSHTEIN, ("postcode",), 1),
        ), label="postcode one character different or two swapped, similar street"),
        Level(LevelKind.DAMERAU_LEVENSHTEIN, ("postcode",), 1,
              label="postcode one character different or two swapped"),
        Level(LevelKind.EXACT, ("postcode_sector",), label="same postcode sector"),
        Level(LevelKind.EXACT, ("address_street",), label="same street"),
        Level(LevelKind.EXACT, ("postcode_outward",), label="same outward code"),
        Level(LevelKind.LEVENSHTEIN, ("postcode",), 2, label="postcode two characters different"),
        Level(LevelKind.ELSE, label="different"),
    )),
    ComparisonDef("town", "town or suburb", (
        Level(LevelKind.NULL, ("locality",), label="missing"),
        Level(LevelKind.EXACT, ("locality",), label="exact", term_frequency=True),
        Level(LevelKind.JARO_WINKLER, ("locality",), 0.9, label="Jaro-Winkler >= 0.9"),
        Level(LevelKind.ELSE, label="different"),
    )),
    ComparisonDef("region", "county or state", (
        Level(LevelKind.NULL, ("region",), label="missing"),
        Level(LevelKind.EXACT, ("region",), label="same"),
        Level(LevelKind.ELSE, label="different"),
    )),
    # Pairs with a valid NHS number on both sides are decided by the NHS-number
    # tier before the model is consulted; here the number only matters when it
    # is on one side (the null level: no evidence) or when two valid numbers
    # differ, which the tier caps at review whatever the score. The values are
    # fixed, not trained: an estate rarely has enough such pairs to learn them.
    ComparisonDef("nhs_number", "NHS number", (
        Level(LevelKind.NULL, ("nhs_number",), label="missing on one side"),
        Level(LevelKind.EXACT, ("nhs_number",), label="same", fixed_m=0.95, fixed_u=1e-6),
        Level(LevelKind.ELSE, label="different", fixed_m=0.05, fixed_u=1.0 - 1e-6),
    )),
)  # fmt: skip

# Candidate pairs are those agreeing on at least one rule. The first group is
# always used; each rule asks for agreement on two or more things so that
# blocks stay small in a large estate. The "broad" rules (one field) catch
# pairs with errors everywhere else, and are used when the estate is small
# enough for them to fit the pair budget (see ``choose_blocking_rules``).
BLOCKING_RULES: tuple[BlockingRule, ...] = (
    BlockingRule("nhs_number", ("nhs_number",)),
    BlockingRule("names", ("given_name", "family_name")),
    BlockingRule("names_swapped", ("given_name", "family_name"), reversed=True),
    BlockingRule("family_dob", ("family_name", "dob")),
    BlockingRule("given_dob", ("given_name", "dob")),
    BlockingRule("dob_postcode", ("dob", "postcode")),
    BlockingRule("dob_street", ("dob", "address_street")),
    BlockingRule("sounds_year", ("given_name_phon", "family_name_phon", "dob_year")),
    BlockingRule("postcode_family_sound", ("postcode", "family_name_phon")),
    BlockingRule("postcode_given_sound", ("postcode", "given_name_phon")),
    BlockingRule("street_number_year", ("address_street", "address_number", "dob_year")),
    BlockingRule("postcode_street", ("postcode", "address_street")),
    BlockingRule("postcode_number", ("postcode", "address_number")),
    BlockingRule("postcode_year", ("postcode", "dob_year")),
    BlockingRule("town_family_sound", ("locality", "family_name_phon")),
    BlockingRule("town_given_sound", ("locality", "given_name_phon")),
    BlockingRule("town_street", ("locality", "address_street")),
    BlockingRule("town_number", ("locality", "address_number")),
    BlockingRule("town_year", ("locality", "dob_year")),
    # The same street and number without a postcode or town is broad: every
    # town has a 12 High Street (12 candidate pairs a record in the 1M
    # synthetic estate, most of the scoring time).
    BlockingRule("street_number", ("address_street", "address_number"), broad=True),
    BlockingRule("postcode", ("postcode",), broad=True),
    BlockingRule("dob", ("dob",), broad=True),
    # A name and the house number or street, for pairs whose postcode, town
    # and date of birth are all damaged or missing: cheap in a small estate,
    # several pairs a record in a large one (common names, common numbers).
    BlockingRule("family_sound_number", ("family_name_phon", "address_number"), broad=True),
    BlockingRule("given_number", ("given_name", "address_number"), broad=True),
    BlockingRule("family_street", ("family_name", "address_street"), broad=True),
    BlockingRule("given_street", ("given_name", "address_street"), broad=True),
)

# EM training blocks: each session estimates the comparisons it does not block
# on. None blocks on a place: pairs sharing an address are mostly different
# people of one household, and EM would learn "household" instead of "person".
# The first, on date of birth, also gives the prior (training._prior_from_em):
# its share of matches over m(date of birth exact).
TRAINING_BLOCKS: tuple[tuple[str, ...], ...] = (
    ("dob",),
    ("given_name", "family_name"),
)

# Deterministic rules for the prior (probability two random records match).
PRIOR_RULES: tuple[tuple[str, ...], ...] = (("given_name", "family_name", "dob"),)
PRIOR_RULES_RECALL = 0.7


def comparisons_by_name() -> dict[str, ComparisonDef]:
    return {c.name: c for c in COMPARISONS}


def splink_settings(
    dialect: Dialect,
    link_type: LinkType = "dedupe_only",
    comparisons: tuple[ComparisonDef, ...] = COMPARISONS,
    blocking_rules: tuple[BlockingRule, ...] = BLOCKING_RULES,
) -> dict[str, Any]:
    """An untrained Splink settings dict for ``dialect`` (pure data)."""
    return {
        "link_type": link_type,
        "unique_id_column_name": "unique_id",
        "probability_two_random_records_match": 1e-4,
        "comparisons": [c.splink_dict(dialect) for c in comparisons],
        "blocking_rules_to_generate_predictions": [
            {"blocking_rule": rule.sql()} for rule in blocking_rules
        ],
        "retain_matching_columns": False,
        "retain_intermediate_calculation_columns": False,
        "em_convergence": 0.0001,
        "max_iterations": 25,
    }
