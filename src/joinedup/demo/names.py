"""Name lists and the nickname table, shipped as package data.

The lists are hand-made JSON files in ``joinedup/demo/data`` rather than a
faker locale: they do not change when a library is upgraded, so the same
seed keeps giving the same people. The nickname table is public on purpose:
the person index (issue 4) reuses it to compare given names.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

ETHNIC_NAME_GROUPS = ("irish", "other_white", "south_asian", "black", "chinese", "other")
"""Name pools besides the general British one, chosen by a person's ethnic category."""


def _load(name: str) -> Any:
    text = resources.files("joinedup.demo").joinpath("data", name).read_text(encoding="utf-8")
    return json.loads(text)


@dataclass(frozen=True, slots=True)
class NameLists:
    general_first: MappingProxyType[str, MappingProxyType[str, tuple[str, ...]]]
    """sex -> birth cohort start year (as text) -> names, most common first."""
    group_first: MappingProxyType[str, MappingProxyType[str, tuple[str, ...]]]
    """ethnic name group -> sex -> names."""
    general_surnames: tuple[str, ...]
    group_surnames: MappingProxyType[str, tuple[str, ...]]
    long_tail_surnames: tuple[str, ...]
    """Rarer English surnames made from place-name parts, each about equally likely."""

    @property
    def cohorts(self) -> tuple[int, ...]:
        return tuple(sorted(int(c) for c in self.general_first["female"]))


@cache
def load_name_lists() -> NameLists:
    """The demo's given-name and surname lists (read once; immutable)."""
    first = _load("first_names.json")
    last = _load("surnames.json")
    return NameLists(
        general_first=MappingProxyType(
            {
                sex: MappingProxyType({c: tuple(ns) for c, ns in cohorts.items()})
                for sex, cohorts in first["general"].items()
            }
        ),
        group_first=MappingProxyType(
            {
                group: MappingProxyType({sex: tuple(ns) for sex, ns in sexes.items()})
                for group, sexes in first["by_group"].items()
            }
        ),
        general_surnames=tuple(last["general"]),
        group_surnames=MappingProxyType({g: tuple(ns) for g, ns in last["by_group"].items()}),
        long_tail_surnames=tuple(
            f"{prefix}{suffix}"
            for prefix in last["long_tail_parts"]["prefixes"]
            for suffix in last["long_tail_parts"]["suffixes"]
        ),
    )


@cache
def nickname_groups() -> tuple[frozenset[str], ...]:
    """Groups of given names used interchangeably for one person (e.g. Robert/Bob/Rob).

    Names keep their published spelling and case; compare with ``casefold()``.
    """
    return tuple(frozenset(group) for group in _load("nicknames.json")["groups"])


@cache
def nicknames() -> MappingProxyType[str, frozenset[str]]:
    """Case-folded given name -> every other case-folded name it may stand for.

    ``nicknames()["bob"]`` contains ``"robert"``, ``"rob"`` and ``"bobby"``; a name
    in two groups (``"alex"``) gets the union. Names without nicknames are absent.
    """
    table: dict[str, set[str]] = {}
    for group in nickname_groups():
        folded = {name.casefold() for name in group}
        for name in folded:
            table.setdefault(name, set()).update(folded - {name})
    return MappingProxyType({name: frozenset(others) for name, others in sorted(table.items())})


def are_nicknames(a: str, b: str) -> bool:
    """True when ``a`` and ``b`` are the same name or listed in one nickname group."""
    fa, fb = a.casefold(), b.casefold()
    return fa == fb or fb in nicknames().get(fa, frozenset())
