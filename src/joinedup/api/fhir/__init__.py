"""The partner API: FHIR R4 at /fhir. Errors are OperationOutcome; never reuses /admin routes."""

from fastapi import APIRouter, Depends

from joinedup.api.deps import authenticated
from joinedup.api.fhir import audit, consent, metadata, mhd, records, relationships

router = APIRouter(prefix="/fhir")
router.include_router(metadata.router)

protected = APIRouter(dependencies=[Depends(authenticated)])
"""Every /fhir route except the CapabilityStatement hangs off this router."""
protected.include_router(audit.router)
protected.include_router(consent.router)  # before records, whose /{type} would shadow it
protected.include_router(relationships.router)
protected.include_router(records.router)  # after audit: its /{type} would shadow /AuditEvent
mhd.mount(router)  # before records: its /{type} would shadow MHD's routes
router.include_router(protected)

first = APIRouter(prefix="/fhir", dependencies=[Depends(records.EVERYTHING_READER)])
"""Routes the application matches before any other (see ``records.everything_router``);
protected like ``protected`` plus ``records.router``'s checks, in one dependency
(``deps.authenticated_for``)."""
first.include_router(records.everything_router)
