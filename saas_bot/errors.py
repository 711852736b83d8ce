"""Errors that services raise. Each carries a stable ``code`` and a human message.

The API turns them into ``{"error": {"code", "message", "detail"}}``, the admin
shows the message, the bot sends the end user a short text.
"""
from __future__ import annotations

from typing import Any


class ServiceError(Exception):
    """Base class: ``code`` is stable (clients match on it), ``message`` is for people."""

    status = 400

    def __init__(self, *, code: str, message: str, detail: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.detail = detail


class NotFound(ServiceError):
    """A missing object, or another company's object: the two look the same."""

    status = 404


class ValidationFailed(ServiceError):
    """Input that cannot be used as given."""


class QuotaExceeded(ServiceError):
    """A plan or company limit is reached; nothing was done."""

    status = 429


class NoLiveSubscription(ServiceError):
    """The company has no trialing or active subscription."""

    status = 402


class ProviderUnavailable(ServiceError):
    """A transient failure of an external system (LLM, Telegram, embeddings); retry later."""

    status = 503


class ConfigurationError(ServiceError):
    """The deployment is misconfigured (a tokenizer or model missing): not the user's input; fix and retry.

    ``message`` is what a company's admins read (admin, API): it never names a setting or a package, which
    they cannot change. ``operator_hint`` says how to fix it; it goes to the log and to the operator's
    command output only.
    """

    status = 503

    def __init__(self, *, code: str, message: str, detail: Any = None, operator_hint: str = "") -> None:
        super().__init__(code=code, message=message, detail=detail)
        self.operator_hint = operator_hint
