"""What reading consent directives and declarations costs each decided request.

Issue 6 (consent store): every request that decides about a person now also
reads the person's consent directives and the requester's self-declared
relationships (``consent_store.directives_and_declarations``, one statement).
This measures that statement beside the statement every such request already
ran before it (the person with their Patient ids, ``service._person_and_patients``),
in the same run, on the same connection, on a throwaway database holding
``--persons`` persons with 3 Patient records each and ``--directives`` directives
spread over a tenth of them.

    .venv/bin/python benchmarks/consent_read.py --persons 20000 --directives 100000 --calls 5000

Prints p50 / p99 (µs) and calls/s for: the baseline statement; ours for a person
with no directives (the common case); ours for a person with directives
(summarised into ``PersonConsents``).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import sys
import time
import uuid
from collections.abc import Callable
from datetime import date
from pathlib import Path

from sqlalchemy import create_engine, insert, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from joinedup.access.consent_store import directives_and_declarations
from joinedup.access.models import ConsentRow
from joinedup.access.service import _person_and_patients
from joinedup.people.models import Person, PersonRecord
from joinedup.storage.base import utcnow
from joinedup.storage.engine import Database
from joinedup.storage.migrate import upgrade

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
TODAY = date(2026, 12, 3)


def _load(db: Database, persons: int, directives: int, rng: random.Random) -> list[str]:
    ids = [str(uuid.UUID(int=rng.getrandbits(128))) for _ in range(persons)]
    with db.engine.begin() as conn:
        conn.execute(insert(Person.__table__), [
            {"id": p, "created_at": utcnow(), "state": "active", "flagged": False} for p in ids])
        conn.execute(insert(PersonRecord.__table__), [
            {"record_id": f"Patient/{p}-{i}", "person_id": p, "org_code": org, "features": {},
             "rule": "nhs-number", "linked_at": utcnow(), "linked_by": "bench"}
            for p in ids for i, org in enumerate(("RWX", "RWC", "J81001"))])
        with_directives = ids[: max(1, persons // 10)]
        rows = []
        for n in range(directives):
            p = with_directives[n % len(with_directives)]
            kind = ("objection", "national-opt-out", "explicit-consent")[n % 3]
            rows.append({
                "id": f"c{n}", "patient_id": f"{p}-{n % 3}", "kind": kind, "status": "active",
                "organisation": "WPOLICE" if kind != "national-opt-out" else None,
                "category": None, "agreement_id": None, "recorded": TODAY, "start": None,
                "end": None, "recorded_by_org": "RWX", "recorded_by": "bench", "version": 1,
                "updated_at": utcnow(), "resource": {},
            })
        for i in range(0, len(rows), 10_000):
            conn.execute(insert(ConsentRow.__table__), rows[i:i + 10_000])
    return ids


def _time(calls: int, fn: Callable[[int], object]) -> tuple[float, float, float]:
    for i in range(min(200, calls)):
        fn(i)
    samples = []
    for i in range(calls):
        t = time.perf_counter()
        fn(i)
        samples.append((time.perf_counter() - t) * 1e6)
    samples.sort()
    return (statistics.median(samples), samples[int(len(samples) * 0.99) - 1],
            calls / (sum(samples) / 1e6))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--persons", type=int, default=20_000)
    parser.add_argument("--directives", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=5_000)
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (admin database)")
    parser.add_argument("--sqlite", action="store_true", help="measure on SQLite instead")
    args = parser.parse_args()
    rng = random.Random(20261203)
    name = f"joinedup_bench_consent_{uuid.uuid4().hex[:8]}"
    admin = None
    folder: Path | None = None
    if args.sqlite:
        folder = Path(os.environ.get("TMPDIR", "/tmp")) / name
        folder.mkdir()
        url = f"sqlite:///{folder / 'bench.db'}"
    else:
        admin = create_engine(args.pg, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        url = make_url(args.pg).set(database=name).render_as_string(hide_password=False)
    db = Database.from_url(url)
    try:
        upgrade(db)
        ids = _load(db, args.persons, args.directives, rng)
        plain = ids[len(ids) // 10:]
        with_directives = ids[: max(1, len(ids) // 10)]
        print(f"load before: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
        print(f"{args.persons} persons (3 Patient records each), {args.directives} directives "
              f"over {len(with_directives)} of them; {args.calls} calls each; "
              f"{db.dialect}")
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            def baseline(i: int) -> object:
                return _person_and_patients(conn, f"Patient/{plain[i % len(plain)]}-0")

            def ours(people: list[str]) -> Callable[[int], object]:
                def call(i: int) -> object:
                    p = people[i % len(people)]
                    return directives_and_declarations(
                        conn, p, [f"{p}-0", f"{p}-1", f"{p}-2"], org="J81001",
                        practitioner="J81001-P001", today=TODAY)
                return call

            print("| statement | p50 µs | p99 µs | calls/s |")
            print("|---|---|---|---|")
            for label, fn in (
                ("baseline: person and Patient ids (already on the read path)", baseline),
                ("ours: directives + declarations, person without directives", ours(plain)),
                ("ours: directives + declarations, person with directives", ours(with_directives)),
            ):
                p50, p99, rate = _time(args.calls, fn)
                print(f"| {label} | {p50:,.0f} | {p99:,.0f} | {rate:,.0f} |")
        print(f"load after: {'/'.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        db.dispose()
        if folder is not None:
            shutil.rmtree(folder, ignore_errors=True)
        if admin is not None:
            with admin.connect() as conn:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}"'))
            admin.dispose()


if __name__ == "__main__":
    main()
