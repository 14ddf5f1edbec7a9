"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) with settings.FIELD_ENCRYPTION_KEY.

The setting may hold several keys, comma-separated, newest first: new values are encrypted with
the first, any of them decrypts, so keys can be rotated without losing saved secrets."""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


class SecretUnreadable(Exception):
    """The value was encrypted with a key that is no longer configured."""


def _fernet() -> MultiFernet:
    keys = [key.strip() for key in settings.FIELD_ENCRYPTION_KEY.split(",") if key.strip()]
    return MultiFernet([Fernet(key) for key in keys])


def encrypt(value: str) -> str:
    return _fernet().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet().decrypt(token.encode()).decode()
    except InvalidToken as error:
        raise SecretUnreadable("This secret was saved with another encryption key.") from error
