"""Encrypt credentials at rest (Fernet, keyed from CONNECTOR_SECRET_KEY)."""

from __future__ import annotations

import base64
import hashlib

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
