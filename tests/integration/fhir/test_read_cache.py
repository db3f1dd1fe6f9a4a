"""The ``Patient/$everything`` read cache on PostgreSQL (ADR 0102, second amendment).

Every change below is made through ANOTHER connection (an engine of its own, with
none of the application's hooks), as another worker process would make it; the
test then waits until the application's listener has received every notification
committed so far (``ChangeListener.sync``, the documented consistency window) and
requires the next read to reflect the change, and to equal an answer worked out
afresh with no cache. A randomized sequence of writes checks the same after each.
SQLite has no read cache, so these run on PostgreSQL only.
"""

from __future__ import annotations

import json
import random
import shutil
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, event, text

from joinedup.access.purposes import Purpose
from joinedup.access.read_cache import Answer, PersonEntry, ReadCache
from joinedup.access.relationships import Relationship, RelationshipKind
from joinedup.access.service import AccessService
from joinedup.access.world import RECENT_DAYS, Who, relationships_from
from joinedup.api.fhir.records import _everything_answer
from joinedup.auth.tokens import AccessToken
from joinedup.people.index import PersonIndex
from joinedup.people.models import Person
from joinedup.records.writer import bulk_insert
from joinedup.storage.changes import (
    CHANNEL,
    DIGEST_CHARS,
    LEGACY_CHANNEL,
    ChangeListener,
    KeyDigest,
    read_key_digest,
    watch_local_writes,
)
from joinedup.storage.engine import Database
from tests.integration.fhir import test_records_api
from tests.integration.fhir.test_records_api import Demo, _headers, _other_org_patient

pytestmark = pytest.mark.slow

BASE = "http://testserver/fhir"
_build_demo = test_records_api.demo.__wrapped__  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def demo(migrated_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    if migrated_db.dialect != "postgresql":
        pytest.skip("the read cache is PostgreSQL's (SQLite has none)")
    yield from _build_demo(migrated_db, tmp_path_factory)


@pytest.fixture(scope="module")
def other(demo: Demo) -> Iterator[Engine]:
    """Another connection to the same database, as another process has."""
    url = demo.svc.db.engine.url.render_as_string(hide_password=False)
    engine = create_engine(url, isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def _write(other: Engine, sql: str, **params: Any) -> None:
    with other.connect() as conn:
        conn.execute(text(sql), params)


def _online(demo: Demo) -> None:
    """Start the listener (a read does) and wait until it listens."""
    cache = demo.svc.access.read_cache
    assert cache is not None
    deadline = time.monotonic() + 20
    while not cache.online:
        cache.ticket()
        assert time.monotonic() < deadline, "the read cache listener did not connect"
        time.sleep(0.05)


def _settle(demo: Demo) -> None:
    """Wait until every notification committed so far has reached the cache."""
    assert demo.svc.changes is not None
    assert demo.svc.changes.sync(timeout=20)


def _token(demo: Demo, headers: dict[str, str]) -> AccessToken:
    return demo.svc.verifier().verify(headers["Authorization"].removeprefix("Bearer "))


def _cached(demo: Demo, patient: str, headers: dict[str, str]) -> tuple[str, Answer] | None:
    return demo.svc.access.everything(
        _token(demo, headers), patient, lambda a, f: _everything_answer(a, f, BASE), BASE)


def _fresh(demo: Demo, patient: str, headers: dict[str, str]) -> tuple[str, Answer] | None:
    return demo.svc.access._everything_uncached(
        _token(demo, headers), patient, lambda a, f: _everything_answer(a, f, BASE))


def _hits(demo: Demo) -> int:
    cache = demo.svc.access.read_cache
    assert cache is not None
    return cache.stats()["hits"]


def _owners(demo: Demo, patient: str, headers: dict[str, str] | None = None) -> set[str]:
    r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=headers or demo.insider)
    if r.status_code == 404:
        return set()
    assert r.status_code == 200, r.text
    return {e["resource"]["meta"]["source"].split(":")[3].split("/")[0] for e in r.json()["entry"]}


def _primed(demo: Demo, patient: str) -> set[str]:
    """Read until the answer comes from the cache; the owners it lists."""
    _online(demo)
    before = _owners(demo, patient)
    hits = _hits(demo)
    assert _owners(demo, patient) == before
    assert _hits(demo) > hits  # the second read was served from memory
    return before


def _same_as_fresh(demo: Demo, patient: str, headers: dict[str, str]) -> None:
    assert _cached(demo, patient, headers) == _fresh(demo, patient, headers)


def test_a_consent_objection_from_another_connection_applies_to_the_next_read(
    demo: Demo, other: Engine,
) -> None:
    org, patient = _other_org_patient(demo)
    assert {"RWC", org} <= _primed(demo, patient)
    rwc_patient = demo.patients["RWC"][0]
    _write(other, "INSERT INTO consent_directives (id, patient_id, kind, status, organisation, "
           "recorded, recorded_by_org, recorded_by, version, updated_at, resource) VALUES "
           "(:id, :p, 'objection', 'active', 'RWC', CURRENT_DATE, 'RWC', 'test', 1, now(), '{}')",
           id="cache-objection", p=rwc_patient)
    try:
        _settle(demo)
        assert _owners(demo, patient) == {"RWC"}
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        _write(other, "DELETE FROM consent_directives WHERE id = 'cache-objection'")
    _settle(demo)
    assert {"RWC", org} <= _owners(demo, patient)


def test_a_record_change_from_another_connection_applies_to_the_next_read(
    demo: Demo, other: Engine,
) -> None:
    _org, patient = _other_org_patient(demo)
    _primed(demo, patient)
    found = _cached(demo, patient, demo.insider)
    assert found is not None
    reference = next(r for r in found[1].resources if not r.startswith("Patient/"))
    rtype, rid = reference.split("/")
    _write(other, "UPDATE resources SET body = replace(body, '\"resourceType\"', :probe) "
           "WHERE resource_type = :t AND id = :i",
           probe='"cacheProbe":1,"resourceType"', t=rtype, i=rid)
    try:
        _settle(demo)
        r = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider)
        changed = [e for e in r.json()["entry"] if e["fullUrl"].endswith(f"/{reference}")]
        assert changed
        assert changed[0]["resource"]["cacheProbe"] == 1
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        _write(other, "UPDATE resources SET body = replace(body, :probe, '') "
               "WHERE resource_type = :t AND id = :i", probe='"cacheProbe":1,', t=rtype, i=rid)
    _settle(demo)
    again = demo.client.get(f"/fhir/Patient/{patient}/$everything", headers=demo.insider).json()
    assert all("cacheProbe" not in e["resource"] for e in again["entry"])


