"""The team: owners invite by email (one-time link, Django's SetPasswordForm), change roles, remove members;
staff suspend companies."""
import re

import pytest
from django.contrib.auth.models import User
from django.core import mail
from django.utils import timezone

from billing.services import subscription_get_live
from saas_bot.errors import NoLiveSubscription
from tenants.models import Invitation, Membership

pytestmark = pytest.mark.django_db


def _member(company, email, role):
    user = User.objects.create_user(email, email, "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=company, role=role)
    return user


def test_owner_invites_and_the_link_sets_the_password_once(client, company, django_capture_on_commit_callbacks):
    client.force_login(_member(company, "owner@acme.test", Membership.Role.OWNER))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/tenants/invitation/add/", {"email": "New.Person@Example.com",
                                                                  "role": "viewer"})
    assert response.status_code == 302
    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["new.person@example.com"]
    link = re.search(r"http://testserver(/invitations/[^/\s]+/)", mail.outbox[0].body).group(1)
    assert Invitation.objects.get().token_hash not in mail.outbox[0].body  # only the hash is stored

    client.logout()
    assert "Choose a password" in client.get(link).content.decode()
    weak = client.post(link, {"new_password1": "123", "new_password2": "123"})
    assert weak.status_code == 200 and not User.objects.filter(email="new.person@example.com").exists()
    response = client.post(link, {"new_password1": "Tulip-Harbor-93", "new_password2": "Tulip-Harbor-93"})
    assert response.status_code == 302 and response["Location"] == "/admin/"
    user = User.objects.get(email="new.person@example.com")
    assert user.is_staff and not user.is_superuser and user.check_password("Tulip-Harbor-93")
    assert Membership.objects.get(user=user).role == "viewer"
    assert client.get("/admin/rag/document/").status_code == 200  # signed in, sees the company's pages

    client.logout()
    assert client.get(link).status_code == 404
    assert client.post(link, {"new_password1": "Other-Pass-77", "new_password2": "Other-Pass-77"}).status_code == 404
    assert User.objects.get(pk=user.pk).check_password("Tulip-Harbor-93")


def test_an_expired_link_and_a_non_owner_cannot(client, company):
    from tenants.services import invitation_create

    invitation = invitation_create(company=company, email="late@example.com", role="admin",
                                   accept_url=lambda token: f"/invitations/{token}/")
    tokens = []
    invitation_create(company=company, email="x@example.com", role="admin",
                      accept_url=lambda token: tokens.append(token) or f"/invitations/{token}/")
    Invitation.objects.filter(email="x@example.com").update(expires_at=timezone.now())
    assert client.get(f"/invitations/{tokens[0]}/").status_code == 404
    assert invitation.accepted_at is None

    client.force_login(_member(company, "admin@acme.test", Membership.Role.ADMIN))
    assert client.get("/admin/tenants/invitation/add/").status_code == 403
    assert client.get("/admin/tenants/membership/").status_code == 200  # admins see the team


def test_owner_changes_roles_and_removes_members_but_keeps_an_owner(client, company):
    owner = _member(company, "owner@acme.test", Membership.Role.OWNER)
    viewer = _member(company, "viewer@acme.test", Membership.Role.VIEWER)
    client.force_login(owner)
    mine, theirs = Membership.objects.get(user=owner), Membership.objects.get(user=viewer)
    assert client.post(f"/admin/tenants/membership/{theirs.pk}/change/", {"role": "admin"}).status_code == 302
    assert Membership.objects.get(pk=theirs.pk).role == "admin"

    response = client.post(f"/admin/tenants/membership/{mine.pk}/change/", {"role": "viewer"})
    assert response.status_code == 200 and "(membership_last_owner)" in response.content.decode()
    assert Membership.objects.get(pk=mine.pk).role == "owner"
    response = client.post(f"/admin/tenants/membership/{mine.pk}/delete/", {"post": "yes"}, follow=True)
    assert "(membership_last_owner)" in response.content.decode()
    assert Membership.objects.filter(pk=mine.pk).exists()

    client.post(f"/admin/tenants/membership/{theirs.pk}/delete/", {"post": "yes"})
    assert not Membership.objects.filter(pk=theirs.pk).exists() and User.objects.filter(pk=viewer.pk).exists()


def test_staff_suspend_a_company(admin_client, client, company):
    client.force_login(_member(company, "owner@acme.test", Membership.Role.OWNER))
    assert client.get("/admin/bots/bot/").status_code == 200
    response = admin_client.post("/admin/tenants/company/", {"action": "suspend", "_selected_action": [company.pk]})
    assert response.status_code == 302
    company.refresh_from_db()
    assert not company.is_active
    with pytest.raises(NoLiveSubscription):
        subscription_get_live(company=company)  # its bots answer nothing
    assert client.get("/admin/bots/bot/").status_code == 403  # its members lose the admin
    admin_client.post("/admin/tenants/company/", {"action": "activate", "_selected_action": [company.pk]})
    company.refresh_from_db()
    assert subscription_get_live(company=company).company == company


def test_staff_create_a_company_with_the_service_rules(admin_client):
    from tenants.models import Company

    response = admin_client.post("/admin/tenants/company/add/", {"name": "Umbrella", "slug": "Umbrella_Corp",
                                                                 "is_active": "on"})
    assert response.status_code == 200 and "(company_slug_invalid)" in response.content.decode()
    assert not Company.objects.filter(name="Umbrella").exists()
    response = admin_client.post("/admin/tenants/company/add/", {"name": "Umbrella", "slug": "umbrella"})
    assert response.status_code == 302
    assert Company.objects.get(slug="umbrella").is_active is False  # unchecked box: created suspended


def test_the_team_and_company_forms_validate_without_writing(company):
    """clean() stores nothing and sends nothing; the admins' saves call the services (issue 12)."""
    from tenants.admin import CompanyForm, InvitationForm, MembershipForm
    from tenants.models import Company

    assert CompanyForm(data={"name": "Umbrella", "slug": "umbrella", "is_active": "on"}).is_valid()
    assert not Company.objects.filter(slug="umbrella").exists()
    assert InvitationForm(data={"email": "new@example.com", "role": "viewer"}).is_valid()
    assert not Invitation.objects.exists() and mail.outbox == []
    owner = Membership.objects.get(user=_member(company, "owner@acme.test", Membership.Role.OWNER))
    assert MembershipForm(data={"role": "viewer"}, instance=owner).is_valid()
    assert Membership.objects.get(pk=owner.pk).role == "owner"


def test_inviting_a_member_is_refused_on_the_form(client, company, django_capture_on_commit_callbacks):
    client.force_login(_member(company, "owner@acme.test", Membership.Role.OWNER))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post("/admin/tenants/invitation/add/", {"email": "owner@acme.test", "role": "viewer"})
    assert response.status_code == 200 and "(invitation_already_member)" in response.content.decode()
    assert not Invitation.objects.exists() and mail.outbox == []
