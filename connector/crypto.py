"""Secrets at rest, keyed from CONNECTOR_SECRET_KEY: credentials encrypted (Fernet), and the
redaction tombstones (HMAC-SHA256), which a dictionary of emails cannot reverse."""

from __future__ import annotations

import base64
import hashlib
import hmac

from cryptography.fernet import Fernet, InvalidToken


class SecretBox:
    """Encrypts and decrypts short secrets (API keys, access tokens) for storage."""

    def __init__(self, secret_key: str) -> None:
        # Fernet wants 32 url-safe base64 bytes; derive them so any passphrase works.
        derived = hashlib.sha256(b"connector-credentials\x00" + secret_key.encode()).digest()
        self._fernet = Fernet(base64.urlsafe_b64encode(derived))

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except InvalidToken as exc:
            raise ValueError("stored credential cannot be decrypted with this secret key") from exc

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
