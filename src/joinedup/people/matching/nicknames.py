"""Informal given names and the formal name they stand for.

"Bill" and "William" are the same person far more often than two random
names agree, so the matching model has a level for "same canonical given
name". The table ships as package data (``nicknames.json``) so that an estate
can review it like any other part of the model; it is read once and kept in
an immutable mapping.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from importlib import resources
from types import MappingProxyType
from typing import Any

_FORMAT = "joinedup.nicknames"
_FORMAT_VERSION = 1


@dataclass(frozen=True, slots=True)
class NicknameTable:
    """Informal form -> canonical form, both upper-case A-Z.

    A form listed under two canonical names (ALEX: ALEXANDER, ALEXANDRA) maps
    to the first group in the file: a single canonical value keeps the model's
    level a plain equality that SQL and Python evaluate identically. The
    Jaro-Winkler levels still catch ALEX ~ ALEXANDRA.
    """

    canonical: Mapping[str, str]

    def canonical_of(self, name: str) -> str:
        """The canonical form of an upper-case name (the name itself if not listed)."""
        return self.canonical.get(name, name)

    @classmethod
    def from_json(cls, text: str) -> NicknameTable:
        data: Any = json.loads(text)
        problems: list[str] = []
        if not isinstance(data, dict):
            raise ValueError("nickname table must be a JSON object")
        if data.get("format") != _FORMAT:
            problems.append(f"format must be {_FORMAT!r}")
        if data.get("format_version") != _FORMAT_VERSION:
            problems.append(f"format_version must be {_FORMAT_VERSION}")
        groups = data.get("groups")
        if not isinstance(groups, dict):
            problems.append("groups must be an object of name -> list of forms")
            groups = {}
        mapping: dict[str, str] = {}
        for formal, forms in groups.items():
            if not _is_clean(formal):
                problems.append(f"groups.{formal}: name must be upper-case A-Z")
            if not isinstance(forms, list) or not all(isinstance(f, str) for f in forms):
                problems.append(f"groups.{formal}: forms must be a list of strings")
                continue
            mapping.setdefault(formal, formal)
            for i, form in enumerate(forms):
                if not _is_clean(form):
                    problems.append(f"groups.{formal}[{i}]: form must be upper-case A-Z")
                mapping.setdefault(form, formal)
        if problems:
            raise ValueError("invalid nickname table: " + "; ".join(problems))
        return cls(MappingProxyType(mapping))


def _is_clean(name: object) -> bool:
    return isinstance(name, str) and name.isascii() and name.isalpha() and name.isupper()


@cache
def default_nicknames() -> NicknameTable:
    """The table shipped with joinedup (read from package data once)."""
    text = resources.files(__package__).joinpath("nicknames.json").read_text(encoding="utf-8")
    return NicknameTable.from_json(text)
