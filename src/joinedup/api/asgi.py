"""ASGI entry point for uvicorn workers: settings from the environment, read once."""

from joinedup.api.app import create_app
from joinedup.config import load_settings
from joinedup.logs import configure
from joinedup.services import build

_settings = load_settings()
configure(_settings.log_level, _settings.log_json)
app = create_app(build(_settings))
