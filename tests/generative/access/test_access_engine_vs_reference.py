"""The compiled decision point and the plain reference model must agree on
every decision and every reason, in random worlds of organisations,
agreements, consents, relationships and requests."""

from __future__ import annotations

from datetime import date, timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from joinedup.access.agreements import (
    LAWFUL_BEYOND_INDIVIDUAL_CARE,
    Agreement,
    Article6Basis,
    Article9Condition,
    BreakGlass,
    CategoryShare,
    CommonLawBasis,
    Conditions,
    LawfulBasis,
    Share,
    Status,
)
from joinedup.access.consent import (
    OPT_OUT_SCOPE_KINDS,
    ConsentDirective,
    DirectiveKind,
    DirectiveStatus,
    PersonConsents,
)
from joinedup.access.decisions import Request
from joinedup.access.engine import DecisionPoint
from joinedup.access.purposes import Purpose
from joinedup.access.reference import reference_decide
from joinedup.access.relationships import Relationship, RelationshipKind, Relationships
from joinedup.labels import SEALED, DataCategory, Sensitivity
from joinedup.orgs.vocab import OrgKind, ProfessionalRole

TODAY = date(2026, 6, 1)
ORGS = ("AAA", "BBB", "CCC", "DDD")
IDS = ("a-one", "a-two", "a-three")
ROLES = (ProfessionalRole.CLINICIAN, ProfessionalRole.NURSE, ProfessionalRole.SOCIAL_WORKER,
         ProfessionalRole.CASEWORKER)
CATEGORIES = (DataCategory.DEMOGRAPHICS, DataCategory.MEDICATIONS, DataCategory.MENTAL_HEALTH,
              DataCategory.SEXUAL_HEALTH, DataCategory.HOUSING)
INDIVIDUAL = (Purpose.DIRECT_CARE, Purpose.CARE_COORDINATION, Purpose.SAFEGUARDING)
BEYOND = (Purpose.PLANNING, Purpose.RESEARCH)
PERSON = "person-1"
KINDS = (*OrgKind, *sorted(OPT_OUT_SCOPE_KINDS) * 2)
"""Weighted towards kinds the national data opt-out covers, so that rule is exercised."""

days = st.integers(min_value=-400, max_value=60).map(lambda n: TODAY + timedelta(days=n))


def subset(items: tuple, min_size: int = 1) -> st.SearchStrategy:
    return st.lists(st.sampled_from(items), min_size=min_size, max_size=len(items),
                    unique=True)


@st.composite
def agreements(draw: st.DrawFn) -> Agreement:
    parties = draw(subset(ORGS, 2))
    individual = draw(st.booleans())
    purposes = frozenset(draw(subset(INDIVIDUAL if individual else BEYOND)))
    common_law = draw(st.sampled_from(
        tuple(CommonLawBasis) if individual
        else (*[CommonLawBasis.S251_SUPPORT] * 3, *sorted(LAWFUL_BEYOND_INDIVIDUAL_CARE))
    ))
    consent_required = common_law is CommonLawBasis.EXPLICIT_CONSENT or draw(
        st.integers(0, 3).map(lambda n: n == 0))
    glass = None
    if individual and draw(st.booleans()):
        glass = BreakGlass(frozenset(draw(subset(ROLES))), draw(st.booleans()))
    category_pool = tuple(
        c for c in CATEGORIES if c not in SEALED or (glass is not None and glass.sealed_categories)
    )
    shares = []
    for provider in draw(subset(tuple(parties))):
        items = tuple(
            CategoryShare(
                category,
                frozenset(draw(subset(ROLES))),
                frozenset(draw(subset(("Patient.telecom", "Observation.value[x]"), 0))),
            )
            for category in draw(subset(category_pool))
        )
        shares.append(Share(provider, items, draw(st.sampled_from(tuple(Sensitivity)))))
    start = draw(st.integers(-400, 10).map(lambda n: TODAY + timedelta(days=n)))
    end = draw(st.none() | st.integers(200, 900).map(lambda n: start + timedelta(days=n)))
    return Agreement(
        id=draw(st.sampled_from(IDS)),
        version=draw(st.integers(1, 3)),
        title="generated",
        status=draw(st.sampled_from((*[Status.ACTIVE] * 5, Status.SUSPENDED))),
        parties=tuple(parties),
        purposes=purposes,
        lawful_basis=LawfulBasis(
            Article6Basis.CONSENT if consent_required else Article6Basis.PUBLIC_TASK,
            common_law,
            Article9Condition.HEALTH_OR_SOCIAL_CARE,
        ),
        shares=tuple(shares),
        conditions=Conditions(
            relationship_required=draw(st.booleans()),
            self_declared_relationship_allowed=draw(st.booleans()),
            explicit_consent_required=consent_required,
            break_glass=glass,
        ),
        start=start,
        end=end,
        review=start + timedelta(days=90),
        dpia="DPIA-1",
        ig_contact="ig@example.org",
    )


