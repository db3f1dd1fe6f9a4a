"""The read cache's bookkeeping on its own: tickets, invalidation, bounds, the listener's state."""

from __future__ import annotations

from joinedup.access.read_cache import PersonEntry, ReadCache
from joinedup.storage.changes import writes_watched_table


def _cache(**kw: int) -> ReadCache:
    cache = ReadCache(max_entries=kw.get("entries", 10), max_bytes=kw.get("bytes", 10**9))
    cache.listening(True)
    return cache


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
    cache.changed(["person-p1"])  # committed while the read was under way
    assert not cache.put(ticket, _entry("p1"))
    assert cache.get("p1") is None
    assert cache.put(cache.ticket(), _entry("p1"))  # a read begun afterwards is kept


def test_a_change_to_another_key_does_not_refuse_it() -> None:
    cache = _cache()
    ticket = cache.ticket()
    cache.changed(["someone-else"])
    assert cache.put(ticket, _entry("p1"))


def test_a_change_drops_every_entry_holding_the_key() -> None:
    cache = _cache()
    for patient in ("p1", "p2", "p3"):
        assert cache.put(cache.ticket(), _entry(patient, "person-a", ("p1", "p2", "p3")))
    assert cache.put(cache.ticket(), _entry("q1"))
    cache.changed(["p2"])
    assert [cache.get(p) for p in ("p1", "p2", "p3")] == [None, None, None]
    assert cache.get("q1") is not None
    cache.changed(["*"])
    assert cache.get("q1") is None


def test_additions_to_a_dropped_entry_are_refused() -> None:
    cache = _cache()
    entry = _entry("p1")
    ticket = cache.ticket()
    assert cache.put(ticket, entry)
    cache.changed(["p1"])
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
    cache.listening(True)  # back: what was missed is unknown, so it starts empty
    assert cache.get("p1") is None
    assert not cache.put(old, _entry("p3"))


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
