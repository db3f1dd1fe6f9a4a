"""The ``$everything`` fast lane (``joinedup.api.fast_lane``) answers exactly what the
FastAPI route answers, and writes exactly the audit events it writes.

Differential: each request goes to the application with the fast lane and to one
without it (the same services: the same database, read cache and audit log), in
either order, the read cache cold or warm, the public base URL set or not; status,
body bytes, headers and the audit events the request wrote (content apart from the
time) must be equal. On SQLite there is no read cache, so every request falls
through and the two must still agree; on PostgreSQL warm hits are answered by the
fast lane (counted, so the comparison is not vacuous).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from starlette.requests import Request

from joinedup.access.purposes import Purpose
from joinedup.api.app import create_app
from joinedup.api.deps import _bearer, bearer_credentials
from joinedup.api.fast_lane import EverythingFastLane, everything_path
from joinedup.api.observe import ObserveMiddleware
from joinedup.api.routes import route_table
from joinedup.audit.queries import EventQuery
from joinedup.auth.permissions import Permission
from joinedup.demo.area import build_area
from joinedup.storage.engine import Database
from tests.integration.fhir import test_records_api
from tests.integration.fhir.test_records_api import SEED, Demo, _headers
from tests.support import audit_store_refuses_writes

pytestmark = pytest.mark.slow

_build_demo = test_records_api.demo.__wrapped__  # type: ignore[attr-defined]
PUBLIC = "https://care.example.org/joinedup"


@dataclasses.dataclass
class Pair:
    """Clients of the same services with the fast lane on and off, and how many
    requests the fast lane answered."""

    on: TestClient
    off: TestClient
    answered: list[int]


@dataclasses.dataclass
class World:
    demo: Demo
    plain: Pair
    public: Pair
    tokens: dict[str, dict[str, str]]
    patients: list[str]


def _lane(app: FastAPI) -> EverythingFastLane:
    layer: Any = app.middleware_stack
    while layer is not None:
        if isinstance(layer, ObserveMiddleware):
            assert isinstance(layer.lane, EverythingFastLane), "no fast lane"
            return layer.lane
        layer = getattr(layer, "app", None)
    raise AssertionError("no ObserveMiddleware in the middleware stack")


def _pair(svc: Any) -> Pair:
    on, off = TestClient(create_app(svc)), TestClient(create_app(svc, fast_lane=False))
    on.get("/fhir/metadata")  # builds the middleware stack
    lane = _lane(on.app)  # type: ignore[arg-type]
    answered = [0]
    decide = lane._hit

    def counted(scope: Any) -> Any:
        hit = decide(scope)
        answered[0] += hit is not None
        return hit

    lane._hit = counted  # type: ignore[method-assign]
    with pytest.raises(AssertionError):
        _lane(off.app)  # type: ignore[arg-type]
    return Pair(on, off, answered)


def _token(svc: Any, scopes: frozenset[Permission], **claims: Any) -> dict[str, str]:
    issued = svc.issuer.issue(org=claims.pop("org", "RWC"), client_id="rwc-app",
                              purpose=claims.pop("purpose", Purpose.DIRECT_CARE),
                              scopes=scopes, **claims)
    return {"Authorization": f"Bearer {issued.access_token}"}


@pytest.fixture(scope="module")
def world(migrated_db: Database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    for demo in _build_demo(migrated_db, tmp_path_factory):
        svc = demo.svc
        public_svc = dataclasses.replace(
            svc, settings=svc.settings.model_copy(update={"public_base_url": PUBLIC}))
        area = build_area(SEED)
        rwx = next(p for p in area.practitioners()
                   if p.org_code == "RWX" and p.role.value == "clinician")
        rwc_nurse = next(p for p in area.practitioners()
                         if p.org_code == "RWC" and p.role.value == "nurse")
        insider = demo.insider["Authorization"].removeprefix("Bearer ")
        read = frozenset({Permission.RECORDS_READ})
        tokens = {
            "insider": demo.insider,
            "outsider": demo.outsider,
            "nurse": _headers(svc, "RWC", rwc_nurse.id, "nurse", team=rwc_nurse.team_code),
            "glass": _headers(svc, "RWX", rwx.id, "clinician", purpose=Purpose.EMERGENCY,
                              reason="unconscious in ED, no history available"),
            "planning": _headers(svc, "RWC", rwc_nurse.id, "nurse", purpose=Purpose.PLANNING),
            "coordination": _headers(svc, "RWX", rwx.id, "clinician",
                                     purpose=Purpose.CARE_COORDINATION),
            # the nurse's claims without records:read: the same requester, whose
            # answers the read cache holds once the nurse has read
            "no records:read": _token(svc, frozenset({Permission.AUDIT_READ}),
                                      practitioner=rwc_nurse.id, role="nurse",
                                      team=rwc_nurse.team_code),
            "no practitioner": _token(svc, read),
            "not a professional role": _token(svc, read, practitioner=rwc_nurse.id,
                                              role="wizard"),
            "none": {},
            "not bearer": {"Authorization": f"Basic {insider}"},
            "lower-case scheme": {"Authorization": f"bearer {insider}"},
            "spaces": {"Authorization": f"Bearer   {insider}  "},
            "scheme only": {"Authorization": "Bearer"},
            "garbage": {"Authorization": "Bearer not.a.token"},
            "tampered": {"Authorization": f"Bearer {insider[:-4]}AAAA"},
        }
        patients = sorted({p for ids in demo.patients.values() for p in ids})
        others = [s.id for s in svc.records.iter_current("Patient")][:6]
        yield World(demo, _pair(svc), _pair(public_svc), tokens,
                    sorted({*patients, *others, "no-such-patient"}))


def _online(world: World) -> None:
    cache = world.demo.svc.access.read_cache
    if cache is None:
        return
    deadline = time.monotonic() + 20
    while not cache.online:
        cache.ticket()
        assert time.monotonic() < deadline, "the read cache listener did not connect"
        time.sleep(0.05)


def _answer(world: World, client: TestClient, path: str,
            headers: dict[str, str]) -> tuple[Any, list[dict[str, Any]]]:
    log = world.demo.svc.audit
    before = log.count(EventQuery())
    response = client.get(path, headers=headers)
    written = log.count(EventQuery()) - before
    events = [e.event.body(0) for e in log.search(EventQuery(limit=written))] if written else []
    for body in events:
        del body["time"]
    return response, events


def _refused_alike(world: World, pair: Pair, path: str, headers: dict[str, str]) -> None:
    """Refused before anything is looked up, by both, twice (the second time the fast
    lane's application has seen the token): no audit event on either path."""
    a, a_events = _answer(world, pair.off, path, headers)
    assert a.status_code in (401, 403)
    assert a_events == []
    for _ in range(2):
        b, b_events = _answer(world, pair.on, path, headers)
        assert (a.status_code, a.content, a.headers.multi_items()) == (
            b.status_code, b.content, b.headers.multi_items())
        assert b_events == []


def _same(world: World, pair: Pair, path: str, headers: dict[str, str],
          lane_first: bool, cold: bool) -> None:
    """Both applications asked, in the order given, the cache emptied before each when
    ``cold``; then both again, the cache and both verifiers warm now (on PostgreSQL
    the fast lane's application answers from the fast lane this time)."""
    cache = world.demo.svc.access.read_cache
    first, second = (pair.on, pair.off) if lane_first else (pair.off, pair.on)
    for again in (False, True):
        if cold and not again and cache is not None:
            cache.changed_everything()
        a, a_events = _answer(world, first, path, headers)
        if cold and not again and cache is not None:
            cache.changed_everything()
        b, b_events = _answer(world, second, path, headers)
        assert (a.status_code, a.content) == (b.status_code, b.content)
        assert a.headers.multi_items() == b.headers.multi_items()
        assert a_events == b_events
        assert len(a_events) >= 1  # every $everything answer is audited, refusals aside
        assert a.status_code in (200, 404)


_HOSTS = (None, "care.example.org", "care.example.org:8443", "[::1]:8000", "bad host:x", "h:0")
"""``Host`` headers (None: the test client's own): the self link and the base of
``fullUrl`` come from it when no public base URL is set."""
_REFUSED = ("no records:read", "no practitioner", "not a professional role", "none",
            "not bearer", "scheme only", "garbage", "tampered")


@settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data(), lane_first=st.booleans(), cold=st.booleans(), public=st.booleans())
def test_the_fast_lane_answers_and_audits_what_the_route_does(
    world: World, data: st.DataObject, lane_first: bool, cold: bool, public: bool,
) -> None:
    _online(world)
    patient = data.draw(st.sampled_from(world.patients), label="patient")
    who = data.draw(st.sampled_from(sorted(set(world.tokens) - set(_REFUSED))), label="token")
    refused = data.draw(st.sampled_from(_REFUSED), label="refused token")
    request_id = data.draw(st.from_regex(r"[a-f0-9]{32}", fullmatch=True), label="request id")
    host = data.draw(st.sampled_from(_HOSTS), label="host")
    extra = {"X-Request-Id": request_id} | ({"Host": host} if host is not None else {})
    pair = world.public if public else world.plain
    path = f"/fhir/Patient/{patient}/$everything"
    _same(world, pair, path, {**world.tokens[who], **extra}, lane_first, cold)
    # a refused token, after the same patient was read by the requester it names (the
    # nurse; the same Host, so the same answer key): a refusal on both paths
    warm = pair.off.get(path, headers={**world.tokens["nurse"], **extra})
    event(f"refused ({refused}) after the nurse's {warm.status_code}")
    _refused_alike(world, pair, path, {**world.tokens[refused], **extra})


