"""The shared-record read over HTTP against a bare FastAPI endpoint, same run, same server.

Issue 6: ``GET /fhir/Patient/{id}/$everything`` for persons with records from 3
organisations (token verified, access decided, minimised, audit event durably
written) on PostgreSQL, served the way ``joinedup serve`` serves it (uvicorn
with uvloop and httptools, N workers, no access log, JSON logs to a file),
should reach >= 40% of the requests/s of a bare FastAPI JSON endpoint served
with the same uvicorn settings and the same worker count, with p99 <= 50 ms.

What it does, in one run:

1. creates a throwaway PostgreSQL database, migrates it, loads the demo area
   and its agreements, generates a demo population and ingests every export
   through the real pipeline (feeds, mapping, validation, online matching);
2. starts ``joinedup serve`` and picks persons whose ``$everything`` answers,
   for a clinician of a direct-care organisation with a relationship to them,
   with records from >= 3 organisations (read from each entry's ``meta.source``);
3. for each worker count: serves the bare endpoint, then joinedup, and loads
   each with ``wrk`` (a separate process, loopback only) at each concurrency
   level for ``--seconds``, rotating over the chosen (person, token) pairs;
4. serves joinedup twice per worker count: as configured (the per-worker read
   cache on, ADR 0102 second amendment) and with ``JOINEDUP_READ_CACHE_ENTRIES=0``
   (``no cache``: every read goes to the database, the cold-cache / miss figure);
   the cached run's hit rate is what the workers' caches log on shutdown. wrk
   cycles through the chosen pairs in order (``--persons``, at most 100; 50 with
   ``--people 1000``), so after each worker's first read of a person the rest are
   hits: a hot-set workload, nothing written meanwhile;
5. prints requests/s, p50 and p99 latency, the ratio, the load average before
   and after, the audit events written, and whether the audit chain verifies;
6. drops the database.

    .venv/bin/python benchmarks/everything_http.py --people 2000 --seconds 10 --workers 1,2

Needs ``wrk`` (Debian: ``apt-get install wrk``) and a PostgreSQL server at
``--pg`` whose user may create databases.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

PG_DEFAULT = "postgresql://postgres@127.0.0.1:5432/postgres"
DIRECT_CARE = ("RWX", "RWM", "RWC", "J81001", "J81002")
"""The parties of the demo's wessex-direct-care agreement."""
VENV_BIN = Path(sys.executable).parent
SMALL_BODY = {
    "resourceType": "Bundle",
    "type": "searchset",
    "total": 3,
    "entry": [{"resource": {"resourceType": "Patient", "id": f"p{i}", "active": True}}
              for i in range(3)],
}
"""The bare endpoint's answer: a small FHIR-shaped JSON body."""

WRK_LUA = r"""
local pairs_ = {}
for line in io.lines(os.getenv("BENCH_TARGETS")) do
  local path, token = line:match("^(%S+)%s+(%S+)$")
  if path then pairs_[#pairs_ + 1] = {path, token} end
end
local i = 0
function setup(thread)
  i = i + 1
  thread:set("offset", i * 7919)
end
function init(args)
  n = offset or 0
end
function request()
  n = n + 1
  local p = pairs_[(n % #pairs_) + 1]
  return wrk.format("GET", p[1], {["Authorization"] = "Bearer " .. p[2]})
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    "BENCH {\"requests\":%d,\"duration_us\":%d,\"p50_us\":%d,\"p90_us\":%d,"
    .. "\"p99_us\":%d,\"max_us\":%d,\"connect\":%d,\"read\":%d,\"write\":%d,"
    .. "\"status\":%d,\"timeout\":%d}\n",
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, e.connect, e.read, e.write, e.status, e.timeout))
end
"""


def baseline_app() -> Any:
    """The bare endpoint (a uvicorn factory: ``--factory everything_http:baseline_app``)."""
    from fastapi import FastAPI

    app = FastAPI()

    @app.get("/bare")
    async def bare() -> dict[str, Any]:
        return SMALL_BODY

    @app.get("/bare-sync")
    def bare_sync() -> dict[str, Any]:  # threadpool, like joinedup's routes
        return SMALL_BODY

    return app


