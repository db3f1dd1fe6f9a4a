"""Permissions name actions, never people or roles.

A client system is registered with the permissions it may be granted; a token
carries the subset it asked for in its ``scope`` claim; each route declares the
one it needs.
"""

from __future__ import annotations

from enum import StrEnum


class Permission(StrEnum):
    ORGS_READ = "orgs:read"
    ORGS_WRITE = "orgs:write"
    FEEDS_WRITE = "feeds:write"
    RECORDS_READ = "records:read"
    RECORDS_WRITE = "records:write"
    PEOPLE_REVIEW = "people:review"
    DOCUMENTS_READ = "documents:read"
    DOCUMENTS_PUBLISH = "documents:publish"
    AGREEMENTS_READ = "agreements:read"
    AGREEMENTS_WRITE = "agreements:write"
    CONSENTS_WRITE = "consents:write"
    AUDIT_READ = "audit:read"
    AUDIT_REVIEW = "audit:review"
    EVENTS_SUBSCRIBE = "events:subscribe"


ALL = frozenset(Permission)

PARTNER_DEFAULT = frozenset(
    {
        Permission.RECORDS_READ,
        Permission.DOCUMENTS_READ,
        Permission.DOCUMENTS_PUBLISH,
        Permission.RECORDS_WRITE,
        Permission.EVENTS_SUBSCRIBE,
    }
)
"""What an organisation's clinical or case-management system is registered with by default."""


def parse_scope(scope: str) -> frozenset[Permission]:
    """Parse a space-separated OAuth scope string; unknown names raise ValueError."""
    names = scope.split()
    unknown = sorted(n for n in names if n not in Permission._value2member_map_)
    if unknown:
        raise ValueError(f"unknown permission(s): {', '.join(unknown)}")
    return frozenset(Permission(n) for n in names)


def format_scope(permissions: frozenset[Permission] | set[Permission]) -> str:
    return " ".join(sorted(p.value for p in permissions))
