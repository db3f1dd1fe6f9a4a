"""The feeds registry: which organisation sends what, in which format, under which policies.

A feed is registered from a small spec (YAML or JSON, validated on load with
every problem reported together):

    id: wccasc-clients
    org: WCCASC
    format: csv                       # csv | fhir | hl7v2
    categories: [demographics, social-care-assessments]
    mapping: mappings/wccasc-clients.yaml   # required for csv
    partial_policy: partial           # partial (default) | all-or-nothing
    refresh: full                     # incremental (default) | full
    missing_policy: mark-inactive     # keep (default) | mark-inactive; full refresh only

The categories are a ceiling: a resource labelled with a category the feed
does not declare is rejected, so a feed cannot quietly start sending, say,
safeguarding data the organisation never registered.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Protocol

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sqlalchemy import select
from sqlalchemy.orm import Session

from joinedup.errors import Conflict, InvalidInput, NotFound, Problem
from joinedup.labels import DataCategory
from joinedup.orgs.models import Organisation
from joinedup.orgs.vocab import ODS_CODE
from joinedup.sources.contract import Outcome
from joinedup.sources.tables import FeedRow
from joinedup.storage.base import utcnow
from joinedup.storage.engine import Database
from joinedup.validation import parse

FEED_ID = re.compile(r"^[a-z0-9][a-z0-9-]{1,62}[a-z0-9]$")


class FeedFormat(StrEnum):
    CSV = "csv"
    FHIR = "fhir"
    HL7V2 = "hl7v2"


class PartialPolicy(StrEnum):
    PARTIAL = "partial"
    """Good units are written; bad ones go to quarantine (the default)."""
    ALL_OR_NOTHING = "all-or-nothing"
    """Any rejected unit refuses the whole batch: nothing is written, rejections are kept."""


class RefreshMode(StrEnum):
    INCREMENTAL = "incremental"
    """Each file holds new and changed records only."""
    FULL = "full"
    """Each file holds every current record: one missing from it has gone at the source."""


class MissingPolicy(StrEnum):
    KEEP = "keep"
    MARK_INACTIVE = "mark-inactive"
    """A new version tagged withdrawn-by-source (and ``active: false`` where FHIR has it)."""


class FeedSpec(BaseModel):
    """A feed as an organisation registers it (pure value, validated on construction)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    org: str
    format: FeedFormat
    categories: Annotated[tuple[DataCategory, ...], Field(min_length=1)]
    mapping: str | None = None
    partial_policy: PartialPolicy = PartialPolicy.PARTIAL
    refresh: RefreshMode = RefreshMode.INCREMENTAL
    missing_policy: MissingPolicy = MissingPolicy.KEEP
    description: Annotated[str, Field(max_length=500)] = ""

    @field_validator("id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not FEED_ID.match(value):
            raise ValueError("must be 3-64 lower-case letters, digits or '-', e.g. wccasc-clients")
        return value

    @field_validator("org")
    @classmethod
    def _org(cls, value: str) -> str:
        if not ODS_CODE.match(value):
            raise ValueError("must be an organisation code such as RWX or WCCASC")
        return value

    @field_validator("categories")
    @classmethod
    def _unique(cls, value: tuple[DataCategory, ...]) -> tuple[DataCategory, ...]:
        if len(set(value)) != len(value):
            raise ValueError("lists a category twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> FeedSpec:
        problems = []
        if self.format is FeedFormat.CSV and not self.mapping:
            problems.append("mapping: a csv feed needs a mapping file")
        if (
            self.missing_policy is MissingPolicy.MARK_INACTIVE
            and self.refresh is not RefreshMode.FULL
        ):
            problems.append(
                "missing_policy: mark-inactive needs refresh: full "
                "(an incremental file says nothing about records it leaves out)"
            )
        if problems:
            raise ValueError("; ".join(problems))
        return self


@dataclass(frozen=True, slots=True)
class Feed:
    """A registered feed: what the loader and adapters run with."""

    id: str
    org: str
    format: FeedFormat
    categories: frozenset[DataCategory]
    mapping_path: Path | None
    mapping_sha256: str | None
    partial_policy: PartialPolicy
    refresh: RefreshMode
    missing_policy: MissingPolicy
    description: str
    revision: int
    active: bool

    @property
    def all_or_nothing(self) -> bool:
        return self.partial_policy is PartialPolicy.ALL_OR_NOTHING

    @property
    def withdraws_missing(self) -> bool:
        return (
            self.refresh is RefreshMode.FULL and self.missing_policy is MissingPolicy.MARK_INACTIVE
        )

    def view(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "org": self.org,
            "format": self.format.value,
            "categories": sorted(c.value for c in self.categories),
            "mapping": str(self.mapping_path) if self.mapping_path else None,
            "mapping_sha256": self.mapping_sha256,
            "partial_policy": self.partial_policy.value,
            "refresh": self.refresh.value,
            "missing_policy": self.missing_policy.value,
            "description": self.description,
            "revision": self.revision,
            "active": self.active,
        }


def _feed(row: FeedRow) -> Feed:
    return Feed(
        id=row.id,
        org=row.org_code,
        format=FeedFormat(row.format),
        categories=frozenset(DataCategory(c) for c in row.categories),
        mapping_path=Path(row.mapping_path) if row.mapping_path else None,
        mapping_sha256=row.mapping_sha256,
        partial_policy=PartialPolicy(row.partial_policy),
        refresh=RefreshMode(row.refresh_mode),
        missing_policy=MissingPolicy(row.missing_policy),
        description=row.description,
        revision=row.revision,
        active=row.active,
    )


# -- mappings and adapters --------------------------------------------------------
MappingLoader = Callable[[Path, FeedSpec], list[Problem]]
"""Checks a feed's mapping file against its spec; returns every problem (empty: it fits)."""


class FeedAdapter(Protocol):
    """What the loader needs of an adapter (:mod:`joinedup.sources.adapters`)."""

    def read(self, source: Any) -> Iterator[Outcome]: ...

    def reprocess(self, raw: str, unit: int, extra: Mapping[str, Any]) -> Outcome: ...


AdapterFactory = Callable[["Feed"], FeedAdapter]


def _load_mapping(path: Path) -> Any:
    """The mapping language belongs to :mod:`joinedup.sources.mapping`; this is its only door."""
    from joinedup.sources.mapping import load_mapping as load

    return load(path)


def check_mapping(path: Path, spec: FeedSpec) -> list[Problem]:
    """Load the mapping (every problem in it) and check it fits the feed it is registered for."""
    try:
        mapping = _load_mapping(path)
    except InvalidInput as exc:
        return list(exc.problems) or [Problem(exc.detail, str(path))]
    problems = []
    if mapping.organisation != spec.org:
        problems.append(
            Problem(f"is for organisation {mapping.organisation}, not {spec.org}", "organisation")
        )
    if mapping.feed != spec.id:
        problems.append(Problem(f"is for feed {mapping.feed!r}, not {spec.id!r}", "feed"))
    if str(mapping.format) != spec.format.value:
        problems.append(
            Problem(f"is a {mapping.format} spec, the feed is {spec.format.value}", "format")
        )
    undeclared = sorted(str(c) for c in mapping.categories if c not in spec.categories)
    if undeclared:
        problems.append(
            Problem(
                f"labels resources {', '.join(undeclared)}, which the feed does not declare",
                "categories",
            )
        )
    return problems


def spec_from_mapping(path: Path, **policies: Any) -> FeedSpec:
    """A feed spec read off its mapping file: id, organisation, format and categories,
    with the given policies (``refresh``, ``missing_policy``, ``partial_policy``)."""
    mapping = _load_mapping(path)
    data = {
        "id": mapping.feed,
        "org": mapping.organisation,
        "format": str(mapping.format),
        "categories": sorted(str(c) for c in mapping.categories),
        "mapping": str(path.resolve()),
        "description": getattr(mapping, "description", "")[:500],
        **{k: v for k, v in policies.items() if v is not None},
    }
    return parse(FeedSpec, data, what="feed")


def adapter_for_feed(feed: Feed) -> FeedAdapter:
    """The adapter that reads this feed's files, built from its mapping."""
    from joinedup.sources.adapters import adapter_for

    if feed.mapping_path is None:
        raise InvalidInput(
            f"feed {feed.id!r} has no mapping file, so its files cannot be read; "
            "register it with one"
        )
    adapter: FeedAdapter = adapter_for(feed.format.value, _load_mapping(feed.mapping_path))
    return adapter


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def read_spec(path: Path) -> FeedSpec:
    """A feed spec from a YAML/JSON file; a relative mapping path is relative to the file."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InvalidInput(
            "cannot read the feed file", [Problem(str(exc.strerror), str(path))]
        ) from None
    except yaml.YAMLError as exc:
        raise InvalidInput(
            "the feed file is not valid YAML", [Problem(str(exc), str(path))]
        ) from None
    if not isinstance(data, dict):
        raise InvalidInput(
            "a feed file must be a YAML mapping", [Problem("not a mapping", str(path))]
        )
    mapping = data.get("mapping")
    if isinstance(mapping, str) and not Path(mapping).is_absolute():
        data = {**data, "mapping": str((path.parent / mapping).resolve())}
    return parse(FeedSpec, data, what="feed")


class FeedRegistry:
    """Register, change, list and look up feeds."""

    def __init__(self, db: Database, mapping_loader: MappingLoader = check_mapping) -> None:
        self._db = db
        self._check_mapping = mapping_loader

    def validate(self, spec: FeedSpec) -> list[Problem]:
        """Every problem with ``spec`` beyond its own shape: organisation, mapping file."""
        problems: list[Problem] = []
        with self._db.session() as s:
            if s.get(Organisation, spec.org) is None:
                problems.append(Problem(f"no organisation with code {spec.org!r}", "org"))
        if spec.mapping:
            problems += [
                Problem(p.message, f"mapping: {p.location}" if p.location else "mapping")
                for p in self._check_mapping(Path(spec.mapping), spec)
            ]
        return problems

    def register(self, spec: FeedSpec, *, replace: bool = False) -> Feed:
        """Add a feed (or, with ``replace``, change one: its revision goes up)."""
        problems = self.validate(spec)
        if problems:
            raise InvalidInput(f"feed {spec.id!r} cannot be registered", problems)
        digest = sha256_file(Path(spec.mapping)) if spec.mapping else None
        with self._db.session() as s:
            row = s.get(FeedRow, spec.id)
            if row is not None and not replace:
                raise Conflict(f"feed {spec.id!r} already exists (change it with replace)")
            if row is not None and row.org_code != spec.org:
                raise Conflict(f"feed {spec.id!r} belongs to {row.org_code}, not {spec.org}")
            now = utcnow()
            if row is None:
                row = FeedRow(id=spec.id, org_code=spec.org, revision=0, created_at=now)
                s.add(row)
            row.format = spec.format.value
            row.categories = sorted(c.value for c in spec.categories)
            row.mapping_path = spec.mapping
            row.mapping_sha256 = digest
            row.partial_policy = spec.partial_policy.value
            row.missing_policy = spec.missing_policy.value
            row.refresh_mode = spec.refresh.value
            row.description = spec.description
            row.active = True
            row.revision += 1
            row.updated_at = now
            s.flush()
            return _feed(row)

    def get(self, feed_id: str) -> Feed:
        with self._db.session() as s:
            return self.get_in(s, feed_id)

    def get_in(self, session: Session, feed_id: str, *, lock: bool = False) -> Feed:
        stmt = select(FeedRow).where(FeedRow.id == feed_id)
        if lock:
            stmt = stmt.with_for_update()
        row = session.scalars(stmt).one_or_none()
        if row is None:
            raise NotFound(f"no feed {feed_id!r}")
        return _feed(row)

    def list(self, org: str | None = None) -> list[Feed]:
        with self._db.session() as s:
            stmt = select(FeedRow).order_by(FeedRow.id)
            if org is not None:
                stmt = stmt.where(FeedRow.org_code == org)
            return [_feed(r) for r in s.scalars(stmt)]

    def refresh_mapping(self, feed_id: str) -> Feed:
        """Re-read the mapping file after it was fixed: validated, hashed, revision bumped."""
        feed = self.get(feed_id)
        spec = FeedSpec(
            id=feed.id,
            org=feed.org,
            format=feed.format,
            categories=tuple(sorted(feed.categories)),
            mapping=str(feed.mapping_path) if feed.mapping_path else None,
            partial_policy=feed.partial_policy,
            refresh=feed.refresh,
            missing_policy=feed.missing_policy,
            description=feed.description,
        )
        return self.register(spec, replace=True)


__all__ = [
    "AdapterFactory",
    "Feed",
    "FeedAdapter",
    "FeedFormat",
    "FeedRegistry",
    "FeedRow",
    "FeedSpec",
    "MappingLoader",
    "MissingPolicy",
    "PartialPolicy",
    "RefreshMode",
    "adapter_for_feed",
    "check_mapping",
    "read_spec",
    "sha256_file",
    "spec_from_mapping",
]
