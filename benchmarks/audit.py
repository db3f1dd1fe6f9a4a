"""Audit log benchmark: durable group commit, and verify of a large log.

Prints, per backend (SQLite file, and a throwaway PostgreSQL database):

* the machine's raw single-row INSERT + COMMIT rate (one durable commit per
  row, same durability settings), measured in the same run;
* events/s acknowledged by ``AuditLog.append`` with many concurrent writers:
  threads, coroutines (``append_async``) and, optionally, several processes
  sharing one chain;
* ``verify`` of a log of ``--verify-events`` events: seconds and the peak RSS
  of the verifying process, beside a log a tenth the size (flat memory shows
  as the same RSS).

Goals (issue 5): >= 20,000 events/s on both backends; verify of 1,000,000
events <= 10 s with flat memory. Run smaller with e.g.
``--seconds 2 --verify-events 100000``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import create_engine, text

from joinedup.audit import (
    Actor,
    AuditAction,
    AuditConfig,
    AuditEvent,
    AuditKeyStore,
    AuditLog,
    Outcome,
)
from joinedup.audit.check import verify_log
from joinedup.audit.store import ChainStore
from joinedup.storage.engine import Database
from joinedup.storage.migrate import upgrade

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"


def events(n: int = 20_000, resources: int = 2) -> list[AuditEvent]:
    """A pool of distinct, realistic read events (built once: we measure the log, not them).
    ``resources``: how many resources each read lists (a ``$everything`` read lists ~30).

    Times increase through the pool (50 us apart), as a live log's do: each event is
    stamped when it happens. A small pool of repeated times (this benchmark before
    2026-12-03 13:00 cycled 1,000) scatters every time-keyed index entry across the
    pool's range, which a real log never does, and on SQLite cost ~80% more WAL pages
    per commit. Persons (1,000), practitioners (40) and organisations (5) cycle as
    before."""
    orgs = ["RWX", "RWM", "RWC", "J81001", "WCCASC"]
    start = datetime.now(UTC) - timedelta(microseconds=50 * n)
    return [
        AuditEvent(
            time=start + timedelta(microseconds=50 * i),
            action=AuditAction.RECORD_READ,
            actor=Actor(orgs[i % 5], f"{orgs[i % 5].lower()}-epr", f"{orgs[i % 5]}-P{i % 40}",
                        "clinician"),
            outcome=Outcome.PERMIT,
            purpose="direct-care",  # type: ignore[arg-type]
            persons=(f"person-{i % 1000:06d}",),
            resources=(f"Observation/{uuid.uuid4().hex[:12]}", f"Condition/{i % 1000}",
                       *(f"Observation/{uuid.uuid4().hex}" for _ in range(resources - 2))),
            reasons=("agreement",),
            obligations={"withhold_fields": ["Patient.telecom"], "audit_level": "standard"},
            request_id=uuid.uuid4().hex,
            detail={"agreement": {"id": "rwx-wccasc-discharge", "version": 3}},
        )
        for i in range(n)
    ]


# -- backends -------------------------------------------------------------------------
class Backend:
    def __init__(self, name: str, pg_url: str, workdir: Path) -> None:
        self.name = name
        self.workdir = workdir
        if name == "sqlite":
            self.url = f"sqlite:///{workdir / 'bench.db'}"
            self._admin = None
            self._pg_name = None
        else:
            self._admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"),
                                        isolation_level="AUTOCOMMIT")
            self._pg_name = f"joinedup_bench_{uuid.uuid4().hex[:10]}"
            with self._admin.connect() as conn:
                conn.execute(text(f'CREATE DATABASE "{self._pg_name}"'))
            base = pg_url.rsplit("/", 1)[0]
            self.url = f"{base}/{self._pg_name}"
        self.db = Database.from_url(self.url, pool_size=20)
        upgrade(self.db)
        self.keys = AuditKeyStore(workdir / f"keys-{name}")
        self.keys.init()

    def reset(self) -> None:
        """Empty the audit tables between runs (a fresh chain each time)."""
        with self.db.engine.begin() as conn:
            for table in ("audit_event_persons", "audit_events", "audit_checkpoints",
                          "audit_anchors", "audit_chain_head"):
                conn.execute(text(f"DELETE FROM {table}"))
        if self.name == "sqlite":
            with self.db.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
        else:
            with self.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
                c.exec_driver_sql("VACUUM ANALYZE audit_events")

    def close(self) -> None:
        self.db.dispose()
        if self._admin is not None:
            with self._admin.connect() as conn:
                conn.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": self._pg_name})
                conn.execute(text(f'DROP DATABASE IF EXISTS "{self._pg_name}"'))
            self._admin.dispose()


def raw_insert_rate(backend: Backend, seconds: float) -> float:
    """One row, one durable commit, repeated: what a naive audit table would do."""
    body = "x" * 600
    with backend.db.engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE IF NOT EXISTS bench_raw (id BIGINT PRIMARY KEY, body TEXT)")
        conn.exec_driver_sql("DELETE FROM bench_raw")
    raw = backend.db.engine.raw_connection()
    conn = raw.driver_connection
    n = 0
    try:
        end = time.perf_counter() + seconds
        start = time.perf_counter()
        if backend.name == "sqlite":
            conn.isolation_level = None
            while time.perf_counter() < end:
                n += 1
                conn.execute("BEGIN IMMEDIATE")
                conn.execute("INSERT INTO bench_raw (id, body) VALUES (?, ?)", (n, body))
                conn.execute("COMMIT")
            conn.isolation_level = ""
        else:
            while time.perf_counter() < end:
                n += 1
                conn.execute("INSERT INTO bench_raw (id, body) VALUES (%s, %s)", (n, body))
                conn.commit()
        elapsed = time.perf_counter() - start
    finally:
        raw.close()
    return n / elapsed


def threaded_rate(backend: Backend, pool: list[AuditEvent], writers: int,
                  seconds: float) -> tuple[float, float, float]:
    """(events/s, events per commit, this process's CPU microseconds per event)."""
    backend.reset()
    log = AuditLog(backend.db, backend.keys, AuditConfig())
    counts = [0] * writers
    stop = threading.Event()

    def writer(k: int) -> None:
        i = k
        while not stop.is_set():
            log.append([pool[i % len(pool)]])
            counts[k] += 1
            i += writers

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    log.append([pool[0]])  # start the writer thread and the chain
    start, cpu = time.perf_counter(), time.process_time()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
    batches = log.writer.batches
    log.close(checkpoint=False)
    total = sum(counts)
    return total / elapsed, total / max(batches, 1), cpu / total * 1e6


def async_rate(backend: Backend, pool: list[AuditEvent], tasks: int,
               seconds: float) -> tuple[float, float, float]:
    backend.reset()
    log = AuditLog(backend.db, backend.keys, AuditConfig())
    counts = [0] * tasks

    async def main() -> float:
        await log.append_async([pool[0]])
        end = time.perf_counter() + seconds

        async def writer(k: int) -> None:
            i = k
            while time.perf_counter() < end:
                await log.append_async([pool[i % len(pool)]])
                counts[k] += 1
                i += tasks

        start = time.perf_counter()
        await asyncio.gather(*(writer(k) for k in range(tasks)))
        return time.perf_counter() - start

    cpu = time.process_time()
    elapsed = asyncio.run(main())
    cpu = time.process_time() - cpu
    batches = log.writer.batches
    log.close(checkpoint=False)
    total = sum(counts)
    return total / elapsed, total / max(batches, 1), cpu / total * 1e6


def process_rate(backend: Backend, processes: int, writers: int, seconds: float) -> float:
    """Several processes (as uvicorn workers would be) appending to one chain."""
    backend.reset()
    start_at = time.time() + 3.0
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "_appender", backend.url, str(backend.keys.folder),
             str(writers), str(seconds), str(start_at)],
            stdout=subprocess.PIPE, text=True,
        )
        for _ in range(processes)
    ]
    total = 0
    for child in children:
        out, _ = child.communicate()
        total += int(out.strip().splitlines()[-1])
    log = AuditLog(backend.db, backend.keys)
    ok = verify_log(backend.db, backend.keys.public_keys()).ok
    log.close(checkpoint=False)
    if not ok:
        raise SystemExit("the shared chain did not verify after the multi-process run")
    return total / seconds


