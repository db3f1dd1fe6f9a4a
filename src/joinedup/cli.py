"""The `joinedup` command."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from joinedup import __version__
from joinedup.config import Settings, load_settings
from joinedup.errors import UserError
from joinedup.services import running

app = typer.Typer(
    name="joinedup",
    help="Lawful, audited data sharing between the NHS, councils and charities in one area.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)
db_app = typer.Typer(help="Database schema: create and upgrade it.", no_args_is_help=True)
keys_app = typer.Typer(
    help="Token-signing keys: create, rotate, list, retire.", no_args_is_help=True
)
orgs_app = typer.Typer(help="The organisations registry.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(keys_app, name="keys")
app.add_typer(orgs_app, name="orgs")

out = Console()
err = Console(stderr=True, soft_wrap=True)


def _settings() -> Settings:
    return load_settings()


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


# -- top level -----------------------------------------------------------------
@app.command()
def version() -> None:
    """Print the joinedup version."""
    out.print(__version__)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Bind address [env JOINEDUP_HOST]")] = None,
    port: Annotated[int | None, typer.Option(help="Port [env JOINEDUP_PORT]")] = None,
    workers: Annotated[
        int | None, typer.Option(help="Worker processes [env JOINEDUP_WORKERS]")
    ] = None,
) -> None:
    """Run the HTTP service (uvicorn)."""
    import uvicorn

    settings = _settings()
    from joinedup.audit.config import keys_dir
    from joinedup.audit.keys import AuditKeyStore

    with running(settings) as svc:
        svc.keys.active()
        AuditKeyStore(keys_dir(settings)).active()
    uvicorn.run(
        "joinedup.api.asgi:app",
        host=host or settings.host,
        port=port or settings.port,
        workers=workers or settings.workers,
        factory=False,
        access_log=False,
        log_level="warning",
        proxy_headers=False,
    )


@app.command()
def token(
    org: Annotated[str, typer.Option(help="Organisation code, e.g. RWX")],
    purpose: Annotated[str, typer.Option(help="Purpose of use, e.g. direct-care")],
    practitioner: Annotated[str | None, typer.Option(help="Acting practitioner's id")] = None,
    system: Annotated[
        str | None, typer.Option(help="Client id (default: the org's first system)")
    ] = None,
    scope: Annotated[
        str | None,
        typer.Option(help="Permissions, space separated (default: all the system may have)"),
    ] = None,
    reason: Annotated[
        str | None, typer.Option(help="Reason (required for purpose emergency)")
    ] = None,
) -> None:
    """Mint an access token for local use (demo, tests, scripts); prints it on stdout."""
    from joinedup.auth.grants import TokenRequest
    from joinedup.errors import NotFound

    with running() as svc:
        client_id = system
        if client_id is None:
            detail = svc.registry.show_org(org)
            if not detail.systems:
                raise NotFound(f"organisation {org!r} has no client system: add one first")
            client_id = detail.systems[0]["client_id"]
        else:
            detail = svc.registry.show_org(org)
            if client_id not in {s["client_id"] for s in detail.systems}:
                raise NotFound(f"organisation {org!r} has no client system {client_id!r}")
        issued = svc.tokens.mint(
            client_id=client_id,
            request=TokenRequest(
                purpose=purpose, scope=scope, practitioner=practitioner, reason=reason
            ),
        )
    sys.stdout.write(issued.access_token + "\n")


# -- db ------------------------------------------------------------------------
@db_app.command("upgrade")
def db_upgrade() -> None:
    """Create or upgrade the schema to this version's migrations."""
    from joinedup.storage.engine import safe_url
    from joinedup.storage.migrate import current_revisions, upgrade

    with running(migrated=False) as svc:
        upgrade(svc.db)
        out.print(
            f"database {safe_url(svc.db.engine)} at {', '.join(sorted(current_revisions(svc.db)))}"
        )


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database and the one this code needs."""
    from joinedup.storage.migrate import current_revisions, head_revisions

    with running(migrated=False) as svc:
        cur, heads = current_revisions(svc.db), head_revisions()
    out.print(f"database: {', '.join(sorted(cur)) or 'empty'}")
    out.print(f"code:     {', '.join(sorted(heads))}")
    if cur != heads:
        raise typer.Exit(1)


# -- keys ----------------------------------------------------------------------
@keys_app.command("init")
def keys_init() -> None:
    """Create the first signing key if there is none."""
    from joinedup.auth.jwk import KeyStore

    store = KeyStore(_settings().effective_keys_dir)
    key = store.ensure()
    out.print(f"active signing key {key.kid} in {store.folder}")


@keys_app.command("rotate")
def keys_rotate() -> None:
    """Create a new signing key; the old ones keep verifying until retired."""
    from joinedup.auth.jwk import KeyStore

    key = KeyStore(_settings().effective_keys_dir).generate()
    out.print(f"new active signing key {key.kid}")


@keys_app.command("list")
def keys_list() -> None:
    """List signing keys, newest (active) last."""
    from joinedup.auth.jwk import KeyStore

    keys = KeyStore(_settings().effective_keys_dir).load()
    table = Table("kid", "created", "state")
    for i, key in enumerate(keys):
        table.add_row(
            key.kid, key.created.isoformat(), "active" if i == len(keys) - 1 else "published"
        )
    out.print(table)


@keys_app.command("retire")
def keys_retire(kid: str) -> None:
    """Stop publishing a key: tokens it signed stop verifying."""
    from joinedup.auth.jwk import KeyStore

    KeyStore(_settings().effective_keys_dir).retire(kid)
    out.print(f"retired {kid}")


# -- orgs ----------------------------------------------------------------------
@orgs_app.command("list")
def orgs_list(as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """List organisations."""
    with running() as svc:
        orgs = svc.registry.list_orgs()
    if as_json:
        _print_json(orgs)
        return
    table = Table("code", "name", "kind", "active")
    for o in orgs:
        table.add_row(o["code"], o["name"], o["kind"], "yes" if o["active"] else "no")
    out.print(table)


@orgs_app.command("show")
def orgs_show(code: str, as_json: Annotated[bool, typer.Option("--json")] = False) -> None:
    """Show an organisation with its teams, practitioners and client systems."""
    with running() as svc:
        d = svc.registry.show_org(code)
    if as_json:
        _print_json(
            {
                **d.org,
                "teams": d.teams,
                "practitioners": d.practitioners,
                "systems": [{k: v for k, v in s.items() if k != "jwks"} for s in d.systems],
            }
        )
        return
    out.print(f"[bold]{d.org['code']}[/bold] {d.org['name']} ({d.org['kind']})")
    teams = Table("team", "name", title="Teams")
    for t in d.teams:
        teams.add_row(t["id"], t["name"])
    people = Table("id", "name", "role", "team", title="Practitioners")
    for p in d.practitioners:
        people.add_row(p["id"], p["name"], p["role"], p["team_id"] or "")
    systems = Table("client id", "name", "scopes", title="Client systems")
    for s in d.systems:
        systems.add_row(s["client_id"], s["name"], " ".join(s["scopes"]))
    out.print(teams, people, systems)


@orgs_app.command("add")
def orgs_add(
    code: str,
    name: Annotated[str, typer.Option()],
    kind: Annotated[str, typer.Option()],
) -> None:
    """Register an organisation."""
    from joinedup.orgs.specs import OrgSpec
    from joinedup.validation import parse

    spec = parse(OrgSpec, {"code": code, "name": name, "kind": kind}, what="organisation")
    with running() as svc:
        _print_json(svc.registry.add_org(spec))


@orgs_app.command("add-team")
def orgs_add_team(org: str, team_id: str, name: Annotated[str, typer.Option()]) -> None:
    """Add a team to an organisation."""
    from joinedup.orgs.specs import TeamSpec
    from joinedup.validation import parse

    spec = parse(TeamSpec, {"id": team_id, "org_code": org, "name": name}, what="team")
    with running() as svc:
        _print_json(svc.registry.add_team(spec))


@orgs_app.command("add-practitioner")
def orgs_add_practitioner(
    org: str,
    practitioner_id: str,
    name: Annotated[str, typer.Option()],
    role: Annotated[str, typer.Option()],
    team: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Add a practitioner to an organisation."""
    from joinedup.orgs.specs import PractitionerSpec
    from joinedup.validation import parse

    spec = parse(
        PractitionerSpec,
        {"id": practitioner_id, "org_code": org, "name": name, "role": role, "team_id": team},
        what="practitioner",
    )
    with running() as svc:
        _print_json(svc.registry.add_practitioner(spec))


