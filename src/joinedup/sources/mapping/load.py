"""Read a feed spec (YAML) into a checked value, reporting every problem with its line.

One function per section keeps the checks readable; each appends problems
and carries on, so a user sees the whole list in one go (``resources[1]
.fields[3].target (line 41): Patient has no element 'postcode'``). The
semantic checks reuse the compiler's own preparation of targets and
transforms, so a spec that loads is a spec that compiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import date
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from joinedup.errors import InvalidInput, Problem
from joinedup.labels import DataCategory, Sensitivity
from joinedup.orgs.vocab import ODS_CODE
from joinedup.sources.mapping.compile import RuleError, missing_required, prepare_field
from joinedup.sources.mapping.dates import ambiguous_pairs, compile_format
from joinedup.sources.mapping.fhirschema import is_resource_type
from joinedup.sources.mapping.spec import (
    CodeMap,
    Coding,
    CsvMapping,
    CsvSettings,
    Encoding,
    ExtraColumns,
    FeedFormat,
    FeedSpec,
    FhirFeedConfig,
    FieldRule,
    Hl7v2FeedConfig,
    Label,
    LabelRule,
    OnInvalid,
    ResourceRule,
    Transform,
    Unmapped,
    When,
)
from joinedup.sources.mapping.transforms import Context
from joinedup.sources.mapping.yamlsrc import Locator, parse_yaml
from joinedup.sources.mapping.yamlsrc import Path as YPath

FEED_CODE = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")
"""The feeds registry's feed id: 3-64 lower-case letters, digits or '-' (``wccasc-persons``)."""
_MAIN_ARG = {"code_map": "map", "date": "formats", "split_name": "style", "prefix": "text"}
E = TypeVar("E", bound=StrEnum)


class InvalidMapping(InvalidInput):
    slug = "invalid-mapping"
    title = "Invalid feed mapping"


