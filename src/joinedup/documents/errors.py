"""Errors of the content store.

Callers' mistakes (too large, not what was declared, a range past the end)
are ``UserError``s with stable HTTP statuses. Stored content that fails its
checks is *not* a user error: it means tampering, corruption or a bug, so
``ContentIntegrityError`` is a plain exception (a 500, logged whole) whose
message names the content id and the check that failed, never any content.
"""

from __future__ import annotations

from joinedup.errors import ConfigError, Conflict, InvalidInput, NotFound, Problem, UserError


class ContentTooLarge(UserError):
    """Over the configured maximum; refused while streaming, nothing kept."""

    status = 413
    slug = "content-too-large"
    title = "Content too large"


class ContentMismatch(InvalidInput):
    """The bytes received differ from the size or SHA-1 the caller declared."""

    slug = "content-mismatch"
    title = "Content does not match its declared size or hash"


class ContentNotFound(NotFound):
    """No committed content under that id (also what a malformed id gets)."""


class RangeNotSatisfiable(UserError):
    status = 416
    slug = "range-not-satisfiable"
    title = "Range not satisfiable"


class StagingGone(Conflict):
    """Commit or abort of staged content that was aborted, swept or never staged."""

    slug = "staging-gone"
    title = "Staged content is no longer available"


class MasterKeyError(ConfigError):
    """The document master keyring is missing, unreadable, or lacks a needed key."""


class ContentIntegrityError(Exception):
    """Stored content or its envelope failed verification: never serve it.

    ``check`` is a short stable name for the failed check (``chunk-tag``,
    ``sha1``, ``length``, ``key-unwrap``, ``envelope``) for alerting.
    """

    def __init__(self, content_id: str, check: str, detail: str) -> None:
        super().__init__(f"content {content_id} failed integrity check {check!r}: {detail}")
        self.content_id = content_id
        self.check = check
        self.detail = detail


__all__ = [
    "ContentIntegrityError",
    "ContentMismatch",
    "ContentNotFound",
    "ContentTooLarge",
    "MasterKeyError",
    "Problem",
    "RangeNotSatisfiable",
    "StagingGone",
]
