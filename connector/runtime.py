"""The one place where real collaborators are built and plugged together (bootstrap)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property

from redis import Redis

from connector.config import ConfigError, Settings
from connector.crypto import SecretBox
from connector.spec import TrackSpec, load_spec
from connector.storage import db
from connector.storage.db import Engine, Sessions
from connector.storage.inbox import InboxWriter


@dataclass
class Runtime:
    """Settings plus the engine, sessions, Redis and helpers built from them, per process."""

    settings: Settings
    spec: TrackSpec = field(default_factory=load_spec, repr=False)

    @cached_property
    def engine(self) -> Engine:
        return db.make_engine(self.settings.database_url)

    @cached_property
    def inbox(self) -> InboxWriter:
        """Stores verified webhooks (the door's one INSERT each)."""
        return InboxWriter(self.engine)

    @cached_property
    def sessions(self) -> Sessions:
        return db.make_sessionmaker(self.engine)

    @cached_property
    def redis(self) -> Redis:
        if not self.settings.redis_url:
            raise ConfigError(
                "REDIS_URL is not set: run `connector serve` (it starts an embedded Redis) "
                "or point REDIS_URL at a Redis server"
            )
        # Bounded waits: a Redis that drops packets must not hang a webhook's answer for long.
        return Redis.from_url(
            self.settings.redis_url,
            socket_timeout=10,
            socket_connect_timeout=2,
            health_check_interval=30,
        )

    @cached_property
    def secrets(self) -> SecretBox:
        return SecretBox(self.settings.secret_key, self.settings.previous_secret_keys)


_current: tuple[int, Runtime] | None = None


def install(runtime: Runtime) -> Runtime:
    """Make `runtime` the one `current()` returns in this process (tests, entry points)."""
    global _current
    _current = (os.getpid(), runtime)
    return runtime


def current() -> Runtime:
    """This process's runtime, built from the environment on first use (and after a fork)."""
    if _current is None or _current[0] != os.getpid():
        return install(Runtime(Settings.from_env()))
    return _current[1]
