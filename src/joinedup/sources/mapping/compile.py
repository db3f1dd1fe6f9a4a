"""A CSV mapping compiled into closures that turn one row into plain FHIR dicts.

The spec is checked once (targets, transforms, kinds); a file's header binds
columns to positions; then each row is a loop over precompiled field
operations writing into dicts. No pydantic models per row: that is what
keeps ingest above 20,000 rows a second (resources made here are validated
against the R4 models in the tests instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from joinedup.errors import Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.sources.contract import Warning_
from joinedup.sources.mapping import fhirschema
from joinedup.sources.mapping.ids import stable_id
from joinedup.sources.mapping.spec import (
    CsvMapping,
    ExtraColumns,
    FieldRule,
    OnInvalid,
    ResourceRule,
)
from joinedup.sources.mapping.targets import (
    Setter,
    Target,
    TargetError,
    ValueProblem,
    compile_target,
)
from joinedup.sources.mapping.transforms import Context, Fn, Noted, TransformError, build

SUBJECT_ELEMENTS = ("subject", "patient")
"""Where a resource points at its person; filled from the row's Patient when not mapped."""


class RuleError(ValueError):
    """A field or resource rule that cannot work; the loader reports it at the rule's location."""


@dataclass(frozen=True, slots=True)
class PreparedField:
    rule: FieldRule
    target: Target
    fn: Fn | None
    """The transform chain as one function (None when there are no transforms)."""
    set: Setter
    constant: Any
    """The constant after its transforms, when the rule has no column."""


def _compose(chain: list[Fn]) -> Fn | None:
    if not chain:
        return None
    if len(chain) == 1:
        return chain[0]
    steps = tuple(chain)

    def run(value: Any) -> Any:
        for fn in steps:
            value = fn(value)
            if value is None:
                return None
        return value

    return run


def prepare_field(rule: FieldRule, mapping: CsvMapping, ctx: Context, kind: str) -> PreparedField:
    """Check one field rule and build its target and transform chain; RuleError if it cannot work."""
    try:
        target = compile_target(rule.target, mapping.identifier_systems, mapping.extensions)
    except TargetError as exc:
        raise RuleError(f"target {rule.target!r}: {exc}") from None
    if target.kind != kind:
        raise RuleError(f"target {rule.target!r} is not an element of the {kind} it is listed under")
    chain: list[Fn] = []
    gives = "text"
    for spec in rule.transforms:
        try:
            built = build(spec, ctx)
        except TransformError as exc:
            raise RuleError(str(exc)) from None
        if gives not in built.takes:
            raise RuleError(f"transform {spec.name!r} takes text, but gets {gives}")
        chain.append(built.fn)
        gives = built.gives
    constant = rule.value
    if constant is not None:
        if isinstance(constant, bool):
            gives = "bool"
        elif isinstance(constant, int | float):
            gives = "number"
        elif not isinstance(constant, str):
            gives = "coding"
        else:
            composed = _compose(chain)
            try:
                constant = composed(constant) if composed else constant
            except (ValueError, Noted) as exc:
                raise RuleError(f"the constant cannot be transformed: {exc}") from None
    accepts = target.accepts
    if target.leaf.repeats and target.leaf.primitive:
        accepts = accepts | {"words"}
    if gives not in accepts:
        hint = ""
        if target.leaf.type in ("date", "dateTime", "instant") and gives == "text":
            hint = " (add the date transform)"
        raise RuleError(
            f"target {rule.target!r} is a {target.leaf.type} and cannot take {gives}{hint}"
        )
    if isinstance(constant, str) and target.leaf.enum and constant not in target.leaf.enum:
            raise RuleError(f"{constant!r} is not one of {', '.join(sorted(target.leaf.enum))}")
    return PreparedField(rule, target, _compose(chain), target.setter(gives), constant)


