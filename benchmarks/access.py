"""Access decisions: joinedup's compiled decision point beside the Cedar engine (cedarpy).

    python benchmarks/access.py                  # the issue's world, ours and Cedar
    python benchmarks/access.py --no-cedar       # ours only (seconds)
    python benchmarks/access.py --samples 50000 --cedar-samples 100

The world: 1,000 organisations in 50 local areas, 2,000 agreements, 20,000
practitioners, 100,000 consent directives over 50,000 people. Requests are
drawn the way a shared record is used: mostly a practitioner asking about
data an organisation shares with theirs (so the agreement checks run, not
just a miss in a dictionary), some about their own organisation's data, some
anywhere; 3% break the glass.

Figures: p50 and p99 of per-decision wall time (``perf_counter_ns`` around
each call, one core, in-process; the timer's own cost is printed and not
subtracted) and decisions per second from untimed loops (the best of several
rounds, and the median round: other work on a shared machine only slows a
round down). Cedar gets the same
world encoded as policies (one per agreement and provider, plus the rules as
forbid policies) and entities (practitioners, organisations, people with
their consents), parsed once into reusable handles; each request is one
``is_authorized`` call. Cedar is measured at 20 agreements (the first 20, and
requests about them) and at the full 2,000, with our figures on the same
requests beside it. The benchmark also reports how often Cedar and joinedup
give the same permit/deny: the encodings are meant to be equivalent.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from joinedup.access.agreements import (
    OPT_OUT_EXEMPT,
    Agreement,
    Article6Basis,
    Article9Condition,
    BreakGlass,
    CategoryShare,
    CommonLawBasis,
    Conditions,
    LawfulBasis,
    Share,
)
from joinedup.access.consent import (
    OPT_OUT_SCOPE_KINDS,
    ConsentDirective,
    DirectiveKind,
    PersonConsents,
)
from joinedup.access.decisions import Decision, Request
from joinedup.access.engine import DecisionPoint
from joinedup.access.purposes import INDIVIDUAL_CARE, Purpose
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.labels import SEALED, DataCategory, Sensitivity
from joinedup.orgs.vocab import OrgKind, ProfessionalRole

TODAY = date(2026, 11, 22)
CARE_KINDS = (OrgKind.ACUTE_TRUST, OrgKind.MENTAL_HEALTH_TRUST, OrgKind.COMMUNITY_TRUST,
              OrgKind.GP_PRACTICE, OrgKind.GP_PRACTICE, OrgKind.GP_PRACTICE,
              OrgKind.LA_ADULT_SOCIAL_CARE, OrgKind.LA_CHILDRENS_SERVICES, OrgKind.POLICE,
              OrgKind.CHARITY, OrgKind.CHARITY)
CARE_ROLES = (ProfessionalRole.CLINICIAN, ProfessionalRole.NURSE,
              ProfessionalRole.ALLIED_HEALTH_PROFESSIONAL, ProfessionalRole.SOCIAL_WORKER,
              ProfessionalRole.CARE_COORDINATOR, ProfessionalRole.CASEWORKER,
              ProfessionalRole.POLICE_OFFICER, ProfessionalRole.ADMIN,
              ProfessionalRole.DATA_STEWARD)
INDIVIDUAL = (Purpose.DIRECT_CARE, Purpose.CARE_COORDINATION, Purpose.SAFEGUARDING)
BEYOND = (Purpose.PLANNING, Purpose.RESEARCH)
OPEN_CATEGORIES = tuple(c for c in DataCategory if c not in SEALED)


@dataclass
class World:
    organisations: dict[str, OrgKind]
    agreements: list[Agreement]
    practitioners: list[tuple[str, str, ProfessionalRole]]
    directives: dict[str, list[ConsentDirective]]
    people: list[str]


@dataclass
class Sample:
    request: Request
    consents: PersonConsents
    relationships: Relationships


def build_world(rng: random.Random, *, orgs: int, agreements: int, practitioners: int,
                directives: int, people: int) -> World:
    codes = [f"O{n:04d}" for n in range(orgs)]
    organisations = {code: rng.choice(CARE_KINDS) for code in codes}
    areas = [codes[i:i + 20] for i in range(0, orgs, 20)]
    found = [_agreement(rng, n, rng.choice(areas)) for n in range(agreements)]
    staff = [(f"PR{n:05d}", rng.choice(codes), rng.choice(CARE_ROLES))
             for n in range(practitioners)]
    persons = [f"P{n:06d}" for n in range(people)]
    by_person: dict[str, list[ConsentDirective]] = {}
    agreement_ids = [a.id for a in found]
    for n in range(directives):
        person = rng.choice(persons)
        roll = rng.random()
        if roll < 0.35:
            d = ConsentDirective(f"CD{n:06d}", person, DirectiveKind.OBJECTION, TODAY,
                                 organisation=rng.choice(codes))
        elif roll < 0.6:
            d = ConsentDirective(f"CD{n:06d}", person, DirectiveKind.OBJECTION, TODAY,
                                 category=rng.choice(tuple(DataCategory)))
        elif roll < 0.85:
            d = ConsentDirective(f"CD{n:06d}", person, DirectiveKind.EXPLICIT_CONSENT, TODAY,
                                 organisation=rng.choice(codes),
                                 agreement_id=rng.choice((None, rng.choice(agreement_ids))))
        else:
            d = ConsentDirective(f"CD{n:06d}", person, DirectiveKind.NATIONAL_OPT_OUT, TODAY)
        by_person.setdefault(person, []).append(d)
    return World(organisations, found, staff, by_person, persons)


def _agreement(rng: random.Random, n: int, area: list[str]) -> Agreement:
    parties = rng.sample(area, rng.randint(2, 6))
    individual = rng.random() < 0.85
    purposes = frozenset(rng.sample(INDIVIDUAL if individual else BEYOND,
                                    rng.randint(1, 2)))
    common_law = (rng.choice((CommonLawBasis.IMPLIED_CONSENT,) * 6 + (
        CommonLawBasis.EXPLICIT_CONSENT, CommonLawBasis.OVERRIDING_PUBLIC_INTEREST))
        if individual else rng.choice((CommonLawBasis.S251_SUPPORT,) * 3 + (
            CommonLawBasis.LEGAL_OBLIGATION,)))
    consent = common_law is CommonLawBasis.EXPLICIT_CONSENT
    glass = (BreakGlass(frozenset({ProfessionalRole.CLINICIAN, ProfessionalRole.NURSE}),
                        sealed_categories=rng.random() < 0.5)
             if individual and rng.random() < 0.5 else None)
    pool = list(DataCategory) if glass is not None and glass.sealed_categories \
        else list(OPEN_CATEGORIES)
    shares = []
    for provider in parties:
        if rng.random() < 0.3:
            continue
        items = tuple(
            CategoryShare(c, frozenset(rng.sample(CARE_ROLES, rng.randint(2, 5))),
                          frozenset({"Patient.telecom"}) if rng.random() < 0.1 else frozenset())
            for c in rng.sample(pool, rng.randint(3, 10))
        )
        shares.append(Share(provider, items, rng.choice((Sensitivity.NORMAL,
                                                         Sensitivity.RESTRICTED,
                                                         Sensitivity.RESTRICTED))))
    if not shares:
        shares.append(Share(parties[0], (CategoryShare(
            DataCategory.DEMOGRAPHICS, frozenset({ProfessionalRole.CLINICIAN})),)))
    start = TODAY - timedelta(days=rng.randint(0, 700))
    return Agreement(
        id=f"dsa-{n:04d}", version=1, title=f"Agreement {n}", parties=tuple(parties),
        purposes=purposes,
        lawful_basis=LawfulBasis(Article6Basis.PUBLIC_TASK, common_law,
                                 Article9Condition.HEALTH_OR_SOCIAL_CARE),
        shares=tuple(shares),
        conditions=Conditions(
            relationship_required=individual and rng.random() < 0.8,
            self_declared_relationship_allowed=rng.random() < 0.5,
            explicit_consent_required=consent,
            break_glass=glass,
        ),
        start=start, end=start + timedelta(days=rng.randint(800, 2000)),
        review=start + timedelta(days=365), dpia=f"DPIA-{n}", ig_contact="ig@example.org",
    )


RELATIONSHIPS = (
    Relationships.of([Relationship(RelationshipKind.CARE_TEAM)]),
    Relationships.of([Relationship(RelationshipKind.SELF_DECLARED, "covering the ward")]),
    Relationships.of(),
)


def sample_requests(world: World, agreements: Sequence[Agreement], n: int,
                    rng: random.Random) -> list[Sample]:
    """Requests shaped like real use (see the module docstring)."""
    by_org: dict[str, list[tuple[str, str, ProfessionalRole]]] = {}
    for p in world.practitioners:
        by_org.setdefault(p[1], []).append(p)
    # (recipient, provider, category, purposes) that some agreement speaks to
    granted = [
        (recipient, share.provider, item.category, sorted(a.purposes))
        for a in agreements for share in a.shares for item in share.categories
        for recipient in a.recipients(share.provider) if recipient in by_org
    ]
    consents: dict[str, PersonConsents] = {}
    samples = []
    codes = list(world.organisations)
    for _ in range(n):
        roll = rng.random()
        recipient, provider, category, purposes = rng.choice(granted)
        practitioner, org, role = rng.choice(by_org[recipient])
        purpose = rng.choice(purposes)
        if roll < 0.10:  # own organisation
            provider, purpose = org, rng.choice(INDIVIDUAL)
        elif roll < 0.15:  # anywhere at all
            provider, category = rng.choice(codes), rng.choice(tuple(DataCategory))
        reason = None
        if rng.random() < 0.03:
            purpose, reason = Purpose.EMERGENCY, "collapsed in clinic"
        person = rng.choice(world.people)
        if person not in consents:
            consents[person] = PersonConsents.of(person, world.directives.get(person, ()),
                                                 TODAY)
        sensitivity = rng.choices(tuple(Sensitivity), (80, 15, 5))[0]
        samples.append(Sample(
            Request(org, practitioner, role, purpose, person, provider, category,
                    sensitivity, break_glass_reason=reason),
            consents[person],
            rng.choices(RELATIONSHIPS, (70, 10, 20))[0],
        ))
    return samples


# -- measuring -----------------------------------------------------------------

@dataclass
class Figures:
    p50_us: float
    p99_us: float
    per_second: float
    """The best of the timed rounds (a shared machine only ever slows a round down)."""
    median_per_second: float
    permits: float


Decide = Callable[[Request, PersonConsents, Relationships], Decision | bool]


def measure(decide: Decide, samples: Sequence[Sample], throughput_rounds: int = 1) -> Figures:
    """Time ``decide`` on each sample (the call only: the request, consents and
    relationships are built beforehand, as the API builds them once per HTTP request)."""
    clock = time.perf_counter_ns
    args = [(s.request, s.consents, s.relationships) for s in samples]
    for r, c, rel in args:  # warm up
        decide(r, c, rel)
    timings = []
    append = timings.append
    for r, c, rel in args:
        t0 = clock()
        decide(r, c, rel)
        append(clock() - t0)
    rates = []
    for _ in range(throughput_rounds):
        start = time.perf_counter()
        for r, c, rel in args:
            decide(r, c, rel)
        rates.append(len(args) / (time.perf_counter() - start))
    permits = sum(_permitted(decide(r, c, rel)) for r, c, rel in args)
    timings.sort()
    return Figures(
        p50_us=timings[len(timings) // 2] / 1000,
        p99_us=timings[int(len(timings) * 0.99)] / 1000,
        per_second=max(rates),
        median_per_second=statistics.median(rates),
        permits=permits / len(samples),
    )


def _permitted(outcome: Decision | bool) -> bool:
    return outcome if isinstance(outcome, bool) else outcome.permitted


def timer_overhead_us() -> float:
    clock = time.perf_counter_ns
    spans = []
    for _ in range(100_000):
        t0 = clock()
        spans.append(clock() - t0)
    return statistics.median(spans) / 1000




# -- Cedar ---------------------------------------------------------------------

def _cedar_str_set(items: Sequence[str]) -> str:
    return "[" + ", ".join(json.dumps(str(i)) for i in sorted(items)) + "]"


def cedar_policies(agreements: Sequence[Agreement], organisations: dict[str, OrgKind]) -> str:
    """The access rules as Cedar: the general rules as forbid policies, and one
    permit per (agreement, provider) for its purposes, one more for break-glass."""
    individual = ", ".join(f'Action::"{p}"' for p in sorted(INDIVIDUAL_CARE))
    sealed = _cedar_str_set([c.value for c in SEALED])
    out = [
        # own organisation, individual care
        f"permit(principal, action in [{individual}], resource)\n"
        "when { context.owner == principal.org };",
        # break-glass needs a reason
        'forbid(principal, action == Action::"emergency", resource)\n'
        "unless { context.has_reason };",
        # sealed: owner only, unless the glass is broken
        "forbid(principal, action, resource)\n"
        f"when {{ context.owner != principal.org && {sealed}.contains(context.category) }}\n"
        'unless { action == Action::"emergency" };',
        # objections, overridden by safeguarding
        "forbid(principal, action, resource)\n"
        "when { context.owner != principal.org && "
        "(resource.objected_orgs.contains(principal.org) || "
        "resource.objected_categories.contains(context.category)) }\n"
        'unless { action == Action::"safeguarding" };',
    ]
    for a in agreements:
        if not a.in_force(TODAY):
            continue
        c = a.conditions
        individual_care = bool(a.purposes & INDIVIDUAL_CARE)
        consent = (
            f' && (resource.consent_orgs.contains(principal.org) || '
            f'resource.consent_agreements.contains("{a.id}") || '
            f'resource.consent_pairs.contains({{org: principal.org, agreement: "{a.id}"}}))'
            if c.explicit_consent_required else ""
        )
        relationship = (
            "context.established || context.self_declared" if c.self_declared_relationship_allowed
            else "context.established"
        )
        actions = ", ".join(f'Action::"{p}"' for p in sorted(a.purposes))
        for share in a.shares:
            recipients = _cedar_str_set(a.recipients(share.provider))
            by_roles: dict[frozenset[ProfessionalRole], list[str]] = {}
            for item in share.categories:
                by_roles.setdefault(item.roles, []).append(item.category.value)
            categories = " || ".join(
                f"({_cedar_str_set(cats)}.contains(context.category) && "
                f"{_cedar_str_set([r.value for r in roles])}.contains(principal.role))"
                for roles, cats in by_roles.items()
            )
            opt_out = ""
            if not individual_care and a.lawful_basis.common_law not in OPT_OUT_EXEMPT and (
                organisations.get(share.provider) in OPT_OUT_SCOPE_KINDS
                or share.provider not in organisations
            ):
                opt_out = " && !resource.opted_out"
            rel = f" && ({relationship})" if individual_care and c.relationship_required else ""
            out.append(
                f'@id("{a.id}:{share.provider}")\n'
                f"permit(principal, action in [{actions}], resource)\n"
                f'when {{ context.owner == "{share.provider}" && '
                f"{recipients}.contains(principal.org) && ({categories}) && "
                f"context.sensitivity <= {share.max_sensitivity.rank}{rel}{consent}{opt_out} }};"
            )
            glass = c.break_glass
            if glass is not None:
                shared = _cedar_str_set([i.category.value for i in share.categories])
                sealed_rule = (
                    f"(!{sealed}.contains(context.category) || ({relationship}))"
                    if glass.sealed_categories else f"!{sealed}.contains(context.category)"
                )
                out.append(
                    f'@id("{a.id}:{share.provider}:break-glass")\n'
                    'permit(principal, action == Action::"emergency", resource)\n'
                    f'when {{ context.owner == "{share.provider}" && '
                    f"{recipients}.contains(principal.org) && "
                    f"{_cedar_str_set([r.value for r in glass.roles])}.contains(principal.role)"
                    f" && {shared}.contains(context.category) && {sealed_rule}{consent} }};"
                )
    return "\n\n".join(out)


def cedar_entities(world: World, samples: Sequence[Sample]) -> str:
    entities = []
    for pid, org, role in world.practitioners:
        entities.append({"uid": {"type": "Practitioner", "id": pid},
                         "attrs": {"org": org, "role": role.value}, "parents": []})
    for person in {s.request.person for s in samples} | set(world.directives):
        c = PersonConsents.of(person, world.directives.get(person, ()), TODAY)
        entities.append({"uid": {"type": "Person", "id": person}, "parents": [], "attrs": {
            "objected_orgs": sorted(c.objected_orgs),
            "objected_categories": sorted(str(k) for k in c.objected_categories),
            "opted_out": c.opted_out is not None,
            "consent_orgs": sorted(o for o, a in c.consents if a is None and o is not None),
            "consent_agreements": sorted(a for o, a in c.consents if o is None and a is not None),
            "consent_pairs": [{"org": o, "agreement": a} for o, a in c.consents
                              if o is not None and a is not None],
        }})
    return json.dumps(entities)


def cedar_request(s: Sample) -> dict[str, object]:
    r = s.request
    return {
        "principal": f'Practitioner::"{r.practitioner}"',
        "action": f'Action::"{r.purpose.value}"',
        "resource": f'Person::"{r.person}"',
        "context": {
            "owner": r.owning_org, "category": r.category.value,
            "sensitivity": r.sensitivity.rank,
            "established": s.relationships.established,
            "self_declared": s.relationships.self_declared,
            "has_reason": bool(r.break_glass_reason and r.break_glass_reason.strip()),
        },
    }


def cedar(policies: str, entities_json: str, samples: Sequence[Sample]) -> Decide:
    """A ``decide`` that asks Cedar; the Cedar request dicts are built beforehand."""
    import cedarpy

    policy_set = cedarpy.PolicySet.from_str(policies)
    entities = cedarpy.Entities.from_json_str(entities_json)
    requests = {id(s.request): cedar_request(s) for s in samples}
    authorize = cedarpy.is_authorized

    def run(r: Request, c: PersonConsents, rel: Relationships) -> bool:
        return bool(authorize(requests[id(r)], policy_set, entities).allowed)

    return run


# -- main ----------------------------------------------------------------------

def _row(name: str, f: Figures) -> str:
    return (f"  {name:<10} p50 {f.p50_us:9.2f} µs   p99 {f.p99_us:9.2f} µs   "
            f"{f.per_second:11,.0f} decisions/s (median round {f.median_per_second:,.0f})"
            f"   {f.permits:.0%} permitted")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--samples", type=int, default=200_000)
    parser.add_argument("--cedar-samples", type=int, default=100,
                        help="requests timed through Cedar at 2,000 agreements")
    parser.add_argument("--no-cedar", action="store_true")
    parser.add_argument("--seed", type=int, default=6)
    args = parser.parse_args()

    rng = random.Random(args.seed)
    t0 = time.perf_counter()
    world = build_world(rng, orgs=1_000, agreements=2_000, practitioners=20_000,
                        directives=100_000, people=50_000)
    t1 = time.perf_counter()
    point = DecisionPoint(world.agreements, world.organisations, TODAY)
    t2 = time.perf_counter()
    samples = sample_requests(world, world.agreements, args.samples, rng)
    gc.collect()
    gc.freeze()  # the world is long-lived: keep it out of the collector's way, as a server would
    print(f"world: {len(world.organisations):,} organisations, {len(world.agreements):,} "
          f"agreements, {len(world.practitioners):,} practitioners, "
          f"{sum(len(v) for v in world.directives.values()):,} consent directives "
          f"over {len(world.directives):,} people (built in {t1 - t0:.1f} s; "
          f"compiled in {t2 - t1:.2f} s)")
    print(f"python {sys.version.split()[0]}; perf_counter_ns pair costs "
          f"{timer_overhead_us():.3f} µs (included in p50/p99 below)")
    print()
    print(f"joinedup decision point, 2,000 agreements, {len(samples):,} requests "
          "(throughput: best of 5 rounds):")
    print(_row("joinedup", measure(point.decide, samples, throughput_rounds=5)))
    print("  goal: p50 <= 3 µs, p99 <= 15 µs, >= 300,000 decisions/s")

    if args.no_cedar:
        return
    import importlib.util

    if importlib.util.find_spec("cedarpy") is None:
        print("\ncedarpy is not installed: Cedar figures skipped")
        return
    from importlib.metadata import version

    print(f"\nCedar (cedarpy {version('cedarpy')}) beside joinedup, "
          "same requests:")
    for count, n in ((20, 2_000), (2_000, args.cedar_samples)):
        subset = world.agreements[:count]
        sub_samples = sample_requests(world, subset, n, random.Random(count))
        small = DecisionPoint(subset, world.organisations, TODAY)
        policies = cedar_policies(subset, world.organisations)
        t0 = time.perf_counter()
        run_cedar = cedar(policies, cedar_entities(world, sub_samples), sub_samples)
        t1 = time.perf_counter()
        ours_f = measure(small.decide, sub_samples, throughput_rounds=20)
        cedar_f = measure(run_cedar, sub_samples, throughput_rounds=1)
        same = sum(
            small.decide(s.request, s.consents, s.relationships).permitted
            == run_cedar(s.request, s.consents, s.relationships)
            for s in sub_samples
        )
        print(f" {count:,} agreements ({policies.count('permit(') + policies.count('forbid('):,} "
              f"Cedar policies, parsed with entities in {t1 - t0:.1f} s), {n:,} requests:")
        print(_row("joinedup", ours_f))
        print(_row("cedarpy", cedar_f))
        print(f"  same permit/deny on {same}/{n} requests; joinedup is "
              f"{cedar_f.p50_us / ours_f.p50_us:,.0f}x faster at p50")


if __name__ == "__main__":
    main()
