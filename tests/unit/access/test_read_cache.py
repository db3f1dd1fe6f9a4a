"""The read cache's bookkeeping on its own: tickets, invalidation, bounds, the listener's state."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import create_engine

from joinedup.access.read_cache import PersonEntry, ReadCache
from joinedup.storage.changes import (
    REKEY,
    ChangeListener,
    KeyDigest,
    register_queue_gauge,
    writes_watched_table,
)

DIGEST = KeyDigest(b"a test salt of 32 bytes, no more", "test-key")


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _cache(clock: Clock | None = None, **kw: int) -> ReadCache:
    clock = clock or Clock()
    cache = ReadCache(max_entries=kw.get("entries", 10), max_bytes=kw.get("bytes", 10**9),
                      lease_seconds=3.0, clock=clock)
    cache.listening(True, DIGEST)
    cache.heartbeat(clock.now)
    return cache


def _changed(cache: ReadCache, *keys: str) -> None:
    """As the listener hands over a notification: the keys' digests (``*`` as is)."""
    cache.changed([k if k == "*" else DIGEST(k) for k in keys])


def _entry(patient: str, person: str = "", patients: tuple[str, ...] = ()) -> PersonEntry:
    return PersonEntry(patient, person or f"person-{patient}", patients or (patient,), ())


def test_an_entry_read_after_a_ticket_is_kept_and_found() -> None:
    cache = _cache()
    ticket = cache.ticket()
    assert cache.put(ticket, _entry("p1"))
    assert cache.get("p1") is not None


def test_a_change_after_the_ticket_refuses_the_entry_it_read() -> None:
    cache = _cache()
    ticket = cache.ticket()
    _changed(cache, "person-p1")  # committed while the read was under way
    assert not cache.put(ticket, _entry("p1"))
    assert cache.get("p1") is None
    assert cache.put(cache.ticket(), _entry("p1"))  # a read begun afterwards is kept


def test_a_change_to_another_key_does_not_refuse_it() -> None:
    cache = _cache()
    ticket = cache.ticket()
    _changed(cache, "someone-else")
    assert cache.put(ticket, _entry("p1"))


def test_a_change_drops_every_entry_holding_the_key() -> None:
    cache = _cache()
    for patient in ("p1", "p2", "p3"):
        assert cache.put(cache.ticket(), _entry(patient, "person-a", ("p1", "p2", "p3")))
    assert cache.put(cache.ticket(), _entry("q1"))
    _changed(cache, "p2")
    assert [cache.get(p) for p in ("p1", "p2", "p3")] == [None, None, None]
    assert cache.get("q1") is not None
    _changed(cache, "*")
    assert cache.get("q1") is None


def test_additions_to_a_dropped_entry_are_refused() -> None:
    cache = _cache()
    entry = _entry("p1")
    ticket = cache.ticket()
    assert cache.put(ticket, entry)
    _changed(cache, "p1")
    cache.add_records(cache.ticket(), entry, "rows", ())
    assert entry.records == {}


def test_without_a_listener_nothing_is_kept_or_served() -> None:
    cache = _cache()
    assert cache.put(cache.ticket(), _entry("p1"))
    cache.listening(False)
    assert cache.get("p1") is None
    assert cache.ticket() is None
    assert not cache.put(None, _entry("p2"))
    old = cache.ticket()
    cache.listening(True, DIGEST)  # back: what was missed is unknown, so it starts empty
    assert cache.get("p1") is None
    assert not cache.put(old, _entry("p3"))


def test_listening_alone_is_not_enough_a_heartbeat_must_come_back() -> None:
    clock = Clock()
    cache = ReadCache(max_entries=10, max_bytes=10**9, lease_seconds=3.0, clock=clock)
    cache.listening(True, DIGEST)  # LISTEN ran: through a transaction pooler it may never deliver
    assert not cache.online
    assert cache.ticket() is None
    cache.heartbeat(clock.now)
    assert cache.online
    assert cache.put(cache.ticket(), _entry("p1"))


