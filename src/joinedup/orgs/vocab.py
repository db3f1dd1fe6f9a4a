"""Controlled vocabularies for the organisations registry.

Values are stable, lower-case, hyphenated codes: they appear in agreements,
tokens and audit events, so renaming one is a migration, not an edit.
"""

from __future__ import annotations

import re
from enum import StrEnum

ODS_CODE = re.compile(r"^[A-Z0-9]{3,10}$")
"""ODS-style organisation code: upper-case letters and digits, 3 to 10 long."""


class OrgKind(StrEnum):
    ACUTE_TRUST = "acute-trust"
    MENTAL_HEALTH_TRUST = "mental-health-trust"
    COMMUNITY_TRUST = "community-trust"
    GP_PRACTICE = "gp-practice"
    LA_ADULT_SOCIAL_CARE = "la-adult-social-care"
    LA_CHILDRENS_SERVICES = "la-childrens-services"
    CHARITY = "charity"
    POLICE = "police"
    HUB = "hub"
    """The organisation that operates the joinedup service for the area."""


class ProfessionalRole(StrEnum):
    CLINICIAN = "clinician"
    NURSE = "nurse"
    ALLIED_HEALTH_PROFESSIONAL = "allied-health-professional"
    SOCIAL_WORKER = "social-worker"
    CARE_COORDINATOR = "care-coordinator"
    CASEWORKER = "caseworker"
    POLICE_OFFICER = "police-officer"
    ADMIN = "admin"
    VOLUNTEER = "volunteer"
    IG_LEAD = "ig-lead"
    DATA_STEWARD = "data-steward"
    INTEGRATION_ENGINEER = "integration-engineer"
