"""Security labels: the data category and sensitivity of a record or field.

Every canonical resource carries both in ``meta.security``; agreements grant
access by category, and sensitivity decides what needs more than an agreement.
These codes are part of agreements and audit, so they are stable.
"""

from __future__ import annotations

from enum import StrEnum

CATEGORY_SYSTEM = "https://joinedup.dev/fhir/CodeSystem/data-category"
"""Code system for data categories in ``meta.security``."""

CONFIDENTIALITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-Confidentiality"
"""HL7 v3 Confidentiality, the standard FHIR code system for sensitivity."""

OBSERVATION_VALUE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ObservationValue"
"""Holds REDACTED, marking that something was withheld."""


class DataCategory(StrEnum):
    DEMOGRAPHICS = "demographics"
    ENCOUNTERS = "encounters"
    CONDITIONS = "conditions"
    MEDICATIONS = "medications"
    ALLERGIES = "allergies"
    OBSERVATIONS = "observations"
    CARE_PLANS = "care-plans"
    CARE_TEAMS = "care-teams"
    SOCIAL_CARE_ASSESSMENTS = "social-care-assessments"
    SOCIAL_CARE_EPISODES = "social-care-episodes"
    SAFEGUARDING = "safeguarding"
    MENTAL_HEALTH = "mental-health"
    SUBSTANCE_MISUSE = "substance-misuse"
    HOUSING = "housing"
    CARERS = "carers"
    DOCUMENTS = "documents"
    SEXUAL_HEALTH = "sexual-health"
    GENDER_IDENTITY = "gender-identity"
    ADOPTION = "adoption"


SPECIAL_CATEGORY = frozenset(
    {
        DataCategory.CONDITIONS,
        DataCategory.MEDICATIONS,
        DataCategory.ALLERGIES,
        DataCategory.OBSERVATIONS,
        DataCategory.MENTAL_HEALTH,
        DataCategory.SUBSTANCE_MISUSE,
        DataCategory.SEXUAL_HEALTH,
        DataCategory.GENDER_IDENTITY,
        DataCategory.ENCOUNTERS,
        DataCategory.CARE_PLANS,
        DataCategory.SOCIAL_CARE_ASSESSMENTS,
    }
)
"""Categories that are special-category data (UK GDPR Art. 9): health and the like."""

SEALED = frozenset(
    {DataCategory.SEXUAL_HEALTH, DataCategory.GENDER_IDENTITY, DataCategory.ADOPTION}
)
"""Categories sealed by default: only the owning organisation sees them."""


class Sensitivity(StrEnum):
    """HL7 v3 Confidentiality codes, in increasing order of restriction."""

    NORMAL = "N"
    RESTRICTED = "R"
    VERY_RESTRICTED = "V"

    @property
    def rank(self) -> int:
        return _RANK[self]


_RANK = {Sensitivity.NORMAL: 0, Sensitivity.RESTRICTED: 1, Sensitivity.VERY_RESTRICTED: 2}