def test_a_link_change_from_another_connection_applies_to_the_next_read(
    demo: Demo, other: Engine,
) -> None:
    org, patient = _other_org_patient(demo)
    assert {"RWC", org} <= _primed(demo, patient)
    rwc_patient = demo.patients["RWC"][0]
    stray = str(uuid.uuid4())
    _write(other, "INSERT INTO persons (id, created_at, state, flagged) "
           "VALUES (:id, now(), 'active', false)", id=stray)
    _write(other, "UPDATE person_records SET person_id = :s WHERE record_id = :r",
           s=stray, r=f"Patient/{rwc_patient}")
    try:
        _settle(demo)
        assert "RWC" not in _owners(demo, patient)  # RWC's record is no longer this person's
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        _write(other, "UPDATE person_records SET person_id = :p WHERE record_id = :r",
               p=demo.person, r=f"Patient/{rwc_patient}")
        _write(other, "DELETE FROM persons WHERE id = :s", s=stray)
    _settle(demo)
    assert {"RWC", org} <= _owners(demo, patient)


def test_relationship_evidence_changed_from_another_connection_applies_to_the_next_read(
    demo: Demo, other: Engine,
) -> None:
    org, patient = _other_org_patient(demo)
    assert {"RWC", org} <= _primed(demo, patient)
    subjects = [p for ps in demo.patients.values() for p in ps]
    evidence = "('CareTeam', 'EpisodeOfCare', 'Encounter', 'ServiceRequest')"
    _write(other, f"UPDATE resources SET subject_id = subject_id || '-away' "
           f"WHERE subject_id = ANY(:s) AND resource_type IN {evidence}", s=subjects)
    try:
        _settle(demo)
        # no relationship evidenced any more: only RWC's own records (if any) remain
        assert org not in _owners(demo, patient)
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        _write(other, f"UPDATE resources SET subject_id = left(subject_id, -5) "
               f"WHERE subject_id LIKE '%-away' AND resource_type IN {evidence}")
    _settle(demo)
    assert {"RWC", org} <= _owners(demo, patient)


def test_a_suspended_agreement_applies_to_the_next_read(demo: Demo) -> None:
    """Agreements are files, compiled per worker (each day or on reload); the cache holds
    no decision, only what the decisions are made from, so a reloaded point decides
    every cached person afresh."""
    org, patient = _other_org_patient(demo)
    assert {"RWC", org} <= _primed(demo, patient)
    path = Path(demo.svc.access.agreements_dir) / "wessex-direct-care.yaml"
    kept = path.with_suffix(".keep")
    shutil.copy(path, kept)
    text_ = path.read_text()
    assert "status: active" in text_
    path.write_text(text_.replace("status: active", "status: suspended", 1))
    try:
        demo.svc.access.reload()
        assert org not in _owners(demo, patient)
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        shutil.move(kept, path)
        demo.svc.access.reload()
    assert {"RWC", org} <= _owners(demo, patient)


