"""Storage: engines from settings, the shared metadata, and migrations."""

from joinedup.storage.base import Base
from joinedup.storage.engine import Database, make_engine

__all__ = ["Base", "Database", "make_engine"]
