"""Secrets at rest: webhook secrets are stored encrypted with Fernet (AES-128-CBC and HMAC-SHA256).

The keys are those of `PRESIGN_ENCRYPTION_KEYS` (Fernet keys, newest first), then one derived from
the instance secret key (`PRESIGN_SECRET_KEY` or the instance folder's). The first key encrypts; every
key decrypts, so a new key is rolled out by putting it first and running `presign secrets reencrypt`,
after which the old one can go.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from risk.errors import ConfigError

# A value written before encryption existed (a migrated secret when the migration had no key at hand).
PLAIN_PREFIX = "plain:"


def derived_key(secret_key: str) -> str:
    """The Fernet key derived from the instance secret key (HKDF-SHA256, its own label, so the ID-number
    hashes and this key never share material directly)."""
    hkdf = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"presign webhook secrets v1")
    return base64.urlsafe_b64encode(hkdf.derive(secret_key.encode("utf-8"))).decode("ascii")


def new_key() -> str:
    return Fernet.generate_key().decode("ascii")


class SecretBox:
    """Encrypts and decrypts the secrets Presign must keep readable (it signs with them)."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise ConfigError("no encryption key")
        try:
            self._fernet = MultiFernet([Fernet(key.encode("ascii")) for key in keys])
        except (ValueError, UnicodeEncodeError):
            raise ConfigError("PRESIGN_ENCRYPTION_KEYS must hold Fernet keys (url-safe base64 of 32 bytes)") from None

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode("utf-8")).decode("ascii")

    def decrypt(self, stored: str) -> str:
        if stored.startswith(PLAIN_PREFIX):
            return stored[len(PLAIN_PREFIX) :]
        try:
            return self._fernet.decrypt(stored.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with any configured key") from None

    def reencrypt(self, stored: str) -> str:
        """`stored` under the first key (a plain value gets encrypted)."""
        if stored.startswith(PLAIN_PREFIX):
            return self.encrypt(self.decrypt(stored))
        try:
            return self._fernet.rotate(stored.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise ConfigError("a stored secret cannot be decrypted with any configured key") from None

    @classmethod
    def for_settings(cls, encryption_keys: Sequence[str], secret_key: str) -> SecretBox:
        return cls([*encryption_keys, derived_key(secret_key)])
