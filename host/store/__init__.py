"""The host's storage: one data-access layer (SQLAlchemy Core) over SQLite or PostgreSQL."""

from .engine import open_engine, upgrade

__all__ = ["open_engine", "upgrade"]
