"""The configured objects the service and CLI run on, built once at the entry point."""

from __future__ import annotations

from dataclasses import dataclass

from joinedup.access.service import AccessService
from joinedup.audit.service import AuditLog, build_audit_log
from joinedup.auth.grants import TokenService
from joinedup.auth.jwk import KeyStore
from joinedup.auth.tokens import TokenIssuer, TokenVerifier
from joinedup.config import Settings
from joinedup.orgs.registry import Registry
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import matcher_from_file
from joinedup.people.observer import PersonLinker
from joinedup.records.store import RecordStore
from joinedup.sources.batches import Ingestion
from joinedup.storage.engine import Database


@dataclass(frozen=True)
class Services:
    settings: Settings
    db: Database
    keys: KeyStore
    issuer: TokenIssuer
    tokens: TokenService
    registry: Registry
    people: PersonIndex
    records: RecordStore
    ingestion: Ingestion
    audit: AuditLog
    access: AccessService

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(
            self.keys,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            leeway=self.settings.clock_skew_seconds,
        )

    def close(self) -> None:
        """Commit queued audit events and sign a final checkpoint, then drop connections."""
        self.audit.close()
        self.db.dispose()


def build(settings: Settings, db: Database | None = None) -> Services:
    db = db or Database.from_url(settings.effective_database_url)
    keys = KeyStore(settings.effective_keys_dir)
    issuer = TokenIssuer(
        keys,
        issuer=settings.issuer,
        audience=settings.audience,
        ttl_seconds=settings.token_ttl_seconds,
    )
    tokens = TokenService(
        db,
        issuer,
        token_endpoint=settings.token_endpoint,
        assertion_max_age=settings.client_assertion_max_age_seconds,
        leeway=settings.clock_skew_seconds,
    )
    people = PersonIndex(db, matcher_from_file(settings.effective_matching_model))
    ingestion = Ingestion(db, observers=[PersonLinker(people)])
    registry = Registry(db)
    records = RecordStore(db)
    access = AccessService(settings.effective_agreements_dir, registry, records, people)
    return Services(
        settings,
        db,
        keys,
        issuer,
        tokens,
        registry,
        people,
        records,
        ingestion,
        build_audit_log(settings, db),
        access,
    )