def test_a_lost_listener_empties_the_cache_and_reads_bypass_it_until_it_is_back(
    demo: Demo, other: Engine,
) -> None:
    org, patient = _other_org_patient(demo)
    assert {"RWC", org} <= _primed(demo, patient)
    cache = demo.svc.access.read_cache
    assert cache is not None
    _write(other, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
           "WHERE application_name = 'joinedup read cache listener' "
           "AND datname = current_database()")
    deadline = time.monotonic() + 20
    while cache.online:  # the listener notices its connection is gone
        assert time.monotonic() < deadline
        time.sleep(0.01)
    assert cache.stats()["entries"] == 0
    rwc_patient = demo.patients["RWC"][0]
    _write(other, "INSERT INTO consent_directives (id, patient_id, kind, status, organisation, "
           "recorded, recorded_by_org, recorded_by, version, updated_at, resource) VALUES "
           "(:id, :p, 'objection', 'active', 'RWC', CURRENT_DATE, 'RWC', 'test', 1, now(), '{}')",
           id="cache-offline", p=rwc_patient)
    try:
        if not cache.online:  # still reconnecting: a read goes to the database
            hits = _hits(demo)
            assert _owners(demo, patient) == {"RWC"}
            assert _hits(demo) == hits or cache.online
        _online(demo)
        assert _owners(demo, patient) == {"RWC"}
        _same_as_fresh(demo, patient, demo.insider)
    finally:
        _write(other, "DELETE FROM consent_directives WHERE id = 'cache-offline'")
    _settle(demo)
    assert {"RWC", org} <= _owners(demo, patient)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cached_answers_equal_fresh_ones_over_random_writes(
    demo: Demo, other: Engine, seed: int,
) -> None:
    rng = random.Random(seed)
    org, _patient = _other_org_patient(demo)
    patients = sorted(p for ps in demo.patients.values() for p in ps)
    social = next(iter(demo.patients))
    readers = [
        demo.insider,
        demo.outsider,
        _headers(demo.svc, org, f"{org}-P001", "clinician"),
        _headers(demo.svc, social, f"{social}-P001", "social-worker"),
    ]
    with other.connect() as conn:
        refs = [tuple(r) for r in conn.execute(text(
            "SELECT resource_type, id FROM resources WHERE subject_id = ANY(:s) ORDER BY 1, 2"),
            {"s": patients})]
    undo: list[tuple[str, dict[str, Any]]] = []
    _online(demo)

    def objection() -> None:
        cid = f"rand-{uuid.uuid4().hex[:12]}"
        to = rng.choice([None, "RWC", org])
        category = None if to else rng.choice(["medications", "conditions", "encounters"])
        _write(other, "INSERT INTO consent_directives (id, patient_id, kind, status, "
               "organisation, category, recorded, recorded_by_org, recorded_by, version, "
               "updated_at, resource) VALUES (:id, :p, 'objection', 'active', :o, :c, "
               "CURRENT_DATE, 'RWC', 'test', 1, now(), '{}')",
               id=cid, p=rng.choice(patients), o=to, c=category)
        undo.append(("DELETE FROM consent_directives WHERE id = :id", {"id": cid}))

    def withdraw() -> None:
        _write(other, "UPDATE consent_directives SET status = 'inactive' "
               "WHERE id LIKE 'rand-%' AND status = 'active'")

    def relabel() -> None:
        rtype, rid = rng.choice(refs)
        with other.connect() as conn:
            was = conn.execute(text("SELECT sensitivity FROM resources WHERE resource_type = :t "
                                    "AND id = :i"), {"t": rtype, "i": rid}).scalar_one()
        _write(other, "UPDATE resources SET sensitivity = :s WHERE resource_type = :t "
               "AND id = :i", s=rng.choice("NRV"), t=rtype, i=rid)
        undo.append(("UPDATE resources SET sensitivity = :s WHERE resource_type = :t "
                     "AND id = :i", {"s": was, "t": rtype, "i": rid}))

    def unlink() -> None:
        moved = rng.choice(patients)
        stray = str(uuid.uuid4())
        _write(other, "INSERT INTO persons (id, created_at, state, flagged) "
               "VALUES (:id, now(), 'active', false)", id=stray)
        _write(other, "UPDATE person_records SET person_id = :s WHERE record_id = :r",
               s=stray, r=f"Patient/{moved}")
        undo.append(("DELETE FROM persons WHERE id = :s", {"s": stray}))
        undo.append(("UPDATE person_records SET person_id = :p WHERE record_id = :r",
                     {"p": demo.person, "r": f"Patient/{moved}"}))

    def relink() -> None:
        while undo and undo[-1][0].startswith("UPDATE person_records"):
            sql, params = undo.pop()
            _write(other, sql, **params)

    try:
        for _step in range(12):
            rng.choice([objection, withdraw, relabel, unlink, relink])()
            _settle(demo)
            for _read in range(3):
                headers = rng.choice(readers)
                asked = rng.choice(patients)
                fresh = _fresh(demo, asked, headers)
                assert _cached(demo, asked, headers) == fresh
                in_memory = demo.svc.access.everything_in_memory(
                    _token(demo, headers), asked, BASE)
                assert in_memory is None or in_memory == fresh
    finally:
        for sql, params in reversed(undo):
            _write(other, sql, **params)
        _settle(demo)
    assert _hits(demo) > 0


