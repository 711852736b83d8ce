"""A new company's first day (issue 16): ``company_setup --owner`` makes an owner who signs in at once, admin
access follows from membership (no "Staff status"), the role field says what each role may do."""
import io

import pytest
from django.contrib.auth.models import User
from django.core.management import CommandError, call_command

from tenants.models import Company, Membership

pytestmark = pytest.mark.django_db


def _setup(*args) -> str:
    out = io.StringIO()
    call_command("company_setup", *args, stdout=out)
    return out.getvalue()


def _sign_in(client, username, password):
    return client.post("/admin/login/?next=/admin/", {"username": username, "password": password})


def test_company_setup_owner_with_a_password_signs_in_through_the_login_form(client):
    out = _setup("--slug", "acme", "--owner", "Boss@Acme.Example", "--password", "Tulip-Harbor-93")
    assert "Owner boss@acme.example: password set." in out
    user = User.objects.get(email="boss@acme.example")
    assert not user.is_staff and not user.is_superuser  # membership alone opens the admin
    assert Membership.objects.get(user=user).role == "owner"
    response = _sign_in(client, "boss@acme.example", "Tulip-Harbor-93")
    assert response.status_code == 302 and response["Location"] == "/admin/"
    index = client.get("/admin/").content.decode()
    assert "Acme" in index and "Bots" in index and "Memberships" in index
    assert client.get("/admin/tenants/invitation/add/").status_code == 200  # owners invite


def test_company_setup_owner_without_a_password_prints_one_that_works(client):
    out = _setup("--slug", "acme", "--owner", "boss@acme.example")
    password = out.split("Password (shown once): ")[1].split()[0]
    assert len(password) >= 20
    assert _sign_in(client, "boss@acme.example", password).status_code == 302
    # Run again (make run does at every start): the existing owner keeps their password.
    assert "existing account, password unchanged" in _setup("--slug", "acme", "--owner", "boss@acme.example")
    assert User.objects.get(email="boss@acme.example").check_password(password)
    assert User.objects.filter(email="boss@acme.example").count() == 1


def test_company_setup_refuses_a_weak_password_or_bad_email_and_stores_no_user():
    with pytest.raises(CommandError, match="owner_password_invalid"):
        _setup("--slug", "acme", "--owner", "boss@acme.example", "--password", "123")
    with pytest.raises(CommandError, match="owner_email_invalid"):
        _setup("--slug", "acme", "--owner", "not-an-email")
    with pytest.raises(CommandError, match="--password needs --owner"):
        _setup("--slug", "acme", "--password", "Tulip-Harbor-93")
    assert not User.objects.exists()
    # ... and no company without its owner: the refusal undoes the company and its subscription too.
    assert not Company.objects.filter(slug="acme").exists()


def test_an_existing_user_becomes_owner_and_a_viewer_is_raised():
    company = Company.objects.create(name="Acme", slug="acme")
    user = User.objects.create_user("ann", "ann@acme.example", "Old-Pass-Word-77")
    Membership.objects.create(user=user, company=company, role="viewer")
    _setup("--slug", "acme", "--owner", "ANN@acme.example")
    assert Membership.objects.get(user=user).role == "owner"
    assert User.objects.get(pk=user.pk).check_password("Old-Pass-Word-77")


def test_membership_opens_the_admin_and_nothing_else_does(client, company):
    member = User.objects.create_user("m@acme.example", "m@acme.example", "Tulip-Harbor-93")  # no staff status
    Membership.objects.create(user=member, company=company, role="viewer")
    stranger = User.objects.create_user("s@else.example", "s@else.example", "Tulip-Harbor-93")
    assert _sign_in(client, "m@acme.example", "Tulip-Harbor-93").status_code == 302
    assert client.get("/admin/rag/document/").status_code == 200
    client.logout()
    refused = _sign_in(client, "s@else.example", "Tulip-Harbor-93")
    assert refused.status_code == 200 and "company member or of platform staff" in refused.content.decode()
    client.force_login(stranger)
    assert client.get("/admin/").status_code == 302  # back to the login page
    company.is_active = False
    company.save()
    client.force_login(member)
    assert client.get("/admin/").status_code == 302  # a suspended company's members lose the admin


def test_the_membership_and_invitation_forms_say_what_each_role_may_do(client, company):
    owner = User.objects.create_user("o@acme.example", "o@acme.example", "Tulip-Harbor-93")
    mine = Membership.objects.create(user=owner, company=company, role="owner")
    client.force_login(owner)
    for url in (f"/admin/tenants/membership/{mine.pk}/change/", "/admin/tenants/invitation/add/"):
        page = client.get(url).content.decode()
        assert "Viewer: reads everything" in page and "Admin: bots, documents" in page, url
