"""Write the demo care system's exports, its ground truth and its manifest.

Same area, same population (same seed and size) => byte-identical files: no
clock, no randomness outside the seeded streams, no dict-order surprises.
"""

from __future__ import annotations

import csv
import io
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from joinedup.demo import csv_exports, fhir_exports, hl7_exports
from joinedup.demo.area import Area
from joinedup.demo.contacts import Contacts, assign_contacts
from joinedup.demo.context import ExportContext
from joinedup.demo.output import Output, WrittenFile
from joinedup.demo.population import REFERENCE_DATE, Population
from joinedup.demo.quality import PROFILES, source_records

GENERATOR_VERSION = "1.0.0"
MANIFEST = "manifest.json"
GROUND_TRUTH = "ground_truth.csv"

STEPS = (
    "adult social care", "children's services", "police", "carers charity", "homelessness charity",
    "hospital EPR (FHIR)", "hospital PAS (HL7 v2)", "mental health trust", "community trust",
    "Riverside Medical Practice", "Castle Street Surgery", "ground truth and manifest",
)
"""Progress steps, in order; ``generate`` reports each as it starts."""


@dataclass(frozen=True, slots=True)
class GenerationResult:
    out_dir: Path
    files: tuple[WrittenFile, ...]
    records_per_org: dict[str, int]
    bad_rows: int
    ground_truth_rows: int


def generate(
    area: Area,
    population: Population,
    out_dir: Path,
    *,
    on_step: Callable[[str], None] | None = None,
) -> GenerationResult:
    """Write every organisation's exports under ``out_dir`` (created if missing)."""
    report = on_step or (lambda _step: None)
    contacts = assign_contacts(population)
    records = {
        code: source_records(code, caseload.person_ids, population)
        for code, caseload in contacts.caseloads.items()
    }
    carer_of: dict[str, str] = {}
    for person in population.people:
        if person.carer_id and person.carer_id not in carer_of:
            carer_of[person.carer_id] = person.id
    out = Output(Path(out_dir))
    out.root.mkdir(parents=True, exist_ok=True)
    ctx = ExportContext(area, population, contacts, records, out, carer_of)
    plan = fhir_exports.plan_acute_encounters(ctx)
    steps: list[Callable[[], None]] = [
        *(partial(export, ctx) for export in csv_exports.EXPORTERS),
        partial(fhir_exports.export_fhir, ctx, fhir_exports.acute_feed(plan)),
        partial(hl7_exports.export_hl7, ctx, plan),
        *(partial(fhir_exports.export_fhir, ctx, feed) for feed in fhir_exports.OTHER_FEEDS),
    ]
    for name, step in zip(STEPS[:-1], steps, strict=True):
        report(name)
        step()
    report(STEPS[-1])
    truth = sorted(out.truth, key=lambda t: (t.org_code, t.record_type, t.source_record_id))
    _write_ground_truth(out, truth)
    manifest = _manifest(area, population, contacts, ctx, out)
    manifest_bytes = (json.dumps(manifest, indent=2, ensure_ascii=False) + "\n").encode("utf-8")
    (out.root / MANIFEST).write_bytes(manifest_bytes)
    return GenerationResult(
        out_dir=out.root,
        files=tuple(out.files),
        records_per_org={code: len(rs) for code, rs in records.items()},
        bad_rows=len(out.bad_rows),
        ground_truth_rows=len(truth),
    )


def _write_ground_truth(out: Output, truth: list[Any]) -> None:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["org_code", "record_type", "source_record_id", "person_id"])
    writer.writerows((t.org_code, t.record_type, t.source_record_id, t.person_id) for t in truth)
    (out.root / GROUND_TRUTH).write_bytes(buffer.getvalue().encode("utf-8"))


def _manifest(
    area: Area, population: Population, contacts: Contacts, ctx: ExportContext, out: Output
) -> dict[str, Any]:
    overlap = Counter(len(contacts.orgs_knowing(p.id)) for p in population.people)
    quality: dict[str, Any] = {}
    for code, rs in ctx.records.items():
        problems = Counter(problem for r in rs for problem in r.problems)
        quality[code] = {
            "records": len(rs),
            "people": len(contacts[code]),
            "problems": dict(sorted(problems.items())),
            "profile": {k: getattr(PROFILES[code], k) for k in PROFILES[code].__slots__},
        }
    sensitive = Counter((s.org_code, s.category) for s in out.sensitive)
    return {
        "generator": "joinedup demo generate",
        "generator_version": GENERATOR_VERSION,
        "seed": population.seed,
        "people": len(population),
        "area": area.name,
        "reference_date": REFERENCE_DATE.isoformat(),
        "files": [f.as_json() for f in sorted(out.files, key=lambda f: f.path)],
        "ground_truth": {"path": GROUND_TRUTH, "rows": len(out.truth)},
        "bad_rows": [
            b.as_json() for b in sorted(out.bad_rows, key=lambda b: (b.file, b.row, b.problem))
        ],
        "data_quality": quality,
        "people_known_to_n_organisations": {str(k): overlap[k] for k in sorted(overlap)},
        "sensitive_summary": [
            {"org": org, "category": category, "count": n}
            for (org, category), n in sorted(sensitive.items())
        ],
        "sensitive_records": [
            {"org": s.org_code, "file": s.file, "type": s.record_type, "id": s.record_id,
             "category": s.category}
            for s in sorted(out.sensitive, key=lambda s: (s.org_code, s.file, s.record_id))
        ],
    }
