"""API keys in the admin: owners/admins create and revoke their company's keys; the key is shown once."""
import pytest
from django.contrib.auth.models import User
from django.contrib.messages import get_messages

from saas_bot.api.models import ApiKey
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def _login(client, company, role, username):
    user = User.objects.create_user(username, password="pw-for-tests-only", is_staff=True)
    Membership.objects.create(user=user, company=company, role=role)
    client.force_login(user)
    return user


def test_admin_creates_a_key_shown_once_and_scoped(client, company, make_company, make_key, key_client):
    beta = make_company("beta")
    make_key(beta, name="beta key")
    user = _login(client, company, Membership.Role.ADMIN, "owner1")
    response = client.post("/admin/api/apikey/add/", {"name": "CMS sync", "expiry_date_0": "", "expiry_date_1": ""})
    assert response.status_code == 302, response.content.decode()[:2000]
    api_key = ApiKey.objects.get(name="CMS sync")
    assert api_key.company == company and api_key.created_by == user
    shown = [str(m) for m in get_messages(response.wsgi_request)]
    key = next(text.split("is: ")[1].split(". ")[0] for text in shown if "is: " in text)
    assert key_client(key).get("/api/v1/bots").status_code == 200
    listing = client.get("/admin/api/apikey/").content.decode()
    assert "CMS sync" in listing and "beta key" not in listing
    other = ApiKey.objects.get(name="beta key")
    assert client.get(f"/admin/api/apikey/{other.pk}/change/").status_code in (302, 404)

    response = client.post(f"/admin/api/apikey/{api_key.pk}/change/",
                           {"name": "CMS sync", "revoked": "on", "expiry_date_0": "", "expiry_date_1": ""})
    assert response.status_code == 302
    assert key_client(key).get("/api/v1/bots").status_code == 401


def test_viewer_cannot_create_keys(client, company):
    _login(client, company, Membership.Role.VIEWER, "viewer1")
    assert client.get("/admin/api/apikey/").status_code == 200
    assert client.post("/admin/api/apikey/add/", {"name": "nope"}).status_code == 403
    assert not ApiKey.objects.exists()


def test_staff_see_every_company(client, company, make_company, make_key):
    make_key(make_company("beta"), name="beta key")
    make_key(company, name="acme key")
    client.force_login(User.objects.create_superuser("root", password="pw-for-tests-only"))
    listing = client.get("/admin/api/apikey/").content.decode()
    assert "beta key" in listing and "acme key" in listing