@st.composite
def directives(draw: st.DrawFn) -> list[ConsentDirective]:
    out = []
    if draw(st.booleans()):  # often, an opt-out certainly in effect
        out.append(ConsentDirective("nd-1", PERSON, DirectiveKind.NATIONAL_OPT_OUT, TODAY))
    if draw(st.integers(0, 2)) == 0:  # and objections certainly in effect
        out.append(ConsentDirective("ob-1", PERSON, DirectiveKind.OBJECTION, TODAY,
                                    organisation=draw(st.sampled_from(ORGS))))
    if draw(st.integers(0, 2)) == 0:
        out.append(ConsentDirective("ob-2", PERSON, DirectiveKind.OBJECTION, TODAY,
                                    category=draw(st.sampled_from(CATEGORIES))))
    for i in range(draw(st.integers(0, 5))):
        kind = draw(st.sampled_from(tuple(DirectiveKind)))
        org = category = agreement_id = None
        if kind is DirectiveKind.OBJECTION:
            if draw(st.booleans()):
                org = draw(st.sampled_from(ORGS))
            else:
                category = draw(st.sampled_from(CATEGORIES))
        elif kind is DirectiveKind.EXPLICIT_CONSENT:
            org = draw(st.none() | st.sampled_from(ORGS))
            agreement_id = draw(st.sampled_from(IDS)) if org is None else draw(
                st.none() | st.sampled_from(IDS))
        start = draw(st.none() | days)
        out.append(ConsentDirective(
            id=f"c{draw(st.integers(0, 9))}{i}",
            person=PERSON,
            kind=kind,
            recorded=TODAY,
            status=draw(st.sampled_from((DirectiveStatus.ACTIVE, DirectiveStatus.ACTIVE,
                                         DirectiveStatus.INACTIVE))),
            organisation=org,
            category=category,
            agreement_id=agreement_id,
            start=start,
            end=None if start is None else draw(
                st.none() | st.integers(0, 400).map(lambda n, s=start: s + timedelta(days=n))),
        ))
    return out


relationships = st.one_of(
    st.just([RelationshipKind.SELF_DECLARED]),
    st.lists(st.sampled_from(tuple(RelationshipKind)), unique=True, max_size=3),
).map(lambda kinds: [Relationship(k, "told so" if k is RelationshipKind.SELF_DECLARED else None)
                     for k in kinds])


@st.composite
def requests(draw: st.DrawFn, world: list[Agreement]) -> Request:
    """Mostly requests an agreement in the world speaks to (else almost every
    request would be a plain no-agreement), some entirely random."""
    org = draw(st.sampled_from(ORGS))
    owner = draw(st.sampled_from(ORGS))
    category = draw(st.sampled_from((*CATEGORIES, DataCategory.ADOPTION)))
    purpose = draw(st.sampled_from(tuple(Purpose)))
    role = draw(st.sampled_from((*ROLES, ProfessionalRole.ADMIN)))
    if world and draw(st.integers(0, 3)):
        a = draw(st.sampled_from(world))
        share = draw(st.sampled_from(a.shares))
        item = draw(st.sampled_from(share.categories))
        owner, category = share.provider, item.category
        org = draw(st.sampled_from(a.recipients(owner)))
        if draw(st.integers(0, 2)):
            role = draw(st.sampled_from(sorted(item.roles)))
        if draw(st.integers(0, 5)):
            purpose = draw(st.sampled_from(sorted(a.purposes) * 2 + [Purpose.EMERGENCY] * 3))
        glass = a.conditions.break_glass
        if purpose is Purpose.EMERGENCY and glass is not None and draw(st.integers(0, 3)):
            role = draw(st.sampled_from(sorted(glass.roles)))
    reason = None
    if purpose is Purpose.EMERGENCY:
        reason = draw(st.sampled_from((None, "  ", *["unconscious in ED"] * 8)))
    return Request(
        org=org, practitioner="pr-1", role=role, purpose=purpose, person=PERSON,
        owning_org=owner, category=category,
        sensitivity=draw(st.sampled_from(tuple(Sensitivity))), break_glass_reason=reason,
    )


@st.composite
def worlds(draw: st.DrawFn) -> dict:
    found = draw(st.lists(agreements(), min_size=1, max_size=4))
    return {
        "kinds": draw(st.lists(st.sampled_from(KINDS), min_size=len(ORGS),
                               max_size=len(ORGS))),
        "agreements": found,
        "directives": draw(directives()),
        "relationships": draw(relationships),
        "requests": draw(st.lists(requests(found), min_size=1, max_size=12)),
    }


