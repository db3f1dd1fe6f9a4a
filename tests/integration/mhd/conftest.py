"""Fixtures shared by the MHD tests: the small world of ``world.py`` on the ``services``
of the ``db`` under test, and the app over it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from joinedup.api.app import create_app
from joinedup.services import Services
from tests.integration.mhd.world import World, build_world


@pytest.fixture
def world(services: Services) -> World:
    return build_world(services)


@pytest.fixture
def api(world: World) -> Iterator[TestClient]:
    with TestClient(create_app(world.svc)) as client:
        yield client