def _appender(url: str, keys: str, writers: int, seconds: float, start_at: float) -> None:
    db = Database.from_url(url, pool_size=writers)
    log = AuditLog(db, AuditKeyStore(Path(keys)))
    pool = events()
    log.append([pool[0]])
    time.sleep(max(0.0, start_at - time.time()))
    counts = [0] * writers
    end = time.perf_counter() + seconds

    def writer(k: int) -> None:
        i = k
        while time.perf_counter() < end:
            log.append([pool[i % len(pool)]])
            counts[k] += 1
            i += writers

    threads = [threading.Thread(target=writer, args=(k,)) for k in range(writers)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log.close(checkpoint=False)
    db.dispose()
    print(sum(counts))


# -- verify -------------------------------------------------------------------------------
def populate(backend: Backend, pool: list[AuditEvent], target: int) -> float:
    """Fill the log to ``target`` events through the real write path, in large batches."""
    log = AuditLog(backend.db, backend.keys, AuditConfig(max_batch_events=5000))
    start = time.perf_counter()
    with ChainStore(backend.db).snapshot() as snap:
        head = snap.head()
    n = 0 if head is None else head.seq
    chunk = 5000
    while n < target:
        size = min(chunk, target - n)
        batch = [pool[(n + j) % len(pool)] for j in range(size)]
        log.append(batch)
        n += size
    log.close()
    return time.perf_counter() - start


def verify_in_child(backend: Backend, jobs: int) -> tuple[float, float, float, int, bool]:
    """Verify in a fresh process: (seconds, CPU seconds of this process and its workers,
    peak RSS MB of the largest process, events, ok)."""
    out = subprocess.run(
        [sys.executable, __file__, "_verify", backend.url, str(backend.keys.folder), str(jobs)],
        capture_output=True, text=True, check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), int(out[3]), out[4] == "True"


def _verify(url: str, keys: str, jobs: int) -> None:
    db = Database.from_url(url)
    start = time.perf_counter()
    report = verify_log(db, AuditKeyStore(Path(keys)).public_keys(), jobs=jobs)
    elapsed = time.perf_counter() - start
    me = resource.getrusage(resource.RUSAGE_SELF)
    workers = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = me.ru_utime + me.ru_stime + workers.ru_utime + workers.ru_stime
    peak_mb = max(me.ru_maxrss, workers.ru_maxrss) / 1024
    print(f"{elapsed:.3f} {cpu:.3f} {peak_mb:.1f} {report.events} {report.ok}")
    if not report.ok:
        print(report.summary(), file=sys.stderr)


# -- main -----------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--pg-url", default=os.environ.get("JOINEDUP_BENCH_PG_URL", PG_DEFAULT))
    parser.add_argument("--seconds", type=float, default=4.0, help="per throughput run")
    parser.add_argument("--threads", default="16,64,256", help="writer thread counts")
    parser.add_argument("--tasks", type=int, default=512, help="coroutines for append_async")
    parser.add_argument("--processes", type=int, default=2,
                        help="processes sharing one chain (0 to skip)")
    parser.add_argument("--process-threads", type=int, default=64)
    parser.add_argument("--wide-resources", type=int, default=30,
                        help="resources listed by each event of the wide-read run")
    parser.add_argument("--verify-events", type=int, default=1_000_000)
    parser.add_argument("--verify-jobs", type=int, default=2,
                        help="processes for the parallel verify (printed beside 1)")
    args = parser.parse_args()

    pool = events()
    wide = events(5000, resources=args.wide_resources)
    t0 = time.perf_counter()
    sample = events(2000)
    build_us = (time.perf_counter() - t0) / len(sample) * 1e6
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} "
          "(other work on the machine lowers every rate; CPU/event does not depend on it); "
          f"building one AuditEvent (validation, template): {build_us:.1f} us (not in the rates)")
    with tempfile.TemporaryDirectory(prefix="joinedup-bench-") as tmp:
        for name in args.backends.split(","):
            backend = Backend(name, args.pg_url, Path(tmp))
            try:
                print(f"\n== {name} ==")
                raw = raw_insert_rate(backend, min(args.seconds, 3))
                print(f"raw single-row INSERT + COMMIT (durable), 1 writer: {raw:10,.0f} rows/s")
                for writers in (int(x) for x in args.threads.split(",")):
                    rate, mean, us = threaded_rate(backend, pool, writers, args.seconds)
                    print(f"append, group commit, {writers:4d} threads:        {rate:10,.0f} events/s"
                          f"  ({rate / raw:5.1f}x raw; {mean:6.1f} events per commit; "
                          f"{us:5.1f} us CPU/event here)")
                rate, mean, us = async_rate(backend, pool, args.tasks, args.seconds)
                print(f"append_async, group commit, {args.tasks:4d} coroutines: {rate:10,.0f} events/s"
                      f"  ({rate / raw:5.1f}x raw; {mean:6.1f} events per commit; "
                      f"{us:5.1f} us CPU/event here)")
                rate, mean, us = async_rate(backend, wide, args.tasks, args.seconds)
                print(f"append_async, reads listing {args.wide_resources} resources each:   "
                      f"{rate:10,.0f} events/s  ({rate / raw:5.1f}x raw; {mean:6.1f} events per "
                      f"commit; {us:5.1f} us CPU/event here)")
                if args.processes:
                    rate = process_rate(backend, args.processes, args.process_threads, args.seconds)
                    print(f"append, {args.processes} processes x {args.process_threads} threads, one chain: "
                          f"{rate:10,.0f} events/s ({rate / raw:5.1f}x raw; chain verified)")
                if args.verify_events:
                    backend.reset()
                    filled = 0.0
                    for size in (max(args.verify_events // 10, 1), args.verify_events):
                        filled += populate(backend, pool, size)
                        for jobs in sorted({1, args.verify_jobs}):
                            secs, cpu, rss, n, ok = verify_in_child(backend, jobs)
                            print(f"verify {n:>9,} events, {jobs} process(es): {secs:6.2f} s "
                                  f"({n / secs:9,.0f}/s; client CPU {cpu:6.2f} s), "
                                  f"peak RSS {rss:6.1f} MB, ok={ok}")
                    print(f"(log filled through the write path in {filled:.0f} s)")
            finally:
                backend.close()


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "_verify":
        _verify(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    elif len(sys.argv) > 1 and sys.argv[1] == "_appender":
        _appender(sys.argv[2], sys.argv[3], int(sys.argv[4]), float(sys.argv[5]),
                  float(sys.argv[6]))
    else:
        main()