def test_an_unknown_patient_id_asked_again_runs_no_sql_until_it_is_linked(
    demo: Demo, other: Engine,
) -> None:
    """As a known id the requester may not see is answered from memory, so is an
    unknown one: how long a request takes does not tell whether the id exists."""
    _online(demo)
    unknown = f"cache-unknown-{uuid.uuid4().hex[:8]}"
    statements: list[str] = []

    def seen(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    engine = demo.svc.db.engine
    assert _cached(demo, unknown, demo.outsider) is None
    event.listen(engine, "before_cursor_execute", seen)
    try:
        assert _cached(demo, unknown, demo.outsider) is None
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert statements == []
    stray = str(uuid.uuid4())
    _write(other, "INSERT INTO persons (id, created_at, state, flagged) "
           "VALUES (:id, now(), 'active', false)", id=stray)
    _write(other, "INSERT INTO person_records (record_id, person_id, org_code, features, rule, "
           "linked_at, linked_by) VALUES (:r, :p, 'RWC', '{}', 'test', now(), 'test')",
           r=f"Patient/{unknown}", p=stray)
    try:
        _settle(demo)
        found = _cached(demo, unknown, demo.outsider)
        assert found is not None
        assert found[0] == stray
    finally:
        _write(other, "DELETE FROM person_records WHERE record_id = :r", r=f"Patient/{unknown}")
        _write(other, "DELETE FROM persons WHERE id = :s", s=stray)
    _settle(demo)
    assert _cached(demo, unknown, demo.outsider) is None


# -- the lease: the cache serves only while its own heartbeats come back -----------------

def _until(what: str, done: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.02)


def _own_cache(demo: Demo, lease: float = 1.5) -> tuple[ReadCache, ChangeListener]:
    holder: list[ChangeListener] = []
    cache = ReadCache(max_entries=10, max_bytes=10**8, lease_seconds=lease,
                      start_listening=lambda: holder[0].start())
    listener = ChangeListener(demo.svc.db.engine, cache, heartbeat_seconds=lease / 3)
    holder.append(listener)
    cache.ticket()  # starts the listener
    _until("the cache is online", lambda: cache.online)
    return cache, listener


def test_the_lease_keeps_a_working_listeners_cache_online(demo: Demo) -> None:
    _org, patient = _other_org_patient(demo)
    _primed(demo, patient)
    changes, cache = demo.svc.changes, demo.svc.access.read_cache
    assert changes is not None
    assert cache is not None
    back = changes.heartbeats_back
    _until("three more heartbeats came back", lambda: changes.heartbeats_back >= back + 3)
    assert cache.online
    hits = _hits(demo)
    _owners(demo, patient)
    assert _hits(demo) > hits  # still answered from memory: the heartbeats cleared nothing


def test_a_listener_that_stops_receiving_takes_its_cache_offline(demo: Demo) -> None:
    """As behind a transaction-pooling proxy: LISTEN ran, the connection works, nothing
    arrives. Without the lease the cache would serve from memory for ever."""
    cache, listener = _own_cache(demo)
    try:
        assert cache.put(cache.ticket(), PersonEntry("p1", "person-1", ("p1",), ()))
        listener.stop_receiving()
        _until("the cache is offline", lambda: not cache.online)
        assert cache.stats()["entries"] == 0
        sent = listener.heartbeats_sent
        _until("three more heartbeats were sent", lambda: listener.heartbeats_sent >= sent + 3)
        assert not cache.online  # sent, never received: it stays offline
        assert cache.ticket() is None
        assert listener.started
    finally:
        listener.stop(wait=5)


def test_a_stalled_heartbeat_takes_the_cache_offline_and_it_returns_empty(demo: Demo) -> None:
    """As when the database host vanishes (a half-open connection): the heartbeats stop
    coming back. Another listener's heartbeats, still arriving, do not renew this lease."""
    cache, listener = _own_cache(demo)
    _other_cache, other_listener = _own_cache(demo)
    try:
        assert cache.put(cache.ticket(), PersonEntry("p1", "person-1", ("p1",), ()))
        listener.hold_heartbeats()
        _until("the cache is offline", lambda: not cache.online)
        assert cache.get("p1") is None
        sent = other_listener.heartbeats_sent
        _until("the other listener sent three more",
               lambda: other_listener.heartbeats_sent >= sent + 3)
        assert not cache.online
        listener.hold_heartbeats(False)
        _until("the cache is online again", lambda: cache.online)
        assert cache.get("p1") is None  # what was missed is unknown: it starts empty
    finally:
        listener.stop(wait=5)
        other_listener.stop(wait=5)


# -- own writes that bypass SQLAlchemy, and the triggers' functions --------------------

def test_a_bulk_copy_empties_the_writers_own_cache_at_its_commit(demo: Demo) -> None:
    """``COPY`` on the driver's cursor is not seen by the statement hook; without a
    notification (no listener here) only the own-write hooks can empty the cache."""
    engine = demo.svc.db.engine
    cache = ReadCache(max_entries=10, max_bytes=10**8, lease_seconds=600)
    cache.listening(True, _digest(demo))
    cache.heartbeat(time.monotonic())
    unwatch = watch_local_writes(engine, cache.changed_everything)
    stray = str(uuid.uuid4())
    try:
        assert cache.put(cache.ticket(), PersonEntry("p1", "person-1", ("p1",), ()))
        table = Person.__table__
        with engine.begin() as conn:
            bulk_insert(conn, table, ("id", "created_at", "state", "flagged"),  # type: ignore[arg-type]
                        [(stray, datetime.now(UTC), "active", False)])
        assert cache.get("p1") is None
    finally:
        unwatch()
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM persons WHERE id = :s"), {"s": stray})


def _conninfo(demo: Demo) -> str:
    url = demo.svc.db.engine.url.set(drivername="postgresql")
    return url.render_as_string(hide_password=False)


def _notified(
    demo: Demo, *statements: str, channel: str = CHANNEL, **params: Any,
) -> list[str]:
    """The payloads on ``channel`` from running ``statements`` in a transaction."""
    import psycopg

    conninfo = _conninfo(demo)
    with psycopg.connect(conninfo, autocommit=True) as listen:
        listen.execute(f"LISTEN {channel}")
        with psycopg.connect(conninfo) as conn:
            for sql in statements:
                conn.execute(sql, params)  # type: ignore[call-overload]
            conn.commit()
            marker = uuid.uuid4().hex
            conn.execute("SELECT pg_notify(%s, %s)", (channel, marker))
            conn.commit()
        got: list[str] = []
        for note in listen.notifies(timeout=20):
            if note.payload == marker:
                return got
            got.append(note.payload)
    raise AssertionError(f"the marker did not arrive; got {got}")


def _digest(demo: Demo) -> KeyDigest:
    import psycopg

    with psycopg.connect(_conninfo(demo)) as conn:
        return read_key_digest(conn)


def _named(payload: str, digest: KeyDigest) -> list[str]:
    """A digests payload's digests, after checking it names the salt they were made with."""
    first, *digests = payload.split()
    assert first == f"k:{digest.key_id}"
    return digests


def test_a_payload_over_the_byte_limit_becomes_everything(demo: Demo) -> None:
    """The bound is on the digests' bytes: 500 keys' digests (8,500 bytes with their
    spaces) pass 7,000; 300 (5,100) do not."""
    digest = _digest(demo)
    many = [f"k{i}" for i in range(500)]
    got = _notified(demo, "SELECT joinedup_read_cache_notify(%(k)s::text[])", k=many)
    assert got == ["*"]
    some = many[:300]
    got = _notified(demo, "SELECT joinedup_read_cache_notify(%(k)s::text[])", k=some)
    assert len(got) == 1
    assert sorted(_named(got[0], digest)) == sorted(digest(k) for k in some)


def test_payloads_carry_keyed_digests_not_ids(demo: Demo) -> None:
    """A non-ASCII key too (the digest is over its UTF-8 bytes, as in Python)."""
    digest = _digest(demo)
    keys = ["\u00e9" * 10, "patient-1", str(uuid.uuid4())]
    got = _notified(demo, "SELECT joinedup_read_cache_notify(%(k)s::text[])", k=keys)
    assert len(got) == 1
    digests = _named(got[0], digest)
    assert sorted(digests) == sorted(digest(k) for k in keys)
    assert all(len(d) == DIGEST_CHARS and int(d, 16) >= 0 for d in digests)
    assert not any(k in got[0] for k in keys)
    # the salt is per deployment: another salt gives other digests
    assert {KeyDigest(b"another salt, 32 bytes long.....", "x")(k) for k in keys} \
        .isdisjoint(digests)


def test_the_old_channel_gets_only_everything_once_per_transaction(demo: Demo) -> None:
    """A worker on the code before 0014 listens there: it must drop its cache on every
    change (it cannot match digests), and see no id."""
    stray = str(uuid.uuid4())
    got = _notified(
        demo,
        "INSERT INTO persons (id, created_at, state, flagged) "
        "VALUES (%(s)s, now(), 'active', false)",
        "DELETE FROM persons WHERE id = %(s)s",
        channel=LEGACY_CHANNEL, s=stray,
    )
    assert got == ["*"]


def test_the_triggers_notify_whatever_the_writers_search_path(demo: Demo) -> None:
    stray = str(uuid.uuid4())
    schema = demo.svc.db.engine.dialect.default_schema_name or "public"
    got = _notified(
        demo,
        "SET LOCAL search_path TO pg_catalog",
        f"INSERT INTO {schema}.persons (id, created_at, state, flagged) "
        "VALUES (%(s)s, now(), 'active', false)",
        f"DELETE FROM {schema}.persons WHERE id = %(s)s",
        s=stray,
    )
    digest = _digest(demo)
    # (identical payloads in one transaction: sent once)
    assert got == [f"k:{digest.key_id} {digest(stray)}"]


# -- a warm entry read again: merges, the day, and who asks ------------------------------

def _reference(
    demo: Demo, patient: str, headers: dict[str, str], today: date | None = None,
    agreements: Path | None = None,
) -> tuple[str, Answer] | None:
    """The answer worked out by a service of its own (no read cache, no decision tables
    kept from earlier requests): what any cache must agree with."""
    svc = demo.svc
    fresh = AccessService(agreements or svc.access.agreements_dir, svc.registry, svc.records,
                          svc.people, today=(lambda: today) if today else date.today)
    return fresh._everything_uncached(
        _token(demo, headers), patient, lambda a, f: _everything_answer(a, f, BASE))


def _warm(demo: Demo, patient: str, headers: dict[str, str]) -> tuple[str, Answer] | None:
    """Read twice, the second from memory (a warm entry); that answer."""
    _online(demo)
    _cached(demo, patient, headers)
    hits = _hits(demo)
    found = _cached(demo, patient, headers)
    assert _hits(demo) > hits
    return found


def _owners_of(found: tuple[str, Answer] | None) -> set[str]:
    """The organisations whose records an answer serves."""
    if found is None:
        return set()
    return {json.loads(e)["resource"]["meta"]["source"].split(":")[3].split("/")[0]
            for e in found[1].entries}


def test_a_merge_and_an_unmerge_from_another_connection_apply_to_warm_entries(
    demo: Demo, other: Engine,
) -> None:
    """Split RWC's record off into a person of its own (setup), warm both persons'
    entries, then merge and unmerge them through the person index of another process."""
    org, patient = _other_org_patient(demo)
    rwc_patient = demo.patients["RWC"][0]
    whole = _warm(demo, patient, demo.insider)
    assert whole is not None
    assert {"RWC", org} <= _owners(demo, patient)
    stray = str(uuid.uuid4())
    _write(other, "INSERT INTO persons (id, created_at, state, flagged) "
           "VALUES (:id, now(), 'active', false)", id=stray)
    _write(other, "UPDATE person_records SET person_id = :s WHERE record_id = :r",
           s=stray, r=f"Patient/{rwc_patient}")
    other_db = Database.from_url(demo.svc.db.engine.url.render_as_string(hide_password=False))
    index = PersonIndex(other_db, demo.svc.people._matcher)
    try:
        _settle(demo)
        split = {p: _warm(demo, p, demo.insider) for p in (patient, rwc_patient)}
        assert split[patient] != whole  # RWC's records are someone else's now
        assert split[rwc_patient] is not None
        assert split[rwc_patient][0] == stray

        merge = index.merge(demo.person, stray, by="test", reason="the same person")
        _settle(demo)
        for p in (patient, rwc_patient):
            merged = _cached(demo, p, demo.insider)
            assert merged == _reference(demo, p, demo.insider)
            assert merged is not None
            assert merged[0] == demo.person
            assert merged[1] == whole[1]  # one person again: the whole record
        for p in (patient, rwc_patient):
            _warm(demo, p, demo.insider)

        index.unmerge(merge, by="test")
        _settle(demo)
        for p in (patient, rwc_patient):
            unmerged = _cached(demo, p, demo.insider)
            assert unmerged == _reference(demo, p, demo.insider)
            assert unmerged == split[p]
    finally:
        # leave the demo as it was: RWC's record back with the person, the stray merged
        with other.connect() as conn:
            state = conn.execute(text("SELECT state FROM persons WHERE id = :s"),
                                 {"s": stray}).scalar_one()
        if state == "active":
            index.merge(demo.person, stray, by="test", reason="restore the demo")
        other_db.dispose()
    _settle(demo)
    assert _cached(demo, patient, demo.insider) == whole


def _evidence_days(demo: Demo, patient: str) -> set[date]:
    """Days on which a relationship of the demo person's evidence starts or stops
    counting: a period's end (and the day after), a recency window's last day (and
    the day after)."""
    cache = demo.svc.access.read_cache
    assert cache is not None
    _warm(demo, patient, demo.insider)
    entry = cache.get(patient, count=False)
    assert entry is not None
    days: set[date] = set()
    for r in entry.evidence:
        found = [r.get("authoredOn"), *(r.get("period") or {}).values()]
        for text_ in found:
            if isinstance(text_, str) and len(text_) >= 10:
                day = date.fromisoformat(text_[:10])
                for edge in (day, day + timedelta(days=RECENT_DAYS)):
                    days |= {edge, edge + timedelta(days=1)}
    return days


def test_a_warm_entry_is_not_served_stale_after_midnight(
    demo: Demo, other: Engine, tmp_path: Path,
) -> None:
    """What a read's answer depends on the day through: an agreement's start (and
    end), a consent directive's start and end, relationships'
    periods and recency windows. Stepping a service's clock over each such day, a
    read of a warm entry equals one worked out afresh on that day."""
    org, patient = _other_org_patient(demo)
    rwc_patient = demo.patients["RWC"][0]
    clock = [date.today()]
    day0 = clock[0]
    day1, day2 = day0 + timedelta(days=1), day0 + timedelta(days=2)
    agreements = tmp_path / "agreements"
    shutil.copytree(demo.svc.access.agreements_dir, agreements)
    direct_care = agreements / "wessex-direct-care.yaml"
    assert "start: 2026-04-01" in direct_care.read_text()
    direct_care.write_text(direct_care.read_text().replace(
        "start: 2026-04-01", f"start: {day1.isoformat()}"))  # in force from tomorrow
    cache, listener = _own_cache(demo, lease=600.0)
    svc = demo.svc
    service = AccessService(agreements, svc.registry, svc.records, svc.people,
                            today=lambda: clock[0], read_cache=cache)
    last_day = date(2028, 4, 1)  # past the end of two demo agreements (2028-03-31)
    days = sorted({day0, day1, day2, day2 + timedelta(days=1)}
                  | {d for d in _evidence_days(demo, patient) if day2 < d <= last_day})
    _write(other, "INSERT INTO consent_directives (id, patient_id, kind, status, organisation, "
           "recorded, start, recorded_by_org, recorded_by, version, updated_at, resource) "
           "VALUES ('cache-day2', :p, 'objection', 'active', :o, CURRENT_DATE, :start, "
           "'RWC', 'test', 1, now(), '{}')", p=rwc_patient, o="RWC", start=day2)
    readers = [demo.insider, demo.outsider, _headers(svc, org, f"{org}-P001", "clinician")]

    def read(headers: dict[str, str]) -> tuple[str, Answer] | None:
        return service.everything(_token(demo, headers), patient,
                                  lambda a, f: _everything_answer(a, f, BASE), BASE)

    try:
        assert listener.sync(timeout=20)
        answers: dict[date, tuple[str, Answer] | None] = {}
        for day in days:
            clock[0] = day
            for headers in readers:
                expected = _reference(demo, patient, headers, today=day, agreements=agreements)
                # first the event loop's path, before any read has compiled the day's point
                in_memory = service.everything_in_memory(_token(demo, headers), patient, BASE)
                assert in_memory is None or in_memory == expected, f"stale in memory on {day}"
                assert read(headers) == expected, f"stale on {day}"
                assert read(headers) == expected  # and from memory
                in_memory = service.everything_in_memory(_token(demo, headers), patient, BASE)
                assert in_memory is None or in_memory == expected
            answers[day] = read(demo.insider)
        # not vacuous: the agreement starts on day 1, the objection on day 2
        assert org not in _owners_of(answers[day0])
        assert org in _owners_of(answers[day1])
        assert _owners_of(answers[day2]) == {"RWC"}  # the objection to sharing with RWC
        assert cache.stats()["hits"] > 0
    finally:
        listener.stop(wait=5)
        _write(other, "DELETE FROM consent_directives WHERE id = 'cache-day2'")
        _settle(demo)


def _reader_variants(demo: Demo) -> dict[str, dict[str, str]]:
    insider = _token(demo, demo.insider)
    assert insider.practitioner is not None
    org, _patient = _other_org_patient(demo)
    return {
        "purpose": _headers(demo.svc, "RWC", insider.practitioner, "clinician",
                            purpose=Purpose.SAFEGUARDING, team=insider.team),
        "role": _headers(demo.svc, "RWC", insider.practitioner, "admin", team=insider.team),
        "organisation": _headers(demo.svc, org, f"{org}-P001", "clinician"),
    }


@pytest.mark.parametrize("variant", ["purpose", "role", "organisation"])
def test_a_warm_entry_read_by_another_purpose_role_or_organisation_gets_its_own_answer(
    demo: Demo, variant: str,
) -> None:
    """The insider's direct-care answer is kept; the same person read under another
    purpose (the same practitioner), in another role, or from another organisation
    gets the answer for that requester, not the kept one; and then the kept one is
    still the insider's."""
    _org, patient = _other_org_patient(demo)
    headers = _reader_variants(demo)[variant]
    kept = _warm(demo, patient, demo.insider)
    expected = _reference(demo, patient, headers)
    assert expected is not None
    assert expected != kept  # not vacuous: this requester's answer differs
    assert _cached(demo, patient, headers) == expected
    assert _cached(demo, patient, headers) == expected  # and from memory
    in_memory = demo.svc.access.everything_in_memory(_token(demo, headers), patient, BASE)
    assert in_memory is None or in_memory == expected
    assert _cached(demo, patient, demo.insider) == kept


def test_two_organisations_with_the_same_relationship_get_their_own_answers(
    demo: Demo, other: Engine,
) -> None:
    """The case the decision tables are shared in: practitioners of two organisations
    that hold the person's records, with the same relationship (a self-declaration with
    the same reason, no other evidence naming them). The second reads the first's warm
    entry and gets its own organisation's answer."""
    _org, patient = _other_org_patient(demo)
    _warm(demo, patient, demo.insider)
    cache = demo.svc.access.read_cache
    assert cache is not None
    entry = cache.get(patient, count=False)
    assert entry is not None
    reason = "cache test: covering the ward"
    declared = (Relationship(RelationshipKind.SELF_DECLARED, reason),)
    by_relationships: dict[Any, list[str]] = {}
    for org in sorted(demo.patients):
        who = Who(org, f"{org}-cache-declared", None)
        kinds = relationships_from(entry.evidence, who, date.today(), declared=declared)
        by_relationships.setdefault(kinds, []).append(org)
    pair = next((orgs[:2] for orgs in by_relationships.values() if len(orgs) >= 2), None)
    assert pair is not None, "no two organisations with the same relationship"
    expires = datetime.now(UTC) + timedelta(hours=1)
    for org in pair:
        _write(other, "INSERT INTO declared_relationships (id, patient_id, org_code, "
               "practitioner, reason, declared_at, expires_at) VALUES "
               "(:id, :p, :o, :pr, :r, now(), :e)", id=str(uuid.uuid4()), p=patient, o=org,
               pr=f"{org}-cache-declared", r=reason, e=expires)
    first, second = (_headers(demo.svc, org, f"{org}-cache-declared", "clinician")
                     for org in pair)
    try:
        _settle(demo)
        kept = _warm(demo, patient, first)
        assert kept == _reference(demo, patient, first)
        expected = _reference(demo, patient, second)
        assert expected != kept  # not vacuous: each organisation sees its own records
        assert _cached(demo, patient, second) == expected
        assert _cached(demo, patient, second) == expected  # and from memory
        in_memory = demo.svc.access.everything_in_memory(_token(demo, second), patient, BASE)
        assert in_memory is None or in_memory == expected
    finally:
        _write(other, "DELETE FROM declared_relationships WHERE reason = :r", r=reason)
        _settle(demo)


# -- the notification queue and the salt -----------------------------------------------

def test_a_near_full_notification_queue_keeps_the_cache_offline(demo: Demo) -> None:
    """Past ``offline_queue_usage`` (here 0: any queue) no heartbeat is sent, so the
    lease never starts and every read goes to the database."""
    holder: list[ChangeListener] = []
    cache = ReadCache(max_entries=10, max_bytes=10**8, lease_seconds=1.5,
                      start_listening=lambda: holder[0].start())
    listener = ChangeListener(demo.svc.db.engine, cache, heartbeat_seconds=0.5,
                              offline_queue_usage=0.0)
    holder.append(listener)
    try:
        cache.ticket()
        _until("the queue's usage was read", lambda: listener.queue_usage is not None)
        usage = listener.queue_usage
        assert usage is not None
        assert 0.0 <= usage < 1.0
        _until("three heartbeats' queue reads", lambda: listener.queue_reads >= 3)
        assert listener.heartbeats_sent == 0
        assert not cache.online
        assert cache.ticket() is None
    finally:
        listener.stop(wait=5)


def test_a_new_salt_takes_the_cache_offline_until_its_listener_has_read_it(
    demo: Demo, other: Engine,
) -> None:
    """Digests made with another salt would never match: a write to the salt's row
    notifies ``key:changed`` (before any digest made with the new salt), the cache goes
    offline at once, the listener reconnects and reads the new one, and the cache comes
    back empty with it. (The lease here is 10 minutes: only the notification, not the
    heartbeat's check, can take it offline within the test's wait.)"""
    cache, listener = _own_cache(demo, lease=600.0)
    with other.connect() as conn:
        salt, key_id = conn.execute(text("SELECT salt, key_id FROM read_cache_key")).one()
    try:
        assert cache.put(cache.ticket(), PersonEntry("p1", "person-1", ("p1",), ()))
        _write(other, "UPDATE read_cache_key SET salt = sha256(salt), key_id = :k",
               k=f"{key_id}-test")
        _until("the cache is offline", lambda: not cache.online, timeout=20)
        assert cache.get("p1") is None
        _until("the cache is online again", lambda: cache.online)
        assert listener._digest is not None
        assert listener._digest.key_id == f"{key_id}-test"
        assert cache.put(cache.ticket(), PersonEntry("p1", "person-1", ("p1",), ()))
        got = _notified(demo, "SELECT joinedup_read_cache_notify(ARRAY['person-1'])")
        assert got == [f"k:{key_id}-test {listener._digest('person-1')}"]
        cache.changed(_named(got[0], listener._digest))
        assert cache.get("p1") is None
    finally:
        _write(other, "UPDATE read_cache_key SET salt = :s, key_id = :k", s=salt, k=key_id)
        listener.stop(wait=5)
    changes = demo.svc.changes
    assert changes is not None
    _until("the application's listener read the salt back",
           lambda: changes._digest is not None and changes._digest.key_id == key_id)
    _online(demo)
    _settle(demo)


def test_a_declaration_that_expires_is_not_served_from_a_warm_entry(
    demo: Demo, other: Engine,
) -> None:
    """A requester context stands until its earliest declaration expires (the wall
    clock, not a day): read on a warm entry after the expiry, the answer is the one
    without the declaration."""
    org, patient = _other_org_patient(demo)
    practitioner = f"{org}-cache-expiring"
    headers = _headers(demo.svc, org, practitioner, "clinician")
    reason = "cache test: expiring"
    _online(demo)
    without = _reference(demo, patient, headers)
    expires = datetime.now(UTC) + timedelta(seconds=6)
    _write(other, "INSERT INTO declared_relationships (id, patient_id, org_code, practitioner, "
           "reason, declared_at, expires_at) VALUES (:id, :p, :o, :pr, :r, now(), :e)",
           id=str(uuid.uuid4()), p=patient, o=org, pr=practitioner, r=reason, e=expires)
    try:
        _settle(demo)
        declared = _warm(demo, patient, headers)
        assert datetime.now(UTC) < expires, "too slow to warm the entry before the expiry"
        assert declared != without  # not vacuous: the declaration mattered
        _until("the declaration expired", lambda: datetime.now(UTC) > expires)
        assert _cached(demo, patient, headers) == without
        assert _cached(demo, patient, headers) == _reference(demo, patient, headers)
    finally:
        _write(other, "DELETE FROM declared_relationships WHERE reason = :r", r=reason)
        _settle(demo)


def test_the_apps_metrics_show_the_notification_queue_usage(demo: Demo) -> None:
    """The application's /metrics carries the listener's reading of
    ``pg_notification_queue_usage()`` (a fraction of the queue, read with the heartbeat)."""
    name = "joinedup_read_cache_notify_queue_usage"
    listener = demo.svc.changes
    assert listener is not None
    _until("the queue's usage was read", lambda: listener.queue_usage is not None)
    lines = [line for line in demo.client.get("/metrics").text.splitlines()
             if line.startswith(name + " ")]
    assert len(lines) == 1, "the gauge is not in the application's metrics"
    assert 0.0 <= float(lines[0].split()[1]) <= 1.0
