"""What the read cache's triggers cost a writer: migration 0013 (ids) against 0014
(keyed digests), on one throwaway PostgreSQL database, alternating.

Each round migrates the scratch database to 0013, then to 0014 (and back for the
next round), and at each revision times, inside a transaction that is rolled back
(the trigger's work is done, nothing is kept):

* ``insert``: one statement inserting ``--rows`` ``consent_directives`` rows over
  ``--distinct`` Patient ids (the statement trigger hashes/aggregates their keys);
* ``insert, no triggers``: the same with the table's triggers disabled (the bare cost);
* ``notify 1 key``: ``joinedup_read_cache_notify`` of one key (a single-row write).

    .venv/bin/python benchmarks/read_cache_notify.py postgresql://postgres@127.0.0.1:5432/test

Prints the median wall time of ``--repeat`` runs of each, per revision and round
(server-side work dominates; the client only waits).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
import uuid
from pathlib import Path

from sqlalchemy import create_engine, text
from sqlalchemy.engine import Connection, make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from alembic import command

from joinedup.storage.engine import Database
from joinedup.storage.migrate import _config, upgrade

_INSERT = (
    "INSERT INTO consent_directives (id, patient_id, kind, status, organisation, recorded, "
    "recorded_by_org, recorded_by, version, updated_at, resource) "
    "SELECT 'bench-' || g, 'patient-' || (g % :distinct), 'objection', 'active', 'RWC', "
    "CURRENT_DATE, 'RWC', 'bench', 1, now(), '{}' FROM generate_series(1, :rows) g"
)


def _timed(conn: Connection, sql: str, params: dict[str, object], repeat: int,
           before: str | None = None) -> float:
    times = []
    for _ in range(repeat):
        with conn.begin() as tx:
            if before:
                conn.execute(text(before))
            start = time.perf_counter()
            conn.execute(text(sql), params)
            times.append(time.perf_counter() - start)
            tx.rollback()
    return statistics.median(times)


def _measure(db: Database, rows: int, distinct: int, repeat: int) -> dict[str, float]:
    with db.engine.connect() as conn:
        params = {"rows": rows, "distinct": distinct}
        return {
            "insert": _timed(conn, _INSERT, params, repeat),
            "insert, no triggers": _timed(
                conn, _INSERT, params, repeat,
                before="ALTER TABLE consent_directives DISABLE TRIGGER USER"),
            "notify 1 key": _timed(
                conn, "SELECT joinedup_read_cache_notify(ARRAY['patient-1'])", {}, repeat * 20),
        }


def _downgrade(db: Database, revision: str) -> None:
    cfg = _config()
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, revision)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("url", help="a PostgreSQL URL whose role may create databases")
    parser.add_argument("--rows", type=int, default=5000)
    parser.add_argument("--distinct", type=int, default=250)
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()

    admin = create_engine(args.url, isolation_level="AUTOCOMMIT")
    name = f"joinedup_bench_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    db = Database.from_url(make_url(args.url).set(database=name).render_as_string(
        hide_password=False))
    try:
        print(f"{args.rows} rows over {args.distinct} Patient ids per statement; "
              f"median of {args.repeat} (notify: of {args.repeat * 20}); ms")
        for round_ in range(1, args.rounds + 1):
            for revision in ("0013_read_cache_notify", "0014_read_cache_digests"):
                if revision.startswith("0013"):
                    upgrade(db, revision) if round_ == 1 else _downgrade(db, revision)
                else:
                    upgrade(db, revision)
                figures = _measure(db, args.rows, args.distinct, args.repeat)
                shown = ", ".join(f"{k} {v * 1000:.3f}" for k, v in figures.items())
                print(f"round {round_} {revision[:4]}: {shown}", flush=True)
    finally:
        db.dispose()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


if __name__ == "__main__":
    main()
