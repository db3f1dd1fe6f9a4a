"""Structured logs. Events name what happened and ids, never personal data:
no names, NHS numbers, dates of birth, addresses, raw query strings or bodies."""

from __future__ import annotations

import json as stdlib_json
import logging
import sys
from typing import Any

import orjson
import structlog


class _Stderr:
    """Writes to whatever sys.stderr is now (so redirection after start-up is honoured)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _dumps(value: Any, **kw: Any) -> str:
    """JSON for a log line with orjson (a request's line is written on the hot path),
    falling back to the standard library for what orjson refuses (non-string keys,
    integers beyond 64 bits)."""
    try:
        return orjson.dumps(value, default=kw.get("default")).decode()
    except (TypeError, orjson.JSONEncodeError):
        return stdlib_json.dumps(value, **kw)


def configure(level: str = "info", json: bool = True) -> None:
    processors: list[structlog.types.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
    ]
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer(serializer=_dumps) if json else structlog.dev.ConsoleRenderer()
    )
    structlog.configure(
        processors=[*processors, renderer],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(file=_Stderr()),  # type: ignore[arg-type]
        cache_logger_on_first_use=True,
    )


def get_logger(name: str) -> structlog.typing.FilteringBoundLogger:
    logger: structlog.typing.FilteringBoundLogger = structlog.get_logger(name)
    return logger
