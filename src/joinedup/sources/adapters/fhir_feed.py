"""The FHIR R4 adapter: a Bundle (transaction, batch, collection, searchset), a single
resource, or NDJSON, one outcome per entry.

Each resource is validated against the R4 models (``fhir.resources.R4B``, the
closest release ``fhir.resources`` 8 ships; ADR 0402) and rejected with the
models' messages if it fails. Accepted resources keep their identifiers (local
systems renamed as the feed config says), get an id that is stable for
(organisation, feed, type, source id), have their references rewritten to
those ids, and carry the category and sensitivity of the first label rule
that matches them. A resource type the feed declares no label for is
rejected: every stored resource must say what kind of data it is.

``urn:uuid:`` references between entries of a transaction bundle are
resolved with a first, cheap pass over the file (JSON parsing only) that
records each entry's fullUrl, so entries may refer forward.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from datetime import date
from typing import Any, BinaryIO

from pydantic import ValidationError

from joinedup.errors import Problem
from joinedup.labels import CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM
from joinedup.sources.adapters.base import FileRejected, Reading, Source, open_binary
from joinedup.sources.adapters.checks import check_patient
from joinedup.sources.adapters.jsonstream import JsonFileError, JsonStream, JsonUnit
from joinedup.sources.adapters.seen import SeenIds
from joinedup.sources.contract import Accepted, Outcome, Rejected, Warning_
from joinedup.sources.mapping import fhirschema
from joinedup.sources.mapping.ids import stable_id
from joinedup.sources.mapping.spec import FeedFormat, FhirFeedConfig, Label, LabelRule, OnInvalid

BUNDLE_TYPES = frozenset({"transaction", "batch", "collection", "searchset"})
_RELATIVE = re.compile(r"^([A-Z][A-Za-z]+)/([A-Za-z0-9\-.]{1,64})(?:/_history/[^/]+)?$")
_OUR_SECURITY = frozenset({CATEGORY_SYSTEM, CONFIDENTIALITY_SYSTEM})


def validate_resource(resource: Mapping[str, Any]) -> list[str]:
    """The R4 models' complaints about ``resource`` (empty when it is valid)."""
    kind = resource.get("resourceType")
    if not isinstance(kind, str) or not fhirschema.is_resource_type(kind):
        return [f"resourceType {kind!r} is not a FHIR R4 resource type"]
    from fhir.resources.R4B import get_fhir_model_class

    try:
        get_fhir_model_class(kind).model_validate(resource)
    except ValidationError as exc:
        out = []
        for error in exc.errors(include_url=False, include_input=False):
            path = kind
            for part in error["loc"]:
                path += f"[{part}]" if isinstance(part, int) else f".{part}"
            out.append(f"{path}: {str(error['msg']).removeprefix('Value error, ')}")
        return out
    return []