@orgs_app.command("add-system")
def orgs_add_system(
    org: str,
    client_id: str,
    name: Annotated[str, typer.Option()],
    jwks: Annotated[Path, typer.Option(help="File with the system's public JWK Set")],
    scope: Annotated[str | None, typer.Option(help="Permissions it may be granted")] = None,
) -> None:
    """Register a client system with its public keys (for private_key_jwt)."""
    from joinedup.errors import InvalidInput, Problem
    from joinedup.orgs.specs import SystemSpec
    from joinedup.validation import parse

    try:
        key_set = json.loads(jwks.read_text())
    except (OSError, ValueError) as exc:
        raise InvalidInput("cannot read the JWK Set", [Problem(str(exc), str(jwks))]) from None
    data: dict[str, Any] = {"client_id": client_id, "org_code": org, "name": name, "jwks": key_set}
    if scope:
        data["scopes"] = scope
    spec = parse(SystemSpec, data, what="client system")
    with running() as svc:
        view = svc.registry.add_system(spec)
    _print_json({k: v for k, v in view.items() if k != "jwks"})


def _mount_subcommands() -> None:
    """Packages with their own command groups; mounted here, in one place."""
    from joinedup.access.cli import app as agreements_app
    from joinedup.access.consent_cli import app as consent_app
    from joinedup.access.explain_cli import app as access_app
    from joinedup.audit.cli import app as audit_app
    from joinedup.demo.commands import demo_app
    from joinedup.documents.cli import app as documents_app
    from joinedup.people.cli import app as people_app
    from joinedup.sources import cli as sources_cli

    app.add_typer(demo_app, name="demo", help="The Wessex demo care system.")
    app.add_typer(agreements_app, name="agreements")
    app.add_typer(consent_app, name="consent")
    app.add_typer(access_app, name="access")
    app.add_typer(people_app, name="people")
    app.add_typer(audit_app, name="audit")
    app.add_typer(documents_app, name="documents")
    app.command("ingest")(sources_cli.ingest)
    app.add_typer(sources_cli.feeds_app, name="feeds")
    app.add_typer(sources_cli.quarantine_app, name="quarantine")
    app.add_typer(sources_cli.batches_app, name="batches")


_mount_subcommands()


def _configure_logging() -> None:
    """Logs go to stderr as JSON lines, so stdout carries only the command's output."""
    from pydantic import ValidationError

    from joinedup.logs import configure
    from joinedup.validation import problems_from

    try:
        settings = load_settings()
    except ValidationError as exc:
        problems = "; ".join(str(p) for p in problems_from(exc, "JOINEDUP"))
        err.print("[red]error:[/red] " + escape(f"invalid settings: {problems}"), highlight=False)
        sys.exit(78)
    configure(settings.log_level, settings.log_json)


def main() -> None:
    _configure_logging()
    try:
        app()
    except UserError as exc:
        err.print("[red]error:[/red] " + escape(str(exc)), highlight=False)
        sys.exit(exc.exit_code)