SETTINGS = settings(max_examples=150, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@SETTINGS
@given(world=worlds())
def test_engine_agrees_with_reference(world: dict) -> None:
    organisations = dict(zip(ORGS, world["kinds"], strict=True))
    point = DecisionPoint(world["agreements"], organisations, TODAY)
    consents = PersonConsents.of(PERSON, world["directives"], TODAY)
    rels = Relationships.of(world["relationships"])
    for request in world["requests"]:
        expected = reference_decide(
            request, agreements=world["agreements"], organisations=organisations, today=TODAY,
            directives=world["directives"], relationships=world["relationships"],
        )
        assert point.decide(request, consents, rels) == expected, request


@settings(SETTINGS, max_examples=80)
@given(world=worlds(), order=st.randoms())
def test_bulk_decisions_match_single_decisions(world: dict, order) -> None:
    organisations = dict(zip(ORGS, world["kinds"], strict=True))
    shuffled = list(world["agreements"])
    order.shuffle(shuffled)
    point = DecisionPoint(world["agreements"], organisations, TODAY)
    reordered = DecisionPoint(shuffled, organisations, TODAY)
    consents = PersonConsents.of(PERSON, world["directives"], TODAY)
    rels = Relationships.of(world["relationships"])
    first = world["requests"][0]
    bulk = point.decide_for_person(first.requester, consents, rels)
    visible = bulk.visible()
    for owner in ORGS:
        for category in DataCategory:
            for sensitivity in Sensitivity:
                single = reordered.decide(first.requester.asking(owner, category, sensitivity),
                                          consents, rels)
                assert bulk.decision(owner, category, sensitivity) == single
                ceiling = visible.get(owner, {}).get(category)
                allowed = ceiling is not None and sensitivity.rank <= ceiling.rank
                assert allowed == single.permitted, (owner, category, sensitivity)


@settings(SETTINGS, max_examples=60)
@given(world=worlds())
def test_more_sensitive_data_is_never_easier_to_see(world: dict) -> None:
    organisations = dict(zip(ORGS, world["kinds"], strict=True))
    point = DecisionPoint(world["agreements"], organisations, TODAY)
    consents = PersonConsents.of(PERSON, world["directives"], TODAY)
    rels = Relationships.of(world["relationships"])
    for request in world["requests"]:
        permitted = [
            point.decide(request.requester.asking(request.owning_org, request.category, s),
                         consents, rels).permitted
            for s in (Sensitivity.NORMAL, Sensitivity.RESTRICTED, Sensitivity.VERY_RESTRICTED)
        ]
        assert permitted == sorted(permitted, reverse=True)


def test_demo_world_sample_agrees_and_reaches_every_reason() -> None:
    """A large deterministic sample of requests against the demo area's real
    agreements, under every kind of consent and relationship: the engine and
    the reference agree, and between them every reason code comes up (so no
    rule goes untested by the differential check)."""
    import random

    from joinedup.access.decisions import ReasonCode
    from joinedup.access.diff import grants
    from joinedup.demo.agreements import demo_organisations, load_demo_agreements

    today = date(2026, 11, 22)
    organisations = demo_organisations()
    agreements = load_demo_agreements()
    point = DecisionPoint(agreements, organisations, today)
    orgs = sorted(organisations)
    consent_sets = [
        [],
        [ConsentDirective("x1", PERSON, DirectiveKind.NATIONAL_OPT_OUT, today)],
        [ConsentDirective("x2", PERSON, DirectiveKind.OBJECTION, today, organisation="WPOLICE"),
         ConsentDirective("x3", PERSON, DirectiveKind.OBJECTION, today, organisation="RWM")],
        [ConsentDirective("x4", PERSON, DirectiveKind.OBJECTION, today,
                          category=DataCategory.MENTAL_HEALTH)],
        [ConsentDirective("x5", PERSON, DirectiveKind.EXPLICIT_CONSENT, today,
                          organisation="WCARERS"),
         ConsentDirective("x6", PERSON, DirectiveKind.EXPLICIT_CONSENT, today,
                          agreement_id="homeless-outreach")],
    ]
    relationship_sets = [
        [], [Relationship(RelationshipKind.CARE_TEAM)],
        [Relationship(RelationshipKind.SELF_DECLARED, "on call for the ward")],
    ]
    rng = random.Random(20261122)
    granted = sorted(grants(agreements))
    seen: set[ReasonCode] = set()
    for directives_ in consent_sets:
        consents = PersonConsents.of(PERSON, directives_, today)
        for rels_ in relationship_sets:
            rels = Relationships.of(rels_)
            for i in range(1500):
                # half anywhere, half near something an agreement grants
                g = rng.choice(granted)
                near = i % 2 == 0
                purpose = g.purpose if near and rng.random() < 0.8 else rng.choice(tuple(Purpose))
                request = Request(
                    org=g.requester if near else rng.choice(orgs), practitioner="pr-1",
                    role=g.role if near and rng.random() < 0.8
                    else rng.choice(tuple(ProfessionalRole)),
                    purpose=purpose, person=PERSON,
                    owning_org=g.provider if near else rng.choice(orgs),
                    category=g.category if near else rng.choice(tuple(DataCategory)),
                    sensitivity=rng.choice(tuple(Sensitivity)),
                    break_glass_reason=rng.choice((None, "collapsed in clinic"))
                    if purpose is Purpose.EMERGENCY else None,
                )
                got = point.decide(request, consents, rels)
                assert got == reference_decide(
                    request, agreements=agreements, organisations=organisations, today=today,
                    directives=directives_, relationships=rels_,
                ), request
                seen.update(got.reasons)
    assert set(ReasonCode) - seen == set()