def test_every_warm_answer_is_the_routes(world: World) -> None:
    """Each permitted requester and patient, the cache warm, the fast lane's app asked
    second: on PostgreSQL these are the fast lane's answers (counted)."""
    _online(world)
    counted = world.plain.answered[0] + world.public.answered[0]
    for who in ("insider", "nurse", "glass", "coordination", "outsider", "spaces"):
        for patient in world.patients:
            for pair in (world.plain, world.public):
                path = f"/fhir/Patient/{patient}/$everything"
                headers = {**world.tokens[who], "X-Request-Id": f"warm-{who}-{patient}"[:64]}
                pair.off.get(path, headers=headers)  # warms the cache and the verifier
                pair.on.get(path, headers=headers)
                _same(world, pair, path, headers, lane_first=False, cold=False)
    answered = world.plain.answered[0] + world.public.answered[0] - counted
    if world.demo.svc.access.read_cache is None:
        assert answered == 0
    else:
        assert answered >= len(world.patients)
    # the same requesters' answers are in the cache now; refusals stay refusals
    for who in _REFUSED:
        for patient in world.patients:
            for pair in (world.plain, world.public):
                path = f"/fhir/Patient/{patient}/$everything"
                _refused_alike(world, pair, path, {**world.tokens[who], "X-Request-Id": "r" * 8})


