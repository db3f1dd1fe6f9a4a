"""Turn Pydantic validation errors into a UserError listing every problem."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from joinedup.errors import InvalidInput, Problem

M = TypeVar("M", bound=BaseModel)


def problems_from(error: ValidationError, prefix: str = "") -> list[Problem]:
    problems = []
    for item in error.errors(include_url=False, include_input=False):
        path = ".".join(str(part) for part in item["loc"])
        location = f"{prefix}.{path}" if prefix and path else (prefix or path)
        message = str(item["msg"]).removeprefix("Value error, ")
        problems.append(Problem(message, location))
    return problems


def parse(model: type[M], data: Mapping[str, Any], *, what: str, prefix: str = "") -> M:
    """Validate ``data`` as ``model`` or raise InvalidInput naming ``what`` was invalid."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise InvalidInput(f"invalid {what}", problems_from(exc, prefix)) from None
