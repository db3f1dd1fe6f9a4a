"""The trained matching model as a versioned JSON artefact.

The envelope is ours (format and versions, when and with what seed it was
trained, the operating thresholds, a training summary); inside it is Splink's
own settings dict, so the same file can be handed to Splink directly. A file
is only accepted if every comparison level is one this version of joinedup
knows how to evaluate (its SQL is exactly what ``spec`` generates), because
the online scorer evaluates those levels in Python. Every problem found is
reported at once.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from joinedup import __version__ as joinedup_version
from joinedup.errors import InvalidInput, Problem
from joinedup.people.matching.decision import Thresholds
from joinedup.people.matching.spec import BLOCKING_RULES, comparisons_by_name

FORMAT = "joinedup.matching-model"
FORMAT_VERSION = 1
SUPPORTED_SPLINK_MAJOR = 5
_LINK_TYPES = ("dedupe_only", "link_only", "link_and_dedupe")


class ModelFileError(InvalidInput):
    """A model file that cannot be used: corrupt, incompatible, or not ours."""

    slug = "invalid-matching-model"
    title = "Invalid matching model"


@dataclass(frozen=True, slots=True)
class MatchingModel:
    """A trained model: immutable; ``settings`` returns a fresh copy each time."""

    settings_json: str
    seed: int
    trained_at: str
    thresholds: Thresholds
    splink_version: str
    joinedup_version: str = joinedup_version
    summary_json: str = "{}"
    _settings: dict[str, Any] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        settings = json.loads(self.settings_json)
        problems = _settings_problems(settings)
        problems += _envelope_problems(
            {
                "seed": self.seed,
                "trained_at": self.trained_at,
                "splink_version": self.splink_version,
                "joinedup_version": self.joinedup_version,
            }
        )
        if problems:
            raise ModelFileError("the matching model is not usable", problems)
        object.__setattr__(self, "_settings", settings)

    @property
    def settings(self) -> dict[str, Any]:
        """Splink's settings dict (a copy: the model itself cannot be changed)."""
        return json.loads(self.settings_json)  # type: ignore[no-any-return]

    @property
    def summary(self) -> dict[str, Any]:
        return json.loads(self.summary_json)  # type: ignore[no-any-return]

    @property
    def link_type(self) -> str:
        return str(self._settings["link_type"])

    @property
    def comparison_names(self) -> tuple[str, ...]:
        return tuple(c["output_column_name"] for c in self._settings["comparisons"])

    def to_json(self) -> str:
        envelope = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "joinedup_version": self.joinedup_version,
            "splink_version": self.splink_version,
            "trained_at": self.trained_at,
            "seed": self.seed,
            "thresholds": {
                "auto_link": self.thresholds.auto_link,
                "review": self.thresholds.review,
            },
            "training": json.loads(self.summary_json),
            "splink_settings": json.loads(self.settings_json),
        }
        return json.dumps(envelope, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> MatchingModel:
        try:
            data = json.loads(text)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ModelFileError(
                "the matching model file is not valid JSON",
                [Problem(str(exc), "file")],
            ) from None
        if not isinstance(data, dict):
            raise ModelFileError(
                "the matching model file is not a joinedup matching model",
                [Problem("expected a JSON object", "file")],
            )
        problems = _envelope_problems(data, whole_file=True)
        settings = data.get("splink_settings")
        problems += _settings_problems(settings)
        thresholds = None
        raw_thresholds = data.get("thresholds")
        if isinstance(raw_thresholds, dict):
            try:
                thresholds = Thresholds(
                    auto_link=raw_thresholds.get("auto_link"),  # type: ignore[arg-type]
                    review=raw_thresholds.get("review"),  # type: ignore[arg-type]
                )
            except (ValueError, TypeError) as exc:
                problems.append(Problem(str(exc), "thresholds"))
        else:
            problems.append(Problem("missing or not an object", "thresholds"))
        training = data.get("training", {})
        if not isinstance(training, dict):
            problems.append(Problem("must be an object", "training"))
        if problems or thresholds is None:
            raise ModelFileError("the matching model file cannot be used", problems)
        return cls(
            settings_json=json.dumps(settings, sort_keys=True),
            seed=data["seed"],
            trained_at=data["trained_at"],
            thresholds=thresholds,
            splink_version=data["splink_version"],
            joinedup_version=data["joinedup_version"],
            summary_json=json.dumps(training, sort_keys=True),
        )

    def save(self, path: Path) -> None:
        path.write_text(self.to_json(), encoding="utf-8")

    @classmethod
    def load(cls, path: Path) -> MatchingModel:
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(
                "the matching model file cannot be read",
                [Problem(exc.strerror or str(exc), str(path))],
            ) from None
        return cls.from_json(raw)


def _envelope_problems(data: dict[str, Any], *, whole_file: bool = False) -> list[Problem]:
    problems: list[Problem] = []
    if whole_file:
        if data.get("format") != FORMAT:
            problems.append(Problem(f"expected {FORMAT!r}: this is not a matching model", "format"))
        version = data.get("format_version")
        if not isinstance(version, int):
            problems.append(Problem("missing or not an integer", "format_version"))
        elif version > FORMAT_VERSION:
            problems.append(
                Problem(
                    f"written by a newer joinedup (format {version}); this one reads "
                    f"format {FORMAT_VERSION}",
                    "format_version",
                )
            )
        elif version < FORMAT_VERSION:
            problems.append(Problem(f"format {version} is no longer supported", "format_version"))
    seed = data.get("seed")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(Problem("must be a non-negative integer", "seed"))
    trained_at = data.get("trained_at")
    try:
        if not isinstance(trained_at, str):
            raise ValueError
        datetime.fromisoformat(trained_at)
    except ValueError:
        problems.append(Problem("must be an ISO 8601 date-time", "trained_at"))
    splink_version = data.get("splink_version")
    if not isinstance(splink_version, str) or not splink_version.split(".")[0].isdigit():
        problems.append(Problem("missing or not a version", "splink_version"))
    elif int(splink_version.split(".")[0]) != SUPPORTED_SPLINK_MAJOR:
        problems.append(
            Problem(
                f"trained with Splink {splink_version}; this joinedup uses Splink "
                f"{SUPPORTED_SPLINK_MAJOR}.x: retrain the model",
                "splink_version",
            )
        )
    if not isinstance(data.get("joinedup_version"), str):
        problems.append(Problem("missing or not a string", "joinedup_version"))
    return problems


def _settings_problems(settings: Any) -> list[Problem]:
    where = "splink_settings"
    if not isinstance(settings, dict):
        return [Problem("missing or not an object", where)]
    problems: list[Problem] = []
    if settings.get("link_type") not in _LINK_TYPES:
        problems.append(Problem(f"must be one of {', '.join(_LINK_TYPES)}", f"{where}.link_type"))
    prior = settings.get("probability_two_random_records_match")
    if not _is_probability(prior) or prior >= 1.0:  # type: ignore[operator]
        problems.append(
            Problem(
                "must be a probability in (0, 1)", f"{where}.probability_two_random_records_match"
            )
        )
    known = comparisons_by_name()
    comparisons = settings.get("comparisons")
    if not isinstance(comparisons, list) or not comparisons:
        problems.append(Problem("missing or empty", f"{where}.comparisons"))
        comparisons = []
    seen: set[str] = set()
    for i, comparison in enumerate(comparisons):
        at = f"{where}.comparisons[{i}]"
        if not isinstance(comparison, dict):
            problems.append(Problem("not an object", at))
            continue
        name = comparison.get("output_column_name")
        if name not in known:
            problems.append(Problem(f"unknown comparison {name!r}", at))
            continue
        if name in seen:
            problems.append(Problem(f"comparison {name!r} appears twice", at))
        seen.add(name)
        levels = comparison.get("comparison_levels")
        expected = known[name].levels
        if not isinstance(levels, list) or len(levels) != len(expected):
            problems.append(
                Problem(f"expected {len(expected)} levels for {name!r}", f"{at}.comparison_levels")
            )
            continue
        for j, (level, spec_level) in enumerate(zip(levels, expected, strict=True)):
            lat = f"{at}.comparison_levels[{j}]"
            if not isinstance(level, dict):
                problems.append(Problem("not an object", lat))
                continue
            if level.get("sql_condition") != spec_level.sql("duckdb"):
                problems.append(
                    Problem(
                        "condition differs from this joinedup's model definition: retrain",
                        f"{lat}.sql_condition",
                    )
                )
            if level.get("is_null_level"):
                continue
            for param in ("m_probability", "u_probability"):
                if not _is_probability(level.get(param)):
                    problems.append(
                        Problem("missing or not a probability in (0, 1]", f"{lat}.{param}")
                    )
    known_rules = {rule.sql() for rule in BLOCKING_RULES}
    rules = settings.get("blocking_rules_to_generate_predictions")
    if not isinstance(rules, list):
        problems.append(Problem("missing", f"{where}.blocking_rules_to_generate_predictions"))
        rules = []
    for i, rule in enumerate(rules):
        sql = rule.get("blocking_rule") if isinstance(rule, dict) else rule
        if sql not in known_rules:
            problems.append(
                Problem(
                    "blocking rule unknown to this joinedup",
                    f"{where}.blocking_rules_to_generate_predictions[{i}]",
                )
            )
    return problems


def _is_probability(value: Any) -> bool:
    return (
        isinstance(value, float | int)
        and not isinstance(value, bool)
        and math.isfinite(value)
        and 0.0 < value <= 1.0
    )
