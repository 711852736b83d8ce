"""Fixtures of the API tests: keys and clients per company."""
from __future__ import annotations

import pytest
from rest_framework.test import APIClient

from saas_bot.api.models import ApiKey


@pytest.fixture(autouse=True)
def _fresh_throttle_cache():
    """Throttle counters live in the default cache: each test starts from zero."""
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def make_key():
    """make_key(company, **fields) -> (ApiKey, key string)."""

    def make(company, name: str = "test key", **fields):
        return ApiKey.objects.create_key(name=name, company=company, **fields)

    return make


@pytest.fixture
def key_client():
    """key_client(key) -> an APIClient sending ``Authorization: Api-Key <key>``."""

    def make(key: str) -> APIClient:
        client = APIClient()
        client.credentials(HTTP_AUTHORIZATION=f"Api-Key {key}")
        return client

    return make


@pytest.fixture
def api(company, make_key, key_client) -> APIClient:
    """A client with a key of "acme"."""
    return key_client(make_key(company)[1])
