"""PUBLIC_BASE_URL is checked at start (a trial user's "bots.example.com" failed only at setWebhook)."""
import pytest

from bots.apps import _public_base_url_check


@pytest.mark.parametrize("value, ok", [("", True), ("https://bots.example.com", True), ("http://127.0.0.1:8000", True),
                                       ("bots.example.com", False), ("ftp://bots.example.com", False),
                                       ("https://", False), ("http://[::1", False)])
def test_public_base_url_must_be_an_absolute_http_url(settings, value, ok):
    settings.PUBLIC_BASE_URL = value
    errors = _public_base_url_check(None)
    assert (errors == []) is ok
    if not ok:
        assert errors[0].id == "bots.E001" and value in errors[0].msg
