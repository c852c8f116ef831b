"""Connection settings, read from the environment at the edge of every process.

The variable names are the ones the user's services already use, so the same
shell environment drives their retriever, reembed's CLI and its workers.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from urllib.parse import urlparse

DEFAULT_DB = "database"


@dataclass(frozen=True)
class Settings:
    """Where MongoDB, Redis and Chroma are. Runtime knobs only: never fingerprinted."""

    mongodb_uri: str = "mongodb://localhost:27017"
    db: str = DEFAULT_DB
    broker_url: str = "redis://localhost:6379/0"
    result_backend: str = "redis://localhost:6379/0"
    chroma_host: str = "localhost"
    chroma_port: int = 8000
    chroma_ssl: bool = False
    chroma_token: str = field(default="", repr=False)  # CHROMA_TOKEN, a secret

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> Settings:
        """Build settings from ``env`` (default ``os.environ``)."""
        e = os.environ if env is None else env
        broker = e.get("CELERY_BROKER_URL") or e.get("REDIS_URL") or cls.broker_url
        host, port, ssl = _chroma_address(e)
        return cls(
            mongodb_uri=e.get("MONGODB_URI") or cls.mongodb_uri,
            db=e.get("REEMBED_DB") or DEFAULT_DB,
            broker_url=broker,
            result_backend=e.get("CELERY_RESULT_BACKEND") or broker,
            chroma_host=host,
            chroma_port=port,
            chroma_ssl=ssl,
            chroma_token=e.get("CHROMA_TOKEN") or "",
        )


def _chroma_address(e: os._Environ[str] | dict[str, str]) -> tuple[str, int, bool]:
    """``CHROMA_URL`` wins over ``CHROMA_HOST`` + ``CHROMA_PORT``."""
    url = e.get("CHROMA_URL")
    if url:
        parsed = urlparse(url)
        ssl = parsed.scheme == "https"
        return parsed.hostname or "localhost", parsed.port or (443 if ssl else 8000), ssl
    return e.get("CHROMA_HOST") or "localhost", int(e.get("CHROMA_PORT") or 8000), False


def settings() -> Settings:
    """Current settings; read on every call so tests and the CLI can change the environment."""
    return Settings.from_env()
