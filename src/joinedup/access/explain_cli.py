"""``joinedup access explain``: what a token's requester may see of a person, and why.

For an IG lead on the server: one row per (owner organisation, data category,
sensitivity), with the decision, its reason codes, the agreement or consent
directive that decided, and the obligations. Explaining is audited
(``access.explain``); an unknown person is "not found" (exit 3).
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from joinedup.access.explain import Explanation, explain_event
from joinedup.access.purposes import NEEDS_REASON, Purpose
from joinedup.audit.changes import LOCAL_CLIENT, local_actor
from joinedup.auth.tokens import AccessToken
from joinedup.errors import InvalidInput, NotFound, Problem
from joinedup.services import Services, running

app = typer.Typer(help="Access decisions: explain what a requester may see, and why.",
                  no_args_is_help=True)
out = Console()


def simulated(org: str | None, practitioner: str | None, purpose: str | None,
              reason: str | None, svc: Services) -> AccessToken:
    """The token a practitioner of the registry would get, for explaining only (never
    signed): role and team come from the registry, as the token endpoint takes them."""
    problems = [Problem("is required without --token", f"--{n}")
                for n, v in (("org", org), ("practitioner", practitioner),
                             ("purpose", purpose)) if not v]
    try:
        purpose_ = Purpose(purpose) if purpose else None
    except ValueError:
        problems.append(Problem(f"unknown purpose {purpose!r}", "--purpose"))
        purpose_ = None
    if purpose_ in NEEDS_REASON and not (reason and reason.strip()):
        problems.append(Problem("break-glass needs a reason", "--reason"))
    if problems or purpose_ is None:
        raise InvalidInput("say whose access to explain", problems)
    assert org is not None
    found = next((p for p in svc.registry.show_org(org).practitioners
                  if p["id"] == practitioner), None)
    if found is None or not found.get("active", True):
        raise NotFound(f"organisation {org!r} has no active practitioner {practitioner!r}")
    return AccessToken(
        org=org, client_id=LOCAL_CLIENT, purpose=purpose_, scopes=frozenset(),
        jti="explain", expires_at=0, practitioner=practitioner, role=found["role"],
        team=found.get("team_id"), reason=reason if purpose_ in NEEDS_REASON else None,
    )


@app.command("explain")
def explain_command(
    person: Annotated[str, typer.Option(help="A person index id, or a Patient id.")],
    token: Annotated[str | None, typer.Option(
        help="The access token whose decisions to explain.")] = None,
    org: Annotated[str | None, typer.Option(
        help="Without --token: simulate this organisation's practitioner…")] = None,
    practitioner: Annotated[str | None, typer.Option(help="…this practitioner…")] = None,
    purpose: Annotated[str | None, typer.Option(help="…acting for this purpose…")] = None,
    reason: Annotated[str | None, typer.Option(help="…with this break-glass reason.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON, as the admin API "
                                          "answers.")] = False,
    permitted_only: Annotated[bool, typer.Option(help="Show only what is permitted.")] = False,
) -> None:
    """Show the decision for each (owner, category, sensitivity) with its reasons, for a
    token, or for a practitioner of the registry (--org, --practitioner, --purpose)."""
    with running() as svc:
        if token is not None:
            access_token = svc.verifier().verify(token)
        else:
            access_token = simulated(org, practitioner, purpose, reason, svc)
        try:
            found = svc.access.explain(access_token, person)
        except NotFound:
            svc.audit.append([explain_event(local_actor(None), access_token, person=None,
                                            purpose=Purpose.GOVERNANCE)])
            raise
        svc.audit.append([explain_event(local_actor(None), access_token, person=found.person,
                                        purpose=Purpose.GOVERNANCE)])
    if as_json:
        out.print_json(json.dumps(found.as_dict()))
        return
    render(found, permitted_only=permitted_only)


def render(found: Explanation, *, permitted_only: bool = False) -> None:
    r = found.requester
    glass = f", break-glass: “{r['break_glass_reason']}”" if r["break_glass_reason"] else ""
    out.print(f"[bold]{r['practitioner']}[/bold] ({r['role']}, {r['org']}) acting for "
              f"[bold]{r['purpose']}[/bold]{glass}, about person {found.person}")
    c = found.consents
    directives = [f"objects to {o} ({i})" for o, i in c["objections_to_organisations"].items()]
    directives += [f"objects to {k} ({i})" for k, i in c["objections_to_categories"].items()]
    if c["national_data_opt_out"]:
        directives.append(f"national data opt-out ({c['national_data_opt_out']})")
    directives += [
        "consents to " + " under ".join(x for x in (e["organisation"], e["agreement"]) if x)
        for e in c["explicit_consents"]
    ]
    out.print("consent directives in effect: " + ("; ".join(directives) or "none"))
    out.print("relationships: " + (", ".join(found.relationships) or "none"))
    out.print("records held by: " + (", ".join(found.owners) or "nobody"))
    table = Table("owner", "category", "sensitivity", "decision", "reasons", "agreement",
                  "consent", "obligations")
    for row in found.rows:
        d = row.decision
        if permitted_only and not d.permitted:
            continue
        effect = "[green]permit[/green]" if d.permitted else "[red]deny[/red]"
        agreement = "" if d.agreement is None else f"{d.agreement.id} v{d.agreement.version}"
        table.add_row(row.owner, row.category.value, " ".join(s.value for s in row.sensitivities),
                      effect, ", ".join(x.value for x in d.reasons), agreement, d.consent or "",
                      row.obligations_text())
    out.print(table)
    codes = found.as_dict()["reasons"]
    for code, meaning in codes.items():
        out.print(f"[dim]{code}[/dim]: {meaning}")
