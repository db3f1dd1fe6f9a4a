"""The application's effective routes, with their full paths (prefixes included)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from fastapi import FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import compile_path


@dataclass(frozen=True)
class RouteInfo:
    path: str
    methods: frozenset[str]
    is_api: bool
    regex: re.Pattern[str]


def route_table(app: FastAPI) -> list[RouteInfo]:
    table = []
    for ctx in iter_route_contexts(app.routes):
        path = ctx.path
        if path is None:
            continue
        methods = frozenset(getattr(ctx.original_route, "methods", None) or ())
        regex, _, _ = compile_path(path)
        table.append(RouteInfo(path, methods, isinstance(ctx.original_route, APIRoute), regex))
    return table


class RouteTemplates:
    """Maps a concrete request path to its route template, for logs and metric labels."""

    def __init__(self, app: FastAPI) -> None:
        self._app = app
        self._table: list[RouteInfo] | None = None

    def template(self, path: str) -> str:
        if self._table is None:
            self._table = route_table(self._app)
        for route in self._table:
            if route.regex.match(path):
                return route.path
        return "unmatched"
