"""CONNECTOR_SECRET_KEY against the stored credentials: the start-up check, and the rotation
that re-encrypts every stored secret with the current key."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from connector.config import ConfigError
from connector.crypto import WRONG_KEY
from connector.runtime import Runtime
from connector.storage import credentials
from connector.storage.db import StorageUnavailableError, storage_errors, transaction

log = logging.getLogger(__name__)
# Shops whose secrets the start-up check tries: the most recently updated ones.
CHECKED_SHOPS = 5


class UndecryptableError(Exception):
    """Stored secrets that no configured key decrypts; nothing was changed."""

    def __init__(self, where: list[str]) -> None:
        super().__init__(f"{WRONG_KEY} (undecryptable: {', '.join(where)})")
        self.where = where


@dataclass(frozen=True)
class Rotation:
    """What `rotate_keys` did: secrets re-encrypted, and those already on the current key."""

    shops: int
    reencrypted: int
    already_current: int


def check_secret_key(rt: Runtime) -> None:
    """Raise ConfigError when stored credentials decrypt with none of the configured keys,
    so a wrong key stops a process at start rather than failing every delivery later.

    A database that cannot be read yet (not migrated, unreachable) is not checked: the
    process starts, and storage errors show where they happen.
    """
    try:
        with storage_errors(), rt.sessions() as session:
            sample = credentials.stored_secrets(session, shops=CHECKED_SHOPS)
    except StorageUnavailableError as exc:
        log.warning("secret key not checked: the database cannot be read (%s)", exc)
        return
    if any(not rt.secrets.can_decrypt(secret.value) for secret in sample):
        raise ConfigError(WRONG_KEY)
    if any(not rt.secrets.is_current(secret.value) for secret in sample):
        log.warning("stored credentials still use a previous key: run `connector keys rotate`")


def rotate_keys(rt: Runtime) -> Rotation:
    """Re-encrypt every stored secret with the current key, in one transaction.

    Idempotent: secrets the current key already decrypts are left alone. Raises
    UndecryptableError, changing nothing, when some secret decrypts with no configured key.
    """
    with transaction(rt.sessions) as session:
        stored = credentials.stored_secrets(session)
        lost = [
            f"{s.shop_domain} {s.column}" for s in stored if not rt.secrets.can_decrypt(s.value)
        ]
        if lost:
            raise UndecryptableError(lost)
        stale = [secret for secret in stored if not rt.secrets.is_current(secret.value)]
        reencrypted = sum(
            credentials.replace_secret(session, secret, rt.secrets.rotate(secret.value))
            for secret in stale
        )
    return Rotation(
        shops=len({secret.shop_domain for secret in stored}),
        reencrypted=reencrypted,
        already_current=len(stored) - len(stale),
    )
