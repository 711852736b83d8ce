"""The index is grouped by what a company admin does; links to optional pages appear once they exist."""
import re

import pytest
from django.contrib.auth.models import User
from django.urls import clear_url_caches

from bots.models import Bot
from saas_bot.crypto import encrypt_secret
from tenants.models import Membership

pytestmark = pytest.mark.django_db


def _groups(page: str) -> list[str]:
    return re.findall(r'<caption>\s*<a href="[^"]*" class="section"[^>]*>([^<]+)</a>', page)


@pytest.fixture
def owner(company):
    user = User.objects.create_user("owner@acme.test", "owner@acme.test", "pw-Xy7!long", is_staff=True)
    Membership.objects.create(user=user, company=company, role=Membership.Role.OWNER)
    return user


def test_member_index_groups(client, owner):
    client.force_login(owner)
    page = client.get("/admin/").content.decode()
    assert _groups(page) == ["Bots", "Knowledge", "Conversations", "Usage", "Team", "Developers"]
    assert 'href="/admin/usage/"' in page and 'href="/admin/knowledge-gaps/"' in page
    assert "Acme" in page  # the company they work in


def test_staff_index_has_the_back_office(admin_client):
    page = admin_client.get("/admin/").content.decode()
    assert _groups(page)[-1] == "Back office"
    for name in ("Companies", "Plans", "Subscriptions", "Telegram updates"):
        assert name in page


@pytest.mark.urls("tenants.tests.extra_pages_urls")
def test_links_to_usage_playground_and_knowledge_gaps_once_they_exist(client, owner, company, telegram):
    clear_url_caches()
    client.force_login(owner)
    page = client.get("/admin/").content.decode()
    assert _groups(page) == ["Bots", "Knowledge", "Conversations", "Usage", "Team", "Developers"]
    assert 'href="/admin/usage/"' in page and 'href="/admin/knowledge-gaps/"' in page
    bot = Bot.objects.create(company=company, name="B", token_encrypted=encrypt_secret("1:x"), telegram_id=1)
    assert f'href="/admin/playground/{bot.pk}/"' in client.get(f"/admin/bots/bot/{bot.pk}/change/").content.decode()


def test_a_member_of_two_companies_switches_between_them(client, owner, company, make_company):
    from rag.models import Collection

    other = make_company("initech")
    Membership.objects.create(user=owner, company=other, role=Membership.Role.VIEWER)
    Collection.objects.create(company=company, name="Acme docs")
    Collection.objects.create(company=other, name="Initech docs")
    client.force_login(owner)
    names = lambda: [c.name for c in client.get("/admin/rag/collection/").context["cl"].queryset]  # noqa: E731
    assert names() == ["Acme docs"]
    client.post("/admin/switch-company/", {"company_id": other.pk})
    assert names() == ["Initech docs"]
    assert client.get("/admin/rag/collection/add/").status_code == 403  # a viewer there
    client.post("/admin/switch-company/", {"company_id": 999999})  # not theirs: ignored
    assert names() == ["Initech docs"]


def test_admin_views_find_bots_through_the_same_scope(rf, owner, company, make_company):
    from django.http import Http404

    from bots.admin import get_bot_for_admin

    mine = Bot.objects.create(company=company, name="Mine", token_encrypted=encrypt_secret("1:x"), telegram_id=1)
    theirs = Bot.objects.create(company=make_company("rival"), name="Theirs", token_encrypted=encrypt_secret("2:x"),
                                telegram_id=2)
    request = rf.get("/admin/")
    request.user, request.session = owner, {}
    assert get_bot_for_admin(request, mine.pk) == mine
    with pytest.raises(Http404):
        get_bot_for_admin(request, theirs.pk)
