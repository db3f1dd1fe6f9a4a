"""The configured objects the service and CLI run on, built once at the entry point."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

from joinedup.access.consent_store import ConsentStore
from joinedup.access.read_cache import ReadCache
from joinedup.access.service import AccessService
from joinedup.audit.service import AuditLog, build_audit_log
from joinedup.auth.grants import TokenService
from joinedup.auth.jwk import KeyStore
from joinedup.auth.tokens import TokenIssuer, TokenVerifier
from joinedup.config import Settings
from joinedup.documents.config import DocumentStoreConfig, S3Config
from joinedup.documents.registry import DocumentRegistry
from joinedup.documents.stores import open_content_store
from joinedup.logs import get_logger
from joinedup.orgs.registry import Registry
from joinedup.people.index import PersonIndex
from joinedup.people.matcher import matcher_from_file
from joinedup.people.observer import PersonLinker
from joinedup.records.store import RecordStore
from joinedup.sources.batches import Ingestion
from joinedup.storage.changes import ChangeListener, watch_local_writes
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
    documents: DocumentRegistry
    consents: ConsentStore
    changes: ChangeListener | None = None
    """Feeds the read cache (``access.read_cache``) the changes other processes commit."""
    unwatch: Callable[[], None] | None = None
    """Removes the hooks that tell the read cache of this process's own writes."""

    def verifier(self) -> TokenVerifier:
        return TokenVerifier(
            self.keys,
            issuer=self.settings.issuer,
            audience=self.settings.audience,
            leeway=self.settings.clock_skew_seconds,
        )

    def close(self) -> None:
        """Commit queued audit events and sign a final checkpoint, then drop connections."""
        if self.changes is not None:
            self.changes.stop()
            cache = self.access.read_cache
            if cache is not None and (cache.hits or cache.misses):
                get_logger("joinedup.read_cache").info("read cache", **cache.stats())
        if self.unwatch is not None:
            self.unwatch()
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
    cache, changes, unwatch = read_cache(settings, db)
    access = AccessService(
        settings.effective_agreements_dir, registry, records, people, read_cache=cache)
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
        document_registry(settings, db),
        ConsentStore(db),
        changes,
        unwatch,
    )


def read_cache(
    settings: Settings, db: Database
) -> tuple[ReadCache | None, ChangeListener | None, Callable[[], None] | None]:
    """The ``$everything`` read cache on PostgreSQL (invalidated by LISTEN/NOTIFY, the
    listener started on first use); none on SQLite (ADR 0102 second amendment)."""
    if db.dialect != "postgresql" or settings.read_cache_entries <= 0:
        return None, None, None
    holder: list[ChangeListener] = []
    cache = ReadCache(
        max_entries=settings.read_cache_entries,
        max_bytes=settings.read_cache_bytes,
        start_listening=lambda: holder[0].start(),
        lease_seconds=settings.read_cache_lease_seconds,
    )
    changes = ChangeListener(
        db.engine, cache, heartbeat_seconds=settings.read_cache_lease_seconds / 3)
    holder.append(changes)
    return cache, changes, watch_local_writes(db.engine, cache.changed_everything)


def document_store_config(settings: Settings) -> DocumentStoreConfig:
    s3 = None
    if settings.document_store == "s3":
        s3 = S3Config(
            bucket=settings.s3_bucket,
            endpoint_url=settings.s3_endpoint_url or None,
            region=settings.s3_region or None,
            prefix=settings.s3_prefix,
            addressing_style=settings.s3_addressing_style,
            part_size=settings.s3_part_bytes,
        )
    return DocumentStoreConfig(
        backend=settings.document_store,
        local_dir=settings.effective_document_dir,
        keys_dir=settings.effective_document_keys_dir,
        active_key_id=settings.document_active_key_id or None,
        max_bytes=settings.document_max_bytes,
        chunk_size=settings.document_chunk_bytes,
        staging_grace=timedelta(seconds=settings.document_staging_grace_seconds),
        s3=s3,
    )


def document_registry(settings: Settings, db: Database) -> DocumentRegistry:
    """The MHD registry; its content store (and master key) is opened on first use, so
    everything else runs before `joinedup documents keys init`."""
    config = document_store_config(settings)
    types = [t.strip() for t in settings.document_content_types.split(",") if t.strip()]
    return DocumentRegistry(
        db,
        lambda: open_content_store(config),
        content_types=types,
        max_bytes=settings.document_max_bytes,
    )


@contextmanager
def running(settings: Settings | None = None, *, migrated: bool = True) -> Iterator[Services]:
    """Services for one command: refused on an unmigrated database, always closed after."""
    from joinedup.config import load_settings
    from joinedup.storage.migrate import ensure_migrated

    svc = build(settings or load_settings())
    try:
        if migrated:
            ensure_migrated(svc.db)
        yield svc
    finally:
        svc.close()
