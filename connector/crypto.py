"""Secrets at rest, keyed from CONNECTOR_SECRET_KEY: credentials encrypted (Fernet), and the
redaction tombstones (HMAC-SHA256), which a dictionary of emails cannot reverse.

During a key rotation the previous keys still decrypt (MultiFernet); encryption always
uses the current key, and `connector keys rotate` re-encrypts what was stored before.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

WRONG_KEY = (
    "CONNECTOR_SECRET_KEY does not decrypt the stored credentials; set "
    "CONNECTOR_SECRET_KEY_PREVIOUS to the old key and run `connector keys rotate`"
)


def _fernet(secret_key: str) -> Fernet:
    # Fernet wants 32 url-safe base64 bytes; derive them so any passphrase works.
    derived = hashlib.sha256(b"connector-credentials\x00" + secret_key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(derived))


class SecretBox:
    """Encrypts and decrypts short secrets (API keys, access tokens) for storage."""

    def __init__(self, secret_key: str, previous_keys: Sequence[str] = ()) -> None:
        self._current = _fernet(secret_key)
        self._any = MultiFernet([self._current, *(_fernet(key) for key in previous_keys)])

    def encrypt(self, plaintext: str) -> str:
        """Always with the current key."""
        return self._current.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        """With the current key or any previous one; ValueError when none fits."""
        try:
            return self._any.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError(WRONG_KEY) from exc

    def rotate(self, token: str) -> str:
        """The same secret encrypted with the current key; ValueError when no key fits."""
        try:
            return self._any.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken as exc:
            raise ValueError(WRONG_KEY) from exc

    def is_current(self, token: str) -> bool:
        """Whether the current key alone decrypts it (nothing left to rotate)."""
        try:
            self._current.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def can_decrypt(self, token: str) -> bool:
        try:
            self._any.decrypt(token.encode("ascii"))
        except InvalidToken:
            return False
        return True

    def __repr__(self) -> str:
        return "SecretBox(***)"


def tombstone_key(secret_key: str) -> bytes:
    """The key of the redaction tombstones, derived from the secret key (and only used for them)."""
    return hmac.new(secret_key.encode(), b"redaction-tombstone", hashlib.sha256).digest()


def unkeyed_digest(shop_domain: str, value: str) -> str:
    """sha256 of (shop, value): what tombstones were before migration 0009. Reversible by a
    dictionary of emails, so it is never stored on its own any more."""
    return hashlib.sha256(f"{shop_domain}\x1f{value}".encode()).hexdigest()


def keyed(key: bytes, digest: str) -> str:
    """HMAC-SHA256 of an unkeyed digest: a stored tombstone (migration 0009 converts old ones)."""
    return hmac.new(key, digest.encode(), hashlib.sha256).hexdigest()


def tombstone(key: bytes, shop_domain: str, value: str) -> str:
    """The tombstone of a customer key (id, email, "order:<id>") in one shop."""
    return keyed(key, unkeyed_digest(shop_domain, value))