class FhirAdapter:
    format = FeedFormat.FHIR

    def __init__(
        self, config: FhirFeedConfig, today: date | None = None, read_chunk: int = 1 << 20
    ) -> None:
        self.spec = config
        self._chunk = read_chunk
        self._today = today or date.today()
        self._namespace = config.id_namespace or config.feed
        self._rules: dict[str, list[LabelRule]] = {}
        for rule in config.labels:
            self._rules.setdefault(rule.resource, []).append(rule)

    def read(self, source: Source) -> Reading:
        return Reading(lambda reading: self._outcomes(source, reading))

    def reprocess(self, raw: str, unit: int, extra: Mapping[str, Any]) -> Outcome:
        """Map one quarantined entry again; ``extra["references"]`` resolves its urn references."""
        try:
            value = json.loads(raw)
        except json.JSONDecodeError as exc:
            return Rejected(unit, raw, (Problem(f"malformed JSON: {exc.msg}", f"entry {unit}, line {exc.lineno}, column {exc.colno}"),), None, dict(extra))
        urns = dict(extra.get("references", {}))
        line = int(extra.get("line", 0))
        return self._entry(JsonUnit(unit, line, int(extra.get("column", 0)), raw, value), urns, SeenIds(), bool(extra.get("bundle", True)))

    # -- reading -----------------------------------------------------------------------

    def _outcomes(self, source: Source, reading: Reading) -> Iterator[Outcome]:
        with open_binary(source) as handle:
            urns = self._first_pass(handle, reading)
            stream = JsonStream(handle, chunk=self._chunk)
            seen = SeenIds()
            checked = False
            try:
                for unit in stream.units():
                    if not checked:
                        self._check_top(stream)
                        checked = True
                    if unit.error:
                        reading.warnings.append(
                            Warning_(f"reading stopped at entry {unit.index}: the JSON after it cannot be parsed",
                                     f"line {unit.line}", "stopped")
                        )
                        yield Rejected(
                            unit.index, unit.raw,
                            (Problem(f"malformed JSON: {unit.error.partition(': ')[2]}", f"entry {unit.index}, {unit.error.partition(': ')[0]}"),),
                            None, {"line": unit.line, "column": unit.column},
                        )
                        return
                    yield self._entry(unit, urns, seen, stream.top.has_entries)
            except JsonFileError as exc:
                raise FileRejected("the file is not readable FHIR JSON", [Problem(exc.message, exc.where)]) from None
            self._check_top(stream)

    def _first_pass(self, handle: BinaryIO, reading: Reading) -> dict[str, str]:
        """fullUrl (urn:...) -> ``Type/stable id`` for every entry, when the stream can be re-read."""
        if not handle.seekable():
            reading.warnings.append(
                Warning_("the input cannot be read twice, so urn: references can point only backwards",
                         "", "single-pass")
            )
            return {}
        start = handle.tell()
        urns: dict[str, str] = {}
        try:
            for unit in JsonStream(handle, chunk=self._chunk).units():
                if unit.error:
                    break
                entry = unit.value
                if not isinstance(entry, dict):
                    continue
                full_url = entry.get("fullUrl")
                resource = entry.get("resource")
                if isinstance(full_url, str) and full_url.startswith("urn:") and isinstance(resource, dict):
                    kind = resource.get("resourceType")
                    if isinstance(kind, str):
                        key = resource.get("id") if isinstance(resource.get("id"), str) else full_url
                        urns[full_url] = f"{kind}/{self._id(kind, str(key))}"
        except JsonFileError:
            pass  # the second pass reports it, located
        handle.seek(start)
        return urns

    def _check_top(self, stream: JsonStream) -> None:
        members = stream.top.members
        if not stream.top.has_entries:
            return
        problems = []
        if members.get("resourceType", "Bundle") != "Bundle":
            problems.append(Problem("a file with entries must be a Bundle", "resourceType"))
        kind = members.get("type")
        if kind is not None and kind not in BUNDLE_TYPES:
            problems.append(
                Problem(f"Bundle type {kind!r} is not accepted (use {', '.join(sorted(BUNDLE_TYPES))})", "type")
            )
        if problems:
            raise FileRejected("the Bundle cannot be ingested", problems)

    def _id(self, kind: str, key: str) -> str:
        return stable_id(self.spec.organisation, self._namespace, kind, key)

    # -- one entry ---------------------------------------------------------------------

    def _entry(self, unit: JsonUnit, urns: dict[str, str], seen: SeenIds, in_bundle: bool) -> Outcome:
        where = f"entry {unit.index} (line {unit.line})" if in_bundle else f"resource {unit.index} (line {unit.line})"
        extra: dict[str, Any] = {"line": unit.line, "column": unit.column, "bundle": in_bundle}

        def reject(*messages: str, source_id: str | None = None) -> Rejected:
            return Rejected(unit.index, unit.raw, tuple(Problem(m, where) for m in messages), source_id, extra)

        value = unit.value
        full_url = None
        if in_bundle:
            if not isinstance(value, dict):
                return reject("an entry must be a JSON object")
            request = value.get("request")
            if isinstance(request, dict) and request.get("method") == "DELETE":
                return reject("DELETE entries are not accepted: a feed cannot delete records")
            full_url = value.get("fullUrl")
            value = value.get("resource")
            if not isinstance(value, dict):
                return reject("the entry has no resource")
        elif not isinstance(value, dict):
            return reject("a resource must be a JSON object")
        kind = value.get("resourceType")
        local_id = value.get("id")
        key = local_id if isinstance(local_id, str) and local_id else full_url
        source_id = f"{kind}/{key}" if isinstance(key, str) and key else None
        problems = validate_resource(value)
        if kind == "Bundle":
            problems.append("a Bundle inside a Bundle is not accepted")
        if source_id is None:
            problems.append("the resource has neither an id nor a fullUrl, so it cannot be kept stable")
        if problems:
            return reject(*problems, source_id=source_id)
        assert isinstance(kind, str)
        assert isinstance(key, str)
        assert source_id is not None
        label = self._label(kind, value)
        if label is None:
            return reject(
                f"the feed declares no data category for {kind} resources (add a label rule)",
                source_id=source_id,
            )
        warnings: list[Warning_] = []
        if kind == "Patient":
            meaning, doubts = check_patient(
                value, self._today, self.spec.invalid_nhs_number is OnInvalid.WARN
            )
            if meaning:
                return reject(*meaning, source_id=source_id)
            warnings.extend(Warning_(d, where, "patient") for d in doubts)
        earlier = seen.add(source_id, unit.index)
        if earlier is not None:
            return reject(f"duplicate resource: {source_id} is also entry {earlier}", source_id=source_id)
        referenced: dict[str, str] = {}
        self._rewrite(value, urns, referenced, warnings, where)
        extra["references"] = referenced
        value["id"] = self._id(kind, key)
        self._relabel(value, label)
        self._rename_identifiers(value)
        return Accepted(unit.index, source_id, (value,), tuple(warnings))

    def _label(self, kind: str, resource: dict[str, Any]) -> Label | None:
        for rule in self._rules.get(kind, ()):
            if not rule.systems and not rule.codes:
                return rule.label
            for coding in _codings(resource):
                if (not rule.systems or coding.get("system") in rule.systems) and (
                    not rule.codes or coding.get("code") in rule.codes
                ):
                    return rule.label
        return None

    def _relabel(self, resource: dict[str, Any], label: Label) -> None:
        meta = resource.get("meta")
        meta = dict(meta) if isinstance(meta, dict) else {}
        for stale in ("versionId", "lastUpdated", "source"):
            meta.pop(stale, None)
        kept = [c for c in meta.get("security", []) if c.get("system") not in _OUR_SECURITY]
        meta["security"] = [*kept, *label.security()]
        resource["meta"] = meta

    def _rename_identifiers(self, resource: dict[str, Any]) -> None:
        systems = self.spec.identifier_systems
        if not systems:
            return
        for identifier in resource.get("identifier", ()) or ():
            if isinstance(identifier, dict) and identifier.get("system") in systems:
                identifier["system"] = systems[identifier["system"]]

    def _rewrite(
        self, node: Any, urns: dict[str, str], referenced: dict[str, str], warnings: list[Warning_], where: str
    ) -> None:
        """Point references at the stable ids: ``Patient/123`` and ``urn:uuid:...`` of this feed."""
        if isinstance(node, dict):
            for name, child in node.items():
                if name == "reference" and isinstance(child, str):
                    node[name] = self._target(child, urns, referenced, warnings, where)
                elif isinstance(child, dict | list):
                    self._rewrite(child, urns, referenced, warnings, where)
        elif isinstance(node, list):
            for child in node:
                if isinstance(child, dict | list):
                    self._rewrite(child, urns, referenced, warnings, where)

    def _target(
        self, reference: str, urns: dict[str, str], referenced: dict[str, str], warnings: list[Warning_], where: str
    ) -> str:
        if reference.startswith("urn:"):
            target = urns.get(reference)
            if target is None:
                warnings.append(Warning_("a urn: reference names no entry of this file; kept as sent", where, "reference"))
                return reference
            referenced[reference] = target
            return target
        match = _RELATIVE.match(reference)
        if match and fhirschema.is_resource_type(match.group(1)):
            return f"{match.group(1)}/{self._id(match.group(1), match.group(2))}"
        return reference


def _codings(resource: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for name in ("code", "category", "type", "medicationCodeableConcept"):
        value = resource.get(name)
        concepts = value if isinstance(value, list) else [value]
        for concept in concepts:
            if isinstance(concept, dict):
                for coding in concept.get("coding", ()) or ():
                    if isinstance(coding, dict):
                        yield coding
