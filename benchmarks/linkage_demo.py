"""Person-index accuracy on the Wessex demo's ground truth, through the real pipeline.

Generates the demo exports, ingests every file with online matching, trains the
estate's model on what was ingested, re-links with it, then scores the index's
persons against ``ground_truth.csv``: pairwise precision, recall and F1 at the
shipped auto-link threshold, the review queue's size, and, from the same run,
NHS-number-only linking (what an index without a model can do) as the baseline.

    .venv/bin/python benchmarks/linkage_demo.py              # fresh demo, 10,000 people
    .venv/bin/python benchmarks/linkage_demo.py --people 2000
    .venv/bin/python benchmarks/linkage_demo.py --data-dir var   # score an existing `make demo`
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from collections import Counter
from pathlib import Path

import orjson
from sqlalchemy import and_, select

from joinedup.config import Settings
from joinedup.people.models import PersonRecord
from joinedup.records.tables import Resource, ResourceVersion
from joinedup.services import build

LOCAL_IDS = "https://fhir.wessex.example/Id/"


def pairs(sizes: Counter[object]) -> int:
    return sum(n * (n - 1) // 2 for n in sizes.values())


def score(predicted: dict[str, object], truth: dict[str, str]) -> dict[str, float]:
    keys = [k for k in predicted if k in truth]
    tp = pairs(Counter((predicted[k], truth[k]) for k in keys))
    pp = pairs(Counter(predicted[k] for k in keys))
    tt = pairs(Counter(truth[k] for k in keys))
    precision = tp / pp if pp else 1.0
    recall = tp / tt if tt else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "records": len(keys),
        "true_pairs": tt,
        "predicted_pairs": pp,
        "tp": tp,
        "precision": precision,
        "recall": recall,
        "f1": f1,
    }


def truth_of(folder: Path) -> dict[tuple[str, str], str]:
    with (folder / "ground_truth.csv").open() as handle:
        return {
            (r["org_code"], r["source_record_id"]): r["person_id"] for r in csv.DictReader(handle)
        }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=10_000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--data-dir", type=Path, help="score an existing demo data folder")
    args = parser.parse_args()

    timings: dict[str, float] = {}
    if args.data_dir is None:
        from joinedup.demo import generate_to
        from joinedup.demo.commands import _link_with_trained_model, _prepare, ingest_exports

        data_dir = Path(tempfile.mkdtemp(prefix="joinedup-linkage-demo-"))
        settings = Settings(data_dir=data_dir)
        svc, _ = _prepare(settings, args.seed)
        t = time.perf_counter()
        generate_to(data_dir / "demo-exports", seed=args.seed, people=args.people)
        timings["generate"] = time.perf_counter() - t
        t = time.perf_counter()
        ingest_exports(svc, data_dir / "demo-exports")
        timings["ingest with online NHS-number linking"] = time.perf_counter() - t
        svc.close()
        t = time.perf_counter()
        _link_with_trained_model(settings)
        timings["train + re-link with the model"] = time.perf_counter() - t
    else:
        data_dir = args.data_dir
        settings = Settings(data_dir=data_dir)

    svc = build(settings)
    truth_keys = truth_of(data_dir / "demo-exports")
    with svc.db.session() as s:
        rows = s.execute(
            select(Resource.id, Resource.org_code, ResourceVersion.body)
            .join(
                ResourceVersion,
                and_(
                    ResourceVersion.resource_type == Resource.resource_type,
                    ResourceVersion.id == Resource.id,
                    ResourceVersion.version_id == Resource.version_id,
                ),
            )
            .where(Resource.resource_type == "Patient")
        ).all()
        linked = {
            rid: (pid, f.get("nhs_number"))
            for rid, pid, f in s.execute(
                select(PersonRecord.record_id, PersonRecord.person_id, PersonRecord.features)
            )
        }
    truth: dict[str, str] = {}
    for rid, org, body in rows:
        for ident in orjson.loads(body).get("identifier", []):
            value = ident.get("value")
            if ident.get("system", "").startswith(LOCAL_IDS) and (org, value) in truth_keys:
                truth[f"Patient/{rid}"] = truth_keys[(org, value)]
    model = {rid: pid for rid, (pid, _) in linked.items()}
    nhs_only = {rid: (f"nhs:{nhs}" if nhs else rid) for rid, (_, nhs) in linked.items()}
    counts = svc.people.counts()
    svc.close()

    print(f"demo person index: {len(rows)} Patient records, {len(truth)} with ground truth")
    for step, seconds in timings.items():
        print(f"  {step}: {seconds:.1f} s")
    print(
        f"{'linking':<38} {'precision':>9} {'recall':>9} {'F1':>8} {'false links':>12} {'missed':>8}"
    )
    for label, predicted in [
        ("NHS number only (baseline)", nhs_only),
        ("joinedup: NHS number + model, auto-link", model),
    ]:
        m = score(predicted, truth)
        print(
            f"{label:<38} {m['precision']:>9.5f} {m['recall']:>9.5f} {m['f1']:>8.5f} "
            f"{m['predicted_pairs'] - m['tp']:>12,} {m['true_pairs'] - m['tp']:>8,}"
        )
    print(
        f"persons: {counts['persons']:,}; review queue: {counts['open_reviews']:,} open pairs; "
        f"flagged persons: {counts['flagged']:,}"
    )


if __name__ == "__main__":
    main()