def test_warm_hits_are_answered_by_the_fast_lane_and_only_those(world: World) -> None:
    """The differential above is not vacuous: on PostgreSQL the fast lane answers warm
    hits; it never answers a refusal, a miss, an unknown id or an answer serving nothing."""
    _online(world)
    demo = world.demo
    pair = world.plain
    org = next(o for o in sorted(demo.patients) if o != "RWC")
    patient = demo.patients[org][0]
    path = f"/fhir/Patient/{patient}/$everything"
    counted = pair.answered[0]
    for _ in range(3):
        assert pair.on.get(path, headers=demo.insider).status_code == 200
    hits = pair.answered[0] - counted
    if demo.svc.access.read_cache is None:  # SQLite: no read cache, nothing to answer
        assert hits == 0
    else:
        assert hits >= 1
    counted = pair.answered[0]
    for headers, where, status in [
        (demo.outsider, path, 404), (world.tokens["none"], path, 401),
        (world.tokens["garbage"], path, 401), (world.tokens["no records:read"], path, 403),
        (world.tokens["not a professional role"], path, 403),
        (demo.insider, "/fhir/Patient/no-such-patient/$everything", 404),
        (demo.insider, path + "?_format=json", 200),  # answered by the route
    ]:
        for _ in range(2):
            assert pair.on.get(where, headers=headers).status_code == status, (where, status)
    assert pair.answered[0] == counted


def _counted(client: TestClient) -> list[str]:
    """The request counter and latency count lines of ``/metrics`` for $everything
    (the latency buckets' values and sums aside)."""
    text = client.get("/metrics").text
    return sorted(line for line in text.splitlines()
                  if line.startswith(("joinedup_http_requests_total",
                                      "joinedup_http_request_seconds_count"))
                  and 'route="/fhir/Patient/{id}/$everything"' in line)


def test_metrics_and_request_ids_are_the_same_either_way(world: World) -> None:
    """The fast lane sits inside ObserveMiddleware: the same request id (echoed or
    made), the same route template, status and counts in the metrics."""
    _online(world)
    demo = world.demo
    pair = _pair(demo.svc)  # fresh applications: metrics of this test's requests only
    asks = [(demo.insider, p) for p in demo.patients["RWC"]] + [
        (demo.outsider, demo.patients["RWC"][0]), (world.tokens["garbage"], "no-such-patient")]
    for _ in range(3):
        for headers, patient in asks:
            path = f"/fhir/Patient/{patient}/$everything"
            a, b = pair.off.get(path, headers=headers), pair.on.get(path, headers=headers)
            assert a.status_code == b.status_code
            assert len(a.headers["x-request-id"]) == len(b.headers["x-request-id"]) == 32
            assert a.headers["x-request-id"] != b.headers["x-request-id"]  # made afresh
            given = {**headers, "X-Request-Id": "given-by-the-client"}
            assert pair.on.get(path, headers=given).headers["x-request-id"] == \
                "given-by-the-client"
            pair.off.get(path, headers=given)
    assert _counted(pair.on) == _counted(pair.off)
    assert any('route="/fhir/Patient/{id}/$everything",status="200"' in line
               for line in _counted(pair.on))
    if demo.svc.access.read_cache is not None:
        assert pair.answered[0] > 0


