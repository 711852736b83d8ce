"""Encryption of secrets at rest (bot tokens) with cryptography's Fernet.

``FIELD_ENCRYPTION_KEY`` may hold several comma-separated keys: the first
encrypts, all decrypt (MultiFernet), which allows key rotation.
"""
from __future__ import annotations

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: str) -> MultiFernet:
    return MultiFernet([Fernet(k.strip().encode()) for k in keys.split(",") if k.strip()])


def encrypt_secret(plaintext: str) -> str:
    """Encrypt ``plaintext`` (str) and return the Fernet token as ASCII text."""
    return _fernet(settings.FIELD_ENCRYPTION_KEY).encrypt(plaintext.encode()).decode()


def decrypt_secret(token: str) -> str:
    """Decrypt a value made by :func:`encrypt_secret`.

    Raises:
        cryptography.fernet.InvalidToken: wrong key or tampered value.
    """
    return _fernet(settings.FIELD_ENCRYPTION_KEY).decrypt(token.encode()).decode()


__all__ = ["encrypt_secret", "decrypt_secret", "InvalidToken"]
