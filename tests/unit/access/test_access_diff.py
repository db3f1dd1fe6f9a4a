"""Agreement diff: grants added and revoked by a change."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

from joinedup.access.agreements import BreakGlass, Status
from joinedup.access.diff import Grant, diff, grants, render_markdown
from joinedup.access.purposes import Purpose
from joinedup.demo.agreements import load_demo_agreements
from joinedup.labels import DataCategory
from joinedup.orgs.vocab import ProfessionalRole as R

DEMO = load_demo_agreements()
DISCHARGE = next(a for a in DEMO if a.id == "hospital-social-care-discharge")


def test_no_change() -> None:
    d = diff(DEMO, DEMO)
    assert d.unchanged
    assert render_markdown(d).startswith("No change")


def test_adding_a_role_and_revoking_a_category() -> None:
    rwx = DISCHARGE.share("RWX")
    assert rwx is not None
    items = [i for i in rwx.categories if i.category is not DataCategory.MEDICATIONS]
    items = [replace(i, roles=i.roles | {R.ADMIN}) if i.category is DataCategory.CONDITIONS
             else i for i in items]
    changed = replace(DISCHARGE, version=2, shares=(
        replace(rwx, categories=tuple(items)), *[s for s in DISCHARGE.shares if s is not rwx]))
    d = diff([DISCHARGE], [changed])
    assert d.added == (Grant("RWX", "WCCASC", R.ADMIN, Purpose.CARE_COORDINATION,
                             DataCategory.CONDITIONS),)
    assert {g.category for g in d.revoked} == {DataCategory.MEDICATIONS}
    assert {g.role for g in d.revoked} == {R.SOCIAL_WORKER, R.CARE_COORDINATOR,
                                          R.ALLIED_HEALTH_PROFESSIONAL}
    table = render_markdown(d)
    assert "| added | RWX | WCCASC | admin | care-coordination | conditions |" in table
    assert "1 added, 3 revoked." in table


def test_suspending_revokes_and_break_glass_is_a_grant() -> None:
    suspended = replace(DISCHARGE, status=Status.SUSPENDED)
    assert diff([DISCHARGE], [suspended]).revoked == tuple(sorted(grants([DISCHARGE])))
    glass = replace(DISCHARGE, conditions=replace(
        DISCHARGE.conditions, break_glass=BreakGlass(frozenset({R.CLINICIAN}))))
    added = diff([DISCHARGE], [glass]).added
    assert added
    assert all(g.purpose is Purpose.EMERGENCY and g.role is R.CLINICIAN
                         for g in added)


def test_as_of_counts_only_agreements_in_force() -> None:
    later = replace(DISCHARGE, start=date(2030, 1, 1), review=date(2030, 6, 1), end=None)
    assert grants([later], as_of=date(2026, 11, 22)) == frozenset()
    assert grants([later]) == grants([DISCHARGE])


def test_moving_a_grant_between_agreements_is_no_change() -> None:
    split = [replace(DISCHARGE, shares=(s,), id=f"part-{n}") for n, s in
             enumerate(DISCHARGE.shares)]
    assert diff([DISCHARGE], split).unchanged