def test_a_hit_counts_once_in_the_read_cache_either_way(world: World) -> None:
    cache = world.demo.svc.access.read_cache
    if cache is None:
        pytest.skip("the read cache is PostgreSQL's")
    _online(world)
    path = f"/fhir/Patient/{world.demo.patients['RWC'][0]}/$everything"
    for client in (world.plain.on, world.plain.off):
        client.get(path, headers=world.demo.insider)  # warm
        hits = cache.stats()["hits"]
        assert client.get(path, headers=world.demo.insider).status_code == 200
        assert cache.stats()["hits"] == hits + 1


def test_when_the_audit_log_cannot_take_the_event_both_answer_503(world: World) -> None:
    _online(world)
    demo = world.demo
    path = f"/fhir/Patient/{demo.patients['RWC'][0]}/$everything"
    for client in (world.plain.on, world.plain.off):
        assert client.get(path, headers=demo.insider).status_code == 200  # warm
    counted = world.plain.answered[0]
    headers = {**demo.insider, "X-Request-Id": "a-request-of-the-test"}
    with audit_store_refuses_writes(demo.svc.db):
        a = world.plain.off.get(path, headers=headers)
        b = world.plain.on.get(path, headers=headers)
    assert a.status_code == 503
    assert (a.status_code, a.content, a.headers.multi_items()) == (
        b.status_code, b.content, b.headers.multi_items())
    if demo.svc.access.read_cache is not None:
        assert world.plain.answered[0] == counted + 1  # the fast lane's own 503


def test_no_route_before_everything_matches_its_paths(world: World) -> None:
    """The fast lane takes what the route's full path pattern matches; the router gives
    a path to the first route that matches it, which must be that one."""
    app: FastAPI = world.plain.on.app  # type: ignore[assignment]
    lane = everything_path(app)
    table = route_table(app)
    for patient in [*world.patients, "a b", "%41", "é", "-", "$everything", "x:y"]:
        path = f"/fhir/Patient/{patient}/$everything"
        matched = lane.regex.match(path)
        assert matched is not None
        assert lane.convert_id(matched["id"]) == patient
        first = next(r for r in table if r.regex.match(path))
        assert first.path == "/fhir/Patient/{id}/$everything"
        assert "GET" in first.methods
        assert first.is_api


def _headers_of(authorization: str | None) -> Request:
    headers = [] if authorization is None else [(b"authorization", authorization.encode("latin-1"))]
    return Request({"type": "http", "method": "GET", "path": "/", "headers": headers})


_SCHEMES = st.sampled_from(["Bearer", "bearer", "BEARER", "Basic", "", "Bearer:", "Bear"])
_SPACE = st.sampled_from(["", " ", "  ", "\t", " \t "])
_TOKEN = st.text(alphabet=st.sampled_from("ab.-_= \t"), max_size=8)


@given(st.one_of(
    st.none(),
    st.builds(lambda a, s, b, t, c: a + s + b + t + c, _SPACE, _SCHEMES, _SPACE, _TOKEN, _SPACE),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=255), max_size=20),
))
def test_bearer_credentials_reads_the_header_as_httpbearer_does(authorization: str | None) -> None:
    import asyncio

    expected = asyncio.run(_bearer(_headers_of(authorization)))
    got = bearer_credentials(authorization)
    assert got == (expected.credentials if expected is not None else None)


def test_oversized_host_headers_and_paths_are_not_kept(world: World) -> None:
    """The URLs the fast lane keeps per ``Host`` header and path stay small whatever
    clients send (review: ~80 kB of headers per entry, 10,000 entries, per worker)."""
    lane = _lane(world.plain.on.app)  # type: ignore[arg-type]
    demo = world.demo
    patient = demo.patients["RWC"][0]
    kept = len(lane._urls)
    for i in range(20):
        host = {"Host": f"h{i}-" + "x" * 4_000 + ".example"}
        for path in (f"/fhir/Patient/{patient}/$everything",
                     f"/fhir/Patient/{'p' * 300}{i}/$everything"):
            r = world.plain.on.get(path, headers={**demo.insider, **host})
            assert r.status_code in (200, 404)
        long_path = f"/fhir/Patient/{'q' * 300}{i}/$everything"
        assert world.plain.on.get(long_path, headers=demo.insider).status_code == 404
    assert all(len(key[2] or b"") <= 255 and len(key[3]) <= 255 for key in lane._urls)
    assert len(lane._urls) <= kept + 1  # at most the one ordinary Host and path
