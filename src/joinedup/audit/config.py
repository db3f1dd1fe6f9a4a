"""The audit log's settings, as a value built once at the entry point."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from joinedup.config import Settings


@dataclass(frozen=True, slots=True)
class AuditConfig:
    checkpoint_every_events: int = 10_000
    """Sign a checkpoint once the head is this many events past the last one..."""
    checkpoint_every_seconds: float = 60.0
    """...or this long after it, whichever comes first (and on shutdown)."""
    append_timeout_seconds: float = 30.0
    """How long a caller waits for its events to be committed before giving up (503)."""
    max_batch_events: int = 5_000
    """Upper bound on one group commit, so one transaction never grows unbounded."""
    show_staff_names: bool = False
    """Whether a person's access report names individual staff (area policy)."""
    retention_days: int | None = None
    """Events older than this may be archived; None keeps everything."""
    volume_factor: float = 3.0
    volume_floor: int = 50
    volume_baseline_days: int = 28

    def __post_init__(self) -> None:
        problems = []
        if self.checkpoint_every_events < 1:
            problems.append("checkpoint_every_events must be at least 1")
        if self.checkpoint_every_seconds <= 0:
            problems.append("checkpoint_every_seconds must be positive")
        if self.append_timeout_seconds <= 0:
            problems.append("append_timeout_seconds must be positive")
        if self.max_batch_events < 1:
            problems.append("max_batch_events must be at least 1")
        if self.retention_days is not None and self.retention_days < 1:
            problems.append("retention_days must be at least 1 (or unset)")
        if self.volume_factor <= 1 or self.volume_floor < 1 or self.volume_baseline_days < 1:
            problems.append("volume_factor must exceed 1; volume floor and days must be >= 1")
        if problems:
            raise ValueError("; ".join(problems))

    @classmethod
    def from_settings(cls, settings: Settings) -> AuditConfig:
        """From the ``JOINEDUP_AUDIT_*`` settings."""
        values = {
            name: getattr(settings, f"audit_{name}")
            for name in (
                "checkpoint_every_events",
                "checkpoint_every_seconds",
                "append_timeout_seconds",
                "max_batch_events",
                "show_staff_names",
                "retention_days",
                "volume_factor",
                "volume_floor",
                "volume_baseline_days",
            )
        }
        return cls(**values)


def keys_dir(settings: Settings) -> Path:
    """``JOINEDUP_AUDIT_KEYS_DIR``, else ``<data_dir>/audit-keys``."""
    return settings.audit_keys_dir or settings.data_dir / "audit-keys"
