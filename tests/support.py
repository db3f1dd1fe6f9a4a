"""Helpers that build small registry worlds and client assertions for tests, and serve
the app on a real loopback socket."""

from __future__ import annotations

import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI
from joserfc import jwt
from joserfc.jwk import ECKey
from sqlalchemy import text
from uvicorn.config import LifespanType

from joinedup.auth.grants import ASSERTION_TYPE
from joinedup.orgs.specs import OrgSpec, PractitionerSpec, SystemSpec, TeamSpec
from joinedup.orgs.vocab import OrgKind, ProfessionalRole
from joinedup.services import Services
from joinedup.storage.engine import Database


@dataclass
class Client:
    client_id: str
    key: ECKey


def add_org(
    svc: Services, code: str, kind: OrgKind = OrgKind.ACUTE_TRUST, scopes: str | None = None
) -> Client:
    """An organisation with one team, a clinician P1, and a client system with a fresh key."""
    svc.registry.add_org(OrgSpec(code=code, name=f"Org {code}", kind=kind))
    svc.registry.add_team(TeamSpec(id=f"{code}-T1", org_code=code, name="Team one"))
    svc.registry.add_practitioner(
        PractitionerSpec(
            id=f"{code}-P1",
            org_code=code,
            name="Pat Practitioner",
            role=ProfessionalRole.CLINICIAN,
            team_id=f"{code}-T1",
        )
    )
    key = ECKey.generate_key("P-256", parameters={"kid": f"{code.lower()}-k1"}, private=True)
    client_id = f"{code.lower()}-epr"
    spec: dict[str, Any] = {
        "client_id": client_id,
        "org_code": code,
        "name": "EPR",
        "jwks": {"keys": [key.as_dict(private=False)]},
    }
    if scopes is not None:
        spec["scopes"] = scopes
    svc.registry.add_system(SystemSpec(**spec))
    return Client(client_id, key)


def assertion(
    client: Client,
    audience: str,
    *,
    key: ECKey | None = None,
    lifetime: int = 60,
    jti: str | None = None,
    **overrides: Any,
) -> str:
    now = int(time.time())
    claims = {
        "iss": client.client_id,
        "sub": client.client_id,
        "aud": audience,
        "iat": now,
        "exp": now + lifetime,
        "jti": jti or uuid.uuid4().hex,
    }
    claims.update(overrides)
    signer = key or client.key
    return jwt.encode({"alg": "ES256", "kid": signer.kid}, claims, signer)


def token_form(client: Client, audience: str, **fields: Any) -> dict[str, str]:
    form = {
        "grant_type": "client_credentials",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": assertion(client, audience),
        "purpose": "direct-care",
    }
    form.update({k: v for k, v in fields.items() if v is not None})
    return form


@contextmanager
def audit_store_refuses_writes(db: Database) -> Iterator[None]:
    """A trigger that makes every insert into audit_events fail, on either backend."""
    with db.engine.begin() as conn:
        if db.dialect == "postgresql":
            conn.execute(
                text(
                    "CREATE FUNCTION audit_refuse() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'disk full'; END $$"
                )
            )
            conn.execute(
                text(
                    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_events "
                    "FOR EACH ROW EXECUTE FUNCTION audit_refuse()"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE TRIGGER audit_refuse BEFORE INSERT ON audit_events "
                    "BEGIN SELECT RAISE(ABORT, 'disk full'); END"
                )
            )
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            conn.execute(
                text(
                    "DROP TRIGGER audit_refuse"
                    + (" ON audit_events" if db.dialect == "postgresql" else "")
                )
            )
            if db.dialect == "postgresql":
                conn.execute(text("DROP FUNCTION audit_refuse()"))


class NoFreePort(RuntimeError):
    """Every port a test may listen on is taken (another test session may hold them)."""


def free_port(ports: range) -> int:
    """The first port of ``ports`` free on loopback."""
    for port in ports:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise NoFreePort(f"no free port in {ports.start}-{ports.stop - 1}")


@contextmanager
def serving(app: FastAPI, port: int, *, lifespan: LifespanType = "off") -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1:``port`` in a thread; its base URL once it
    accepts connections; stopped on leaving. ``lifespan="off"`` where the test's own
    fixtures own the services."""
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, lifespan=lifespan, log_level="warning"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while not server.started:
            if time.monotonic() > deadline or not thread.is_alive():
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
