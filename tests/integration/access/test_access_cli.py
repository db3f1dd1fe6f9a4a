"""`joinedup consent` (and `joinedup access explain`) as a user runs them: real processes
on both databases, every problem listed, changes audited."""

from __future__ import annotations

import json
from pathlib import Path

from joinedup.audit.events import AuditAction
from joinedup.audit.queries import EventQuery, iter_events
from joinedup.people.models import Person, PersonRecord
from joinedup.storage.engine import Database
from tests.integration.test_cli import _env, run


def _area(db: Database, tmp_path: Path) -> dict[str, str]:
    env = _env(db, tmp_path)
    run("db", "upgrade", env=env, check=True)
    run("keys", "init", env=env, check=True)
    for code, kind in (("RWX", "acute-trust"), ("WCARERS", "charity")):
        run("orgs", "add", code, "--name", code, "--kind", kind, env=env, check=True)
    with db.session() as s:
        s.add(Person(id="person-1"))
        s.flush()
        s.add(PersonRecord(record_id="Patient/p1", person_id="person-1", org_code="RWX",
                           features={}, rule="nhs-number", linked_by="test"))
    return env


def test_add_list_and_revoke_a_directive(db: Database, tmp_path: Path) -> None:
    env = _area(db, tmp_path)
    r = run("consent", "add", "--org", "RWX", "--patient", "p1", "--kind", "objection",
            "--to-org", "WCARERS", "--json", env=env, check=True)
    made = json.loads(r.stdout)
    assert made["kind"] == "objection"
    assert made["person"] == "person-1"
    listed = json.loads(run("consent", "list", "--person", "person-1", "--json", env=env,
                            check=True).stdout)
    assert [c["id"] for c in listed] == [made["id"]]
    table = run("consent", "list", "--patient", "p1", env={**env, "COLUMNS": "200"},
                check=True).stdout
    assert "WCARERS" in table
    assert "objection" in table
    r = run("consent", "revoke", made["id"], "--org", "RWX", "--json", env=env, check=True)
    assert json.loads(r.stdout)["status"] == "inactive"
    r = run("consent", "revoke", made["id"], "--org", "RWX", env=env)
    assert r.returncode == 4  # already withdrawn
    events = list(iter_events(db, EventQuery(actions=frozenset({AuditAction.CONSENT_CHANGE}))))
    assert sorted(e.event.detail["change"] for e in events) == ["created", "revoked"]
    assert all(e.event.persons == ("person-1",) for e in events)


def test_a_bad_directive_lists_every_problem(db: Database, tmp_path: Path) -> None:
    env = _area(db, tmp_path)
    r = run("consent", "add", "--org", "RWX", "--kind", "objection", "--category", "gossip",
            "--start", "soon", env=env)
    assert r.returncode == 2
    assert "--patient" in r.stderr
    r = run("consent", "add", "--org", "RWX", "--patient", "p1", "--kind", "maybe",
            "--category", "gossip", "--start", "soon", env=env)
    assert r.returncode == 2
    for where in ("--kind", "--category", "--start"):
        assert where in r.stderr
    r = run("consent", "add", "--org", "RWX", "--patient", "nobody", "--kind",
            "national-opt-out", env=env)
    assert r.returncode == 2
    assert "patient.reference" in r.stderr
    assert "Traceback" not in r.stderr
    r = run("consent", "list", "--person", "nobody", env=env)
    assert r.returncode == 3


def test_explain_shows_each_decision_and_is_audited(db: Database, tmp_path: Path) -> None:
    from joinedup.access.purposes import Purpose
    from joinedup.auth.permissions import Permission
    from joinedup.config import Settings
    from joinedup.services import build

    env = _area(db, tmp_path)
    run("consent", "add", "--org", "RWX", "--patient", "p1", "--kind", "objection",
        "--category", "mental-health", env=env, check=True)
    svc = build(Settings(data_dir=tmp_path, database_url=env["JOINEDUP_DATABASE_URL"]), db=db)
    token = svc.issuer.issue(org="RWX", client_id="rwx-epr", purpose=Purpose.DIRECT_CARE,
                             scopes=frozenset({Permission.RECORDS_READ}),
                             practitioner="RWX-P1", role="clinician").access_token
    r = run("access", "explain", "--token", token, "--person", "person-1", "--json",
            env=env, check=True)
    found = json.loads(r.stdout)
    assert found["owners"] == ["RWX"]
    assert list(found["consents"]["objections_to_categories"]) == ["mental-health"]
    rows = {(d["owner"], d["category"]): d for d in found["decisions"]}
    # Own organisation: every category, every sensitivity, permitted, the objection aside.
    own = rows[("RWX", "mental-health")]
    assert own["effect"] == "permit"
    assert own["reasons"] == ["own-organisation"]
    assert own["sensitivities"] == ["N", "R", "V"]
    assert "own-organisation" in found["reasons"]
    table = run("access", "explain", "--token", token, "--person", "Patient/p1",
                env={**env, "COLUMNS": "220"}, check=True).stdout
    assert "own-organisation" in table
    assert "objects to mental-health" in table
    r = run("access", "explain", "--token", token, "--person", "nobody", env=env)
    assert r.returncode == 3
    assert "Traceback" not in r.stderr
    # Without a token: a practitioner of the registry, simulated.
    run("orgs", "add-practitioner", "RWX", "RWX-P1", "--name", "Dr A", "--role", "clinician",
        env=env, check=True)
    r = run("access", "explain", "--org", "RWX", "--practitioner", "RWX-P1", "--purpose",
            "planning", "--person", "person-1", "--json", env=env, check=True)
    simulated = json.loads(r.stdout)
    assert simulated["requester"]["role"] == "clinician"
    # Planning: no own-organisation rule, no agreement; sealed categories say so first.
    assert {d["reasons"][0] for d in simulated["decisions"]} == {"no-agreement", "sealed-category"}
    r = run("access", "explain", "--org", "RWX", "--practitioner", "RWX-P1", "--purpose",
            "emergency", "--person", "person-1", env=env)
    assert r.returncode == 2
    assert "--reason" in r.stderr
    events = list(iter_events(db, EventQuery(actions=frozenset({AuditAction.ACCESS_EXPLAIN}))))
    assert [(e.event.persons, e.event.outcome.value) for e in events] == [
        (("person-1",), "success"), (("person-1",), "success"), ((), "failure"),
        (("person-1",), "success")]
    assert events[0].event.detail["explained"]["practitioner"] == "RWX-P1"
    svc.close()