def missing_required(rule: ResourceRule, fields: Sequence[PreparedField], has_patient: bool) -> list[str]:
    """Required elements of the resource kind that no field fills (nor the row's Patient)."""
    filled = {fhirschema.choice_group(rule.kind, f.target.top) for f in fields}
    if has_patient and rule.kind != "Patient":
        filled.update(SUBJECT_ELEMENTS)
    return sorted(fhirschema.required_elements(rule.kind) - filled)


_Op = tuple[int, str, Fn | None, Setter, bool, bool, Any, int, bool]
"""(column index or -1, column name, transform, setter, required, warn when invalid, constant,
condition column index or -1, condition wants it empty). A tuple, unpacked in the row loop:
cheaper than attribute access on every field of every row."""


@dataclass(frozen=True, slots=True)
class _Plan:
    kind: str
    name: str
    namespace: str
    id_index: int
    id_column: str
    when_index: int
    when_values: frozenset[str]
    category: str
    sensitivity: str
    ops: tuple[_Op, ...]
    subject: str | None


class CompiledMapping:
    """A mapping ready to bind to a file's header."""

    def __init__(self, mapping: CsvMapping, today: date | None = None) -> None:
        self.mapping = mapping
        ctx = Context(
            mapping.organisation, mapping.feed, mapping.settings, mapping.code_maps,
            today or date.today(),
        )
        self._prepared = tuple(
            (rule, tuple(prepare_field(f, mapping, ctx, rule.kind) for f in rule.fields))
            for rule in mapping.resources
        )

    def bind(self, header: Sequence[str]) -> tuple[RowMapper, list[Problem], list[Warning_]]:
        """A row mapper for files with this header, file-level problems, and header warnings."""
        mapping = self.mapping
        position: dict[str, int] = {}
        problems: list[Problem] = []
        warnings: list[Warning_] = []
        for i, name in enumerate(header):
            if name in position:
                problems.append(Problem(f"column {name!r} appears twice in the header", "header"))
            position.setdefault(name, i)
        for name, required in mapping.columns.items():
            if name not in position:
                if required:
                    problems.append(Problem(f"required column {name!r} is missing", "header"))
                else:
                    warnings.append(
                        Warning_(f"optional column {name!r} is absent; its fields stay empty",
                                 "header", "missing-optional-column")
                    )
        extra = [n for n in header if n not in mapping.columns]
        if extra and mapping.settings.extra_columns is ExtraColumns.REJECT:
            problems.append(Problem(f"unexpected columns: {', '.join(extra)}", "header"))
        elif extra and mapping.settings.extra_columns is ExtraColumns.WARN:
            warnings.append(
                Warning_(f"columns not in the mapping are ignored: {', '.join(extra)}",
                         "header", "extra-columns")
            )
        has_patient = any(r.kind == "Patient" for r in mapping.resources)
        plans = []
        for rule, fields in self._prepared:
            ops = []
            for prepared in fields:
                col = prepared.rule.column
                if col is not None and col not in position:
                    continue
                condition = prepared.rule.when or prepared.rule.unless
                if condition is not None and condition not in position:
                    if prepared.rule.when:
                        continue  # an absent optional column is empty: never written
                    condition = None  # ... so "unless empty" always holds
                ops.append(
                    (
                        position[col] if col is not None else -1,
                        col or "",
                        prepared.fn,
                        prepared.set,
                        prepared.rule.required,
                        prepared.rule.on_invalid is OnInvalid.WARN,
                        prepared.constant,
                        position[condition] if condition is not None else -1,
                        prepared.rule.unless is not None,
                    )
                )
            filled = {f.target.top for f in fields}
            subject = next(
                (
                    s for s in SUBJECT_ELEMENTS
                    if s not in filled and fhirschema.element(rule.kind, s) is not None
                ),
                None,
            )
            id_column = rule.id_column or mapping.source_id_column
            plans.append(
                _Plan(
                    rule.kind,
                    rule.key_name,
                    rule.id_namespace or mapping.feed,
                    position.get(id_column, -1),
                    id_column,
                    position.get(rule.when.column, -1) if rule.when else -2,
                    rule.when.values if rule.when else frozenset(),
                    rule.label.category.value,
                    rule.label.sensitivity.value,
                    tuple(ops),
                    subject if has_patient and rule.kind != "Patient" else None,
                )
            )
        source_index = position.get(mapping.source_id_column, -1)
        return RowMapper(mapping, tuple(plans), source_index, len(header)), problems, warnings


