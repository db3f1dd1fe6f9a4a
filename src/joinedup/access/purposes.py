"""Purposes of use: why data is being used. A token carries exactly one."""

from __future__ import annotations

from enum import StrEnum


class Purpose(StrEnum):
    DIRECT_CARE = "direct-care"
    CARE_COORDINATION = "care-coordination"
    SAFEGUARDING = "safeguarding"
    EMERGENCY = "emergency"
    """Break-glass: emergency access beyond the usual rules; needs a reason."""
    PLANNING = "planning"
    RESEARCH = "research"
    GOVERNANCE = "governance"
    """Information governance work: audit review, agreements, subject access."""
    ADMINISTRATION = "administration"
    """Operating the service: registry, feeds, keys. Never reads care records."""
    TRANSPARENCY = "transparency"
    """A person looking at their own access report."""


INDIVIDUAL_CARE = frozenset(
    {Purpose.DIRECT_CARE, Purpose.CARE_COORDINATION, Purpose.SAFEGUARDING, Purpose.EMERGENCY}
)
"""Purposes of individual care, to which the national data opt-out does not apply."""

BEYOND_INDIVIDUAL_CARE = frozenset({Purpose.PLANNING, Purpose.RESEARCH})
"""Purposes to which the national data opt-out applies."""

NEEDS_REASON = frozenset({Purpose.EMERGENCY})
"""Purposes whose token must carry a stated reason (break-glass)."""

RECORD_PURPOSES = INDIVIDUAL_CARE | BEYOND_INDIVIDUAL_CARE
"""Purposes for which care records may be read at all. Governance, administration
and transparency work with audit, registry and agreements, never with records."""

PURPOSE_SYSTEM = "https://joinedup.dev/fhir/CodeSystem/purpose-of-use"
"""Code system for purposes in FHIR (Consent.provision.purpose, AuditEvent.purposeOfEvent)."""
