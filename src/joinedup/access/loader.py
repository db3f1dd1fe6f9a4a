"""Load agreements from YAML, reporting every problem at once with its place.

The YAML is composed into nodes first so each problem can name its path
(``shares.RWX.categories[1]``) and line. Parsing never stops at the first
problem: bad values are skipped, the rest is still checked, and the whole list
is raised as one ``AgreementError``. Checks that need the outside world (known
organisations, today's date, the other versions of an agreement) are here;
checks an agreement can make on its own are in ``agreements``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from pathlib import Path
from typing import Any, TypeVar

import yaml

from joinedup.access.agreements import (
    Agreement,
    AgreementError,
    Article6Basis,
    Article9Condition,
    BreakGlass,
    CategoryShare,
    CommonLawBasis,
    Conditions,
    LawfulBasis,
    Share,
    Status,
    intrinsic_problems,
)
from joinedup.access.purposes import Purpose
from joinedup.errors import Problem
from joinedup.labels import DataCategory, Sensitivity
from joinedup.orgs.vocab import ODS_CODE, ProfessionalRole

E = TypeVar("E", bound=StrEnum)

_TOP = frozenset(
    {"id", "version", "title", "status", "parties", "purposes", "lawful_basis", "roles",
     "shares", "conditions", "start", "end", "review", "dpia", "ig_contact"}
)
_BASIS = frozenset({"article_6", "article_9", "schedule_1_condition", "common_law"})
_SHARE = frozenset({"categories", "roles", "max_sensitivity"})
_ITEM = frozenset({"category", "roles", "withhold_fields"})
_CONDITIONS = frozenset(
    {"relationship_required", "self_declared_relationship_allowed",
     "explicit_consent_required", "break_glass"}
)
_GLASS = frozenset({"roles", "sealed_categories"})


@dataclass
class _Context:
    """Problems found so far, and where each YAML path starts."""

    source: str | None
    lines: dict[str, int] = field(default_factory=dict)
    problems: list[tuple[str, str]] = field(default_factory=list)
    remap: dict[str, str] = field(default_factory=dict)
    """Value path -> YAML path, where skipping a bad list item shifted the indexes."""

    def add(self, path: str, message: str) -> None:
        self.problems.append((path, message))

    def locate(self, path: str) -> str:
        return _location(self.source, path, self.line_of(path))

    def line_of(self, path: str) -> int | None:
        while path:
            if path in self.lines:
                return self.lines[path]
            cut = max(path.rfind("."), path.rfind("["))
            path = path[:cut] if cut > 0 else ""
        return self.lines.get("")


def _location(source: str | None, path: str, line: int | None) -> str:
    if source and line:
        return f"{source}:{line}: {path}" if path else f"{source}:{line}"
    if source:
        return f"{source}: {path}" if path else source
    return f"{path} (line {line})" if line else path


def _join(parent: str, key: str) -> str:
    return f"{parent}.{key}" if parent else key


def _map_lines(node: yaml.Node, path: str, ctx: _Context) -> None:
    """Record the line of every path, and complain about duplicate keys (PyYAML
    silently keeps the last one, which would hide a mistake in an agreement)."""
    ctx.lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = str(key_node.value)
            child = _join(path, key)
            if key in seen:
                ctx.add(child, "is given more than once")
            seen.add(key)
            _map_lines(value_node, child, ctx)
            ctx.lines[child] = key_node.start_mark.line + 1  # the key's line reads best
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            _map_lines(item, f"{path}[{i}]", ctx)


def load_agreement(
    text: str,
    *,
    source: str | None = None,
    known_orgs: Collection[str] | None = None,
    today: date | None = None,
) -> Agreement:
    """Parse and check one agreement; raise ``AgreementError`` listing every problem.

    ``known_orgs``: the registry's organisation codes (``None`` skips that check).
    ``today``: reject an agreement that has already ended (``None`` skips it,
    as when diffing historical versions).
    """
    agreement, problems = _load(text, source, known_orgs, today)
    if problems or agreement is None:
        raise AgreementError(f"{source or 'agreement'} is invalid", problems)
    return agreement


def load_agreement_file(
    path: Path, *, known_orgs: Collection[str] | None = None, today: date | None = None
) -> Agreement:
    return load_agreement(
        path.read_text(encoding="utf-8"), source=path.name, known_orgs=known_orgs, today=today
    )


def load_agreements(
    documents: Iterable[tuple[str, str]],
    *,
    known_orgs: Collection[str] | None = None,
    today: date | None = None,
) -> tuple[Agreement, ...]:
    """Load a set of ``(source, yaml text)`` documents and check them together
    (duplicate and overlapping versions); raise one error listing everything."""
    loaded: list[tuple[str, Agreement]] = []
    problems: list[Problem] = []
    for source, text in documents:
        agreement, found = _load(text, source, known_orgs, today)
        problems.extend(found)
        if agreement is not None and not found:
            loaded.append((source, agreement))
    problems.extend(set_problems(loaded))
    if problems:
        raise AgreementError("the agreements are invalid", problems)
    return tuple(agreement for _, agreement in loaded)


def load_agreement_files(
    paths: Iterable[Path],
    *,
    known_orgs: Collection[str] | None = None,
    today: date | None = None,
) -> tuple[Agreement, ...]:
    return load_agreements(
        ((p.name, p.read_text(encoding="utf-8")) for p in paths),
        known_orgs=known_orgs, today=today,
    )


def set_problems(agreements: Iterable[tuple[str, Agreement]]) -> list[Problem]:
    """Problems only visible across a set: the same version twice, or two active
    versions of one agreement whose dates overlap (which would be in force?)."""
    problems: list[Problem] = []
    by_key: dict[tuple[str, int], str] = {}
    by_id: dict[str, list[tuple[str, Agreement]]] = {}
    for source, a in agreements:
        if a.key in by_key:
            problems.append(Problem(
                f"{a.id} version {a.version} is also defined in {by_key[a.key]}",
                _location(source, "version", None),
            ))
            continue
        by_key[a.key] = source
        by_id.setdefault(a.id, []).append((source, a))
    for versions in by_id.values():
        active = sorted(
            ((s, a) for s, a in versions if a.status is Status.ACTIVE),
            key=lambda sa: sa[1].version,
        )
        for i, (_, earlier) in enumerate(active):
            for source, later in active[i + 1:]:
                if _overlap(earlier, later):
                    problems.append(Problem(
                        f"version {later.version} of {later.id} overlaps version "
                        f"{earlier.version} ({_span(earlier)} and {_span(later)}): end the "
                        "earlier one first, or suspend it",
                        _location(source, "start", None),
                    ))
    return problems


def _overlap(a: Agreement, b: Agreement) -> bool:
    a_end = a.end or date.max
    b_end = b.end or date.max
    return a.start <= b_end and b.start <= a_end


def _span(a: Agreement) -> str:
    return f"{a.start} to {a.end or 'open-ended'}"


def _load(
    text: str, source: str | None, known_orgs: Collection[str] | None, today: date | None
) -> tuple[Agreement | None, list[Problem]]:
    ctx = _Context(source)
    try:
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else None
        detail = getattr(exc, "problem", None) or str(exc)
        return None, [Problem(f"not valid YAML: {detail}", _location(source, "", line))]
    if node is None or not isinstance(data, dict):
        return None, [Problem("must be a YAML mapping (id:, version:, parties: ...)",
                              _location(source, "", None))]
    _map_lines(node, "", ctx)
    fields = _parse(data, ctx)
    draft = Agreement.unchecked(**fields)
    parse_paths = [path for path, _ in ctx.problems]
    for problem in intrinsic_problems(draft):
        path = _translate(problem.location, ctx.remap)
        if not any(_related(path, p) for p in parse_paths):
            ctx.add(path, problem.message)
    _world_checks(draft, ctx, known_orgs, today)
    by_line = sorted(ctx.problems, key=lambda pm: ctx.line_of(pm[0]) or 0)
    problems = [Problem(msg, ctx.locate(path)) for path, msg in by_line]
    return (None if problems else Agreement(**fields)), problems  # type: ignore[arg-type]


def _translate(path: str, remap: Mapping[str, str]) -> str:
    for value_path, yaml_path in remap.items():
        if path == value_path or path.startswith((value_path + ".", value_path + "[")):
            return yaml_path + path[len(value_path):]
    return path


def _related(a: str, b: str) -> bool:
    """One path is the other, or inside it: a problem there was already reported."""
    def inside(x: str, y: str) -> bool:
        return x == y or x.startswith((y + ".", y + "["))
    return inside(a, b) or inside(b, a)


def _world_checks(
    a: Agreement, ctx: _Context, known_orgs: Collection[str] | None, today: date | None
) -> None:
    if known_orgs is not None:
        for i, party in enumerate(a.parties or ()):
            if party not in known_orgs and ODS_CODE.match(party):
                ctx.add(_translate(f"parties[{i}]", ctx.remap), f"unknown organisation {party}")
    if today is not None and a.end is not None and a.end < today:
        ctx.add("end", f"the agreement ended on {a.end}; it has expired")


# -- parsing one document ------------------------------------------------------

_PLACEHOLDER_DATE_START = date.min
_PLACEHOLDER_DATE_REVIEW = date.max


def _parse(data: dict[Any, Any], ctx: _Context) -> dict[str, object]:
    for key in data:
        if str(key) not in _TOP:
            ctx.add(str(key), f"unknown field {key!r}")
    default_roles = _roles(data.get("roles"), "roles", ctx) if "roles" in data else None
    conditions = _conditions(data.get("conditions"), ctx)
    fields: dict[str, object] = {
        "id": _text(data, "id", "", ctx) or "",
        "version": _version(data, ctx),
        "title": _text(data, "title", "", ctx) or "",
        "status": _enum_field(data, "status", "", Status, ctx) or Status.ACTIVE,
        "parties": _parties(data.get("parties"), ctx),
        "purposes": _purposes(data.get("purposes"), ctx),
        "lawful_basis": _lawful_basis(data.get("lawful_basis"), ctx),
        "shares": _shares(data.get("shares"), default_roles, ctx),
        "conditions": conditions,
        "start": _date(data, "start", ctx, required=True) or _PLACEHOLDER_DATE_START,
        "end": _date(data, "end", ctx, required=False),
        "review": _date(data, "review", ctx, required=True) or _PLACEHOLDER_DATE_REVIEW,
        "dpia": _text(data, "dpia", "", ctx) or "",
        "ig_contact": _text(data, "ig_contact", "", ctx) or "",
    }
    return fields


def _unknown_keys(data: Mapping[Any, Any], allowed: frozenset[str], path: str,
                  ctx: _Context) -> None:
    for key in data:
        if str(key) not in allowed:
            ctx.add(_join(path, str(key)), f"unknown field {key!r}")


def _text(data: Mapping[Any, Any], key: str, parent: str, ctx: _Context,
          required: bool = True) -> str | None:
    path = _join(parent, key)
    value = data.get(key)
    if value is None:
        if required:
            ctx.add(path, "is required")
        return None
    if not isinstance(value, str):
        ctx.add(path, "must be text")
        return None
    return value


def _version(data: Mapping[Any, Any], ctx: _Context) -> int:
    value = data.get("version")
    if value is None:
        ctx.add("version", "is required")
    elif isinstance(value, bool) or not isinstance(value, int):
        ctx.add("version", "must be a whole number")
    else:
        return value
    return 1


def _enum(value: object, kind: type[E], path: str, ctx: _Context, what: str) -> E | None:
    try:
        return kind(str(value))
    except ValueError:
        choices = ", ".join(m.value for m in kind)
        ctx.add(path, f"unknown {what} {value!r} (one of: {choices})")
        return None


def _enum_field(data: Mapping[Any, Any], key: str, parent: str, kind: type[E],
                ctx: _Context) -> E | None:
    if data.get(key) is None:
        return None
    return _enum(data[key], kind, _join(parent, key), ctx, key.replace("_", " "))


def _date(data: Mapping[Any, Any], key: str, ctx: _Context, *, required: bool) -> date | None:
    value = data.get(key)
    if value is None:
        if required:
            ctx.add(key, "is required")
        return None
    if isinstance(value, date):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    ctx.add(key, "must be a date like 2025-04-01")
    return None


def _list(value: object, path: str, ctx: _Context) -> list[Any]:
    if value is None:
        ctx.add(path, "is required")
        return []
    if not isinstance(value, list):
        ctx.add(path, "must be a list")
        return []
    return value


def _parties(value: object, ctx: _Context) -> tuple[str, ...]:
    parties: list[str] = []
    for i, item in enumerate(_list(value, "parties", ctx)):
        if isinstance(item, str | int) and not isinstance(item, bool):
            if len(parties) != i:
                ctx.remap[f"parties[{len(parties)}]"] = f"parties[{i}]"
            parties.append(str(item))
        else:
            ctx.add(f"parties[{i}]", "must be an organisation code")
    return tuple(parties)


def _purposes(value: object, ctx: _Context) -> frozenset[Purpose]:
    purposes = set()
    for i, item in enumerate(_list(value, "purposes", ctx)):
        purpose = _enum(item, Purpose, f"purposes[{i}]", ctx, "purpose")
        if purpose is not None:
            if purpose in purposes:
                ctx.add(f"purposes[{i}]", f"{purpose} is listed more than once")
            purposes.add(purpose)
    return frozenset(purposes)


def _roles(value: object, path: str, ctx: _Context) -> frozenset[ProfessionalRole]:
    roles = set()
    for i, item in enumerate(_list(value, path, ctx)):
        role = _enum(item, ProfessionalRole, f"{path}[{i}]", ctx, "role")
        if role is not None:
            roles.add(role)
    return frozenset(roles)


def _mapping(value: object, path: str, ctx: _Context, *, required: bool) -> dict[Any, Any]:
    if value is None:
        if required:
            ctx.add(path, "is required")
        return {}
    if not isinstance(value, dict):
        ctx.add(path, "must be a mapping")
        return {}
    return value


def _lawful_basis(value: object, ctx: _Context) -> LawfulBasis:
    data = _mapping(value, "lawful_basis", ctx, required=True)
    _unknown_keys(data, _BASIS, "lawful_basis", ctx)
    parent = "lawful_basis"
    if value is not None and data.get("article_6") is None:
        ctx.add("lawful_basis.article_6", "is required")
    if value is not None and data.get("common_law") is None:
        ctx.add("lawful_basis.common_law", "is required")
    return LawfulBasis(
        article_6=_enum_field(data, "article_6", parent, Article6Basis, ctx)
        or Article6Basis.PUBLIC_TASK,
        common_law=_enum_field(data, "common_law", parent, CommonLawBasis, ctx)
        or CommonLawBasis.IMPLIED_CONSENT,
        article_9=_enum_field(data, "article_9", parent, Article9Condition, ctx),
        schedule_1_condition=_text(data, "schedule_1_condition", parent, ctx, required=False),
    )


def _shares(value: object, default_roles: frozenset[ProfessionalRole] | None,
            ctx: _Context) -> tuple[Share, ...]:
    shares = []
    for key, body in _mapping(value, "shares", ctx, required=True).items():
        provider = str(key)
        path = f"shares.{provider}"
        data = _mapping(body, path, ctx, required=True)
        _unknown_keys(data, _SHARE, path, ctx)
        roles = _roles(data["roles"], f"{path}.roles", ctx) if "roles" in data else default_roles
        ceiling = _enum_field(data, "max_sensitivity", path, Sensitivity, ctx)
        items: list[CategoryShare] = []
        for j, item in enumerate(_list(data.get("categories"), f"{path}.categories", ctx)):
            parsed = _category_item(item, f"{path}.categories[{j}]", roles, ctx)
            if parsed is not None:
                if len(items) != j:
                    ctx.remap[f"{path}.categories[{len(items)}]"] = f"{path}.categories[{j}]"
                items.append(parsed)
        shares.append(Share(provider, tuple(items), ceiling or Sensitivity.RESTRICTED))
    return tuple(shares)


def _category_item(item: object, path: str, roles: frozenset[ProfessionalRole] | None,
                   ctx: _Context) -> CategoryShare | None:
    if isinstance(item, str):
        category = _enum(item, DataCategory, path, ctx, "data category")
        return None if category is None else CategoryShare(category, roles or frozenset())
    if not isinstance(item, dict):
        ctx.add(path, "must be a category, or a mapping with category: and roles:")
        return None
    _unknown_keys(item, _ITEM, path, ctx)
    if item.get("category") is None:
        ctx.add(f"{path}.category", "is required")
        return None
    category = _enum(item["category"], DataCategory, f"{path}.category", ctx, "data category")
    own_roles = _roles(item["roles"], f"{path}.roles", ctx) if "roles" in item else roles
    withhold: set[str] = set()
    if "withhold_fields" in item:
        for k, name in enumerate(_list(item["withhold_fields"], f"{path}.withhold_fields", ctx)):
            if isinstance(name, str):
                withhold.add(name)
            else:
                ctx.add(f"{path}.withhold_fields[{k}]", "must be a FHIR element name")
    if category is None:
        return None
    return CategoryShare(category, own_roles or frozenset(), frozenset(withhold))


def _flag(data: Mapping[Any, Any], key: str, parent: str, default: bool, ctx: _Context) -> bool:
    value = data.get(key)
    if value is None:
        return default
    if not isinstance(value, bool):
        ctx.add(_join(parent, key), "must be true or false")
        return default
    return value


def _conditions(value: object, ctx: _Context) -> Conditions:
    parent = "conditions"
    data = _mapping(value, parent, ctx, required=False)
    _unknown_keys(data, _CONDITIONS, parent, ctx)
    glass = None
    if data.get("break_glass") is not None:
        path = f"{parent}.break_glass"
        body = _mapping(data["break_glass"], path, ctx, required=True)
        _unknown_keys(body, _GLASS, path, ctx)
        glass = BreakGlass(
            roles=_roles(body.get("roles"), f"{path}.roles", ctx),
            sealed_categories=_flag(body, "sealed_categories", path, False, ctx),
        )
    return Conditions(
        relationship_required=_flag(data, "relationship_required", parent, True, ctx),
        self_declared_relationship_allowed=_flag(
            data, "self_declared_relationship_allowed", parent, False, ctx
        ),
        explicit_consent_required=_flag(data, "explicit_consent_required", parent, False, ctx),
        break_glass=glass,
    )
