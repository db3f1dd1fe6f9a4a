"""The admin API (/admin): internal operations, its own schemas, never reused by /fhir."""

from fastapi import APIRouter, Depends

from joinedup.api.admin import access, audit, consents, feeds, orgs, people
from joinedup.api.deps import authenticated

router = APIRouter(prefix="/admin", dependencies=[Depends(authenticated)])
router.include_router(orgs.router)
router.include_router(people.router)
router.include_router(feeds.router)
router.include_router(audit.router)
router.include_router(consents.router)
router.include_router(access.router)
