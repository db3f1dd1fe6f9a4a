"""The two kinds of error.

A ``UserError`` is something the caller can fix: a bad file, request, token
or setting. It carries every problem found (not just the first), a stable
HTTP status and CLI exit code, and is shown without a traceback. Anything
else is a bug: logged whole, answered with a plain 500.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong, and where: ``location`` is a path a person can follow
    (``row 12, column dob``, ``parties[2]``, ``header.kid``)."""

    message: str
    location: str = ""

    def __str__(self) -> str:
        return f"{self.location}: {self.message}" if self.location else self.message

    def as_dict(self) -> dict[str, str]:
        return {"location": self.location, "message": self.message}


class UserError(Exception):
    """Base of every error a user can act on."""

    status: ClassVar[int] = 400
    exit_code: ClassVar[int] = 2
    slug: ClassVar[str] = "invalid-request"
    title: ClassVar[str] = "Invalid request"

    def __init__(self, detail: str, problems: list[Problem] | tuple[Problem, ...] = ()) -> None:
        super().__init__(detail)
        self.detail = detail
        self.problems: tuple[Problem, ...] = tuple(problems)

    def __str__(self) -> str:
        if not self.problems:
            return self.detail
        lines = "\n".join(f"  - {p}" for p in self.problems)
        return f"{self.detail}\n{lines}"


class InvalidInput(UserError):
    status = 422
    slug = "invalid-input"
    title = "Invalid input"


class NotFound(UserError):
    """Also what a caller gets when not permitted: the two must look the same."""

    status = 404
    exit_code = 3
    slug = "not-found"
    title = "Not found"


class Conflict(UserError):
    status = 409
    exit_code = 4
    slug = "conflict"
    title = "Conflict"


class Unauthenticated(UserError):
    status = 401
    exit_code = 5
    slug = "unauthenticated"
    title = "Authentication required"


class Forbidden(UserError):
    status = 403
    exit_code = 5
    slug = "forbidden"
    title = "Forbidden"


class ConfigError(UserError):
    """Bad or missing configuration; the message names the fix."""

    status = 500
    exit_code = 78  # EX_CONFIG
    slug = "configuration"
    title = "Configuration error"


class Unavailable(UserError):
    """A dependency (database, audit store) cannot be used right now."""

    status = 503
    exit_code = 69  # EX_UNAVAILABLE
    slug = "unavailable"
    title = "Service unavailable"
