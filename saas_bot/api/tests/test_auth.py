"""Authentication (keys, sessions, roles), the error shape, throttling and the key command."""
import datetime as dt
import io

import pytest
from django.contrib.auth.models import User
from django.core.management import call_command
from django.utils import timezone
from rest_framework.test import APIClient

from saas_bot.api.models import ApiKey
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def _error(response) -> dict:
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "detail"}, body
    return body["error"]


def test_key_authenticates_and_records_last_use(company, make_key, key_client):
    api_key, key = make_key(company)
    assert "." in key and key.startswith(api_key.prefix)
    assert key not in api_key.hashed_key and api_key.hashed_key != key
    response = key_client(key).get("/api/v1/subscription")
    assert response.status_code == 200, response.content
    assert response.json()["plan"]["code"] == "plan-acme"
    api_key.refresh_from_db()
    assert api_key.last_used_at is not None


def test_missing_key_is_401_with_challenge(company):
    response = APIClient().get("/api/v1/bots")
    assert response.status_code == 401
    assert response["WWW-Authenticate"] == "Api-Key"
    assert _error(response)["code"] == "not_authenticated"


@pytest.mark.parametrize("state", ["unknown", "wrong_secret", "revoked", "expired", "garbage"])
def test_unusable_keys_are_401(company, make_key, key_client, state):
    api_key, key = make_key(company)
    if state == "unknown":
        key = "Zz9Zz9Zz.nothing-like-this-was-issued"
    elif state == "wrong_secret":
        key = f"{api_key.prefix}.{'x' * 32}"
    elif state == "garbage":
        key = f"{api_key.prefix}.\x00\u00e9" + "x" * 300
    elif state == "revoked":
        ApiKey.objects.filter(pk=api_key.pk).update(revoked=True)
    else:
        ApiKey.objects.filter(pk=api_key.pk).update(expiry_date=timezone.now() - dt.timedelta(seconds=1))
    response = key_client(key).get("/api/v1/bots")
    assert response.status_code == 401
    assert _error(response)["code"] == "authentication_failed"


def test_key_with_future_expiry_works(company, make_key, key_client):
    _, key = make_key(company, expiry_date=timezone.now() + dt.timedelta(days=1))
    assert key_client(key).get("/api/v1/bots").status_code == 200


def _member(company, role, username="member"):
    user = User.objects.create_user(username, password="pw-for-tests-only", is_staff=True)
    Membership.objects.create(user=user, company=company, role=role)
    client = APIClient()
    client.force_login(user)
    return client


def test_session_member_reads_and_viewer_cannot_write(company):
    admin_client = _member(company, Membership.Role.ADMIN, "admin1")
    assert admin_client.get("/api/v1/documents").status_code == 200
    viewer = _member(company, Membership.Role.VIEWER, "viewer1")
    assert viewer.get("/api/v1/documents").status_code == 200
    response = viewer.post("/api/v1/documents", {"title": "T", "text": "body"}, format="json")
    assert response.status_code == 403 and _error(response)["code"] == "permission_denied"


def test_staff_without_membership_gets_403(company):
    user = User.objects.create_superuser("root", password="pw-for-tests-only")
    client = APIClient()
    client.force_login(user)
    response = client.get("/api/v1/bots")
    assert response.status_code == 403 and _error(response)["code"] == "permission_denied"


def test_unknown_url_method_and_media_type_use_the_error_shape(api):
    response = api.get("/api/v1/nothing-here")
    assert response.status_code == 404 and _error(response)["code"] == "not_found"
    assert api.get("/api/v1/bots/99999999999999999999").status_code == 404  # longer than a bigint
    response = api.put("/api/v1/bots", {}, format="json")
    assert response.status_code == 405 and _error(response)["code"] == "method_not_allowed"
    response = api.post("/api/v1/bots", "token=x", content_type="text/plain")
    assert response.status_code == 415 and _error(response)["code"] == "unsupported_media_type"
    response = api.post("/api/v1/bots", "{not json", content_type="application/json")
    assert response.status_code == 400 and _error(response)["code"] == "parse_error"
    response = api.post("/api/v1/bots", {}, format="json")
    error = _error(response)
    assert response.status_code == 400 and error["code"] == "validation_failed" and "token" in error["detail"]


def test_throttled_per_key_with_retry_after(company, make_key, key_client, settings):
    settings.API_THROTTLE_RATE = "3/min"
    first, second = key_client(make_key(company)[1]), key_client(make_key(company, "other")[1])
    assert [first.get("/api/v1/bots").status_code for _ in range(3)] == [200, 200, 200]
    response = first.get("/api/v1/bots")
    assert response.status_code == 429 and _error(response)["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60
    assert second.get("/api/v1/bots").status_code == 200  # counted per key


def test_api_key_create_command_prints_a_working_key(company, key_client):
    out = io.StringIO()
    call_command("api_key_create", company="acme", name="CMS sync", stdout=out, stderr=io.StringIO())
    key = out.getvalue().strip()
    assert ApiKey.objects.get(company=company).name == "CMS sync"
    assert key_client(key).get("/api/v1/usage").status_code == 200


def test_schema_and_swagger_ui_are_served_offline(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert schema.status_code == 200
    document = schema.json()
    assert "ApiKeyAuth" in document["components"]["securitySchemes"]
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            assert operation.get("summary"), f"{method} {path} has no summary"
            assert any(code.startswith("4") for code in operation["responses"]), f"{method} {path}"
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert "swagger-ui" in html and "cdn" not in html.lower() and "http://" not in html.replace(
        "http://testserver", "")
    # Its files come from drf-spectacular-sidecar, served by the web process (WhiteNoise), not from a CDN.
    bundle = client.get("/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js")
    assert bundle.status_code == 200


@pytest.mark.parametrize("key", ["", "   ", "x" * 256, "a\x00b", "caf\u00e9"])
def test_invalid_idempotency_keys_are_400(api, key):
    response = api.post("/api/v1/documents", {"title": "T", "text": "body"}, format="json",
                        headers={"Idempotency-Key": key})
    assert response.status_code == 400 and _error(response)["code"] == "idempotency_key_invalid"


@pytest.mark.parametrize("days", ["0", "-1"])
def test_api_key_create_refuses_a_key_that_would_be_expired_at_once(company, days):
    # It printed a key that the API then refused with "This API key has expired."
    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="--expires-days must be 1 to 36500"):
        call_command("api_key_create", "--company", company.slug, "--name", "x", "--expires-days", days)
