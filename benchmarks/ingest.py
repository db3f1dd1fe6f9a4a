"""End-to-end ingest throughput: mapping + validation + store, rows per second.

    .venv/bin/python benchmarks/ingest.py                      # 100k and 25k rows, both formats, both DBs
    .venv/bin/python benchmarks/ingest.py --rows 20000 --small 5000 --backends sqlite

For each format (a council CSV read with the shipped WCCASC persons mapping;
FHIR R4 transaction bundles read with the shipped RWX feed config), each
backend (SQLite file; PostgreSQL throwaway database on --pg-url) and each
size, a fresh child process loads the file as one batch through the real
adapter and loader, and reports:

* rows/s end to end (adapter + loader + commit), and of the adapter alone
  (parse + map + validate, nothing stored) to show where the time goes;
* each end-to-end figure twice: the bare loader (``Ingestion(db)``, backend
  shown as ``sqlite`` / ``postgresql``) and the service as deployed
  (``joinedup.services.build(...).ingestion``, shown as ``sqlite+people``):
  the same plus online person matching of every Patient in the batch
  transaction (``PersonLinker``; NHS-number-only matcher, as until a model
  is trained);
* peak RSS of the process, and its growth during the batch: memory is flat
  in file size when the growth at --rows is about the growth at --small;
  a file of 1 MiB or more is read, mapped and staged in a forked worker
  process (``WORKER_MIN_BYTES``), whose peak RSS is shown after a ``+``;
* CPU seconds of the batch process (``+`` the worker's): on a loaded machine
  rows/s understates the code, CPU seconds do not.

Prints figures; asserts nothing (timings do not belong in tests).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

PG_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
CLOCK = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)

FORENAMES = ["Anne", "Bob", "Cara", "Dev", "Elif", "Femi", "Grace", "Hamza", "Iona", "Jack",
             "Kai", "Leah", "Mo", "Nia", "Owen", "Priya", "Quinn", "Rosa", "Sam", "Tom"]  # fmt: skip
SURNAMES = ["Smith", "Jones", "Taylor", "Brown", "O'Brien", "Williams", "Khan", "Patel",
            "Evans", "Smith-Jones", "Wilson", "Walker", "Hughes", "Green", "Hall"]  # fmt: skip
ETHNICITY = ["10", "11", "19", "31", "32", "41", "42", "51", "99", ""]
REASONS = ["Physical Support: Personal Care Support", "Support with Memory & Cognition", ""]


def _nhs(i: int) -> str:
    n = 400_000_000 + i * 7919
    while True:
        nine = f"{n % 1_000_000_000:09d}"
        total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
        digit = 11 - total % 11
        if digit != 10 and len(set(nine)) > 1:
            return nine + str(0 if digit == 11 else digit)
        n += 1


def _person(rng: random.Random, i: int) -> dict[str, Any]:
    dob = date(1925, 1, 1) + timedelta(days=rng.randrange(0, 36000))
    district = rng.choice(["SO23", "SO22", "BH1", "BH8", "SP10"])
    return {
        "id": f"C{i:07d}",
        "nhs": _nhs(i),
        "given": rng.choice(FORENAMES),
        "family": rng.choice(SURNAMES),
        "dob": dob,
        "sex": rng.choice("FM"),
        "postcode": f"{district} {rng.randrange(1, 9)}{rng.choice('ABDEFGHJ')}{rng.choice('LNPQRSTU')}",
        "line1": f"{rng.randrange(1, 200)} {rng.choice(['High St', 'Mill Lane', 'Station Rd'])}",
        "town": rng.choice(["Winchester", "Bournemouth", "Andover"]),
        "phone": f"07{rng.randrange(100000000, 999999999)}",
    }


def write_csv(path: Path, rows: int, seed: int = 1) -> None:
    rng = random.Random(seed)
    header = ("PERSON_ID,NHS_NO,FORENAME,SURNAME,DOB,GENDER,ETHNICITY,ADDRESS_LINE_1,"
              "ADDRESS_LINE_2,TOWN,POSTCODE,PHONE,CLIENT_TYPE,PRIMARY_SUPPORT_REASON,LAST_UPDATED")  # fmt: skip
    with path.open("w", encoding="utf-8", newline="") as fh:
        fh.write(header + "\r\n")
        for i in range(1, rows + 1):
            p = _person(rng, i)
            nhs = p["nhs"]
            carer = rng.random() < 0.15
            cells = [
                p["id"], f"{nhs[:3]} {nhs[3:6]} {nhs[6:]}", p["given"], p["family"],
                p["dob"].strftime("%d/%m/%Y"), p["sex"], rng.choice(ETHNICITY), p["line1"], "",
                p["town"], p["postcode"], p["phone"], "Carer" if carer else "Service User",
                "" if carer else rng.choice(REASONS), "01/10/2026",
            ]  # fmt: skip
            fh.write(",".join(f'"{c}"' if "," in c or "'" in c else c for c in cells) + "\r\n")


def write_fhir(path: Path, rows: int, seed: int = 2) -> None:
    """One transaction Bundle with ``rows`` Patient entries, written entry by entry."""
    rng = random.Random(seed)
    base = "https://fhir.wessex.example/rwx/R4"
    with path.open("w", encoding="utf-8") as fh:
        fh.write('{"resourceType":"Bundle","type":"transaction","entry":[')
        for i in range(1, rows + 1):
            p = _person(rng, i)
            rid = str(uuid.UUID(int=rng.getrandbits(128), version=4))
            patient = {
                "resourceType": "Patient",
                "id": rid,
                "identifier": [
                    {"system": "https://fhir.nhs.uk/Id/nhs-number", "value": p["nhs"]},
                    {"system": "https://fhir.wessex.example/Id/rwx-mrn", "value": p["id"]},
                ],
                "name": [{"use": "official", "family": p["family"], "given": [p["given"]]}],
                "gender": "female" if p["sex"] == "F" else "male",
                "birthDate": p["dob"].isoformat(),
                "address": [
                    {
                        "use": "home",
                        "line": [p["line1"]],
                        "city": p["town"],
                        "postalCode": p["postcode"],
                    }
                ],
                "telecom": [{"system": "phone", "value": p["phone"]}],
            }
            entry = {
                "fullUrl": f"{base}/Patient/{rid}",
                "resource": patient,
                "request": {"method": "PUT", "url": f"Patient/{rid}"},
            }
            fh.write(("," if i > 1 else "") + json.dumps(entry, separators=(",", ":")))
        fh.write("]}")


FEEDS = {"csv": ("WCCASC", "wccasc-persons"), "fhir": ("RWX", "rwx-fhir")}


def _cpu(who: int) -> float:
    usage = resource.getrusage(who)
    return usage.ru_utime + usage.ru_stime


def _rss_kib() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def child(args: argparse.Namespace) -> None:
    """One measurement in a fresh process, so peak RSS is this run's alone."""
    from joinedup.orgs.registry import Registry
    from joinedup.orgs.specs import OrgSpec
    from joinedup.sources.batches import Ingestion
    from joinedup.sources.feeds import adapter_for_feed, spec_from_mapping
    from joinedup.sources.mapping import bundled_mappings
    from joinedup.storage.engine import Database
    from joinedup.storage.migrate import upgrade

    org, feed_id = FEEDS[args.format]
    path = Path(args.file)
    db = Database.from_url(args.url)
    upgrade(db)
    kinds = {"WCCASC": "la-adult-social-care", "RWX": "acute-trust"}
    Registry(db).add_org(OrgSpec.model_validate({"code": org, "name": org, "kind": kinds[org]}))
    if args.people:
        from joinedup.config import Settings
        from joinedup.services import build

        data_dir = Path(args.file).parent / f"data-{uuid.uuid4().hex[:6]}"
        settings = Settings(data_dir=data_dir, database_url=args.url, issuer="http://bench")
        services = build(settings, db=db)
        ingestion = services.ingestion
    else:
        ingestion = Ingestion(db)
    ingestion.loader._clock = lambda: CLOCK
    ingestion.feeds.register(spec_from_mapping(bundled_mappings()[f"{org}/{feed_id}"]))
    feed = ingestion.feeds.get(feed_id)
    before = _rss_kib()
    cpu_before = _cpu(resource.RUSAGE_SELF), _cpu(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    if args.adapter_only:
        units = sum(1 for _ in adapter_for_feed(feed).read(path))
        counts = {"read": units}
    else:
        result = ingestion.ingest_file(feed_id, path)
        counts = result.counts
        if args.people:
            counts["linked"] = services.people.counts()["records"]
    seconds = time.perf_counter() - started
    cpu = _cpu(resource.RUSAGE_SELF) - cpu_before[0]
    worker_cpu = _cpu(resource.RUSAGE_CHILDREN) - cpu_before[1]
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    worker_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(
        json.dumps(
            {
                "seconds": seconds,
                "cpu": cpu,
                "worker_cpu": worker_cpu,
                "counts": counts,
                "rss_before_kib": before,
                "peak_kib": peak,
                "worker_peak_kib": worker_peak,
            }
        )
    )
    db.dispose()


def _run_child(
    fmt: str, url: str, file: Path, adapter_only: bool, people: bool = False
) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--format", fmt, "--url", url, "--file", str(file)]
    if adapter_only:
        cmd.append("--adapter-only")
    if people:
        cmd.append("--people")
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"child failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    data: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return data


def _fresh_url(backend: str, tmp: Path, pg_url: str, created: list[str]) -> str:
    if backend == "sqlite":
        path = tmp / f"bench-{uuid.uuid4().hex[:8]}.db"
        return f"sqlite:///{path}"
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    name = f"joinedup_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(
        make_url(pg_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    created.append(name)
    return make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def _drop(pg_url: str, names: list[str]) -> None:
    if not names:
        return
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url

    admin = create_engine(
        make_url(pg_url).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        for name in names:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument(
        "--small", type=int, default=25_000, help="second size, for memory flatness (0: skip)"
    )
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--formats", default="csv,fhir")
    parser.add_argument("--pg-url", default=os.environ.get("JOINEDUP_BENCH_POSTGRES_URL", PG_URL))
    parser.add_argument(
        "--no-adapter-only", action="store_true", help="skip the adapter-alone runs"
    )
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--format", help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    parser.add_argument("--adapter-only", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--people", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--observer",
        default="without,with",
        help="without: bare loader; with: the service's ingestion with person matching",
    )
    args = parser.parse_args()
    if args.child:
        child(args)
        return

    sizes = [args.rows] + ([args.small] if args.small else [])
    formats = args.formats.split(",")
    backends = args.backends.split(",")
    print(
        f"machine: {os.cpu_count()} CPUs; load average {os.getloadavg()[0]:.2f}; python {sys.version.split()[0]}"
    )
    created: list[str] = []
    rows_out = []
    with tempfile.TemporaryDirectory(prefix="joinedup-ingest-bench-") as tmp_name:
        tmp = Path(tmp_name)
        files: dict[tuple[str, int], Path] = {}
        for fmt in formats:
            for size in sizes:
                path = tmp / f"{fmt}-{size}.{'csv' if fmt == 'csv' else 'json'}"
                (write_csv if fmt == "csv" else write_fhir)(path, size)
                files[(fmt, size)] = path
                print(f"wrote {path.name}: {path.stat().st_size / 1e6:.1f} MB")
        try:
            for fmt in formats:
                if not args.no_adapter_only:
                    r = _run_child(
                        fmt, f"sqlite:///{tmp / 'adapter-only.db'}", files[(fmt, args.rows)], True
                    )
                    rows_out.append((fmt, "(adapter only)", args.rows, r))
                for backend in backends:
                    for people in [m == "with" for m in args.observer.split(",")]:
                        label = backend + ("+people" if people else "")
                        for size in sizes:
                            url = _fresh_url(backend, tmp, args.pg_url, created)
                            r = _run_child(fmt, url, files[(fmt, size)], False, people)
                            rows_out.append((fmt, label, size, r))
                            _print_row(fmt, label, size, r)
        finally:
            _drop(args.pg_url, created)
    print()
    print(
        f"{'format':6} {'backend':16} {'rows':>8} {'rows/s':>9} {'seconds':>8} {'CPU s':>11} "
        f"{'peak RSS MiB':>13} {'growth MiB':>11}  counts"
    )
    for fmt, backend, size, r in rows_out:
        _print_row(fmt, backend, size, r, header=False)


def _print_row(fmt: str, backend: str, size: int, r: dict[str, Any], header: bool = True) -> None:
    rate = r["counts"]["read"] / r["seconds"] if r["seconds"] else 0
    growth = (r["peak_kib"] - r["rss_before_kib"]) / 1024
    c = r["counts"]
    counts = ", ".join(
        f"{k} {v}" for k, v in c.items() if k in ("read", "accepted", "rejected", "created", "linked")
    )
    cpu = f"{r['cpu']:.1f}+{r['worker_cpu']:.1f}" if r["worker_cpu"] else f"{r['cpu']:.1f}"
    peak = f"{r['peak_kib'] / 1024:.0f}" + (
        f"+{r['worker_peak_kib'] / 1024:.0f}" if r["worker_cpu"] else ""
    )
    line = (f"{fmt:6} {backend:16} {size:>8,} {rate:>9,.0f} {r['seconds']:>8.1f} {cpu:>11} "
            f"{peak:>13} {growth:>11.0f}  {counts}")  # fmt: skip
    print(("  " if header else "") + line, flush=True)


if __name__ == "__main__":
    main()