def test_when_the_lease_runs_out_everything_is_dropped_and_nothing_kept() -> None:
    clock = Clock()
    cache = _cache(clock)
    assert cache.put(cache.ticket(), _entry("p1"))
    ticket = cache.ticket()
    clock.now += 2.9
    assert cache.get("p1") is not None  # within the lease
    clock.now += 0.2  # no heartbeat for longer than the lease
    assert cache.get("p1") is None
    assert cache.ticket() is None
    assert not cache.put(ticket, _entry("p2"))  # a read begun under the lease
    assert cache.stats()["entries"] == 0
    assert not cache.online


def test_a_lapsed_lease_nobody_noticed_still_starts_empty_when_heartbeats_return() -> None:
    clock = Clock()
    cache = _cache(clock)
    assert cache.put(cache.ticket(), _entry("p1"))
    ticket = cache.ticket()
    clock.now += 10  # lapsed, with no read in between
    cache.heartbeat(clock.now)
    assert cache.online
    assert cache.get("p1") is None
    assert not cache.put(ticket, _entry("p2"))


def test_heartbeats_extend_the_lease_from_when_they_were_sent() -> None:
    clock = Clock()
    cache = _cache(clock)
    assert cache.put(cache.ticket(), _entry("p1"))
    for _ in range(5):
        clock.now += 1
        cache.heartbeat(clock.now - 0.5)  # sent half a second ago
    assert cache.get("p1") is not None
    clock.now += 2.6  # 3.1 s after the last heartbeat was sent
    assert cache.get("p1") is None
    cache.heartbeat(clock.now - 5)  # one that took longer than the lease: no lease
    assert not cache.online


def test_a_lost_connection_ends_the_lease_at_once() -> None:
    clock = Clock()
    cache = _cache(clock)
    cache.listening(False)
    cache.heartbeat(clock.now)  # a late one from the connection that went: ignored
    assert not cache.online


def test_an_unknown_id_is_remembered_until_its_id_is_notified() -> None:
    clock = Clock()
    cache = _cache(clock, entries=2)
    ticket = cache.ticket()
    _changed(cache, "x1")  # linked while the read was under way
    assert not cache.put_unknown(ticket, "x1")
    assert not cache.unknown("x1")
    assert cache.put_unknown(cache.ticket(), "x1")
    assert cache.unknown("x1")
    _changed(cache, "person-9", "x1")  # a record Patient/x1 was linked
    assert not cache.unknown("x1")
    for patient in ("x1", "x2", "x3"):
        assert cache.put_unknown(cache.ticket(), patient)
    assert not cache.unknown("x1")  # bounded: the least recently asked went
    assert cache.unknown("x3")
    assert cache.put(cache.ticket(), _entry("p1"))
    assert cache.put(cache.ticket(), _entry("p2"))
    assert cache.put_unknown(cache.ticket(), "x4")
    assert cache.get("p1") is not None  # unknown ids do not evict persons
    clock.now += 10
    assert not cache.unknown("x3")  # nor outlive the lease


def test_an_id_no_record_can_have_is_not_remembered() -> None:
    """Ids past FHIR's 64 characters are asked of the database each time instead of
    being kept uncounted by ``max_bytes`` (review)."""
    cache = _cache(Clock())
    assert cache.put_unknown(cache.ticket(), "a" * 64)
    assert cache.unknown("a" * 64)
    assert not cache.put_unknown(cache.ticket(), "a" * 65)
    assert not cache.unknown("a" * 65)


class _Sink:
    def __init__(self) -> None:
        self.changes: list[list[str]] = []
        self.beats: list[float] = []

    def changed(self, keys: object) -> None:
        self.changes.append(list(keys))  # type: ignore[call-overload]

    def listening(self, up: bool, digest: object = None) -> None:
        pass

    def heartbeat(self, sent_at: float) -> None:
        self.beats.append(sent_at)


