"""The transforms a mapping may apply to a value, each checked and built once.

A transform is built from its YAML arguments into a plain one-argument
function plus the kinds of value it takes and gives, so the loader can refuse
``Patient.birthDate`` fed by text without a ``date`` transform. A function
raises ValueError for a value it cannot accept (the row is rejected, or the
field dropped with a warning, as the field says), raises :class:`Noted` for a
value it accepts with doubt, and returns None to mean "no value". One
argument and exceptions for the rare cases keep the per-row call cheap: a
chain of ``str.upper`` and ``title_case`` calls the functions themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from joinedup import nhs_number
from joinedup.sources.mapping import text
from joinedup.sources.mapping.dates import DateParser, ambiguous_pairs, compile_format
from joinedup.sources.mapping.ids import stable_id
from joinedup.sources.mapping.spec import CodeMap, Coding, CsvSettings, Transform, Unmapped
from joinedup.sources.mapping.targets import Ref

Fn = Callable[[Any], Any]


class Noted(Exception):
    """Accept ``value``, with a warning saying why it is doubtful (or left out when None)."""

    def __init__(self, value: Any, message: str) -> None:
        super().__init__(message)
        self.value = value
        self.message = message


@dataclass(frozen=True, slots=True)
class Built:
    fn: Fn
    takes: frozenset[str]
    gives: str


@dataclass(frozen=True, slots=True)
class Context:
    """What transforms may depend on besides their own arguments."""

    organisation: str
    feed: str
    settings: CsvSettings
    code_maps: Mapping[str, CodeMap]
    today: date


class TransformError(ValueError):
    """A transform declared wrongly in the mapping (unknown name, bad argument)."""


TEXT = frozenset({"text"})


def build(spec: Transform, ctx: Context) -> Built:
    factory = _FACTORIES.get(spec.name)
    if factory is None:
        raise TransformError(
            f"unknown transform {spec.name!r} (known: {', '.join(sorted(_FACTORIES))})"
        )
    return factory(spec.args, ctx)


def names() -> tuple[str, ...]:
    return tuple(sorted(_FACTORIES))


def _no_args(name: str, args: Mapping[str, Any]) -> None:
    if args:
        raise TransformError(f"{name} takes no arguments")


def _known_args(name: str, args: Mapping[str, Any], allowed: set[str]) -> None:
    unknown = sorted(set(args) - allowed)
    if unknown:
        raise TransformError(
            f"{name} has no argument {', '.join(map(repr, unknown))}"
            f" (it takes: {', '.join(sorted(allowed)) or 'nothing'})"
        )


def _text_fn(name: str, fn: Callable[[str], str]) -> Callable[[Mapping[str, Any], Context], Built]:
    def factory(args: Mapping[str, Any], ctx: Context) -> Built:
        _no_args(name, args)
        return Built(fn, TEXT, "text")

    return factory


def _postcode(args: Mapping[str, Any], ctx: Context) -> Built:
    _no_args("postcode", args)
    return Built(text.postcode, TEXT, "text")


def _nhs(args: Mapping[str, Any], ctx: Context) -> Built:
    _no_args("nhs_number", args)

    def check(value: str) -> str:
        try:
            return nhs_number.validate(value)
        except ValueError as exc:
            raise ValueError(f"{exc} (shape {text.shape(value)!r})") from None

    return Built(check, TEXT, "text")


def _split_name(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("split_name", args, {"style", "case"})
    style = str(args.get("style", "auto"))
    case = str(args.get("case", "keep"))
    if style not in text.NAME_STYLES:
        raise TransformError(f"split_name style must be one of {', '.join(text.NAME_STYLES)}")
    if case not in text.CASES:
        raise TransformError(f"split_name case must be one of {', '.join(text.CASES)}")
    recase = text.CASES[case]

    def split(value: str) -> text.NameParts:
        parts = text.split_name(value, style)
        return text.NameParts(recase(parts.family), tuple(recase(g) for g in parts.given))

    return Built(split, TEXT, "name")


def _date(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("date", args, {"formats", "past", "max_age_years", "date_only", "pivot"})
    declared = args.get("formats", ctx.settings.date_formats)
    if isinstance(declared, str):
        declared = [declared]
    if not isinstance(declared, list | tuple) or not declared:
        raise TransformError("date formats must be a non-empty list")
    try:
        formats = tuple(compile_format(str(f)) for f in declared)
    except ValueError as exc:
        raise TransformError(str(exc)) from None
    pairs = ambiguous_pairs(formats)
    if pairs:
        a, b = pairs[0]
        raise TransformError(f"date formats {a!r} and {b!r} are ambiguous: declare only one")
    pivot = args.get("pivot", ctx.settings.two_digit_year_pivot)
    if pivot is not None and (isinstance(pivot, bool) or not isinstance(pivot, int) or not 0 <= pivot <= 99):
        raise TransformError("pivot must be a whole number from 0 to 99")
    if any(f.two_digit_year for f in formats) and pivot is None:
        raise TransformError("a two-digit year format needs a pivot (settings.two_digit_year_pivot)")
    date_only = bool(args.get("date_only", False))
    parser = DateParser(formats, pivot, ZoneInfo(ctx.settings.timezone))
    past = bool(args.get("past", False))
    max_age = args.get("max_age_years")
    if max_age is not None and (not isinstance(max_age, int) or max_age <= 0):
        raise TransformError("max_age_years must be a positive whole number")
    today = ctx.today
    oldest = today - timedelta(days=365.25 * max_age) if max_age else None

    def parse(value: str) -> date | datetime:
        try:
            found = parser.parse(value)
        except ValueError as exc:
            raise ValueError(f"unparseable date (shape {text.shape(value)!r}): {exc}") from None
        day = found.date() if isinstance(found, datetime) else found
        if date_only:
            found = day
        if past and day > today:
            raise ValueError("date is in the future")
        if oldest is not None and day < oldest:
            raise Noted(found, f"date is more than {max_age} years ago")
        return found

    gives = "datetime" if any(f.has_time for f in formats) and not date_only else "date"
    return Built(parse, TEXT, gives)


def _code_map(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("code_map", args, {"map"})
    name = str(args.get("map", ""))
    table = ctx.code_maps.get(name)
    if table is None:
        raise TransformError(
            f"code map {name!r} is not declared under code_maps"
            f" (declared: {', '.join(sorted(ctx.code_maps)) or 'none'})"
        )
    policy = table.unmapped
    local_system = table.source_system or f"urn:joinedup:{ctx.organisation}:{name}"

    def lookup(value: str) -> Coding | None:
        found = table.lookup(value)
        if found is not None:
            return found
        if policy is Unmapped.PASS_THROUGH:
            return Coding(local_system, value)
        message = f"code {value!r} is not in code map {name!r}"
        if policy is Unmapped.WARN:
            raise Noted(None, message + "; field left out")
        raise ValueError(message)

    return Built(lookup, TEXT, "coding")


_TRUE = frozenset({"Y", "YES", "TRUE", "T", "1"})
_FALSE = frozenset({"N", "NO", "FALSE", "F", "0"})


def _boolean(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("boolean", args, {"true", "false"})
    truthy = frozenset(str(v).upper() for v in args.get("true", _TRUE))
    falsy = frozenset(str(v).upper() for v in args.get("false", _FALSE))
    if truthy & falsy:
        raise TransformError("boolean true and false values overlap")

    def read(value: str) -> bool:
        key = value.upper()
        if key in truthy:
            return True
        if key in falsy:
            return False
        raise ValueError(f"not a yes/no value (expected one of {', '.join(sorted(truthy | falsy))})")

    return Built(read, TEXT, "bool")


def _number(args: Mapping[str, Any], ctx: Context) -> Built:
    _no_args("number", args)

    def read(value: str) -> int | float:
        try:
            return int(value)
        except ValueError:
            pass
        try:
            return float(value)
        except ValueError:
            raise ValueError(f"not a number (shape {text.shape(value)!r})") from None

    return Built(read, TEXT, "number")


def _reference(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("reference", args, {"kind", "feed"})
    kind = str(args.get("kind", ""))
    if not kind[:1].isupper():
        raise TransformError("reference needs kind: the referenced resource type (Patient)")
    namespace = str(args.get("feed", ctx.feed))
    org = ctx.organisation
    return Built(
        lambda v: Ref(f"{kind}/{stable_id(org, namespace, kind, v)}"), TEXT, "reference"
    )


def _prefix(args: Mapping[str, Any], ctx: Context) -> Built:
    _known_args("prefix", args, {"text"})
    before = str(args.get("text", ""))
    return Built(lambda v: before + v, TEXT, "text")


def _split_words(args: Mapping[str, Any], ctx: Context) -> Built:
    _no_args("split_words", args)
    return Built(lambda v: tuple(v.split()) or None, TEXT, "words")


_FACTORIES: dict[str, Callable[[Mapping[str, Any], Context], Built]] = {
    "split_words": _split_words,
    "trim": _text_fn("trim", str.strip),
    "collapse_spaces": _text_fn("collapse_spaces", text.collapse_spaces),
    "upper": _text_fn("upper", str.upper),
    "lower": _text_fn("lower", str.lower),
    "title": _text_fn("title", text.title_case),
    "postcode": _postcode,
    "nhs_number": _nhs,
    "split_name": _split_name,
    "date": _date,
    "code_map": _code_map,
    "boolean": _boolean,
    "number": _number,
    "reference": _reference,
    "prefix": _prefix,
}
