"""Audit: the append-only, hash-chained log of every access and change.

Public API (see docs/reference/audit.md):

* values: ``AuditEvent``, ``Actor``, ``AuditAction``, ``Outcome``, ``ReviewOutcome``,
  ``LoggedEvent``, ``Review``;
* the service: ``AuditLog`` (``append``, ``append_async``, ``checkpoint``,
  ``verify``, ``export_checkpoints``, ``archive``, ``search``, ``report``,
  ``review``, ``access_report``, ``close``), built by ``build_audit_log``;
* keys: ``AuditKeyStore``; results: ``VerifyReport``, ``Report``, ``AccessReport``.
"""

from joinedup.audit.config import AuditConfig
from joinedup.audit.events import (
    READ_ACTIONS,
    Actor,
    AuditAction,
    AuditEvent,
    LoggedEvent,
    Outcome,
    Review,
    ReviewOutcome,
)
from joinedup.audit.keys import AuditKeyStore, PublicKeys
from joinedup.audit.queries import EventQuery
from joinedup.audit.reports import Report
from joinedup.audit.service import AuditLog, build_audit_log
from joinedup.audit.transparency import AccessEntry, AccessReport
from joinedup.audit.verify import Finding, ProblemKind, VerifyReport

__all__ = [
    "READ_ACTIONS",
    "AccessEntry",
    "AccessReport",
    "Actor",
    "AuditAction",
    "AuditConfig",
    "AuditEvent",
    "AuditKeyStore",
    "AuditLog",
    "EventQuery",
    "Finding",
    "LoggedEvent",
    "Outcome",
    "ProblemKind",
    "PublicKeys",
    "Report",
    "Review",
    "ReviewOutcome",
    "VerifyReport",
    "build_audit_log",
]
