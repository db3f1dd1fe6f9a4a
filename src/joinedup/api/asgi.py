"""ASGI entry point for uvicorn workers: settings from the environment, read once."""

import gc

from joinedup.api.app import create_app
from joinedup.config import load_settings
from joinedup.logs import configure
from joinedup.services import build

_settings = load_settings()
configure(_settings.log_level, _settings.log_json)
app = create_app(build(_settings))
# Everything built so far (modules, the app, compiled statements: ~150,000 objects)
# lives as long as the worker. Frozen, the collector stops walking it: an occasional
# full collection otherwise took tens to hundreds of ms under load, stalling every
# request the worker had in flight (see docs/performance.md, issue 6).
gc.freeze()
