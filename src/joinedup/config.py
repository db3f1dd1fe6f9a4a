"""Typed settings, read once from the environment at the entry point.

Nothing secret has a default here: signing keys live in files that
``joinedup keys init`` creates, never in code or config.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    """joinedup's configuration. Every field maps to ``JOINEDUP_<NAME>``."""

    model_config = SettingsConfigDict(env_prefix="JOINEDUP_", extra="ignore", frozen=True)

    data_dir: Path = Field(
        default=Path("var"),
        description="Folder for local state: the SQLite file, signing keys, document store.",
    )
    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL. Empty means the embedded SQLite file <data_dir>/joinedup.db; "
            "postgresql://user@host:5432/db selects PostgreSQL (psycopg 3)."
        ),
    )
    keys_dir: Path | None = Field(
        default=None,
        description="Folder of token-signing keys (JWK files). Default <data_dir>/keys.",
    )
    matching_model: Path | None = Field(
        default=None,
        description=(
            "Trained matching model (JSON) for the person index. Default "
            "<data_dir>/models/matching-model.json; until one is trained "
            "(`joinedup people train`) only NHS numbers link records."
        ),
    )
    agreements_dir: Path | None = Field(
        default=None,
        description=(
            "Folder of data sharing agreements (YAML) the partner API decides by. "
            "Default <data_dir>/agreements; none there means each organisation sees "
            "only its own records."
        ),
    )
    audit_keys_dir: Path | None = Field(
        default=None,
        description="Audit checkpoint signing keys (Ed25519). Default <data_dir>/audit-keys.",
    )
    audit_checkpoint_every_events: int = Field(default=10_000, ge=1)
    audit_checkpoint_every_seconds: float = Field(default=60.0, gt=0)
    audit_append_timeout_seconds: float = Field(
        default=30.0, gt=0, description="A read waits this long for its audit event; then 503."
    )
    audit_max_batch_events: int = Field(default=5_000, ge=1)
    audit_retention_days: int | None = Field(
        default=None,
        ge=1,
        description="Archive and remove events older than this; unset keeps all.",
    )
    audit_show_staff_names: bool = Field(
        default=False, description="Whether a person's access report names individual staff."
    )
    audit_volume_factor: float = Field(default=3.0, gt=1)
    audit_volume_floor: int = Field(default=50, ge=1)
    audit_volume_baseline_days: int = Field(default=28, ge=1)
    document_store: Literal["local", "s3"] = Field(
        default="local", description="Where document content is kept: `local` folder or `s3`."
    )
    document_dir: Path | None = Field(
        default=None, description="Folder of the local document store. Default <data_dir>/documents."
    )
    document_keys_dir: Path | None = Field(
        default=None,
        description=(
            "Document master keys (a mounted secret in production). Default "
            "<data_dir>/document-keys; create one with `joinedup documents keys init`."
        ),
    )
    document_active_key_id: str = Field(
        default="", description="Master key that wraps new documents' keys. Default: the newest."
    )
    document_max_bytes: int = Field(
        default=1024**3, ge=1, description="Largest document accepted (bytes)."
    )
    document_chunk_bytes: int = Field(default=1024 * 1024, ge=4096, le=16 * 1024 * 1024)
    document_staging_grace_seconds: int = Field(default=86_400, ge=60)
    document_bundle_max_bytes: int = Field(
        default=64 * 1024 * 1024,
        ge=1024,
        description=(
            "Largest ITI-65 bundle body (bytes); larger content is streamed first with "
            "POST /fhir/Binary."
        ),
    )
    document_content_types: str = Field(
        default=(
            "application/pdf,text/plain,application/fhir+json,application/fhir+xml,"
            "text/xml,image/png,image/jpeg"
        ),
        description="Content types a published document may have (comma-separated).",
    )
    s3_bucket: str = Field(default="", description="Bucket of the s3 document store.")
    s3_endpoint_url: str = Field(default="", description="S3-compatible server; empty is AWS.")
    s3_region: str = ""
    s3_prefix: str = "documents/"
    s3_addressing_style: str = "auto"
    s3_part_bytes: int = Field(default=8 * 1024 * 1024, ge=5 * 1024 * 1024)
    public_base_url: str = Field(
        default="",
        description=(
            "Base URL clients reach this service at, when it is behind a proxy "
            "(e.g. https://care.example.org/shared): FHIR `fullUrl`s, paging links and "
            "`Location` headers start with it. Empty: the URL the request came in on."
        ),
    )
    issuer: str = Field(
        default="http://127.0.0.1:8000",
        description="Public base URL of this service; the `iss` of tokens it issues.",
    )
    audience: str = Field(
        default="joinedup",
        description="The `aud` every access token must carry.",
    )
    token_ttl_seconds: int = Field(
        default=600, ge=30, le=3600, description="Lifetime of issued access tokens."
    )
    client_assertion_max_age_seconds: int = Field(
        default=300,
        ge=30,
        le=3600,
        description="How far in the future a client assertion's `exp` may be (RFC 7523).",
    )
    clock_skew_seconds: int = Field(default=30, ge=0, le=300)
    read_cache_entries: int = Field(
        default=10_000,
        ge=0,
        description=(
            "Persons whose `Patient/$everything` inputs and answers each worker keeps in "
            "memory (PostgreSQL only; invalidated by LISTEN/NOTIFY). 0 turns the cache off."
        ),
    )
    read_cache_bytes: int = Field(
        default=256 * 1024 * 1024,
        ge=0,
        description="About how much record JSON and Bundle text the read cache keeps per worker.",
    )
    read_cache_lease_seconds: float = Field(
        default=3.0,
        ge=0.3,
        le=60.0,
        description=(
            "The read cache serves only while one of its listener's own heartbeats (sent "
            "every third of this) came back within this many seconds."
        ),
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=1, le=65535)
    workers: int = Field(default=1, ge=1, le=64)
    log_level: str = "info"
    log_json: bool = Field(default=True, description="JSON log lines (false: human-readable).")

    @field_validator("log_level")
    @classmethod
    def _known_level(cls, value: str) -> str:
        value = value.lower()
        if value not in {"debug", "info", "warning", "error"}:
            raise ValueError("log_level must be debug, info, warning or error")
        return value

    @field_validator("public_base_url")
    @classmethod
    def _absolute_base(cls, value: str) -> str:
        """Empty, or an absolute http(s) URL with a host and nothing after its path:
        every link in an answer is built on it."""
        if not value:
            return value
        parts = urlsplit(value)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"public_base_url must be an absolute http(s) URL, got {value!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"public_base_url must not carry a query or fragment, got {value!r}")
        return value

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'joinedup.db'}"

    @property
    def effective_keys_dir(self) -> Path:
        return self.keys_dir or self.data_dir / "keys"

    @property
    def effective_matching_model(self) -> Path:
        return self.matching_model or self.data_dir / "models" / "matching-model.json"

    @property
    def effective_agreements_dir(self) -> Path:
        return self.agreements_dir or self.data_dir / "agreements"

    @property
    def effective_document_dir(self) -> Path:
        return self.document_dir or self.data_dir / "documents"

    @property
    def effective_document_keys_dir(self) -> Path:
        return self.document_keys_dir or self.data_dir / "document-keys"

    @property
    def token_endpoint(self) -> str:
        return self.issuer.rstrip("/") + "/oauth2/token"


def load_settings(**overrides: object) -> Settings:
    """Read settings from the environment; ``overrides`` win (used by the CLI and tests)."""
    return Settings(**overrides)  # type: ignore[arg-type]