def test_heartbeats_invalidate_nothing_and_only_this_listeners_renew_the_lease() -> None:
    sink = _Sink()
    listener = ChangeListener(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"), sink)
    listener._sent[7] = 42.0
    listener._deliver("hb:someoneelse:7")  # another worker's heartbeat
    listener._deliver(f"hb:{listener._nonce}:8")  # not one it sent
    listener._deliver("hb:garbage")
    assert sink.changes == []
    assert sink.beats == []
    listener._deliver(f"hb:{listener._nonce}:7")
    assert sink.beats == [42.0]
    assert sink.changes == []
    listener._deliver("p1 person-1")  # names no salt: everything
    assert sink.changes == [["*"]]


def test_a_payload_made_with_another_salt_drops_everything() -> None:
    """Digests are delivered at commit: a trigger that ran before a salt change sends,
    after the listener holds the new salt, digests it can match to nothing (review).
    Only a payload naming the listener's own salt invalidates by digest."""
    sink = _Sink()
    listener = ChangeListener(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"), sink)
    listener._digest = DIGEST
    listener._deliver(f"k:{DIGEST.key_id} {DIGEST('p1')} {DIGEST('person-1')}")
    assert sink.changes == [[DIGEST("p1"), DIGEST("person-1")]]
    for other in (f"k:old-key {DIGEST('p1')}", DIGEST("p1"), f"k:{DIGEST.key_id}x a", "*"):
        sink.changes.clear()
        listener._deliver(other)
        assert sink.changes == [["*"]], other
    listener._digest = None  # not listening: nothing can be matched
    sink.changes.clear()
    listener._deliver(f"k:{DIGEST.key_id} {DIGEST('p1')}")
    assert sink.changes == [["*"]]


def test_a_changed_salt_empties_the_sink_before_anything_after_it() -> None:
    class Sink(_Sink):
        def __init__(self) -> None:
            super().__init__()
            self.ups: list[bool] = []

        def listening(self, up: bool, digest: object = None) -> None:
            self.ups.append(up)

    sink = Sink()
    listener = ChangeListener(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"), sink)
    with pytest.raises(LookupError, match="salt changed"):  # the listener reconnects
        listener._deliver(REKEY)
    assert sink.ups == [False]
    assert sink.changes == []


def test_the_least_recently_read_go_first() -> None:
    cache = _cache(entries=2)
    for patient in ("p1", "p2"):
        cache.put(cache.ticket(), _entry(patient))
    assert cache.get("p1") is not None  # p2 is now the oldest
    cache.put(cache.ticket(), _entry("p3"))
    assert cache.get("p2") is None
    assert cache.get("p1") is not None
    assert cache.get("p3") is not None
    assert cache.stats()["entries"] == 2


def test_the_byte_bound_evicts() -> None:
    cache = _cache(bytes=3000)
    for patient in ("p1", "p2", "p3", "p4", "p5", "p6"):
        cache.put(cache.ticket(), _entry(patient))
    assert cache.stats()["bytes"] <= 3000
    assert cache.get("p6") is not None
    assert cache.get("p1") is None


def test_writes_to_watched_tables_are_recognised() -> None:
    assert writes_watched_table("INSERT INTO resources (id) VALUES (1)")
    assert writes_watched_table('UPDATE "person_records" SET person_id = 1')
    assert writes_watched_table("DELETE FROM consent_directives WHERE id = 1")
    assert writes_watched_table('TRUNCATE "audit_events", "persons" RESTART IDENTITY')
    assert not writes_watched_table("INSERT INTO audit_events (resources) VALUES ('x')")
    assert not writes_watched_table("SELECT * FROM resources")
    assert not writes_watched_table("INSERT INTO audit_event_persons (seq) VALUES (1)")


def test_schema_qualified_writes_are_recognised() -> None:
    assert writes_watched_table("INSERT INTO public.resources (id) VALUES (1)")
    assert writes_watched_table('UPDATE "public"."person_records" SET person_id = 1')
    assert writes_watched_table("DELETE FROM joinedup . consent_directives WHERE id = 1")
    assert writes_watched_table("COPY public.persons (id) FROM STDIN")
    assert not writes_watched_table("INSERT INTO public.audit_events (resources) VALUES ('x')")


# -- keyed digests: a collision only ever drops more -----------------------------------

def test_a_digest_is_keyed_by_the_salt_and_never_shows_it() -> None:
    other = KeyDigest(b"another salt of 32 bytes, longer", "other")
    assert DIGEST("patient-1") == DIGEST("patient-1")
    assert DIGEST("patient-1") != other("patient-1")
    assert len(DIGEST("patient-1")) == 16
    assert "salt" not in repr(DIGEST)
    with pytest.raises(ValueError, match="too short"):
        KeyDigest(b"short", "k")


def test_a_colliding_digest_drops_both_entries() -> None:
    clock = Clock()
    cache = ReadCache(max_entries=10, max_bytes=10**9, lease_seconds=3.0, clock=clock)
    cache.listening(True, lambda key: "same")  # every key collides
    cache.heartbeat(clock.now)
    assert cache.put(cache.ticket(), _entry("p1"))
    assert cache.put(cache.ticket(), _entry("q1"))
    assert cache.put_unknown(cache.ticket(), "x1")
    cache.changed(["same"])  # p1 changed
    assert cache.get("p1") is None
    assert cache.get("q1") is None  # dropped too: extra invalidation, never a missed one
    assert not cache.unknown("x1")


def test_without_a_digest_nothing_is_kept() -> None:
    clock = Clock()
    cache = ReadCache(max_entries=10, max_bytes=10**9, lease_seconds=3.0, clock=clock)
    cache.listening(True)  # a listener that could not say how keys are notified
    cache.heartbeat(clock.now)
    assert not cache.online
    assert not cache.put(cache.ticket(), _entry("p1"))


_KEYS = st.sampled_from([f"k{i}" for i in range(8)])


@settings(max_examples=200, deadline=None)
@given(
    buckets=st.integers(min_value=1, max_value=9),
    steps=st.lists(st.tuples(st.sampled_from(["put", "change", "get"]),
                             st.lists(_KEYS, min_size=1, max_size=3)), max_size=30),
)
def test_with_any_digest_no_changed_key_is_ever_served(
    buckets: int, steps: list[tuple[str, list[str]]],
) -> None:
    """Against a reference with the ids themselves: whatever the digest (few buckets:
    many collisions), an entry found is one the reference still holds."""
    clock = Clock()
    cache = ReadCache(max_entries=100, max_bytes=10**9, lease_seconds=3.0, clock=clock)

    def bucket(key: str) -> str:
        return str(sum(map(ord, key)) % buckets)

    cache.listening(True, bucket)
    cache.heartbeat(clock.now)
    held: dict[str, frozenset[str]] = {}  # the reference: patient -> keys, exact
    for what, keys in steps:
        patient = keys[0]
        if what == "put":
            assert cache.put(cache.ticket(), _entry(patient, f"{patient}-person", tuple(keys)))
            held[patient] = frozenset((patient, f"{patient}-person", *keys))
        elif what == "change":
            cache.changed([bucket(k) for k in keys])
            held = {p: ks for p, ks in held.items() if not ks & set(keys)}
        else:
            found = cache.get(patient, count=False)
            assert found is None or patient in held


# -- the notification queue ----------------------------------------------------------

def test_a_filling_queue_warns_and_a_near_full_one_stops_the_heartbeats() -> None:
    listener = ChangeListener(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"),
                              _Sink(), warn_queue_usage=0.5, offline_queue_usage=0.9)
    assert listener.queue_usage is None
    assert listener._queue_ok(0.1)
    assert listener._queue_ok(0.6)  # a warning only
    assert listener._queue_warned
    assert not listener._queue_ok(0.95)  # no heartbeat: the lease runs out
    assert listener.queue_usage == 0.95
    assert listener._queue_ok(0.2)
    assert not listener._queue_warned


def test_the_queue_gauge_reads_the_listeners_last_figure() -> None:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry()
    listener = ChangeListener(create_engine("postgresql+psycopg://nobody@127.0.0.1:1/none"),
                              _Sink())
    register_queue_gauge(registry, listener)
    name = "joinedup_read_cache_notify_queue_usage"
    assert math.isnan(registry.get_sample_value(name) or 0.0)
    listener._queue_ok(0.25)
    assert registry.get_sample_value(name) == 0.25
