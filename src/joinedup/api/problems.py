"""Errors as RFC 9457 problem+json (FHIR OperationOutcome under /fhir)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from joinedup.errors import Problem, UserError
from joinedup.logs import get_logger

PROBLEM_BASE = "https://joinedup.dev/problems/"
log = get_logger("joinedup.api")


def problem_response(
    status: int,
    title: str,
    detail: str,
    *,
    slug: str,
    problems: tuple[Problem, ...] = (),
    headers: Mapping[str, str] | None = None,
    extra: dict[str, Any] | None = None,
    instance: str | None = None,
) -> JSONResponse:
    body: dict[str, Any] = {
        "type": PROBLEM_BASE + slug,
        "title": title,
        "status": status,
        "detail": detail,
    }
    if instance:
        body["instance"] = instance
    if problems:
        body["errors"] = [p.as_dict() for p in problems]
    body.update(extra or {})
    return JSONResponse(
        body, status_code=status, headers=headers, media_type="application/problem+json"
    )


_FHIR_CODES = {
    400: "invalid",
    401: "login",
    403: "forbidden",
    404: "not-found",
    409: "conflict",
    422: "processing",
    503: "transient",
}


def operation_outcome(
    status: int,
    detail: str,
    problems: tuple[Problem, ...] = (),
    headers: Mapping[str, str] | None = None,
) -> JSONResponse:
    code = _FHIR_CODES.get(status, "exception")
    issues: list[dict[str, Any]] = [{"severity": "error", "code": code, "diagnostics": detail}]
    issues += [
        {
            "severity": "error",
            "code": code,
            "diagnostics": p.message,
            **({"expression": [p.location]} if p.location else {}),
        }
        for p in problems
    ]
    return JSONResponse(
        {"resourceType": "OperationOutcome", "issue": issues},
        status_code=status,
        headers=headers,
        media_type="application/fhir+json",
    )


def _is_fhir(request: Request) -> bool:
    return request.url.path.startswith("/fhir")


def _auth_headers(status: int, detail: str) -> dict[str, str] | None:
    if status == 401:
        safe = detail.replace('"', "'")
        return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{safe}"'}
    return None


def fhir_error(exc: UserError) -> JSONResponse:
    """A user error's answer under /fhir (what the application's handler sends)."""
    headers = _auth_headers(exc.status, exc.detail)
    # FHIR answers an invalid request (bad search parameter, malformed body) with 400.
    status = 400 if exc.status == 422 else exc.status
    return operation_outcome(status, exc.detail, exc.problems, headers)


def install(app: FastAPI) -> None:
    @app.exception_handler(UserError)
    async def user_error(request: Request, exc: UserError) -> JSONResponse:
        if _is_fhir(request):
            return fhir_error(exc)
        headers = _auth_headers(exc.status, exc.detail)
        return problem_response(
            exc.status,
            exc.title,
            exc.detail,
            slug=exc.slug,
            problems=exc.problems,
            headers=headers,
            instance=request.state.request_id if hasattr(request.state, "request_id") else None,
        )

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        problems = tuple(
            Problem(str(e.get("msg", "invalid")), ".".join(str(x) for x in e.get("loc", ())))
            for e in exc.errors()
        )
        if _is_fhir(request):
            return operation_outcome(400, "the request is not valid", problems)
        return problem_response(
            422,
            "Invalid input",
            "the request is not valid",
            slug="invalid-input",
            problems=problems,
        )

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        detail = str(exc.detail) if exc.detail else "error"
        if _is_fhir(request):
            return operation_outcome(exc.status_code, detail, headers=exc.headers)
        return problem_response(
            exc.status_code, detail, detail, slug=f"http-{exc.status_code}", headers=exc.headers
        )

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> JSONResponse:
        log.error(
            "unhandled_error",
            path=request.scope.get("route") and getattr(request.scope["route"], "path", None),
            exc_info=exc,
        )
        if _is_fhir(request):
            return operation_outcome(500, "internal error")
        return problem_response(500, "Internal error", "internal error", slug="internal")