class RowMapper:
    """Maps the cells of one data row to resources; bound to one header."""

    def __init__(
        self, mapping: CsvMapping, plans: tuple[_Plan, ...], source_index: int, width: int
    ) -> None:
        self._org = mapping.organisation
        self._plans = plans
        self._source_index = source_index
        self.source_column = mapping.source_id_column
        self._nulls = mapping.settings.null_values
        self._trim = mapping.settings.trim
        self.width = width

    def source_id(self, cells: Sequence[str]) -> str:
        return cells[self._source_index].strip() if self._source_index >= 0 else ""

    def map_row(
        self, cells: Sequence[str], row: int
    ) -> tuple[list[dict[str, Any]], list[Warning_], list[Problem]]:
        """Resources for the row, warnings, and problems (any problem rejects the row)."""
        problems: list[Problem] = []
        warnings: list[Warning_] = []
        nulls, trim, org = self._nulls, self._trim, self._org
        out: list[dict[str, Any]] = []
        subjects: list[str | None] = []
        patient_ref = None
        for plan in self._plans:
            if plan.when_index != -2:
                if plan.when_index < 0:
                    continue
                flag = cells[plan.when_index].strip()
                if flag in nulls or (plan.when_values and flag not in plan.when_values):
                    continue
            key = cells[plan.id_index].strip() if plan.id_index >= 0 else ""
            if key in nulls:
                problems.append(Problem(f"{plan.name}: the id column is empty", f"row {row}, column {plan.id_column}"))
                continue
            rid = stable_id(org, plan.namespace, plan.name, key)
            resource: dict[str, Any] = {
                "resourceType": plan.kind,
                "id": rid,
                "meta": {
                    "security": [
                        {"system": CATEGORY_SYSTEM, "code": plan.category},
                        {"system": CONFIDENTIALITY_SYSTEM, "code": plan.sensitivity},
                    ]
                },
            }
            for index, column, fn, setter, required, warn_invalid, constant, cond, unless in plan.ops:
                if cond >= 0 and (cells[cond].strip() in nulls) is not unless:
                    continue
                if index < 0:
                    value = constant
                else:
                    value = cells[index]
                    if trim:
                        value = value.strip()
                    if value in nulls:
                        if required:
                            problems.append(Problem("a value is required", f"row {row}, column {column}"))
                        continue
                    if fn is not None:
                        try:
                            value = fn(value)
                        except Noted as note:
                            warnings.append(Warning_(note.message, f"row {row}, column {column}", "value"))
                            value = note.value
                        except ValueError as exc:
                            _invalid(column, warn_invalid, str(exc), row, problems, warnings)
                            continue
                        if value is None or value == "":
                            continue
                try:
                    setter(resource, value)
                except ValueProblem as exc:
                    _invalid(column, warn_invalid, str(exc), row, problems, warnings)
            if plan.kind == "Patient" and patient_ref is None:
                patient_ref = f"Patient/{rid}"
            out.append(resource)
            subjects.append(plan.subject)
        if patient_ref is not None:
            for resource, subject in zip(out, subjects, strict=True):
                if subject and subject not in resource:
                    resource[subject] = {"reference": patient_ref}
        return out, warnings, problems


def _invalid(
    column: str, warn: bool, message: str, row: int, problems: list[Problem], warnings: list[Warning_]
) -> None:
    where = f"row {row}, column {column}" if column else f"row {row}"
    if warn:
        warnings.append(Warning_(message + "; field left out", where, "invalid-value"))
    else:
        problems.append(Problem(message, where))