def load_mapping(path: str | Path) -> FeedSpec:
    """Read and check a feed spec file; InvalidMapping lists every problem found."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidMapping(f"cannot read mapping {file}", [Problem(str(exc), str(file))]) from None

    def read_include(name: str) -> str:
        return (file.parent / name).read_text(encoding="utf-8")

    return parse_mapping(text, origin=str(file), read_include=read_include)


def parse_mapping(
    text: str, *, origin: str = "<mapping>", read_include: Callable[[str], str] | None = None
) -> FeedSpec:
    """Check a feed spec given as YAML text. Pure apart from ``read_include`` (for code maps)."""
    data, locator, problems = parse_yaml(text, origin)
    spec: FeedSpec | None = None
    if not problems:
        reader = _Reader(locator, problems, read_include)
        spec = reader.feed(data, origin)
    if problems or spec is None:
        raise InvalidMapping(f"{origin}: {len(problems)} problem(s) in the feed spec", problems)
    return spec


class _Reader:
    def __init__(
        self, locator: Locator, problems: list[Problem], read_include: Callable[[str], str] | None
    ) -> None:
        self.loc = locator
        self.problems = problems
        self.read_include = read_include

    # -- small checked readers -------------------------------------------------

    def fail(self, path: YPath, message: str) -> None:
        self.problems.append(self.loc.problem(path, message))

    def obj(self, value: Any, path: YPath, allowed: set[str], required: set[str] = frozenset()) -> dict[str, Any]:  # type: ignore[assignment]
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping of keys to values")
            return {}
        for key in value:
            if key not in allowed:
                self.fail((*path, str(key)), f"unknown key {key!r} (allowed: {', '.join(sorted(allowed))})")
        for key in sorted(required - set(value)):
            self.fail(path, f"{key!r} is required")
        return value

    def text(self, d: dict[str, Any], key: str, path: YPath, default: str = "") -> str:
        value = d.get(key, default)
        if value is None or not isinstance(value, str):
            self.fail((*path, key), "must be text (quote it if it looks like a number or yes/no)")
            return default
        return value

    def enum(self, d: dict[str, Any], key: str, path: YPath, kind: type[E], default: E) -> E:
        value = d.get(key, default.value)
        try:
            return kind(value)
        except ValueError:
            self.fail((*path, key), f"must be one of {', '.join(m.value for m in kind)}, not {value!r}")
            return default

    def texts(self, value: Any, path: YPath) -> list[str]:
        if isinstance(value, str):
            return [value]
        if not isinstance(value, list):
            self.fail(path, "must be a list of text")
            return []
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(item)
            else:
                self.fail((*path, i), "must be text (quote it if it looks like a number or yes/no)")
        return out

    def label(self, d: dict[str, Any], path: YPath) -> Label:
        category = self.enum(d, "category", path, DataCategory, DataCategory.DEMOGRAPHICS)
        sensitivity = self.enum(d, "sensitivity", path, Sensitivity, Sensitivity.NORMAL)
        return Label(category, sensitivity)

    # -- the document ---------------------------------------------------------------

    def feed(self, data: Any, origin: str) -> FeedSpec | None:
        if not isinstance(data, dict):
            self.fail((), "the feed spec must be a YAML mapping")
            return None
        fmt = self.enum(data, "format", (), FeedFormat, FeedFormat.CSV)
        if "format" not in data:
            self.fail((), "'format' is required (csv, fhir or hl7v2)")
        org = self.text(data, "organisation", ())
        if org and not ODS_CODE.match(org):
            self.fail(("organisation",), "must be an ODS-style code (upper-case letters and digits)")
        feed = self.text(data, "feed", ())
        if feed and not FEED_CODE.match(feed):
            self.fail(("feed",), "must be lower-case letters, digits and hyphens")
        if fmt is FeedFormat.CSV:
            return self.csv(data, org, feed, origin)
        if fmt is FeedFormat.FHIR:
            return self.fhir(data, org, feed, origin)
        return self.hl7(data, org, feed, origin)

    def fhir(self, data: dict[str, Any], org: str, feed: str, origin: str) -> FhirFeedConfig:
        self.obj(data, (), {"format", "organisation", "feed", "description", "identifier_systems", "labels",
                            "invalid_nhs_number", "id_namespace"},
                 {"organisation", "feed", "labels"})
        systems = self.string_map(data.get("identifier_systems", {}), ("identifier_systems",))
        rules = []
        raw = data.get("labels", [])
        if not isinstance(raw, list) or not raw:
            self.fail(("labels",), "must be a non-empty list of label rules")
            raw = []
        for i, item in enumerate(raw):
            path = ("labels", i)
            d = self.obj(item, path, {"resource", "systems", "codes", "category", "sensitivity"},
                         {"resource", "category"})
            resource = self.text(d, "resource", path)
            if resource and not is_resource_type(resource):
                self.fail((*path, "resource"), f"{resource!r} is not a FHIR R4 resource type")
            rules.append(
                LabelRule(
                    resource,
                    self.label(d, path),
                    frozenset(self.texts(d.get("systems", []), (*path, "systems"))),
                    frozenset(self.texts(d.get("codes", []), (*path, "codes"))),
                )
            )
        return FhirFeedConfig(
            org, feed, tuple(rules), MappingProxyType(systems),
            self.enum(data, "invalid_nhs_number", (), OnInvalid, OnInvalid.REJECT),
            self.namespace(data), str(data.get("description", "")), origin,
        )

    def namespace(self, data: dict[str, Any]) -> str:
        value = self.text(data, "id_namespace", (), "")
        if value and not FEED_CODE.match(value):
            self.fail(("id_namespace",), "must be lower-case letters, digits and hyphens")
        return value

    def hl7(self, data: dict[str, Any], org: str, feed: str, origin: str) -> Hl7v2FeedConfig:
        allowed = {"format", "organisation", "feed", "description", "patient_authority", "authorities",
                   "labels", "encoding", "timezone", "invalid_nhs_number", "location_system",
                   "visit_system", "practitioner_system", "id_namespace"}
        self.obj(data, (), allowed, {"organisation", "feed", "patient_authority", "authorities"})
        authorities = self.string_map(data.get("authorities", {}), ("authorities",))
        patient_authority = self.text(data, "patient_authority", ())
        if patient_authority and patient_authority not in authorities:
            self.fail(("patient_authority",), "must be one of the authorities listed")
        labels = self.obj(data.get("labels", {}), ("labels",), {"patient", "encounter"})
        patient = Label(DataCategory.DEMOGRAPHICS)
        encounter = Label(DataCategory.ENCOUNTERS)
        if "patient" in labels:
            patient = self.label(self.obj(labels["patient"], ("labels", "patient"), {"category", "sensitivity"}), ("labels", "patient"))
        if "encounter" in labels:
            encounter = self.label(self.obj(labels["encounter"], ("labels", "encounter"), {"category", "sensitivity"}), ("labels", "encounter"))
        encoding = self.text(data, "encoding", (), "utf-8")
        try:
            "".encode(encoding)
        except LookupError:
            self.fail(("encoding",), f"unknown encoding {encoding!r}")
        timezone = self.timezone(data, ())
        return Hl7v2FeedConfig(
            org, feed, patient_authority, MappingProxyType(authorities), patient, encounter,
            encoding, timezone,
            self.enum(data, "invalid_nhs_number", (), OnInvalid, OnInvalid.REJECT),
            self.text(data, "location_system", (), ""),
            self.text(data, "visit_system", (), ""),
            self.text(data, "practitioner_system", (), ""),
            self.namespace(data),
            str(data.get("description", "")), origin,
        )

    def timezone(self, d: dict[str, Any], path: YPath) -> str:
        zone = self.text(d, "timezone", path, "Europe/London")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            self.fail((*path, "timezone"), f"unknown time zone {zone!r}")
            return "Europe/London"
        return zone

    def string_map(self, value: Any, path: YPath) -> dict[str, str]:
        if not isinstance(value, dict):
            self.fail(path, "must be a mapping of names to text")
            return {}
        out = {}
        for key, item in value.items():
            if not isinstance(key, str) or not isinstance(item, str):
                self.fail((*path, str(key)), "names and values must be text")
            else:
                out[key] = item
        return out

    # -- CSV mappings ---------------------------------------------------------------

    def csv(self, data: dict[str, Any], org: str, feed: str, origin: str) -> CsvMapping | None:
        allowed = {"format", "organisation", "feed", "description", "source_id", "columns", "settings",
                   "identifier_systems", "extensions", "code_maps", "resources"}
        self.obj(data, (), allowed, {"organisation", "feed", "source_id", "columns", "resources"})
        settings = self.settings(data.get("settings", {}))
        columns = self.columns(data.get("columns", {}))
        source_id = self.text(data, "source_id", ())
        if source_id and columns and source_id not in columns:
            self.fail(("source_id",), f"column {source_id!r} is not declared under columns")
        identifier_systems = self.string_map(data.get("identifier_systems", {}), ("identifier_systems",))
        extensions = self.string_map(data.get("extensions", {}), ("extensions",))
        code_maps = self.code_maps(data.get("code_maps", {}))
        resources = self.resources(data.get("resources", []), columns)
        mapping = CsvMapping(
            organisation=org,
            feed=feed,
            source_id_column=source_id,
            columns=MappingProxyType(columns),
            resources=tuple(r for r, _ in resources),
            settings=settings,
            code_maps=MappingProxyType(code_maps),
            identifier_systems=MappingProxyType(identifier_systems),
            extensions=MappingProxyType(extensions),
            description=str(data.get("description", "")),
            origin=origin,
        )
        if not self.problems:
            self.check_rules(mapping, [p for _, p in resources])
        return mapping

    def settings(self, value: Any) -> CsvSettings:
        path: YPath = ("settings",)
        allowed = {"encoding", "delimiter", "quotechar", "date_formats", "two_digit_year_pivot",
                   "timezone", "null_values", "extra_columns", "trim"}
        d = self.obj(value, path, allowed)
        delimiter = self.text(d, "delimiter", path, ",")
        quotechar = self.text(d, "quotechar", path, '"')
        for key, char in (("delimiter", delimiter), ("quotechar", quotechar)):
            if len(char) != 1:
                self.fail((*path, key), "must be exactly one character")
        formats = self.texts(d.get("date_formats", ["iso"]), (*path, "date_formats"))
        compiled = []
        for i, fmt in enumerate(formats):
            try:
                compiled.append(compile_format(fmt))
            except ValueError as exc:
                self.fail((*path, "date_formats", i), str(exc))
        for a, b in ambiguous_pairs(tuple(compiled)):
            self.fail((*path, "date_formats"), f"{a!r} and {b!r} read the same text as different dates: declare only the one this feed uses")
        pivot = d.get("two_digit_year_pivot")
        if pivot is not None and (not isinstance(pivot, int) or isinstance(pivot, bool) or not 0 <= pivot <= 99):
            self.fail((*path, "two_digit_year_pivot"), "must be a whole number from 0 to 99")
            pivot = None
        if pivot is None and any(f.two_digit_year for f in compiled):
            self.fail((*path, "two_digit_year_pivot"), "a two-digit year format (yy) needs a pivot")
        trim = d.get("trim", True)
        if not isinstance(trim, bool):
            self.fail((*path, "trim"), "must be true or false")
            trim = True
        return CsvSettings(
            encoding=self.enum(d, "encoding", path, Encoding, Encoding.UTF8),
            delimiter=delimiter if len(delimiter) == 1 else ",",
            quotechar=quotechar if len(quotechar) == 1 else '"',
            date_formats=tuple(formats) or ("iso",),
            two_digit_year_pivot=pivot,
            timezone=self.timezone(d, path),
            null_values=frozenset(self.texts(d.get("null_values", [""]), (*path, "null_values"))) | {""},
            extra_columns=self.enum(d, "extra_columns", path, ExtraColumns, ExtraColumns.WARN),
            trim=trim,
        )

    def columns(self, value: Any) -> dict[str, bool]:
        path: YPath = ("columns",)
        if not isinstance(value, dict) or not value:
            self.fail(path, "must map each column name to required or optional")
            return {}
        out = {}
        for name, kind in value.items():
            if kind not in ("required", "optional"):
                self.fail((*path, str(name)), "must be required or optional")
            out[str(name)] = kind == "required"
        return out

    def code_maps(self, value: Any) -> dict[str, CodeMap]:
        if not isinstance(value, dict):
            self.fail(("code_maps",), "must map each code map's name to its table")
            return {}
        out = {}
        for name, body in value.items():
            path: YPath = ("code_maps", str(name))
            if isinstance(body, dict) and set(body) == {"include"}:
                body = self.include(body["include"], path)
                if body is None:
                    continue
            table = self.code_map(str(name), body, path)
            if table is not None:
                out[str(name)] = table
        return out

    def include(self, name: Any, path: YPath) -> Any:
        if not isinstance(name, str) or self.read_include is None:
            self.fail((*path, "include"), "include needs a file name, next to the mapping")
            return None
        try:
            text = self.read_include(name)
        except (OSError, UnicodeDecodeError) as exc:
            self.fail((*path, "include"), f"cannot read {name}: {exc}")
            return None
        data, locator, problems = parse_yaml(text, name)
        if problems:
            self.problems.extend(Problem(p.message, f"{name}: {p.location}") for p in problems)
            return None
        # Problems inside an included table are located in that file.
        inner = _Reader(locator, self.problems, None)
        table = inner.code_map(str(path[-1]), data, ())
        return table

    def code_map(self, name: str, body: Any, path: YPath) -> CodeMap | None:
        if isinstance(body, CodeMap):
            return body
        allowed = {"source_system", "target_system", "unmapped", "case_sensitive", "description", "map"}
        d = self.obj(body, path, allowed, {"target_system", "map"})
        target_system = self.text(d, "target_system", path)
        case_sensitive = bool(d.get("case_sensitive", False))
        entries: dict[str, Coding] = {}
        table = d.get("map", {})
        if not isinstance(table, dict) or not table:
            self.fail((*path, "map"), "must map each local code to a target code")
            table = {}
        for code, target in table.items():
            where = (*path, "map", str(code))
            if not isinstance(code, str):
                self.fail(where, "local codes must be quoted text (YAML reads 01 as 1 and yes as true)")
                continue
            if isinstance(target, str):
                coding = Coding(target_system, target)
            elif isinstance(target, dict):
                t = self.obj(target, where, {"code", "display", "system"}, {"code"})
                coding = Coding(self.text(t, "system", where, target_system), self.text(t, "code", where),
                                self.text(t, "display", where, ""))
            else:
                self.fail(where, "must be a target code, or code/display/system")
                continue
            key = code if case_sensitive else code.upper()
            if key in entries:
                self.fail(where, f"code {code!r} is mapped twice")
            entries[key] = coding
        return CodeMap(
            name, target_system, MappingProxyType(entries), self.text(d, "source_system", path, ""),
            self.enum(d, "unmapped", path, Unmapped, Unmapped.REJECT), case_sensitive,
            str(d.get("description", "")),
        )

    def resources(self, value: Any, columns: Mapping[str, bool]) -> list[tuple[ResourceRule, YPath]]:
        if not isinstance(value, list) or not value:
            self.fail(("resources",), "must list the resources each row produces")
            return []
        out = []
        seen: set[tuple[str, str]] = set()
        for i, item in enumerate(value):
            path: YPath = ("resources", i)
            d = self.obj(item, path, {"kind", "name", "category", "sensitivity", "when", "id_column",
                                      "id_feed", "fields"}, {"kind", "category", "fields"})
            kind = self.text(d, "kind", path)
            if kind and not is_resource_type(kind):
                self.fail((*path, "kind"), f"{kind!r} is not a FHIR R4 resource type")
            name = self.text(d, "name", path, "")
            if (kind, name) in seen:
                self.fail(path, f"two {kind} resources without different names")
            seen.add((kind, name))
            id_column = d.get("id_column")
            if id_column is not None and (not isinstance(id_column, str) or id_column not in columns):
                self.fail((*path, "id_column"), "must be a column declared under columns")
                id_column = None
            id_feed = d.get("id_feed")
            if id_feed is not None and (not isinstance(id_feed, str) or not FEED_CODE.match(id_feed)):
                self.fail((*path, "id_feed"), "must be a feed code")
                id_feed = None
            fields = self.fields(d.get("fields", []), (*path, "fields"), columns)
            out.append(
                (
                    ResourceRule(kind, self.label(d, path), fields, name,
                                 self.when(d.get("when"), (*path, "when"), columns), id_column, id_feed),
                    path,
                )
            )
        return out

    def when(self, value: Any, path: YPath, columns: Mapping[str, bool]) -> When | None:
        if value is None:
            return None
        if isinstance(value, str):
            value = {"column": value}
        d = self.obj(value, path, {"column", "in"}, {"column"})
        column = self.text(d, "column", path)
        if column and column not in columns:
            self.fail((*path, "column"), f"column {column!r} is not declared under columns")
        return When(column, frozenset(self.texts(d.get("in", []), (*path, "in"))))

    def fields(self, value: Any, path: YPath, columns: Mapping[str, bool]) -> tuple[FieldRule, ...]:
        if not isinstance(value, list) or not value:
            self.fail(path, "must list at least one field")
            return ()
        out = []
        for i, item in enumerate(value):
            where = (*path, i)
            d = self.obj(item, where, {"target", "column", "value", "transforms", "required", "on_invalid",
                                       "when", "unless"}, {"target"})
            conditions = {}
            for key in ("when", "unless"):
                cond = d.get(key)
                if cond is not None and (not isinstance(cond, str) or cond not in columns):
                    self.fail((*where, key), f"must name a column declared under columns, not {cond!r}")
                    cond = None
                conditions[key] = cond
            column = d.get("column")
            if ("column" in d) == ("value" in d):
                self.fail(where, "give either column or value (a constant), not both or neither")
            if column is not None and (not isinstance(column, str) or column not in columns):
                self.fail((*where, "column"), f"column {column!r} is not declared under columns")
            constant = d.get("value")
            if isinstance(constant, dict):
                c = self.obj(constant, (*where, "value"), {"system", "code", "display"}, {"system", "code"})
                constant = Coding(str(c.get("system", "")), str(c.get("code", "")), str(c.get("display", "")))
            elif isinstance(constant, date):
                constant = constant.isoformat()
            out.append(
                FieldRule(
                    target=self.text(d, "target", where),
                    column=column if isinstance(column, str) else None,
                    value=constant,
                    transforms=self.transforms(d.get("transforms", []), (*where, "transforms")),
                    required=bool(d.get("required", False)),
                    on_invalid=self.enum(d, "on_invalid", where, OnInvalid, OnInvalid.REJECT),
                    when=conditions["when"],
                    unless=conditions["unless"],
                    where=self.loc.where(where),
                )
            )
        return tuple(out)

    def transforms(self, value: Any, path: YPath) -> tuple[Transform, ...]:
        if not isinstance(value, list):
            value = [value]
        out = []
        for i, item in enumerate(value):
            if isinstance(item, str):
                out.append(Transform(item))
            elif isinstance(item, dict) and len(item) == 1:
                (name, args), = item.items()
                if not isinstance(args, dict):
                    main = _MAIN_ARG.get(str(name))
                    if main is None:
                        self.fail((*path, i), f"transform {name!r} takes no single value; give its arguments by name")
                        continue
                    args = {main: args}
                out.append(Transform(str(name), MappingProxyType(dict(args))))
            else:
                self.fail((*path, i), "a transform is a name, or one name with its arguments")
        return tuple(out)

    def check_rules(self, mapping: CsvMapping, paths: list[YPath]) -> None:
        ctx = Context(mapping.organisation, mapping.feed, mapping.settings, mapping.code_maps, date.today())
        has_patient = any(r.kind == "Patient" for r in mapping.resources)
        for rule, path in zip(mapping.resources, paths, strict=True):
            prepared = []
            for i, field in enumerate(rule.fields):
                try:
                    prepared.append(prepare_field(field, mapping, ctx, rule.kind))
                except RuleError as exc:
                    self.fail((*path, "fields", i), str(exc))
            if len(prepared) == len(rule.fields):
                missing = missing_required(rule, prepared, has_patient)
                if missing:
                    self.fail(path, f"a {rule.kind} needs {', '.join(missing)}: map a column or give a constant value")