# -- database and demo -------------------------------------------------------------------
class Throwaway:
    """A PostgreSQL database that exists for this run only."""

    def __init__(self, pg_url: str) -> None:
        from sqlalchemy import create_engine, text

        self._text = text
        self._admin = create_engine(pg_url.replace("postgresql://", "postgresql+psycopg://"),
                                    isolation_level="AUTOCOMMIT")
        self.name = f"joinedup_http_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{self.name}"'))
        self.url = f"{pg_url.rsplit('/', 1)[0]}/{self.name}"

    def drop(self) -> None:
        with self._admin.connect() as conn:
            conn.execute(self._text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": self.name})
            conn.execute(self._text(f'DROP DATABASE IF EXISTS "{self.name}"'))
        self._admin.dispose()


def set_up(settings: Any, seed: int, people: int) -> None:
    from joinedup.demo import generate_to
    from joinedup.demo.commands import _prepare, ingest_exports

    t = time.perf_counter()
    svc, summary = _prepare(settings, seed)
    print(f"registry: {summary.organisations} organisations, "
          f"{summary.practitioners} practitioners ({time.perf_counter() - t:.1f} s)")
    try:
        t = time.perf_counter()
        exports = settings.data_dir / "demo-exports"
        generate_to(exports, seed=seed, people=people)
        ingest_exports(svc, exports)
        print(f"generated and ingested {people:,} people in {time.perf_counter() - t:.1f} s")
    finally:
        svc.audit.close()
        svc.close()


@dataclass(frozen=True)
class Target:
    patient: str
    token: str
    org: str
    records: int
    orgs: tuple[str, ...]
    size: int


def candidates(settings: Any, seed: int, limit: int) -> list[tuple[str, str, str, str, str]]:
    """(patient id, org, practitioner, team) to try: persons with Patient records at
    >= 3 direct-care organisations, asked about by a clinician of each of them."""
    from sqlalchemy import func, select

    from joinedup.demo.area import build_area
    from joinedup.people.models import PersonRecord
    from joinedup.services import build

    clinicians: dict[str, tuple[str, str]] = {}
    for p in build_area(seed).practitioners():
        if p.org_code in DIRECT_CARE and p.role.value == "clinician":
            clinicians.setdefault(p.org_code, (p.id, p.team_code))
    svc = build(settings)
    try:
        with svc.db.session() as s:
            many = (select(PersonRecord.person_id)
                    .where(PersonRecord.org_code.in_(DIRECT_CARE))
                    .group_by(PersonRecord.person_id)
                    .having(func.count(func.distinct(PersonRecord.org_code)) >= 3)
                    .order_by(PersonRecord.person_id))
            rows = s.execute(
                select(PersonRecord.person_id, PersonRecord.org_code, PersonRecord.record_id)
                .where(PersonRecord.person_id.in_(many))
                .order_by(PersonRecord.person_id, PersonRecord.org_code)
            ).all()
    finally:
        svc.audit.close()
        svc.close()
    out: list[tuple[str, str, str, str, str]] = []
    seen: set[str] = set()
    for person, org, record in rows:
        if org not in clinicians or not record.startswith("Patient/"):
            continue
        if person not in seen and len(seen) >= limit:
            break
        seen.add(person)
        practitioner, team = clinicians[org]
        out.append((person, record.split("/", 1)[1], org, practitioner, team))
    return out


def token_for(settings: Any, seed: int, org: str, practitioner: str, team: str) -> str:
    from joinedup.access.purposes import Purpose
    from joinedup.auth.permissions import Permission
    from joinedup.demo.area import build_area
    from joinedup.services import build

    client = next(o.system.client_id for o in build_area(seed).organisations if o.code == org)
    svc = build(settings)
    try:
        issued = svc.issuer.issue(
            org=org, client_id=client, purpose=Purpose.DIRECT_CARE,
            scopes=frozenset({Permission.RECORDS_READ}), practitioner=practitioner,
            role="clinician", team=team,
        )
    finally:
        svc.audit.close()
        svc.close()
    return issued.access_token


def pick_targets(settings: Any, seed: int, base: str, want: int) -> list[Target]:
    """Ask the running service: keep pairs whose answer has records from >= 3 orgs."""
    from joinedup.records.provenance import SOURCE_PREFIX

    tokens: dict[tuple[str, str, str], str] = {}
    chosen: list[Target] = []
    pairs_tried = 0
    done: set[str] = set()
    with httpx.Client(base_url=base, timeout=30) as client:
        for person, patient, org, practitioner, team in candidates(settings, seed, want * 10):
            if person in done:  # one (patient, clinician) pair per person
                continue
            key = (org, practitioner, team)
            if key not in tokens:
                tokens[key] = token_for(settings, seed, *key)
            pairs_tried += 1
            r = client.get(f"/fhir/Patient/{patient}/$everything",
                           headers={"Authorization": f"Bearer {tokens[key]}"})
            if r.status_code != 200:
                continue
            body = r.json()
            orgs = sorted({e["resource"]["meta"]["source"].removeprefix(SOURCE_PREFIX)
                           .split("/", 1)[0] for e in body.get("entry", [])})
            if len(orgs) >= 3 and body["total"] == len(body["entry"]):
                done.add(person)
                chosen.append(Target(patient, tokens[key], org, body["total"], tuple(orgs),
                                     len(r.content)))
                if len(chosen) >= want:
                    break
    print(f"asked $everything about {pairs_tried} (patient, clinician) pairs; "
          f"kept {len(chosen)} with records from >= 3 organisations")
    return chosen


# -- servers and load ----------------------------------------------------------------------
PORTS = range(8110, 8120)
"""The ports this project's benchmark servers may listen on (loopback only)."""


def free_port() -> int:
    for port in PORTS:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise SystemExit("no free port in 8110-8119")


class Server:
    """A uvicorn server in its own process group, up once ``probe`` answers."""

    def __init__(self, argv: list[str], env: dict[str, str], log: Path, port: int,
                 probe: str = "/health") -> None:
        self.port = port
        self._log = log.open("ab")
        self.proc = subprocess.Popen(argv, env=env, stdout=self._log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}; see {log}")
            try:
                httpx.get(f"http://127.0.0.1:{port}{probe}", timeout=1)
                return
            except httpx.HTTPError:
                time.sleep(0.3)
        self.stop()
        raise SystemExit(f"server did not start; see {log}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self._log.close()


def cache_counts(log: Path, since: int) -> dict[str, int]:
    """Hits and misses the workers' read caches logged on shutdown (lines after ``since``)."""
    total = {"hits": 0, "misses": 0}
    with log.open("rb") as f:
        for i, line in enumerate(f):
            if i < since or b'"read cache"' not in line:
                continue
            entry = json.loads(line)
            total["hits"] += int(entry.get("hits", 0))
            total["misses"] += int(entry.get("misses", 0))
    return total


def log_lines(log: Path) -> int:
    return sum(1 for _ in log.open("rb")) if log.exists() else 0


def serve_joinedup(env: dict[str, str], workers: int, log: Path) -> Server:
    port = free_port()
    argv = [str(VENV_BIN / "joinedup"), "serve", "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers)]
    return Server(argv, env, log, port)


def serve_baseline(workers: int, log: Path) -> Server:
    port = free_port()
    argv = [str(VENV_BIN / "uvicorn"), "--factory", "everything_http:baseline_app",
            "--app-dir", str(Path(__file__).parent), "--host", "127.0.0.1", "--port", str(port),
            "--workers", str(workers), "--no-access-log", "--log-level", "warning",
            "--loop", "uvloop", "--http", "httptools"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOINEDUP_")}
    return Server(argv, env, log, port, probe="/bare")


def wrk(port: int, targets: Path, connections: int, seconds: float, threads: int,
        script: Path) -> dict[str, float]:
    threads = min(threads, connections)
    argv = ["wrk", "-t", str(threads), "-c", str(connections), "-d", f"{seconds:g}s",
            "--timeout", "10s", "-s", str(script), f"http://127.0.0.1:{port}/"]
    done = subprocess.run(argv, env={**os.environ, "BENCH_TARGETS": str(targets)},
                          capture_output=True, text=True, timeout=seconds + 60, check=True)
    line = next(x for x in done.stdout.splitlines() if x.startswith("BENCH "))
    raw = json.loads(line[len("BENCH "):])
    non_2xx = 0
    for x in done.stdout.splitlines():
        if "Non-2xx" in x:
            non_2xx = int(x.rsplit(":", 1)[1])
    return {
        "rps": raw["requests"] / (raw["duration_us"] / 1e6),
        "requests": raw["requests"],
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "errors": raw["connect"] + raw["read"] + raw["write"] + raw["timeout"] + non_2xx,
    }


def audit_events(url: str) -> int:
    from sqlalchemy import create_engine, text

    engine = create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("SELECT count(*) FROM audit_events")).scalar_one())
    finally:
        engine.dispose()


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


# -- the run -------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=20261122)
    parser.add_argument("--seconds", type=float, default=10.0, help="per wrk run")
    parser.add_argument("--workers", default="1,2", help="uvicorn worker counts, e.g. 1,2")
    parser.add_argument("--connections", default="8,32", help="wrk concurrency levels")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--persons", type=int, default=100,
                        help="(person, clinician) pairs to rotate over")
    parser.add_argument("--pg", default=PG_DEFAULT, help="PostgreSQL server (admin database)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    parser.add_argument("--no-cold", action="store_true",
                        help="skip the run with the read cache off (every read a miss)")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        raise SystemExit("needs wrk: apt-get install wrk")
    workers = [int(w) for w in args.workers.split(",")]
    levels = [int(c) for c in args.connections.split(",")]

    from joinedup.config import Settings

    work = Path(tempfile.mkdtemp(prefix="joinedup-http-"))
    db = Throwaway(args.pg)
    servers: list[Server] = []
    try:
        settings = Settings(data_dir=work, database_url=db.url, token_ttl_seconds=3600)
        print(f"PostgreSQL database {db.name}; work folder {work}")
        set_up(settings, args.seed, args.people)
        env = {**os.environ, "JOINEDUP_DATA_DIR": str(work), "JOINEDUP_DATABASE_URL": db.url,
               "JOINEDUP_LOG_JSON": "true", "JOINEDUP_LOG_LEVEL": "info"}
        log = work / "server.log"
        first = serve_joinedup(env, 1, log)
        servers.append(first)
        try:
            targets = pick_targets(settings, args.seed, f"http://127.0.0.1:{first.port}",
                                   args.persons)
        finally:
            first.stop()
            servers.remove(first)
        if not targets:
            raise SystemExit("no person has records from 3 organisations visible; "
                             "try a larger --people")
        records = [t.records for t in targets]
        by_org: dict[str, int] = {}
        for t in targets:
            by_org[t.org] = by_org.get(t.org, 0) + 1
        print(f"load: {len(targets)} persons, {sum(records):,} records "
              f"({min(records)}-{max(records)} each, mean {sum(records) / len(records):.1f}); "
              f"asked by clinicians of {by_org}")
        everything_file = work / "everything.txt"
        everything_file.write_text("".join(
            f"/fhir/Patient/{t.patient}/$everything {t.token}\n" for t in targets))
        bare_file = work / "bare.txt"
        bare_file.write_text("/bare x\n")
        bare_sync_file = work / "bare-sync.txt"
        bare_sync_file.write_text("/bare-sync x\n")
        script = work / "rotate.lua"
        script.write_text(WRK_LUA)
        size_bare = len(json.dumps(SMALL_BODY, separators=(",", ":")))
        events_before = audit_events(db.url)

        rows: list[tuple[int, int, str, dict[str, float]]] = []
        print(f"load average before: {load()} (1/5/15 min), {os.cpu_count()} CPUs")
        for w in workers:
            base = serve_baseline(w, work / "baseline.log")
            servers.append(base)
            try:
                for c in levels:
                    wrk(base.port, bare_file, c, 2, args.threads, script)  # warm up
                    rows.append((w, c, "bare async", wrk(base.port, bare_file, c, args.seconds,
                                                          args.threads, script)))
                    rows.append((w, c, "bare sync", wrk(base.port, bare_sync_file, c,
                                                         args.seconds, args.threads, script)))
            finally:
                base.stop()
                servers.remove(base)
            for name, extra in (("joinedup", {}),
                                ("no cache", {"JOINEDUP_READ_CACHE_ENTRIES": "0"})):
                if name == "no cache" and args.no_cold:
                    continue
                since = log_lines(log)
                app = serve_joinedup({**env, **extra}, w, log)
                servers.append(app)
                try:
                    for c in levels:
                        wrk(app.port, everything_file, c, 2, args.threads, script)  # warm up
                        rows.append((w, c, name, wrk(app.port, everything_file, c,
                                                     args.seconds, args.threads, script)))
                finally:
                    app.stop()
                    servers.remove(app)
                if name == "joinedup":
                    counts = cache_counts(log, since)
                    seen = counts["hits"] + counts["misses"]
                    rate = f"{counts['hits'] / seen:.1%}" if seen else "n/a"
                    print(f"workers {w}: read cache {counts['hits']:,} hits, "
                          f"{counts['misses']:,} misses over warm-ups and runs (hit rate {rate}; "
                          f"{len(targets)} distinct persons rotated)")
        print(f"load average after:  {load()}")

        sizes = [t.size for t in targets]
        print(f"\nresponse bodies: bare {size_bare} bytes; $everything "
              f"{min(sizes):,}-{max(sizes):,} bytes (mean {sum(sizes) // len(sizes):,})")
        print(f"\n{'workers':>7} {'conns':>5} {'endpoint':<11} {'req/s':>9} {'p50 ms':>8} "
              f"{'p90 ms':>8} {'p99 ms':>8} {'errors':>6} {'ratio':>7}")
        for w, c, name, r in rows:
            bare = next(x for ww, cc, n, x in rows if ww == w and cc == c and n == "bare async")
            ratio = f"{r['rps'] / bare['rps']:.0%}" if name != "bare async" else ""
            print(f"{w:>7} {c:>5} {name:<11} {r['rps']:>9,.0f} {r['p50_ms']:>8.2f} "
                  f"{r['p90_ms']:>8.2f} {r['p99_ms']:>8.2f} {int(r['errors']):>6} {ratio:>7}")
        print("ratio: requests/s over the bare async endpoint's at the same workers and conns")
        for w, c, name, r in rows:
            if name not in ("joinedup", "no cache"):
                continue
            bare = next(x for ww, cc, n, x in rows if ww == w and cc == c and n == "bare async")
            ratio = r["rps"] / bare["rps"]
            print(f"  {name}: workers {w}, {c} conns: {ratio:.0%} of bare (goal >= 40%: "
                  f"{'met' if ratio >= 0.4 else 'NOT met'}), p99 {r['p99_ms']:.1f} ms "
                  f"(goal <= 50 ms: {'met' if r['p99_ms'] <= 50 else 'NOT met'})")

        events_after = audit_events(db.url)
        served = sum(int(r["requests"]) for _, _, n, r in rows if n in ("joinedup", "no cache"))
        print(f"\naudit events written during the load runs: {events_after - events_before:,} "
              f"(wrk counted {served:,} completed $everything requests; warm-ups add more)")
        verify = subprocess.run([str(VENV_BIN / "joinedup"), "audit", "verify", "--json"],
                                env=env, capture_output=True, text=True, timeout=600)
        print(f"audit verify (exit {verify.returncode}): {verify.stdout.strip()[:600]}")
        print(f"server JSON log: {log_lines(log):,} lines in {log}")
    finally:
        for s in servers:
            s.stop()
        db.drop()
        print(f"dropped database {db.name}")
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
